"""The one summary table of scripts/gpu_smoke.sh: per station its wall time, work and headline figure, read from the
artifacts' manifests and the bench folders (nothing re-measured here).

    python scripts/gpu_smoke_table.py --pairwise smoke-pairwise-gemma-3-4b --absolute smoke-absolute-gemma-3-4b \
        --merge smoke-gemma_3_4b_nuslerp_50_50 --seconds report/smoke/seconds.tsv --backend vllm
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from judgefactory import manifest as mf
    from judgefactory import models, paths
    from judgefactory.precision import machine
    from judgefactory.tables import fmt, md_table

    ap = argparse.ArgumentParser()
    for name in ("--pairwise", "--absolute", "--merge", "--seconds", "--backend"):
        ap.add_argument(name, required=True)
    args = ap.parse_args()
    seconds = {}
    for line in Path(args.seconds).read_text().splitlines():
        name, sec, _rc = line.split("\t")
        seconds[name] = seconds.get(name, 0) + int(sec)

    def metric(label: str, suite: str, key: str) -> str:
        path = paths.bench() / label / suite / "metrics.json"
        if not path.is_file():
            return "—"
        return fmt((json.loads(path.read_text())["metrics"].get(key) or {}).get("value"))

    rows = []
    for task, recipe, key in (
        ("pairwise", args.pairwise, "kappa_both_orders"),
        ("absolute", args.absolute, "pearson_expected"),
    ):
        m = mf.read(paths.adapters() / recipe) or {}
        tr, qe = m.get("training") or {}, m.get("quick_eval") or {}
        figure = "quick check failed: " + qe["failed"] if "failed" in qe else "quick check not run"
        if "adapter" in qe:
            a, b = qe["adapter"], qe.get("base") or {}
            figure = (
                f"{key} {fmt(a.get(key))} (base {fmt(b.get(key))}), parse {fmt(a.get('parse_rate'))}, n {a.get('n')}"
            )
            if "folded_agreement" in qe:
                figure += f"; folded = unfolded on {fmt(qe['folded_agreement'])} of answers"
        work = f"{tr.get('steps')}/{tr.get('max_steps')} steps" + ("" if tr.get("completed", True) else " (INCOMPLETE)")
        rows.append((f"train + check {task} ({recipe})", seconds.get(f"train-{task}"), work, figure))
    merged = models.label(f"merge:{args.merge}")
    mm = mf.read(paths.merges() / args.merge) or {}
    rows.append(
        (
            f"merge ({args.merge})",
            seconds.get("merge"),
            (mm.get("recipe") or {}).get("method"),
            str(paths.merges() / args.merge),
        )
    )
    rows.append(
        (
            f"bench bbq_pairs ({args.backend})",
            seconds.get("bench-pairwise"),
            "both A/B orders",
            f"kappa {metric(merged, 'bbq_pairs', 'kappa')}, parse {metric(merged, 'bbq_pairs', 'parse_rate')}",
        )
    )
    rows.append(
        (
            f"bench vicuna ({args.backend})",
            seconds.get("bench-absolute"),
            "expected score at [RESULT]",
            f"pearson_expected {metric(merged, 'vicuna', 'pearson_expected')}, parse {metric(merged, 'vicuna', 'parse_rate')}",
        )
    )
    rows.append(("model card", seconds.get("card"), "", str(paths.merges() / args.merge / "README.md")))
    total = sum(seconds.values())
    where = machine()
    print(f"# GPU smoke run `{args.merge}` ({where.get('gpu') or where['cpu']}; total {total} s)\n")
    print(
        md_table(
            ["station", "seconds", "work", "figure"],
            [(r[0], r[1] if r[1] is not None else "—", r[2] or "", r[3]) for r in rows],
        )
    )


if __name__ == "__main__":
    main()
