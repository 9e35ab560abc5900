"""Pairwise judges side by side on a recipe's dev split (the pair set's template-disjoint test split), paired.

    python dev/pairwise_dev_compare.py pairwise-full adapter:pairwise-full adapter:pairwise-full-rpo \
        --out docs/results/pairwise_rpo_dev.json

Each model judges every dev pair in both A/B orders (greedy, the recipe's dev settings). Per model: kappa over both
orders and position consistency with cluster-bootstrap 95% CIs (clusters: BBQ questions). Each later model against
the first: the paired difference, every replicate drawing the same clusters for both, so the CI is of the difference
itself (the two judges see the same pairs, and their errors are correlated). This is where a stage is chosen: the eval
set is for reporting only.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _figures(v_ab: list, v_ba: list, gold: list, cl: list) -> tuple[float, float]:
    from judgefactory.bench import metrics as M

    back = [M.mirror(v) for v in v_ba]
    kappa = M.cohen_kappa(v_ab + back, gold + gold)
    consistency = 1.0 - M.swap_metrics(v_ab, v_ba)["position_bias_rate"]
    return float(kappa), float(consistency)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("recipe", help="adapter recipe whose dev split and dev settings are used")
    ap.add_argument(
        "models", nargs="+", help="model refs (adapter:NAME, base:..., merge:NAME); the first is the reference"
    )
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-boot", type=int, default=1000)
    a = ap.parse_args()

    from judgefactory import models, quick_eval, recipes
    from judgefactory.bench import run as bench_run
    from judgefactory.bench import suites
    from judgefactory.data.sources import mirror_root

    rec = recipes.load(recipes.find("adapters", a.recipe))
    assert rec.task == "pairwise" and rec.dev is not None, f"{a.recipe}: not a pairwise recipe with a dev block"
    data = quick_eval.dev_data(rec, mirror_root())
    gold = [it.gold for it in data.items]
    clusters = [it.cluster for it in data.items]
    verdicts: dict[str, tuple[list, list]] = {}
    out: dict = {"split": f"dev: {data.source} ({len(gold)} pairs x 2 orders, rule labels)", "models": {}}
    for ref in a.models:
        started = time.time()
        model, tok = models.load(ref, "float32")
        rows = bench_run.predict(
            quick_eval._engine(model, tok, rec.dev.batch_size),
            data,
            [bench_run.Mode("greedy", 1, 0.0)],
            max_new_tokens=rec.dev.max_new_tokens,
            batch_size=rec.dev.batch_size,
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

    # paired cluster bootstrap of each model minus the first
    rng = np.random.default_rng(0)
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(clusters):
        groups.setdefault(c, []).append(i)
    keys = sorted(groups)
    ref0 = a.models[0]
    out["paired_vs_first"] = {}
    for ref in a.models[1:]:
        point = np.subtract(_figures(*verdicts[ref], gold, clusters), _figures(*verdicts[ref0], gold, clusters))
        draws = []
        for _ in range(a.n_boot):
            idx = [i for k in rng.choice(len(keys), len(keys)) for i in groups[keys[k]]]

            def sel(v: list, idx: list[int] = idx) -> list:
                return [v[i] for i in idx]

            fa = _figures(*(sel(v) for v in verdicts[ref]), sel(gold), sel(clusters))
            fb = _figures(*(sel(v) for v in verdicts[ref0]), sel(gold), sel(clusters))
            draws.append(np.subtract(fa, fb))
        lo, hi = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
        out["paired_vs_first"][ref] = {
            "kappa_diff": {"value": float(point[0]), "ci": [float(lo[0]), float(hi[0])]},
            "position_consistency_diff": {"value": float(point[1]), "ci": [float(lo[1]), float(hi[1])]},
        }
        print(f"{ref} - {ref0}:", json.dumps(out["paired_vs_first"][ref]))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    out.update(
        n=len(gold),
        n_boot=a.n_boot,
        command="python dev/pairwise_dev_compare.py " + " ".join(sys.argv[1:]),
        commit=commit,
        cpu=_cpu(),
    )
    tmp = Path(a.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(a.out)


if __name__ == "__main__":
    main()
