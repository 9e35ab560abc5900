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
