"""The export station end to end on the real embedded base (make test-slow, after make llama-cpp): GGUF files with
the GPT-2 vocabulary, reused when fresh, served by llama-server with the same greedy replies as the transformers
engine, log-probabilities included, and prometheus-eval's own client grading through it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def test_export_serve_and_prometheus_eval_client(tmp_path: Path, monkeypatch, mirror: Path) -> None:
    from judgefactory import bases, export, formats
    from judgefactory.bench import suites
    from judgefactory.engine import Engine

    monkeypatch.setenv("JUDGEFACTORY_HOME", str(tmp_path))
    if "LLAMA_CPP_DIR" not in os.environ:
        monkeypatch.setenv("LLAMA_CPP_DIR", str(REPO / ".llama.cpp" / "src"))
        monkeypatch.setenv("LLAMA_SERVER", str(REPO / ".llama.cpp" / "build" / "bin" / "llama-server"))
    ckpt = tmp_path / "checkpoint"
    shutil.copytree(bases.prepare("embedded:smollm2-135m-instruct"), ckpt)
    out = export.run(str(ckpt))
    assert export.gguf_field(out / "judge-f16.gguf", "tokenizer.ggml.model") == "gpt2"
    assert export.gguf_field(out / "judge-q8_0.gguf", "tokenizer.ggml.pre") == "smollm"
    stamp = (out / "judge-f16.gguf").stat().st_mtime_ns
    assert export.run(str(ckpt)) == out and (out / "judge-f16.gguf").stat().st_mtime_ns == stamp  # fresh: reused

    items = suites.load("vicuna", mirror=mirror, limit=4, seed=0, max_response_chars=600).items
    messages = [it.requests["main"] for it in items]
    ref = Engine.from_ref(str(ckpt)).judge(messages, max_new_tokens=24, answer="score")
    with export.serve(out / "judge-f16.gguf", parallel=2) as server:
        served = Engine.from_ref("judge", backend="openai", base_url=server["base_url"])
        got = served.judge(messages, max_new_tokens=24, answer="score")
        assert sum(a.text == b.text for a, b in zip(ref, got, strict=True)) >= 3  # f16 vs float32: near-identical
        raw = served.backend.client.chat.completions.create(
            model="judge", messages=messages[0], max_tokens=4, temperature=0, logprobs=True, top_logprobs=20
        )
        content = raw.choices[0].logprobs.content  # what the engine reads expected scores and verdict odds from
        assert len(content) >= 1 and all(len(t.top_logprobs) == 20 for t in content)
        sys.path.insert(0, str(REPO / "dev"))
        from prometheus_client import grade

        feedbacks, scores = grade(server["base_url"], [m[1]["content"] for m in messages[:2]], max_tokens=80)
        # the same greedy request through the engine: what the served judge wrote, read by prometheus-eval's parser
        replies = served.judge(messages[:2], max_new_tokens=80, answer="score")
    assert len(feedbacks) == len(scores) == 2
    assert scores == [formats.parse_absolute(r.text, strict=False) for r in replies], (
        scores,
        [r.text for r in replies],
    )
    assert any(s in range(1, 6) for s in scores), feedbacks  # a grade was parsed: the client graded, not just ran
