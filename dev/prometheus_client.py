"""prometheus-eval's own client grading through a served judge: ``PrometheusEval`` with its LiteLLM model
pointed at ``llama-server`` running the exported GGUF, on the first N (seeded, stratified) Vicuna items; the same
items judged by the transformers engine on the checkpoint, scores compared.

    .venv/bin/python dev/prometheus_client.py --model merge:nuslerp_50_50 [--n 8] [--out dev/results/prometheus_client.json]

The Vicuna prompts are complete Prometheus prompts, so the grader's template is ``{instruction}``: prometheus-eval adds
its own system prompt (the same text as the project's), sends the request through LiteLLM and parses ``[RESULT] N``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch of litellm's price list
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def grade(base_url: str, prompts: list[str], max_tokens: int = 80) -> tuple[list, list]:
    """(feedbacks, scores) from ``PrometheusEval.absolute_grade`` through LiteLLM's OpenAI route to ``base_url``."""
    os.environ.setdefault("OPENAI_API_KEY", "EMPTY")  # a local server takes any key; LiteLLM insists on one
    from prometheus_eval import PrometheusEval
    from prometheus_eval.litellm import LiteLLM

    judge = PrometheusEval(model=LiteLLM("openai/judge", api_base=base_url), absolute_grade_template="{instruction}")
    return judge.absolute_grade(
        instructions=prompts,
        responses=[""] * len(prompts),
        rubric="",
        params={"temperature": 0, "max_tokens": max_tokens},
    )


def main() -> None:
    from judgefactory import export, formats
    from judgefactory.bench import suites
    from judgefactory.engine import Engine

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="merge:nuslerp_50_50")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--mirror", default=os.environ.get("JUDGEFACTORY_DATA") or str(REPO.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(REPO / "dev" / "results" / "prometheus_client.json"))
    args = ap.parse_args()
    data = suites.load("vicuna", mirror=args.mirror, limit=args.n, seed=0, max_response_chars=2000)
    messages = [it.requests["main"] for it in data.items]
    ref = Engine.from_ref(args.model).judge(messages, max_new_tokens=80, answer="score")
    folder = export.run(args.model, ("f16",))
    with export.serve(folder / export.file_names("f16")[0], parallel=4) as server:
        feedbacks, scores = grade(server["base_url"], [m[1]["content"] for m in messages])
        served = Engine.from_ref("judge", backend="openai", base_url=server["base_url"])
        via_server = served.judge(messages, max_new_tokens=80, answer="score")

    def expected(j: Any) -> float | None:
        return sum(int(k) * v for k, v in j.probs.items()) if j.probs else None

    pairs = [(expected(a), expected(b)) for a, b in zip(ref, via_server, strict=True)]
    both = [(a, b) for a, b in pairs if a is not None and b is not None]
    engine_scores = [formats.parse_absolute(j.text) for j in ref]
    res = {
        "name": "prometheus_client",
        "model": args.model,
        "n": len(messages),
        "client": "prometheus_eval.PrometheusEval + prometheus_eval.litellm.LiteLLM('openai/judge') -> llama-server f16",
        "prometheus_eval_scores": scores,
        "engine_scores": engine_scores,
        "agree": sum(a == b for a, b in zip(scores, engine_scores, strict=True)),
        "feedback_example": (feedbacks[0] or "")[:300],
        "expected_score": {
            "engine": [a for a, _ in pairs],
            "llama_server_f16": [b for _, b in pairs],
            "both_available": len(both),
            "max_abs_diff": max((abs(a - b) for a, b in both), default=None),
        },
        "gold": [it.gold for it in data.items],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "feedback_example"}))


if __name__ == "__main__":
    main()
