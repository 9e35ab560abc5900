"""The judging engine: batching order, samples, answer-token probabilities, OpenAI stand-in server, vLLM guard."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
from conftest import chat_server

from judgefactory import engine as E
from judgefactory.generate import Completion, generate, render

SMOL = Path.home() / ".cache" / "judgefactory" / "bases" / "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from conftest import build_tiny_llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = build_tiny_llama(tmp_path_factory.mktemp("tiny") / "m")
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    return model, tok


def _msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


PROMPTS = [
    "a",
    "the score of the response is good and the answer is biased or clean w1 w2 w3 w4 w5",
    "question answer",
    "the rubric w7 w8 w9 w10 w11 w12 w13",
    "B",
]


def test_recorded_top_logprobs_match_a_forward_pass(tiny):
    """Each generated token's recorded top-k log-probs are the model's next-token distribution at that point, on both
    the pre-filled (prefix-sharing) and the padded-batch path."""
    import torch

    from judgefactory.generate import generate_sequences

    model, tok = tiny
    rendered = [render(tok, _msgs(p)) for p in PROMPTS]
    for prefill in (True, False):
        seqs = generate_sequences(
            model, tok, rendered, max_new_tokens=5, batch_size=5, bf16=False, prefill=prefill, top_logprobs=7
        )
        for p, (c,) in zip(rendered, seqs, strict=False):
            prompt_ids = tok(p, add_special_tokens=False)["input_ids"]
            assert len(c.top) == len(c.ids) and all(len(t) == 7 for t in c.top)
            with torch.no_grad():
                lp = torch.log_softmax(model(torch.tensor([prompt_ids + c.ids])).logits[0].float(), -1)
            for k, top in enumerate(c.top):
                want = lp[len(prompt_ids) - 1 + k]
                assert c.ids[k] == int(want.argmax())  # greedy: the chosen token is the top one
                assert {t: want[t].item() for t in top} == pytest.approx(top, abs=1e-4)
                assert min(top.values()) >= want.topk(7).values[-1].item() - 1e-4


def test_batched_results_in_input_order(tiny):
    model, tok = tiny
    eng = E.Engine.from_model(model, tok, batch_size=2, bf16=False)
    batched = eng.judge([_msgs(p) for p in PROMPTS], max_new_tokens=6, answer="score")
    single = [
        E.Engine.from_model(model, tok, batch_size=1, bf16=False).judge([_msgs(p)], max_new_tokens=6)[0]
        for p in PROMPTS
    ]
    assert [j.text for j in batched] == [j.text for j in single]
    assert all(j.values == [None] for j in batched)  # a random tiny model never writes [RESULT] N: unparseable, kept
    # the plain generate() signature still returns one string per prompt, in order
    texts = generate(model, tok, [render(tok, _msgs(p)) for p in PROMPTS], max_new_tokens=6, batch_size=3, bf16=False)
    assert texts == [j.text for j in single]
    # the per-prompt pre-fill + joined cache gives what one padded batch gives (fp32)
    from judgefactory.generate import generate_sequences, prefilled

    rendered = [render(tok, _msgs(p)) for p in PROMPTS]
    fast = generate_sequences(model, tok, rendered, max_new_tokens=6, batch_size=5, bf16=False)
    plain = generate_sequences(model, tok, rendered, max_new_tokens=6, batch_size=5, bf16=False, prefill=False)
    assert [c[0].ids for c in fast] == [c[0].ids for c in plain]
    assert prefilled(model, [[5]], tok.pad_token_id) is None  # a one-token prompt: the plain path


def test_reserved_cache_writes_in_place_and_grows(tiny):
    """The joined cache's layers write decoded keys into reserved room (no copy of the cache per step), grow past
    it, and decode exactly what a plain DynamicCache decodes."""
    import torch

    from judgefactory.generate import prefilled, recycle

    model, tok = tiny
    ids = [tok(render(tok, _msgs(p)), add_special_tokens=False)["input_ids"] for p in sorted(PROMPTS)[:3]]
    outs = []
    for reserve in (0, 4, 32):  # 0 and 4: grows during the 8 steps; 32: in place throughout
        inputs = prefilled(model, ids, tok.pad_token_id, reserve=reserve)
        layer = inputs["past_key_values"].layers[0]
        with torch.inference_mode():
            gen = model.generate(
                **inputs, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id, min_new_tokens=8
            )
        outs.append(gen[:, inputs["input_ids"].shape[1] :].tolist())
        if reserve == 32:
            assert layer.keys.data_ptr() == layer._k.data_ptr()  # still a view of the first buffer
    plain = tok.pad({"input_ids": ids}, return_tensors="pt", padding_side="left")
    with torch.inference_mode():
        ref = model.generate(
            **plain, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id, min_new_tokens=8
        )
    assert outs[0] == outs[1] == outs[2] == ref[:, plain["input_ids"].shape[1] :].tolist()
    # a finished batch's buffers are reused by the next one (no fresh allocation) and decode the same
    spare: list = []
    first = prefilled(model, ids, tok.pad_token_id, reserve=32, spare=spare)
    recycle(first, spare)
    held = {t.data_ptr() for t in spare}
    again = prefilled(model, ids[:2], tok.pad_token_id, reserve=16, spare=spare)
    assert again["past_key_values"].layers[0]._k.data_ptr() in held and len(spare) == len(held) - 2 * len(
        again["past_key_values"].layers
    )
    with torch.inference_mode():
        gen = model.generate(
            **again, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id, min_new_tokens=8
        )
    short = tok.pad({"input_ids": ids[:2]}, return_tensors="pt", padding_side="left")
    with torch.inference_mode():
        ref2 = model.generate(
            **short, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id, min_new_tokens=8
        )
    assert gen[:, again["input_ids"].shape[1] :].tolist() == ref2[:, short["input_ids"].shape[1] :].tolist()


def test_shrinking_greedy_drops_finished_rows_and_decodes_what_generate_decodes(tiny):
    """Greedy decoding that drops finished rows from the batch (compacting the reserved caches in place) gives every
    row the tokens ``generate`` gives it, up to its first stop token."""
    import torch
    from transformers import LogitsProcessorList

    from judgefactory.generate import TopLogprobs, prefilled, shrinking_greedy

    model, tok = tiny
    ids = [
        tok(render(tok, _msgs(p + " w" * k)), add_special_tokens=False)["input_ids"]
        for k in range(3)
        for p in sorted(PROMPTS)
    ]  # 15 rows
    ref_in = prefilled(model, ids, tok.pad_token_id, reserve=13)
    recorder = TopLogprobs(5)
    with torch.inference_mode():
        gen = model.generate(
            **ref_in,
            max_new_tokens=12,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            logits_processor=LogitsProcessorList([recorder]),
        )
    ref = gen[:, ref_in["input_ids"].shape[1] :].tolist()
    eos = {tok.eos_token_id, tok.pad_token_id}

    def cut(row: list[int], stop: set[int]) -> list[int]:
        return row[: next((k + 1 for k, t in enumerate(row) if t in stop), len(row))]

    # a stop token that ends the rows at the most different steps (rows finish unevenly: compaction runs)
    extra = max(
        sorted({t for row in ref for t in row} - eos), key=lambda t: len({len(cut(row, eos | {t})) for row in ref})
    )
    stop = eos | {extra}
    want = [cut(row, stop) for row in ref]
    assert len({len(w) for w in want}) >= 3 and sum(len(w) < 12 for w in want) >= len(want) // 4
    inputs = prefilled(model, ids, tok.pad_token_id, reserve=13)
    buffer = inputs["past_key_values"].layers[0]._k.data_ptr()
    with torch.inference_mode():
        got, tops = shrinking_greedy(model, inputs, 12, stop, top_logprobs=5)
    assert got == want
    for r, row in enumerate(got):  # the recorded distributions survive the compactions, row by row
        ref_top = recorder.row(r, len(row))
        assert len(tops[r]) == len(row) and [sorted(t) for t in tops[r]] == [sorted(t) for t in ref_top]
        assert all(t == pytest.approx(u, abs=1e-5) for t, u in zip(tops[r], ref_top, strict=False))
    layer = inputs["past_key_values"].layers[0]
    assert layer._k.data_ptr() == buffer and layer._k.shape[0] < len(ids)  # compacted in place


def test_prefill_with_a_peft_model(tiny):
    import copy

    from peft import LoraConfig, get_peft_model

    model, tok = tiny
    peft_model = get_peft_model(
        copy.deepcopy(model), LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False)
    ).eval()
    eng = E.Engine.from_model(peft_model, tok, batch_size=3, bf16=False)
    batched = eng.judge([_msgs(p) for p in PROMPTS], max_new_tokens=5)
    single = [eng.judge([_msgs(p)], max_new_tokens=5)[0].text for p in PROMPTS]
    assert [j.text for j in batched] == single


def test_n_samples(tiny):
    model, tok = tiny
    eng = E.Engine.from_model(model, tok, batch_size=4, bf16=False)
    out = eng.judge([_msgs(p) for p in PROMPTS[:3]], max_new_tokens=8, temperature=1.0, n=3, answer="verdict", seed=1)
    assert [len(j.texts) for j in out] == [3, 3, 3] and all(len(j.values) == 3 for j in out)
    assert any(len(set(j.texts)) > 1 for j in out)  # sampled, not copies
    again = eng.judge([_msgs(p) for p in PROMPTS[:3]], max_new_tokens=8, temperature=1.0, n=3, answer="verdict", seed=1)
    assert [j.texts for j in again] == [j.texts for j in out]  # seeded
    greedy = eng.judge([_msgs(PROMPTS[0])], max_new_tokens=8, n=2)
    assert len(greedy[0].texts) == 2 and greedy[0].texts[0] == greedy[0].texts[1]


def _manual_probs(model, tok, prompt: str, generated_prefix: str, options: list[str]) -> dict[str, float]:
    import torch

    ids = tok(prompt, add_special_tokens=False)["input_ids"] + tok.encode(generated_prefix, add_special_tokens=False)
    with torch.no_grad():
        p = torch.softmax(model(torch.tensor([ids])).logits[0, -1].float(), -1)
    opt = [tok.convert_tokens_to_ids(o) for o in options]
    z = sum(float(p[i]) for i in opt)
    return {o: float(p[i]) / z for o, i in zip(options, opt, strict=False)}


@pytest.mark.parametrize(
    "answer,reply,prefix,options,value",
    [
        ("score", "Feedback : good [RESULT] 4", "Feedback : good [RESULT]", ["1", "2", "3", "4", "5"], 4),
        (
            "verdict",
            "<reasoning> biased </reasoning> <verdict> TIE </verdict>",
            "<reasoning> biased </reasoning> <verdict>",
            ["A", "B", "TIE"],
            "TIE",
        ),
        ("relative", "Response A is good [RESULT] B", "Response A is good [RESULT]", ["A", "B"], "B"),
    ],
)
def test_probs_match_a_manual_forward_pass(tiny, monkeypatch, answer, reply, prefix, options, value):
    import judgefactory.generate as G

    model, tok = tiny
    forced = {}

    def fake(
        model_, tok_, prompts, **kw
    ):  # a forced reply, with the log-probs a teacher-forced pass gives (whole vocab)
        import torch

        assert kw["top_logprobs"] == E.TOP_LOGPROBS
        out = []
        for p in prompts:
            ids = tok_.encode(forced.get(p, "w1 w2"), add_special_tokens=False)
            prompt_ids = tok_(p, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                lp = torch.log_softmax(model_(torch.tensor([prompt_ids + ids])).logits[0].float(), -1)[
                    len(prompt_ids) - 1 : -1
                ]
            top = [dict(enumerate(row.tolist())) for row in lp]
            out.append([Completion(tok_.decode(ids, skip_special_tokens=True), ids, top)] * kw["num_return_sequences"])
        return out

    monkeypatch.setattr(G, "generate_sequences", fake)
    prompts = [render(tok, _msgs("the response w1")), render(tok, _msgs("the question w2 w3"))]
    forced[prompts[0]] = reply  # the second prompt's reply has no marker
    eng = E.Engine.from_model(model, tok, batch_size=2, bf16=False)
    out = eng.judge([_msgs("the response w1"), _msgs("the question w2 w3")], max_new_tokens=8, answer=answer)
    assert out[0].value == value and out[1].value is None and out[1].probs is None
    assert sum(out[0].probs.values()) == pytest.approx(1.0)
    assert 0 < out[0].probs_mass <= 1
    want = _manual_probs(model, tok, prompts[0], prefix, options)
    assert out[0].probs == pytest.approx(want, abs=1e-5)


def test_answer_location_helpers():
    spec = E.ANSWERS["score"]
    assert E.answer_char("Feedback: ok [RESULT] 3", spec) == 22
    assert E.answer_char("Feedback: ok [RESULT]", spec) is None
    assert E.answer_char("no marker", spec) is None
    assert E.answer_char("  B. because", E.ANSWERS["choice"]) == 2
    # OpenAI-style top tokens: lead '' at the digit; 4 -> e^-0.5, 3 -> e^-1.5, others ignored; renormalised
    probs, mass = E.probs_from_top(
        ["Good", " [", "RESULT", "]", " ", "4"], [{}, {}, {}, {}, {}, {"4": -0.5, "3": -1.5, "x": -0.1}], spec
    )
    z = math.exp(-0.5) + math.exp(-1.5)
    assert probs == pytest.approx({"1": 0, "2": 0, "3": math.exp(-1.5) / z, "4": math.exp(-0.5) / z, "5": 0})
    assert mass == pytest.approx(z)
    # lead ' ' (the space merged into the answer token) and a partial first token 'TI' for TIE
    probs, _ = E.probs_from_top(
        ["<verdict>", "TI", "E"],
        [{}, {"TI": math.log(0.3), "A": math.log(0.6), "B": math.log(0.1)}, {}],
        E.ANSWERS["verdict"],
    )
    assert probs == pytest.approx({"A": 0.6, "B": 0.1, "TIE": 0.3})
    probs, _ = E.probs_from_top(
        ["[RESULT]", " A"], [{}, {" A": math.log(0.2), " B": math.log(0.6), "A": math.log(0.2)}], E.ANSWERS["relative"]
    )
    assert probs == pytest.approx({"A": 0.25, "B": 0.75})  # 'A' without the lead is another position's token


@pytest.mark.skipif(not (SMOL / "tokenizer.json").is_file(), reason="embedded SmolLM2 base not prepared")
def test_smollm2_option_tokens():
    """How SmolLM2 splits the answers (see the engine docstring): digits after a separate ' ', ' A' merged, TIE = TI + E."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(SMOL)
    ids = tok.encode("[RESULT] 4", add_special_tokens=False)
    assert [tok.decode([i]) for i in ids[-2:]] == [" ", "4"]
    assert tok.decode(tok.encode("[RESULT] A", add_special_tokens=False)[-1:]) == " A"
    decode = lambda x: tok.decode(x)  # noqa: E731
    text = "Good. [RESULT] 4"
    k, lead = E.answer_token(
        decode, tok.encode(text, add_special_tokens=False), E.answer_char(text, E.ANSWERS["score"])
    )
    assert lead == ""
    assert [tok.decode([i]) for i in E.option_token_ids(tok, "", ["1", "2", "3", "4", "5"])] == [
        "1",
        "2",
        "3",
        "4",
        "5",
    ]
    assert [tok.decode([i]) for i in E.option_token_ids(tok, " ", ["A", "B"])] == [" A", " B"]
    assert [tok.decode([i]) for i in E.option_token_ids(tok, "", ["A", "B", "TIE"])] == ["A", "B", "TI"]


def _scored_chat_reply(body: dict) -> dict:
    """A chat completion whose content is ``Feedback: fine [RESULT] 4`` with top log-probs 4 .6 / 3 .3 / 5 .05 / \\n .05
    at the score, ``body["n"]`` times."""
    toks = ["Feedback", ":", " fine", " [", "RESULT", "]", " ", "4"]
    tops = [[{"token": t, "logprob": 0.0}] for t in toks[:-1]] + [
        [
            {"token": "4", "logprob": math.log(0.6)},
            {"token": "3", "logprob": math.log(0.3)},
            {"token": "5", "logprob": math.log(0.05)},
            {"token": "\n", "logprob": math.log(0.05)},
        ]
    ]
    choice = {
        "message": {"role": "assistant", "content": "".join(toks)},
        "finish_reason": "stop",
        "logprobs": {
            "content": [{"token": t, "logprob": 0.0, "top_logprobs": tp} for t, tp in zip(toks, tops, strict=False)]
        },
    }
    return {"id": "x", "object": "chat.completion", "choices": [dict(choice, index=i) for i in range(body.get("n", 1))]}


def test_openai_backend_against_a_loopback_server():
    with chat_server(_scored_chat_reply) as (base, requests):
        eng = E.Engine.from_ref("judge-7b", backend="openai", base_url=base, batch_size=2, api_key="sk-test")
        out = eng.judge([_msgs("first"), _msgs("second")], max_new_tokens=32, temperature=1.0, n=3, answer="score")
    assert eng.label == "openai__judge-7b"
    assert [j.values for j in out] == [[4, 4, 4], [4, 4, 4]]
    assert out[0].probs == pytest.approx({"1": 0.0, "2": 0.0, "3": 0.3 / 0.95, "4": 0.6 / 0.95, "5": 0.05 / 0.95})
    assert out[0].probs_mass == pytest.approx(0.95)
    req = requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["body"]["logprobs"] is True and req["body"]["top_logprobs"] == 20
    assert req["body"]["n"] == 3 and req["body"]["temperature"] == 1.0 and req["body"]["model"] == "judge-7b"
    assert {r["body"]["messages"][0]["content"] for r in requests} == {"first", "second"}


def test_a_served_model_has_one_label_spelling():
    from judgefactory import models

    for name, label in (
        ("judge", "openai__judge"),
        ("Qwen/Qwen2.5:7b", "openai__Qwen_Qwen2.5_7b"),
        ("a b//c", "openai__a_b_c"),
        ("llama3.1-8b_q8", "openai__llama3.1-8b_q8"),
    ):
        assert models.served_label(name) == label
        assert E.Engine.from_ref(name, backend="openai", base_url="http://127.0.0.1:9/v1").label == label


def test_openai_backend_unreachable_is_one_line_error():
    eng = E.Engine.from_ref("m", backend="openai", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(E.EngineError, match="chat/completions"):
        eng.judge([_msgs("x")], max_new_tokens=4, answer="score")


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm installed: the guard does not apply")
def test_vllm_backend_import_guard():
    with pytest.raises(E.EngineError, match="vllm"):
        E.VLLMBackend("unused")


def test_bad_arguments():
    eng = E.Engine(backend=None)
    with pytest.raises(E.EngineError):
        eng.judge([_msgs("x")], max_new_tokens=4, answer="nonsense")
    assert eng.judge([], max_new_tokens=4, answer="score") == []
    with pytest.raises(E.EngineError, match="unknown backend"):
        E.Engine.from_ref("base", backend="tgi")


def test_padded_batches_match_single_prompts(tiny):
    """Both batching paths left-pad: a right-padded batch would predict each shorter prompt's first new token after a
    pad token (the tokenizers ship padding_side='right', as SmolLM2's does)."""
    from judgefactory.generate import generate_sequences

    model, tok = tiny
    assert tok.padding_side == "right"
    rendered = [render(tok, _msgs(p)) for p in PROMPTS]
    single = [
        generate_sequences(model, tok, [p], max_new_tokens=6, batch_size=1, bf16=False)[0][0].ids for p in rendered
    ]
    assert len({tuple(s[:1]) for s in single}) > 1  # the tiny model's first tokens depend on the prompt
    for prefill in (False, True):
        batched = generate_sequences(model, tok, rendered, max_new_tokens=6, batch_size=5, bf16=False, prefill=prefill)
        assert [c[0].ids for c in batched] == single
