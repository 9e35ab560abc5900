"""Does a merged judge still answer both prompt formats? One NuSLERP merge per weight of the absolute specialist
(pairwise gets 1 - w), each judged on the same items: Vicuna absolute prompts (parsed ``[RESULT] N``) and BBQ pairs
in both orders (parsed ``<verdict>``). Unparseable outputs count as failures.

    .venv/bin/python dev/merge_formats.py [--weights 0.3 0.5 0.6 0.7 0.8] [--recipe nuslerp_sweep]
        [--adapters-dir adapters] [--merges-dir merges] [--vicuna 16] [--pairs 16] [--data ../shared/data]

Prints a table and writes dev/results/merge_formats.json (git-ignored). Merges land in ``<merges-dir>/<recipe>-wX.XX``
(the sweep's own folders; fresh ones are reused).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from judgefactory import merge, recipes  # noqa: E402
from judgefactory.bench import suites  # noqa: E402
from judgefactory.engine import Engine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=float, nargs="+", default=[0.3, 0.5, 0.6, 0.7, 0.8])
    ap.add_argument("--recipe", default="nuslerp_sweep")
    ap.add_argument("--adapters-dir", type=Path, default=REPO / "adapters")
    ap.add_argument("--merges-dir", type=Path, default=REPO / "merges")
    ap.add_argument("--vicuna", type=int, default=16)
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--data", default=os.environ.get("JUDGEFACTORY_DATA", str(REPO.parent / "shared" / "data")))
    args = ap.parse_args()

    recipe = recipes.load(recipes.find("merges", args.recipe))
    vicuna = suites.load("vicuna", mirror=args.data, limit=args.vicuna, seed=0, max_response_chars=400)
    pairs = suites.load("bbq_pairs", mirror=args.data, limit=args.pairs, seed=0, max_response_chars=240)
    rows = []
    for w in args.weights:
        out = merge.run(
            recipe, weights=[w, 1 - w], quiet=True, adapters_dir=args.adapters_dir, merges_dir=args.merges_dir
        )
        engine = Engine.from_ref(str(out), batch_size=32)
        t = time.time()
        scores = engine.judge([it.requests["main"] for it in vicuna.items], max_new_tokens=80, answer="score")
        verdicts = engine.judge(
            [it.requests[k] for it in pairs.items for k in ("ab", "ba")], max_new_tokens=64, answer="verdict"
        )
        rows.append(
            {
                "w_absolute": w,
                "merge": str(out),
                "vicuna_parsed": sum(j.value is not None for j in scores),
                "vicuna_n": len(scores),
                "bbq_parsed": sum(j.value is not None for j in verdicts),
                "bbq_n": len(verdicts),
                "judge_seconds": round(time.time() - t, 1),
            }
        )
    print(f"{'w (absolute)':>12s}  {'Vicuna [RESULT] parsed':>22s}  {'BBQ <verdict> parsed':>20s}")
    for r in rows:
        print(
            f"{r['w_absolute']:12.2f}  {r['vicuna_parsed']:>14d} / {r['vicuna_n']:<5d}  {r['bbq_parsed']:>12d} / {r['bbq_n']:<5d}"
        )
    dest = REPO / "dev" / "results" / "merge_formats.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps({"recipe": args.recipe, "adapters_dir": str(args.adapters_dir), "rows": rows}, indent=1))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
