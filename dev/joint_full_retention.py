"""The joint-training baseline (D31) beside the first search's specialists and chosen merge: writes
docs/results/joint_full_retention.json and prints the table. It only re-derives that record, for the joint build it
was measured on (exit 2 for any other); a joint adapter trained on today's specialists' data is compared with them,
paired, in docs/results/merge_search.json (dev/merge_search_results.py).

    .venv/bin/python dev/joint_full_retention.py

Reads bench/adapter-joint-full/{bbq_pairs,bbq_pairs_ood,vicuna}/metrics.json (run
`judgefactory bench adapter:joint-full retention_pairwise` and `... retention_absolute --max-response-chars 2000`
first) and the specialists' and the chosen merge's eval figures committed in docs/results/merge_search_first.json (same
suites, items and bench recipes). The specialists' predictions are not kept between runs here, so the joint
model's retention has no paired bootstrap: its interval is the joint model's own 95% CI divided by the specialist's
value (the specialist's sampling error is not in it); the chosen merge's retention keeps its paired CI.

    .venv/bin/python dev/joint_full_retention.py --dev-point

scores joint-full on the merge search's dev splits (recipes/searches/full_search.yaml; the specialists' recipes give
the splits), adds it to docs/results/merge_search_first.json as the `joint` reference point and redraws
docs/results/merge_search/first_search_{table.md,pareto.png} from the committed search results.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SUITES = {  # suite -> (skill, headline metric, parse-rate metric, what else is shown)
    "bbq_pairs": ("pairwise", "kappa", "parse_rate", ["position_bias_rate", "both_orders_correct"]),
    "bbq_pairs_ood": ("pairwise", "kappa_vs_rule", "parse_rate_vs_rule", ["position_bias_rate_vs_rule"]),
    "vicuna": ("absolute", "pearson_expected", "parse_rate", ["pearson", "spearman"]),
}


def dev_point() -> None:
    import time

    from judgefactory import manifest as mf
    from judgefactory import merge_search, models, recipes

    search = recipes.load(recipes.find("searches", "full_search"))
    splits = {
        task: merge_search.dev_split(search, recipes.load(recipes.find("adapters", name)))
        for task, name in (("absolute", search.absolute), ("pairwise", search.pairwise))
    }
    t0 = time.time()
    model, tok = models.load("adapter:joint-full")
    scores = merge_search.score(model, tok, splits)
    path = REPO / "docs/results/merge_search_first.json"
    doc = json.loads(path.read_text())

    def row(r: dict) -> dict:
        return {**r, "scores": {"absolute": r["absolute_dev"], "pairwise": r["pairwise_dev"]}}

    refs = [row(r) for r in doc["references"] if r["id"] != "joint"]
    by_id = {r["id"]: r["scores"] for r in refs}
    reference = {task: by_id[f"specialist:{task}"][task] for task in ("absolute", "pairwise")}
    joint = {
        "id": "joint",
        "model": "adapter:joint-full",
        "absolute_dev": scores["absolute"],
        "pairwise_dev": scores["pairwise"],
        "retention_dev": merge_search.retention(scores, reference),
        "seconds": round(time.time() - t0, 1),
        "scored_at_commit": mf.git_commit(REPO),
    }
    doc["references"] = [r for r in doc["references"] if r["id"] != "joint"] + [joint]
    mf.write_json(path, doc)
    rows = [{**row(c), "retention": c["retention_dev"]} for c in doc["candidates"]]
    refs.append(row(joint))
    out = REPO / "docs/results/merge_search"
    mf.write_text(out / "first_search_table.md", merge_search.table(search, rows, refs, doc["chosen"]["id"], reference))
    merge_search.pareto(out / "first_search_pareto.png", rows, refs, doc["chosen"]["id"], search.name)
    print((out / "first_search_table.md").read_text())


def main() -> None:
    if "--dev-point" in sys.argv[1:]:
        dev_point()
        return
    from judgefactory import manifest as mf
    from judgefactory import paths
    from judgefactory.precision import machine
    from judgefactory.tables import fmt, fmt_ci, md_table

    recorded = json.loads((REPO / "docs/results/joint_full_retention.json").read_text())
    joint_manifest = paths.adapters() / "joint-full" / mf.MANIFEST
    if not joint_manifest.is_file() or mf.sha256_file(joint_manifest) != recorded["joint_manifest_sha256"]:
        # the specialists here are the first search's (merge_search_first.json); a joint adapter trained on today's
        # specialists' data is compared with them, paired, by dev/merge_search_results.py
        print(
            f"error: {joint_manifest}: not the joint build docs/results/joint_full_retention.json was measured on; "
            "its retention against today's specialists: judgefactory retention ... adapter:joint-full, then "
            "python dev/merge_search_results.py",
            file=sys.stderr,
        )
        sys.exit(2)
    search = json.loads((REPO / "docs/results/merge_search_first.json").read_text())
    committed = {r["suite"]: r for r in search["chosen"]["retention_eval"]}
    joint_m = mf.read(paths.adapters() / "joint-full") or {}
    rows, table = [], []
    for suite, (skill, metric, parse, extra) in SUITES.items():
        doc = json.loads((paths.bench() / "adapter-joint-full" / suite / "metrics.json").read_text())
        m = doc["metrics"]
        value, ci = m[metric]["value"], m[metric]["ci"]
        spec, merged = committed[suite]["specialist"], committed[suite]["merged"]
        keep = value / spec if value is not None and spec > 0 else None
        interval = [c / spec for c in ci] if ci and spec > 0 else None
        rows.append(
            {
                "skill": skill,
                "suite": suite,
                "metric": metric,
                "n": doc["n"],
                "specialist": spec,
                "chosen_merge": {
                    "value": merged,
                    "retention": committed[suite]["retention"],
                    "ci": committed[suite]["ci"],
                    "ci_kind": "paired cluster bootstrap (bench/retention.py)",
                },
                "joint": {
                    "value": value,
                    "ci": ci,
                    "retention": keep,
                    "retention_interval": interval,
                    "interval_kind": "joint's own 95% CI / specialist's value (unpaired; specialist's error not included)",
                    **{k: m[k]["value"] for k in [parse, *extra] if k in m},
                },
            }
        )
        table.append(
            [
                f"{suite} ({metric}, n={doc['n']})",
                fmt(spec),
                f"{fmt(merged)} → {fmt(committed[suite]['retention'])} {fmt_ci(committed[suite]['ci'])}",
                f"{fmt(value)} {fmt_ci(ci)} → {fmt(keep)} {fmt_ci(interval)}",
                fmt(m[parse]["value"]),
            ]
        )
    head = [
        "eval suite",
        "specialist",
        "chosen merge (NuSLERP 0.6/0.4) → keeps",
        "joint-full [CI] → keeps",
        "joint parse",
    ]
    print(md_table(head, table))
    training = joint_m.get("training") or {}
    out = {
        "name": "joint_full_retention",
        "what": "joint-training baseline (recipes/adapters/joint-full.yaml: one LoRA on the union of absolute-full's "
        "and pairwise-full's training rows, their 600 total steps) against the full specialists and the chosen merge "
        "(full_search-chosen, NuSLERP 0.6 absolute / 0.4 pairwise) on the eval sets",
        "rows": rows,
        "joint_training": {
            k: training.get(k)
            for k in (
                "steps",
                "max_steps",
                "completed",
                "stopped_by",
                "examples",
                "loss_first",
                "loss_last",
                "train_seconds",
                "resumed_from",
            )
        },
        "joint_manifest_sha256": mf.sha256_file(paths.adapters() / "joint-full" / mf.MANIFEST),
        "specialists_and_merge_from": "docs/results/merge_search_first.json (chosen.retention_eval)",
        "command": "judgefactory train joint-full; judgefactory bench adapter:joint-full retention_pairwise; "
        "judgefactory bench adapter:joint-full retention_absolute --max-response-chars 2000; "
        "python dev/joint_full_retention.py",
        "commit": mf.git_commit(REPO),
        "machine": machine(),
        "float": "float32 (training and judging)",
    }
    mf.write_json(REPO / "docs/results/joint_full_retention.json", out)


if __name__ == "__main__":
    main()
