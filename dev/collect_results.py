"""Write the figures an adapter's manifest holds into docs/results/<name>.json: each headline figure with its CI, the
number of items, the split it was measured on, the command that made it, the commit and the machine.

    .venv/bin/python dev/collect_results.py adapters/pairwise-full --command "make adapter-pairwise profile=full" \
        [--name pairwise_full] [--adapters-dir DIR]

Figures: the adapter's quick check (eval set: reported, never chosen on), with the untrained base and the
training-label rule under "comparisons" (never the adapter's own figures), the learning curve (dev split:
what the recipe was chosen on), the preference stage's dev figures, and the training work and wall time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

QUICK = {  # task -> [(figure, ci key)]
    "pairwise": [
        ("kappa_both_orders", "kappa_both_orders_ci"),
        ("position_consistency", "position_consistency_ci"),
        ("kappa_ab", None),
        ("kappa_ba", None),
        ("parse_rate", None),
        ("both_orders_correct", None),
    ],
    "absolute": [
        ("pearson_expected", "pearson_expected_ci"),
        ("pearson", "pearson_ci"),
        ("spearman", None),
        ("kendall", None),
        ("parse_rate", None),
    ],
}


def main() -> None:
    from judgefactory import manifest as mf
    from judgefactory.precision import machine

    ap = argparse.ArgumentParser()
    ap.add_argument("adapter", help="adapter folder")
    ap.add_argument("--command", required=True, help="the command that built it")
    ap.add_argument("--name", default=None, help="docs/results/<name>.json (default: the adapter's name)")
    ap.add_argument("--note", default=None)
    args = ap.parse_args()
    folder = Path(args.adapter)
    m = mf.read(folder)
    if m is None:
        raise SystemExit(f"no manifest in {folder}")
    task = m["task"]
    qe = m.get("quick_eval") or {}
    split = f"{qe.get('source')}:{qe.get('file') or ''}".rstrip(":")
    figures, comparisons = {}, {}  # the adapter's own figures; the untrained base and the rule beside them, apart
    for who in ("base", "adapter"):
        r = qe.get(who) or {}
        for key, ci in QUICK[task]:
            if key in r:
                (figures if who == "adapter" else comparisons)[f"{who}.{key}"] = {
                    "value": r[key],
                    "ci": r.get(ci) if ci else None,
                    "n": r.get("n"),
                    "split": split,
                    "set": "eval (reported, never chosen on)",
                }
    rule = (qe.get("adapter") or {}).get("rule_baseline_kappa")
    if rule is not None:
        comparisons["rule_baseline.kappa_both_orders"] = {
            "value": rule,
            "n": (qe.get("adapter") or {}).get("n"),
            "split": split,
            "what": "the BBQ metadata rule that labels the training pairs, on the same items (a comparison)",
        }
    curve = m.get("curve") or []
    doc = {
        "name": args.name or m["name"],
        "adapter": m["name"],
        "task": task,
        "recipe": m["recipe"],
        "figures": figures,
        "comparisons": comparisons,
        "learning_curve": {"split": "dev (the recipe's steps were chosen on it)", "points": curve},
        "preference": m.get("preference"),
        "training": m.get("training"),
        "precision": m.get("precision"),
        "machine": m.get("machine")
        or {**machine(), "recorded": "at collection (the manifest predates machine records)"},
        "command": args.command,
        "note": args.note,
        "commit": mf.git_commit(REPO),
        "quick_eval_seconds": {w: (qe.get(w) or {}).get("seconds") for w in ("base", "adapter")},
    }
    out = REPO / "docs" / "results" / f"{doc['name']}.json"
    mf.write_json(out, _strict(doc))
    print(out)
    for k, v in {**figures, **comparisons}.items():
        ci = f" [{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]" if v.get("ci") else ""
        print(f"  {k}: {v['value']:.3f}{ci} (n={v['n']}, {v['split']})")


def _strict(x):
    """NaN (a correlation of outputs that never parse) -> null: the results files are strict JSON."""
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_strict(v) for v in x]
    return x


if __name__ == "__main__":
    main()
