"""Write one embedded line's figures (two specialists and their merge, benched on the same items) into
docs/results/<name>.json: each specialist's and the merge's headline figures with CIs, the retention of each skill with
its paired bootstrap CI (bench.retention), the training work and wall time, the command, the commit and the machine.

    .venv/bin/python dev/collect_line.py --name gemma3_270m_line --command "make line-gemma" \
        --pairwise pairwise-gemma3-270m --absolute absolute-gemma3-270m --merge gemma3_270m_nuslerp_50_50

Reads adapters/<name>/manifest.json and bench/<label>/{bbq_pairs,vicuna}/ (run the benches first: make line-gemma).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "dev"))

FIGURES = {  # suite -> headline figures read from its metrics.json
    "bbq_pairs": ["kappa", "position_bias_rate", "parse_rate", "both_orders_correct", "rule_baseline_kappa"],
    "vicuna": ["pearson_expected", "pearson", "spearman", "parse_rate"],
}


def main() -> None:
    from collect_results import _strict

    from judgefactory import manifest as mf
    from judgefactory import paths
    from judgefactory.bench import retention
    from judgefactory.precision import machine

    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--pairwise", required=True, help="pairwise adapter name")
    ap.add_argument("--absolute", required=True, help="absolute adapter name")
    ap.add_argument("--merge", required=True, help="merge name")
    args = ap.parse_args()
    labels = {
        "pairwise": f"adapter-{args.pairwise}",
        "absolute": f"adapter-{args.absolute}",
        "merge": f"merge-{args.merge}",
    }
    figures: dict[str, dict] = {}
    for who, label in labels.items():
        for suite, names in FIGURES.items():
            path = paths.bench() / label / suite / "metrics.json"
            doc = json.loads(path.read_text()) if path.is_file() else None
            if doc is None:
                continue
            for name in names:
                m = (doc.get("metrics") or {}).get(name)
                if m is not None:
                    figures[f"{who}.{suite}.{name}"] = {
                        **m,
                        "n": doc.get("n_items") or (doc.get("counts") or {}).get("n_items"),
                        "split": f"{suite} (eval; limit {doc.get('limit')})",
                    }
    table = retention.table(
        [labels["merge"]], {"pairwise": labels["pairwise"], "absolute": labels["absolute"]}, paths.bench()
    )
    training = {}
    for task in ("pairwise", "absolute"):
        m = mf.read(paths.adapters() / getattr(args, task)) or {}
        training[task] = {
            "training": m.get("training"),
            "base": (m.get("base") or {}).get("name"),
            "machine": m.get("machine"),
        }
    out = {
        "name": args.name,
        "specialists": {"pairwise": args.pairwise, "absolute": args.absolute},
        "merge": args.merge,
        "figures": figures,
        "retention": table["rows"],
        "training": training,
        "command": args.command,
        "commit": mf.git_commit(REPO),
        "machine": machine(),
    }
    path = REPO / "docs" / "results" / f"{args.name}.json"
    mf.write_json(path, _strict(out))
    print(path)
    for k, v in figures.items():
        ci = f" [{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]" if v.get("ci") else ""
        print(f"  {k}: {v['value'] if v['value'] is None else round(v['value'], 3)}{ci} (n={v['n']})")
    print(retention.markdown(table))


if __name__ == "__main__":
    main()
