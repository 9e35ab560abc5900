"""Judging throughput of the engine against a naive one-at-a-time fp32 ``generate`` loop, on the same items, in one run.

Items: the first N (seeded, stratified) Vicuna absolute-grading prompts from the data mirror, full length.
Naive: the model in fp32, one prompt per ``generate`` call, greedy. Engine: ``Engine.from_ref`` (bf16 weights where the
CPU supports bf16; prompts in token order, each pre-filled on the cached prefix it shares with the previous one, the
batch decoded together) judging the same prompts greedily, score-token probabilities recorded while generating. Same ``max_new_tokens`` for both. Goal: ratio >= 5x.

    nice .venv/bin/python dev/throughput.py [--n 32] [--max-new-tokens 64] [--batch-size 16] [--model base]

Prints a table and writes dev/results/throughput.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from judgefactory import formats, models  # noqa: E402
from judgefactory.bench import suites  # noqa: E402
from judgefactory.engine import Engine  # noqa: E402
from judgefactory.generate import generate, render  # noqa: E402


def naive(ref: str, messages: list, max_new_tokens: int) -> tuple[float, list[str], int]:
    """(seconds, replies, generated tokens): fp32 model, one prompt at a time."""
    model, tok = models.load(ref, "float32")
    out, n_tok = [], 0
    t = time.perf_counter()
    for m in messages:
        text = generate(model, tok, [render(tok, m)], max_new_tokens=max_new_tokens, batch_size=1, bf16=False)[0]
        out.append(text)
        n_tok += len(tok.encode(text, add_special_tokens=False))
    return time.perf_counter() - t, out, n_tok


def engine(ref: str, messages: list, max_new_tokens: int, batch_size: int) -> tuple[float, list, int, dict]:
    """(seconds, judgements, generated tokens, engine info): the judging engine, batched."""
    eng = Engine.from_ref(ref, batch_size=batch_size)
    tok = eng.backend.tok
    t = time.perf_counter()
    got = eng.judge(messages, max_new_tokens=max_new_tokens, answer="score")
    secs = time.perf_counter() - t
    return secs, got, sum(len(tok.encode(j.text, add_special_tokens=False)) for j in got), eng.info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--mirror", default=os.environ.get("JUDGEFACTORY_DATA") or str(REPO.parent / "shared" / "data"))
    args = ap.parse_args()

    data = suites.load("vicuna", mirror=args.mirror, limit=args.n, seed=0)
    messages = [it.requests["main"] for it in data.items]
    model, tok = models.load(args.model, "float32")
    prompt_tokens = [len(tok(render(tok, m), add_special_tokens=False)["input_ids"]) for m in messages]
    del model
    load0 = os.getloadavg()[0]
    t_naive, naive_out, tok_naive = naive(args.model, messages, args.max_new_tokens)
    t_eng, eng_out, tok_eng, info = engine(args.model, messages, args.max_new_tokens, args.batch_size)
    ratio = t_naive / t_eng
    n = len(messages)
    res = {
        "model": args.model,
        "items": n,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "prompt_tokens_mean": sum(prompt_tokens) / n,
        "engine": info,
        "naive": {
            "seconds": t_naive,
            "items_per_s": n / t_naive,
            "s_per_item": t_naive / n,
            "generated_tokens": tok_naive,
        },
        "engine_run": {
            "seconds": t_eng,
            "items_per_s": n / t_eng,
            "s_per_item": t_eng / n,
            "generated_tokens": tok_eng,
            "with_probs": sum(j.probs is not None for j in eng_out),
        },
        "ratio": ratio,
        "same_parsed_score": sum(formats.parse_absolute(a) == j.value for a, j in zip(naive_out, eng_out, strict=False))
        / n,
        "loadavg_1min": [load0, os.getloadavg()[0]],
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"judging throughput: {n} Vicuna items (~{res['prompt_tokens_mean']:.0f} prompt tokens), "
        f"max_new_tokens={args.max_new_tokens}"
    )
    for c in ("run", "seconds", "items/s", "s/item", "generated tokens"):
        t.add_column(c, justify="right")
    t.add_row("naive fp32, one at a time", f"{t_naive:.1f}", f"{n / t_naive:.3f}", f"{t_naive / n:.2f}", str(tok_naive))
    t.add_row(
        f"engine ({info.get('dtype')}, batch {args.batch_size})",
        f"{t_eng:.1f}",
        f"{n / t_eng:.3f}",
        f"{t_eng / n:.2f}",
        str(tok_eng),
    )
    t.add_row("ratio", f"{ratio:.2f}x", "", "", "")
    Console().print(t)
    out = REPO / "dev" / "results" / "throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()
