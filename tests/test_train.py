"""The SFT station on a tiny Llama: loss falls, artifacts + manifest, resume after an interrupt, freshness."""

import json
import math
from pathlib import Path

import pytest
from conftest import FX_PAIRS, PKG_MIRROR, fx_pair_setup, tiny_pairwise_recipe

from judgefactory import devcurve, formats, recipes, train
from judgefactory import loss as train_loss
from judgefactory.data import prometheus
from judgefactory.errors import TrainError

FIX_MIRROR = Path(__file__).parent / "fixtures" / "mirror"


def _recipe(base: Path, **train_kw) -> recipes.AdapterRecipe:
    return recipes.from_dict(
        {
            "kind": "adapter",
            "name": "tiny-abs",
            "task": "absolute",
            "base": str(base),
            "data": {"source": "prometheus-eval/Feedback-Collection", "max_response_chars": 200},
            "lora": {"r": 8, "alpha": 32, "target_modules": ["q_proj", "v_proj", "up_proj", "down_proj"]},
            "train": {
                "max_steps": 16,
                "learning_rate": 5e-2,
                "batch_size": 4,
                "max_length": 400,
                "logging_steps": 5,
                "save_steps": 10,
                "bf16": False,
                "base_dtype": "float32",
                **train_kw,
            },
        }
    )


def test_feedback_collection_loader_on_fixture():
    items, errors = prometheus.load_absolute("prometheus-eval/Feedback-Collection", mirror=FIX_MIRROR)
    assert not errors and [i.scores for i in items] == [[5], [1], [4], [2]]
    assert items[0].prompt.startswith("###Task Description:") and "Paris is the capital of France." in items[0].prompt
    assert "Score 5: The answer is fully right." in items[0].prompt
    target = formats.absolute_target(items[0].feedbacks[0], items[0].scores[0])
    assert target.endswith("[RESULT] 5") and formats.parse_absolute(target) == 5


def test_score_targets_from_three_references():
    it = prometheus.AbsoluteItem(id="x", prompt="p", scores=[3, 2, 4], feedbacks=["f3", "f2", "f4"])
    assert prometheus.targets(it, "median") == [("f3", 3)]  # median 3, with the feedback that gave 3
    it2 = prometheus.AbsoluteItem(id="y", prompt="p", scores=[4, 5, 5], feedbacks=["a", "b", "c"])
    assert prometheus.targets(it2, "round_mean") == [("b", 5)]  # mean 4.67 -> 5, first sample that scored 5
    it3 = prometheus.AbsoluteItem(id="z", prompt="p", scores=[2, 3], feedbacks=["a", "b"])
    assert prometheus.targets(it3, "round_mean") == [("b", 3)]  # 2.5 rounds half up
    assert len(prometheus.targets(it, "each")) == 3


def test_malformed_absolute_rows_are_reported(tmp_path):
    folder = tmp_path / "prometheus-eval" / "Feedback-Collection"
    folder.mkdir(parents=True)
    good = (FIX_MIRROR / "prometheus-eval" / "Feedback-Collection" / "train.jsonl").read_text().splitlines()[0]
    bad = json.loads(good)
    del bad["orig_score"]
    (folder / "train.jsonl").write_text(good + "\n" + json.dumps(bad) + "\n")
    items, errors = prometheus.load_absolute("prometheus-eval/Feedback-Collection", mirror=tmp_path)
    assert len(items) == 1 and errors == ["train.jsonl row 1: missing field 'orig_score'"]


def test_training_loss_falls_and_artifacts_are_complete(tiny_llama, tmp_path):
    out = train.run(_recipe(tiny_llama), adapters_dir=tmp_path / "adapters", mirror=FIX_MIRROR, quick_eval=False)
    m = json.loads((out / "manifest.json").read_text())
    assert m["training"]["loss_last"] < 0.7 * m["training"]["loss_first"], m["training"]
    for f in ("adapter_config.json", "adapter_model.safetensors", "recipe.yaml", "train_log.jsonl", "loss_curve.png"):
        assert (out / f).is_file() and f in m["files"]
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_llama)
    assert m["data"][0]["rows"] == 4 and m["base"]["name"] == str(tiny_llama)
    assert not (tmp_path / "adapters" / ".work").exists() or not any((tmp_path / "adapters" / ".work").iterdir())
    # unchanged recipe + data + base: skipped; a changed recipe retrains
    assert (
        train.run(_recipe(tiny_llama), adapters_dir=tmp_path / "adapters", mirror=FIX_MIRROR, quick_eval=False) == out
    )
    assert json.loads((out / "manifest.json").read_text())["created"] == m["created"]


def test_interrupted_training_resumes_from_last_checkpoint(tiny_llama, tmp_path, monkeypatch):
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 7:
                raise KeyboardInterrupt

    monkeypatch.setattr(train, "_TimeCap", lambda minutes: Interrupt())  # fault injection: a Ctrl-C at step 7
    recipe = _recipe(tiny_llama, max_steps=12, save_steps=5, max_minutes=60)
    with pytest.raises(KeyboardInterrupt):
        train.run(recipe, adapters_dir=tmp_path / "a", mirror=FIX_MIRROR, quick_eval=False)
    assert not (tmp_path / "a" / "tiny-abs").exists()  # nothing half-written under the final name
    monkeypatch.undo()
    out = train.run(recipe, adapters_dir=tmp_path / "a", mirror=FIX_MIRROR, quick_eval=False)
    m = json.loads((out / "manifest.json").read_text())
    assert m["training"]["resumed_from"].endswith("checkpoint-5") and m["training"]["steps"] == 12


def test_holdout_leak_and_missing_pair_set_are_refused(tiny_llama, tmp_path):
    leaky = recipes.from_dict(
        {
            **_recipe(tiny_llama).model_dump(mode="json"),
            "data": {
                "source": "prometheus-eval/Feedback-Collection",
                "holdout": ["prometheus-eval/Feedback-Collection"],
            },
        }
    )
    with pytest.raises(TrainError, match="must stay unseen"):
        train.examples(leaky, mirror=FIX_MIRROR)
    pw = recipes.from_dict(
        {**_recipe(tiny_llama).model_dump(mode="json"), "task": "pairwise", "data": {"source": "pairs:nope"}}
    )
    with pytest.raises(TrainError, match="pair set 'nope' not built"):
        train.examples(pw)


def _slots(prompt: str) -> tuple[str, str]:
    a = prompt.split("###Response A:")[1].split("###Response B:")[0].strip()
    b = prompt.split("###Response B:")[1].split("###")[0].strip()
    return a, b


def test_relative_rows_pair_one_instruction_in_both_orders():
    items, _ = prometheus.load_absolute("prometheus-eval/mt-bench", mirror=PKG_MIRROR)
    pairs = prometheus.relative_pairs(items, 100, "median")
    # hand count over the fixture's median scores: group 1 (5,4,2,1) 6 pairs, group 2 (4,5,2,1) 6,
    # group 3 (5,1,5,2) 5 (the two 5s are left out), group 4 (5,1,5,1) 4
    assert len(pairs) == 21
    assert all(
        b.group == w.group and prometheus.target_score(b, "median") > prometheus.target_score(w, "median")
        for b, w in pairs
    )
    assert prometheus.relative_pairs(items, 5, "median") == pairs[:5]

    recipe = recipes.from_dict(
        {
            "kind": "adapter",
            "name": "abs-rel",
            "task": "absolute",
            "base": "embedded:smollm2-135m-instruct",
            "data": {"source": "prometheus-eval/mt-bench", "relative_pairs": 3, "max_feedback_sentences": 1},
        }
    )
    rows, info = train.examples(recipe, PKG_MIRROR)
    assert (info["absolute_examples"], info["relative_examples"]) == (16, 6)
    rel = [r for r in rows if r["prompt"][0]["content"] == formats.REL_SYSTEM_PROMPT]
    assert len(rel) == 6
    by_pair: dict[frozenset, list] = {}
    for r in rel:
        prompt, target = r["prompt"][1]["content"], r["completion"][0]["content"]
        winner = formats.parse_relative(target)
        assert winner in ("A", "B") and target.endswith(f"[RESULT] {winner}")
        assert target.startswith(f"Feedback: Response {winner} would score ")
        a, b = _slots(prompt)
        by_pair.setdefault(frozenset((a, b)), []).append((a, b, winner))
    assert len(by_pair) == 3
    for rows_of_pair in by_pair.values():  # the same two responses, swapped, with the verdict mirrored
        (a1, b1, w1), (a2, b2, w2) = rows_of_pair
        assert (a1, b1) == (b2, a2) and formats.swap_verdict(w1) == w2
    with pytest.raises(recipes.RecipeError, match="relative_pairs"):
        recipes.from_dict(
            {
                "kind": "adapter",
                "name": "p",
                "task": "pairwise",
                "base": "embedded:smollm2-135m-instruct",
                "data": {"source": "pairs:bbq_pairs", "relative_pairs": 3},
            }
        )


def test_bf16_recipes_train_in_float32_where_bf16_is_emulated(monkeypatch):
    """An AVX2-only CPU emulates bf16 matmuls (~140x slower than fp32 here): the trainer must not use them."""
    from judgefactory import precision

    recipe = recipes.load(recipes.find("adapters", "pairwise"), ["train.bf16=true", "train.base_dtype=bfloat16"])
    assert recipe.train.bf16 and recipe.train.base_dtype == "bfloat16"
    monkeypatch.setattr(precision, "bf16_supported", lambda device="cpu": False)
    assert train.precision(recipe) == {
        "device": "cpu",
        "native_bf16": False,
        "bf16": False,
        "base_dtype": "float32",
        "fell_back_to_float32": True,
    }
    monkeypatch.setattr(precision, "bf16_supported", lambda device="cpu": True)
    p = train.precision(recipe)
    assert (p["bf16"], p["base_dtype"], p["fell_back_to_float32"]) == (True, "bfloat16", False)


def test_lora_scope_is_the_language_model_and_its_top_layers():
    """A text model: the names as they are, ``layers_to_transform`` for the top layers. A multimodal Gemma 3 config
    (the 4B checkpoints): the layer count comes from its text config, and one regex keeps LoRA out of the vision tower,
    which has the same projection names."""
    import re

    from transformers import Gemma3Config, Gemma3TextConfig, LlamaConfig

    spec = {
        "kind": "adapter",
        "name": "x",
        "task": "absolute",
        "base": "embedded:smollm2-135m-instruct",
        "data": {"source": "prometheus-eval/mt-bench"},
        "lora": {"top_layers": 3, "target_modules": ["q_proj", "v_proj"]},
    }
    recipe = recipes.from_dict(spec)
    text = LlamaConfig(num_hidden_layers=30)
    assert train.lora_scope(recipe, text) == {
        "target_modules": ["q_proj", "v_proj"],
        "layers_to_transform": [27, 28, 29],
        "layers_pattern": "layers",
    }
    with pytest.raises(TrainError, match="top_layers=3 but base .* has 2 decoder layers"):
        train.lora_scope(recipe, LlamaConfig(num_hidden_layers=2))
    gemma = Gemma3Config(text_config=Gemma3TextConfig(num_hidden_layers=34))
    pattern = train.lora_scope(recipe, gemma)["target_modules"]
    full = re.compile(pattern).fullmatch  # PEFT matches a regex target against the whole module name
    assert full("model.language_model.layers.33.self_attn.q_proj") and full("model.language_model.layers.31.mlp.v_proj")
    assert not full("model.language_model.layers.30.self_attn.q_proj")  # below the top 3
    assert not full("model.vision_tower.vision_model.encoder.layers.33.self_attn.q_proj")
    assert not full("model.language_model.layers.33.self_attn.o_proj")
    every = train.lora_scope(recipes.from_dict({**spec, "lora": {"target_modules": ["q_proj"]}}), gemma)
    assert re.fullmatch(every["target_modules"], "model.language_model.layers.0.self_attn.q_proj")


def test_completion_only_head_gives_the_same_loss_and_gradients(tiny_llama):
    """TRL's fused LM head scoring only the completion positions (as it does on Triton devices) gives the loss and
    LoRA gradients of scoring every position and masking the prompt's; the switch is restored afterwards."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer import utils as trl_utils

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    trl_utils.add_fused_lm_head(model.get_base_model(), outputs=("log_probs", "entropy", "is_top1"))
    torch.manual_seed(0)
    ids = torch.randint(4, 100, (2, 12))
    labels = ids.clone()
    labels[0, :8], labels[1, :5] = -100, -100  # prompts: no loss

    def loss_and_grads():
        model.zero_grad()
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, fused_lm_head=True)
        out.loss.backward()
        return out.loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    full_loss, full_grads = loss_and_grads()
    with train_loss.completion_only_head() as on:
        assert on and trl_utils._use_triton(torch.device("cpu"))
        loss, grads = loss_and_grads()
    assert not trl_utils._use_triton(torch.device("cpu"))  # restored
    assert torch.allclose(loss, full_loss, atol=1e-6) and loss > 0
    assert all(torch.allclose(g, f, atol=1e-6) for g, f in zip(grads, full_grads, strict=False)) and any(
        g.abs().sum() > 0 for g in grads
    )


def test_editing_a_prompt_template_rebuilds_the_pair_set_and_the_adapter(tiny_llama, tmp_path, monkeypatch):
    """Freshness is keyed on what a station produces (rendered rows, prompts, targets), not on a version number: an
    edited bias prompt rebuilds the pair set and the adapter trained on it; an edited system prompt (outside the pair
    set's rows) leaves the pair set fresh and rebuilds the adapter; nothing changed reuses both."""
    from judgefactory import manifest as mf
    from judgefactory.data import pairs

    pair_recipe = recipes.from_dict(FX_PAIRS)
    adapter = tiny_pairwise_recipe(tiny_llama, train={"max_steps": 2, "save_steps": 10})
    monkeypatch.setenv("JUDGEFACTORY_HOME", str(tmp_path))

    def build_and_train() -> tuple[str, str]:
        folder = pairs.build(pair_recipe, mirror=PKG_MIRROR, progress=False)
        out = train.run(adapter, adapters_dir=tmp_path / "adapters", quick_eval=False)
        return mf.read(folder)["created"] + mf.read(folder)["inputs_sha256"], mf.read(out)["inputs_sha256"] + mf.read(
            out
        )["created"]

    first = build_and_train()
    assert build_and_train() == first  # unchanged: both reused
    monkeypatch.setattr(formats, "BIAS_PROMPT", formats.BIAS_PROMPT.replace("###Judgement:", "###Your judgement:"))
    second = build_and_train()
    assert second[0] != first[0] and second[1] != first[1]  # the template is in the pair set's rows: both rebuilt
    assert "###Your judgement:" in (tmp_path / "data" / "pairs" / "fx" / "train.jsonl").read_text()
    monkeypatch.setattr(formats, "BIAS_SYSTEM_PROMPT", "You judge social bias.")
    third = build_and_train()
    assert third[0] == second[0] and third[1] != second[1]  # only the adapter's rendered rows changed


def test_the_same_recipe_gives_the_same_steps_on_a_slow_machine(tiny_llama, tmp_path, monkeypatch):
    """The work is fixed by the recipe: a machine whose clock runs 100x faster (each step 'takes' minutes) still trains
    every step when no time cap is set; with a cap it stops early, the adapter is marked incomplete, never reused as
    fresh, and the next run resumes it to max_steps."""
    recipe = fx_pair_setup(tiny_llama, tmp_path, monkeypatch)
    real = train.time.time
    clock = {"t": real()}

    def slow() -> float:  # every call moves the clock by 2 minutes
        clock["t"] += 120
        return clock["t"]

    monkeypatch.setattr(train.time, "time", slow)
    out = train.run(recipe, quick_eval=False)
    m = json.loads((out / "manifest.json").read_text())
    assert (m["training"]["steps"], m["training"]["completed"]) == (6, True) and train.completed(m)

    capped = recipe.model_copy(
        update={"name": "tiny-pw-capped", "train": recipe.train.model_copy(update={"max_minutes": 5.0})}
    )
    out = train.run(capped, quick_eval=False)
    m = json.loads((out / "manifest.json").read_text())
    assert (
        m["training"]["completed"] is False and m["training"]["steps"] < 6 and "time cap" in m["training"]["stopped_by"]
    )
    monkeypatch.setattr(train.time, "time", real)
    out = train.run(capped, quick_eval=False)  # not fresh: resumed from its checkpoint and completed
    m = json.loads((out / "manifest.json").read_text())
    assert (m["training"]["steps"], m["training"]["completed"]) == (6, True) and m["training"]["resumed_from"]


def test_learning_curve_is_scored_on_the_dev_split_and_plotted(tiny_llama, tmp_path, monkeypatch):
    recipe = fx_pair_setup(
        tiny_llama, tmp_path, monkeypatch, dev={"steps": [0, 3, 6], "max_new_tokens": 4, "batch_size": 8}
    )
    from judgefactory import quick_eval

    data = quick_eval.dev_data(recipe)
    test_rows = [json.loads(x) for x in (tmp_path / "data" / "pairs" / "fx" / "test.jsonl").read_text().splitlines()]
    assert len(data.items) == len({r["pair_id"] for r in test_rows})  # the pair set's test split, both orders per item
    assert all(set(it.requests) == {"ab", "ba"} for it in data.items)
    out = train.run(recipe, quick_eval=False)
    curve = [json.loads(x) for x in (out / "curve.jsonl").read_text().splitlines()]
    assert [p["step"] for p in curve] == [0, 3, 6] and all(0.0 <= p["parse_rate"] <= 1.0 for p in curve)
    assert (out / "curve.png").is_file() and json.loads((out / "manifest.json").read_text())["curve"] == curve


def test_dpo_stage_trains_on_rejected_judgements_and_leaves_one_adapter(tiny_llama, tmp_path, monkeypatch):
    from judgefactory import preference

    recipe = fx_pair_setup(
        tiny_llama, tmp_path, monkeypatch, preference={"steps": 3, "batch_size": 2, "learning_rate": 1e-3}
    )
    rows = preference.preference_rows(recipe)
    assert rows and all(r["chosen"][0]["content"] != r["rejected"][0]["content"] for r in rows)
    assert all(
        formats.parse_verdict(r["chosen"][0]["content"]) != formats.parse_verdict(r["rejected"][0]["content"])
        or "chose" in r["rejected"][0]["content"]
        for r in rows
    )
    wv = preference.wrong_verdict(
        'A chose A, "x": stereotyped. B chose C, "y": supported. A relies more on the stereotype.', "A"
    )
    assert wv.endswith("B relies more on the stereotype.</reasoning><verdict>B</verdict>")
    out = train.run(recipe, quick_eval=False)
    m = json.loads((out / "manifest.json").read_text())
    assert m["preference"]["steps"] == 3 and m["preference"]["rows"] == len(rows)
    assert not (out / "ref").exists() and (out / "adapter_model.safetensors").is_file()
    # step 1: the policy is its own reference, so every reward margin is 0 and the DPO loss is -log sigmoid(0) = ln 2
    assert abs(m["preference"]["loss_first"] - math.log(2)) < 1e-3


def test_rpo_adds_the_chosen_answers_nll_to_the_dpo_loss(tiny_llama, tmp_path, monkeypatch):
    """nll_weight (RPO): the loss is DPO's plus the weighted NLL of the chosen answer; at step 1 the DPO part is ln 2
    and the untrained tiny model's per-token NLL is near ln(vocab size), so the first loss sits far above ln 2."""
    recipe = fx_pair_setup(
        tiny_llama,
        tmp_path,
        monkeypatch,
        preference={"steps": 3, "batch_size": 2, "learning_rate": 1e-3, "nll_weight": 1.0},
    )
    m = json.loads((train.run(recipe, quick_eval=False) / "manifest.json").read_text())
    pref = m["preference"]
    assert pref["nll_weight"] == 1.0 and pref["steps"] == 3
    assert pref["loss_first"] - math.log(2) > 1.0 and pref["chosen_logps_last"] is not None


def test_regression_aware_loss_reads_the_score_digit(tiny_llama, tmp_path):
    """The score term is the squared distance between the expected digit under the model and the row's digit, at the
    position that emits it; the total is the completion cross-entropy plus the weighted term (checked by hand)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    cls = train_loss.score_loss_trainer(SFTTrainer, tok)
    trainer = cls.__new__(cls)  # compute_loss needs no trainer state
    trainer.score_loss_weight = 0.5
    digits = [tok.convert_tokens_to_ids(d) for d in "12345"]
    ids = torch.tensor([[5, 6, 7, 8, digits[3], tok.eos_token_id]])
    labels = torch.tensor([[-100, -100, 7, 8, digits[3], tok.eos_token_id]])
    loss = trainer.compute_loss(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    ce = torch.nn.functional.cross_entropy(logits[1:5], labels[0, 2:6])
    p = logits[3, digits].softmax(-1)
    expected = (p * torch.arange(1, 6)).sum()
    assert torch.allclose(loss, ce + 0.5 * (expected - 4.0) ** 2, atol=1e-5)
    # a row that ends in something else (a verdict, a relative [RESULT] A) gets no score term, even with a digit inside
    ids = torch.tensor([[5, 6, digits[1], 8, 9, tok.eos_token_id]])
    labels = torch.tensor([[-100, -100, digits[1], 8, 9, tok.eos_token_id]])
    loss = trainer.compute_loss(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits[1:5], labels[0, 2:6]), atol=1e-5)


def test_dev_scoring_decodes_on_the_folded_copy_not_the_training_model(tiny_llama, monkeypatch):
    """TRL patches the training model's forward with a closure over the original; the learning curve's folded copy must
    run its own forward (folded weights), leaving the training model untouched."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from judgefactory import quick_eval

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    ds = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": "a b"}], "completion": [{"role": "assistant", "content": "A"}]}] * 4
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_llama),
        processing_class=tok,
        train_dataset=ds,
        args=SFTConfig(output_dir=str(tiny_llama.parent / "o"), max_steps=1, report_to=[], use_cpu=True),
        peft_config=LoraConfig(r=4, target_modules=["q_proj"]),
    )
    seen = []
    monkeypatch.setattr(quick_eval, "dev_scores", lambda model, *a: seen.append(model) or {})
    devcurve.evaluate_adapter(trainer.model, tok, None, None)
    folded = seen[0]
    assert "forward" not in folded.__dict__ and folded is not trainer.model.get_base_model()
    calls = []
    folded.register_forward_hook(lambda *a: calls.append(1))
    from judgefactory.engine import Engine

    Engine.from_model(folded, tok, batch_size=2, bf16=False).judge(
        [[{"role": "user", "content": "a b the"}]] * 2, max_new_tokens=3, answer="verdict"
    )
    assert calls  # the copy decoded, on its own weights


def test_unsloth_path_checks_the_gpu_before_anything_is_loaded():
    """On the unsloth path, unsloth must be imported before transformers, TRL and PEFT (its patches): the run checks
    for CUDA and imports unsloth first. Without a GPU it stops there with one line, having loaded none of them."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from judgefactory import recipes, train\n"
        "from judgefactory.errors import TrainError\n"
        "recipe = recipes.load(recipes.find('adapters', 'pairwise-gemma-3-4b'))\n"
        "try:\n"
        "    train.run(recipe)\n"
        "except TrainError as err:\n"
        "    print(err)\n"
        "print(sorted(m for m in ('transformers', 'trl', 'peft', 'datasets') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert "needs a CUDA GPU" in out[0] and out[1] == "[]"


def test_a_failing_quick_check_never_costs_the_trained_adapter(tiny_llama, tmp_path, monkeypatch):
    """The adapter is saved before its check runs; a check that fails (here: a fault injected into the comparison, as
    a 4-bit base moved to the wrong device would) is recorded in the manifest as failed and re-raised, the adapter
    stays, and a rerun re-checks it without training again."""
    from judgefactory import manifest as mf
    from judgefactory import quick_eval

    recipe = fx_pair_setup(
        tiny_llama,
        tmp_path,
        monkeypatch,
        quick_eval={"source": "judge-from-scratch/bbq-pairs", "file": "eval_in_dist", "limit": 2},
    )

    def broken(*args, **kwargs):
        raise RuntimeError("cannot move a 4-bit model")

    monkeypatch.setattr(quick_eval, "compare", broken)
    with pytest.raises(RuntimeError, match="4-bit"):
        train.run(recipe, adapters_dir=tmp_path / "adapters", mirror=PKG_MIRROR)
    out = tmp_path / "adapters" / recipe.name
    m = mf.read(out)
    assert (out / "adapter_model.safetensors").is_file() and m["training"]["completed"]
    assert m["quick_eval"] == {"failed": "RuntimeError: cannot move a 4-bit model"}
    monkeypatch.setattr(quick_eval, "compare", lambda *a, **k: {"checked": True})
    assert train.run(recipe, adapters_dir=tmp_path / "adapters", mirror=PKG_MIRROR) == out
    again = mf.read(out)
    assert again["quick_eval"] == {"checked": True} and again["training"] == m["training"]


def test_runs_interrupted_after_a_finished_stage_resume_without_training_it_again(tiny_llama, tmp_path, monkeypatch):
    """Ctrl-C at the start of DPO, then Ctrl-C while DPO's result is scored on dev: each rerun takes the finished stage
    from its final checkpoint as saved (no extra optimizer step, step counts stay at max_steps, the LoRA weights are
    the checkpoint's) and goes on."""
    import torch

    from judgefactory import preference

    recipe = fx_pair_setup(
        tiny_llama,
        tmp_path,
        monkeypatch,
        train={"lr_scheduler": "constant"},  # an extra SFT step would move the weights
        preference={"steps": 2, "batch_size": 2, "learning_rate": 1e-3},
        dev={"steps": [6], "max_new_tokens": 4, "batch_size": 8},
    )
    real_dpo, real_dev = preference.run_dpo, devcurve.evaluate_adapter
    lora: dict[str, dict] = {}

    def snapshot(model) -> dict:
        return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n and ".default." in n}

    def capture(key: str, then=None):
        """A stand-in that records the LoRA weights it is handed, then calls ``then`` or breaks in with Ctrl-C."""

        def stage(model, *a, **k):
            lora[key] = snapshot(model)
            if then is None:
                raise KeyboardInterrupt
            return then(model, *a, **k)

        return stage

    ctrl_c_at_dpo, dpo_from = capture("sft"), capture("sft resumed", real_dpo)
    ctrl_c_in_dev, dev_after_resume = capture("dpo"), capture("dpo resumed", real_dev)

    monkeypatch.setattr(preference, "run_dpo", ctrl_c_at_dpo)
    with pytest.raises(KeyboardInterrupt):
        train.run(recipe, quick_eval=False)
    monkeypatch.setattr(preference, "run_dpo", dpo_from)
    monkeypatch.setattr(devcurve, "evaluate_adapter", ctrl_c_in_dev)  # DPO trained and saved, its dev score not
    with pytest.raises(KeyboardInterrupt):
        train.run(recipe, quick_eval=False)
    monkeypatch.setattr(devcurve, "evaluate_adapter", dev_after_resume)
    out = train.run(recipe, quick_eval=False)
    m = json.loads((out / "manifest.json").read_text())
    assert m["training"]["steps"] == 6 and m["training"]["completed"] and m["training"]["resumed_from"].endswith("-6")
    assert m["preference"]["steps"] == 2 and m["preference"]["resumed_from"].endswith("checkpoint-2")
    assert m["preference"]["dev_after"]["step"] == 8
    for before, after in (("sft", "sft resumed"), ("dpo", "dpo resumed")):
        assert lora[before] and lora[before].keys() == lora[after].keys()
        assert all(torch.equal(lora[before][n], lora[after][n]) for n in lora[before]), before
    assert not all(torch.equal(lora["sft"][n], lora["dpo"][n]) for n in lora["sft"])  # DPO did train


def test_a_finished_checkpoint_that_does_not_fit_the_adapter_is_refused(tiny_llama, tmp_path):
    """Loading a finished stage checks its tensors: a checkpoint of another adapter shape is one TrainError, never a
    silently half-loaded judge; a fitting one is loaded with its state."""
    from types import SimpleNamespace

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, TrainerState

    from judgefactory.resume import train_or_load

    def lora_model(modules: list[str]):
        torch.manual_seed(0)
        return get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama), LoraConfig(r=4, target_modules=modules))

    saved = lora_model(["q_proj", "v_proj"])
    ckpt = tmp_path / "checkpoint-4"  # found as the folder's last checkpoint
    saved.save_pretrained(ckpt)
    TrainerState(global_step=4, max_steps=4).save_to_json(str(ckpt / "trainer_state.json"))

    wider = SimpleNamespace(model=lora_model(["q_proj", "v_proj", "o_proj"]), state=None)
    with pytest.raises(TrainError, match="missing LoRA tensors"):
        train_or_load(wider, tmp_path, max_steps=4)

    fitting = SimpleNamespace(model=lora_model(["q_proj", "v_proj"]), state=None)
    with torch.no_grad():
        for n, p in fitting.model.named_parameters():
            if "lora_B" in n:
                p.fill_(0.5)  # differs from the saved (zero-initialised) lora_B
    assert train_or_load(fitting, tmp_path, max_steps=4) == str(ckpt)
    assert fitting.state.global_step == 4
    want = dict(saved.named_parameters())
    assert all(torch.equal(p, want[n]) for n, p in fitting.model.named_parameters() if "lora_" in n)
