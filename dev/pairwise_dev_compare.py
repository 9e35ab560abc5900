"""Pairwise judges side by side on a recipe's dev split (the pair set's template-disjoint test split), paired.

    python dev/pairwise_dev_compare.py pairwise-full adapter:pairwise-full adapter:pairwise-full-rpo \
        --out docs/results/pairwise_rpo_dev.json

Each model judges every dev pair in both A/B orders (greedy, the recipe's dev settings). Per model: kappa over both
orders and position consistency with cluster-bootstrap 95% CIs (clusters: BBQ questions). Each later model against
the first: the paired difference, every replicate drawing the same clusters for both, so the CI is of the difference
itself (the two judges see the same pairs, and their errors are correlated). This is where a stage is chosen: the eval
set is for reporting only.

``--split eval`` scores the recipe's quick-check items instead (the 240 human-labelled in-distribution pairs, the
recipe's ``quick_eval`` settings and response clip, so the figures are the adapters' quick-check figures): for
reporting a judge that was already chosen on dev, never for choosing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _figures(v_ab: list, v_ba: list, gold: list) -> tuple[float, float]:
    """kappa over both orders (the B->A verdict mirrored back) and position consistency, as ``pair_metrics`` counts them."""
    from judgefactory.bench import metrics as M

    back = [M.mirror(v) for v in v_ba]
    kappa = M.cohen_kappa(v_ab + back, gold + gold)
    consistency = 1.0 - M.swap_metrics(v_ab, v_ba)["position_bias_rate"]
    return float(kappa), float(consistency)


def _paired(which: int, first: tuple[list, list], other: tuple[list, list]):
    """A bootstrap metric over per-item (other's verdicts, first's verdicts): figure ``which`` of other minus first."""

    def diff(items: list, gold: list) -> float:
        a_ab, a_ba, b_ab, b_ba = (list(x) for x in zip(*items, strict=True))
        return _figures(a_ab, a_ba, gold)[which] - _figures(b_ab, b_ba, gold)[which]

    return diff, list(zip(*other, *first, strict=True))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("recipe", help="adapter recipe whose dev split and dev settings are used")
    ap.add_argument(
        "models", nargs="+", help="model refs (adapter:NAME, base:..., merge:NAME); the first is the reference"
    )
    ap.add_argument("--split", choices=("dev", "eval"), default="dev", help="dev (choose) or eval (report only)")
    ap.add_argument(
        "--pairs",
        help="dev from another pair set's test.jsonl (data/pairs/<name>/), e.g. one built with larger buckets (D40)",
    )
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-boot", type=int, default=1000)
    a = ap.parse_args()

    from judgefactory import manifest, models, precision, quick_eval, recipes
    from judgefactory.bench import metrics as M
    from judgefactory.bench import run as bench_run
    from judgefactory.bench import suites
    from judgefactory.data.sources import mirror_root

    rec = recipes.load(recipes.find("adapters", a.recipe))
    if a.pairs:
        rec = rec.model_copy(update={"data": rec.data.model_copy(update={"source": f"pairs:{a.pairs}"})})
    problem = None
    if rec.task != "pairwise" or rec.dev is None:
        problem = f"recipes/adapters/{a.recipe}.yaml: not a pairwise recipe with a dev block"
    elif a.split == "eval" and rec.quick_eval is None:
        problem = f"recipes/adapters/{a.recipe}.yaml: no quick_eval block to score --split eval with"
    elif a.split == "eval" and a.pairs:
        problem = "--pairs: eval is the quick check's pairs; --pairs picks a dev split (use it with --split dev)"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    if a.split == "dev":
        data = quick_eval.dev_data(rec, mirror_root())
        batch_size, max_new = rec.dev.batch_size, rec.dev.max_new_tokens
        split = f"dev: {data.source} ({len(data.items)} pairs x 2 orders, rule labels)"
    else:
        data = quick_eval.suite_data(rec, mirror_root())
        batch_size, max_new = rec.quick_eval.batch_size, rec.quick_eval.max_new_tokens
        split = (
            f"eval (reported, never chosen on): {rec.quick_eval.source}:{rec.quick_eval.file} "
            f"({len(data.items)} pairs x 2 orders, human labels; the quick check's items and settings)"
        )
    gold = [it.gold for it in data.items]
    clusters = [it.cluster for it in data.items]
    verdicts: dict[str, tuple[list, list]] = {}
    out: dict = {"split": split, "models": {}}
    for ref in a.models:
        started = time.time()
        model, tok = models.load(ref, "float32")
        rows = bench_run.predict(
            quick_eval._engine(model, tok, batch_size),
            data,
            [bench_run.Mode("greedy", 1, 0.0)],
            max_new_tokens=max_new,
            batch_size=batch_size,
        )
        v_ab = [rows[(it.id, "ab", "greedy")]["parsed"][0] for it in data.items]
        v_ba = [rows[(it.id, "ba", "greedy")]["parsed"][0] for it in data.items]
        verdicts[ref] = (v_ab, v_ba)
        m = suites.pair_metrics(
            v_ab, v_ba, gold, clusters, [it.meta["bucket"] for it in data.items], suites.Boot(a.n_boot)
        )
        pbr = m["position_bias_rate"]
        out["models"][ref] = {
            "kappa_both_orders": {"value": m["kappa"]["value"], "ci": m["kappa"].get("ci")},
            "position_consistency": {
                "value": 1.0 - pbr["value"],
                "ci": [1.0 - pbr["ci"][1], 1.0 - pbr["ci"][0]] if pbr.get("ci") else None,
            },
            "parse_rate": m["parse_rate"]["value"],
            "seconds": round(time.time() - started, 1),
        }
        print(ref, json.dumps(out["models"][ref]), flush=True)
        del model

    # paired cluster bootstrap of each model minus the first: every replicate draws the same clusters for both
    ref0 = a.models[0]
    out["paired_vs_first"] = {}
    for ref in a.models[1:]:
        diffs = {}
        for which, key in enumerate(("kappa_diff", "position_consistency_diff")):
            fn, items = _paired(which, verdicts[ref0], verdicts[ref])
            lo, hi = M.bootstrap_ci(fn, items, gold, clusters, n_boot=a.n_boot)
            diffs[key] = {"value": fn(items, gold), "ci": [float(lo), float(hi)]}
        out["paired_vs_first"][ref] = diffs
        print(f"{ref} - {ref0}:", json.dumps(diffs))
    out.update(
        n=len(gold),
        n_boot=a.n_boot,
        command="python dev/pairwise_dev_compare.py " + " ".join(sys.argv[1:]),
        commit=manifest.git_commit(REPO),
        machine=precision.machine(),
    )
    manifest.write_json(Path(a.out), out)


if __name__ == "__main__":
    main()
