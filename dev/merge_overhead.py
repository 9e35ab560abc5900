"""Overhead of the factory's merge (judgefactory.merge.run) over a bare mergekit ``run_merge``.

Same process, same resolved config, same MergeOptions, alternating (factory, bare, bare, factory, ...),
N repetitions each, after one untimed warm-up that folds the LoRAs into the (shared) fold cache.
Inputs: the real ``adapters/absolute`` and ``adapters/pairwise`` if both exist, else two fresh non-zero
LoRAs (r=16, all 7 projections, random A and B scaled small) on the embedded SmolLM2-135M base.

    .venv/bin/python dev/merge_overhead.py [--n 3] [--recipe nuslerp_50_50] [--cuda]

Two factory modes: one-shot (a fresh ``judgefactory merge`` process: bases.prepare re-hashes the base) and
in a sweep (the verified base is remembered in the process). Besides the medians (noisy on a shared CPU),
each factory run's own time outside mergekit is measured in the same call (mergekit.merge.run_merge wrapped
with a timer): the paired overhead.

Prints a table and writes dev/results/merge_overhead.json (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from judgefactory import (  # noqa: E402
    bases,
    merge,
    paths,  # noqa: E402
    recipes,
)
from judgefactory import manifest as mf  # noqa: E402

MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def fresh_adapters(folder: Path, base_name: str) -> None:
    """Two random non-zero r=16 LoRAs named absolute / pairwise, in the trainer's layout."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_path = bases.prepare(base_name)
    for seed, name in ((1, "absolute"), (2, "pairwise")):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=torch.float32)
        peft_model = get_peft_model(
            model, LoraConfig(r=16, lora_alpha=32, target_modules=MODULES, init_lora_weights=False)
        )
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if "lora_B" in n:
                    p.mul_(1e-3)  # small deltas, like a short training run
        out = folder / name
        peft_model.save_pretrained(str(out))
        mf.finalize(
            out,
            {
                "kind": "adapter",
                "name": name,
                "recipe": {"task": name, "lora": {"r": 16, "alpha": 32, "target_modules": MODULES}},
                "recipe_sha256": f"bench-seed{seed}",
                "base": {"name": base_name, "hub_id": bases.hub_id(base_name), "license": bases.license_of(base_name)},
                "data": [],
            },
        )
        del peft_model, model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--recipe", default="nuslerp_50_50")
    ap.add_argument("--cuda", action="store_true")
    args = ap.parse_args()

    import yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    recipe = recipes.load(recipes.find("merges", args.recipe))
    work = Path(tempfile.mkdtemp(prefix="merge-overhead-"))
    try:
        t0 = time.perf_counter()
        bases.prepare(recipe.base)
        real = all(mf.read(paths.adapters() / n) for n in ("absolute", "pairwise"))
        adapters_dir = paths.adapters() if real else work / "adapters"
        if not real:
            fresh_adapters(adapters_dir, recipe.base)
        print(
            f"setup (base + adapters): {time.perf_counter() - t0:.1f}s; adapters: {'real' if real else 'fresh random r=16'}",
            file=sys.stderr,
        )

        kw = dict(
            adapters_dir=adapters_dir, merges_dir=work / "merges", cache_dir=work / "cache", cuda=args.cuda, quiet=True
        )
        t0 = time.perf_counter()
        out = merge.run(recipe, force=True, **kw)  # warm-up: folds both LoRAs into the fold cache
        warmup = time.perf_counter() - t0
        config_text = (out / "mergekit_config.yaml").read_text()
        options = MergeOptions(**mf.read(out)["mergekit_options"])

        import mergekit.merge

        inner: list[float] = []  # mergekit's own share of the last factory run (same call, same moment)

        def timed_run_merge(*a, **k):
            t = time.perf_counter()
            try:
                return run_merge(*a, **k)
            finally:
                inner.append(time.perf_counter() - t)

        def factory(one_shot: bool):
            def fn() -> float:
                if one_shot:
                    merge._PREPARED.clear()  # as a fresh `judgefactory merge` process: bases.prepare re-verifies the base
                shutil.rmtree(out, ignore_errors=True)  # like bare: a fresh output folder, the old one removed untimed
                mergekit.merge.run_merge = timed_run_merge  # merge.run imports it at call time
                try:
                    t = time.perf_counter()
                    merge.run(recipe, force=True, **kw)
                    return time.perf_counter() - t
                finally:
                    mergekit.merge.run_merge = run_merge

            return fn

        def bare() -> float:
            dest = work / "bare"
            shutil.rmtree(dest, ignore_errors=True)
            t = time.perf_counter()
            run_merge(MergeConfiguration.model_validate(yaml.safe_load(config_text)), str(dest), options)
            inner.append(time.perf_counter() - t)
            return inner[-1]

        modes = {"bare": bare, "factory": factory(True), "factory_sweep": factory(False)}
        times: dict[str, list[float]] = {m: [] for m in modes}
        inside: dict[str, list[float]] = {m: [] for m in modes}
        names = list(modes)
        for i in range(args.n):
            for label in names[i % 3 :] + names[: i % 3]:  # rotate the order each repetition
                times[label].append(modes[label]())
                inside[label].append(inner[-1])
                print(
                    f"  rep {i + 1} {label:14s} {times[label][-1]:6.2f}s  (mergekit {inner[-1]:.2f}s)", file=sys.stderr
                )
        t0 = time.perf_counter()
        merge.run(recipe, **kw)  # unchanged inputs: skipped as fresh
        skip = time.perf_counter() - t0

        med = {m: statistics.median(v) for m, v in times.items()}
        rows = {}
        for m in ("factory", "factory_sweep"):
            own = [f - i for f, i in zip(times[m], inside[m], strict=False)]  # factory time outside mergekit, per run
            rows[m] = {
                "wall_s": times[m],
                "median_wall_s": med[m],
                "overhead_vs_bare_median_pct": 100.0 * (med[m] - med["bare"]) / med["bare"],
                "mergekit_inside_s": inside[m],
                "own_s": own,
                "median_own_s": statistics.median(own),
                "paired_overhead_pct": [100.0 * o / i for o, i in zip(own, inside[m], strict=False)],
                "median_paired_overhead_pct": statistics.median(
                    100.0 * o / i for o, i in zip(own, inside[m], strict=False)
                ),
                "own_vs_median_bare_pct": 100.0 * statistics.median(own) / med["bare"],
            }
        result = {
            "command": "dev/merge_overhead.py " + " ".join(sys.argv[1:]),
            "recipe": args.recipe,
            "method": recipe.method,
            "base": recipe.base,
            "adapters": "real" if real else "fresh random r=16, 7 modules",
            "n": args.n,
            "cuda": args.cuda,
            "bare_mergekit": {"wall_s": times["bare"], "median_wall_s": med["bare"]},
            "factory_one_shot": rows["factory"],
            "factory_in_sweep": rows["factory_sweep"],
            "warmup_with_folds_s": warmup,
            "fresh_skip_s": skip,
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "loadavg_end": os.getloadavg(),
            },
            "versions": mf.versions(),
            "created": mf.now(),
        }
        fmt = lambda v: " ".join(f"{t:.2f}" for t in v)  # noqa: E731
        print(
            f"\n{'run (N=' + str(args.n) + ')':34s} {'median s':>8s} {'overhead':>9s} {'own s':>6s} {'paired':>7s}  runs"
        )
        print(f"{'bare mergekit run_merge':34s} {med['bare']:8.2f} {'':>9s} {'':>6s} {'':>7s}  {fmt(times['bare'])}")
        for m, label in (
            ("factory", "factory merge.run, one-shot"),
            ("factory_sweep", "factory merge.run, in a sweep"),
        ):
            r = rows[m]
            print(
                f"{label:34s} {r['median_wall_s']:8.2f} {r['overhead_vs_bare_median_pct']:8.1f}% {r['median_own_s']:6.2f} "
                f"{r['median_paired_overhead_pct']:6.1f}%  {fmt(times[m])}"
            )
        print(f"{'factory, unchanged -> skipped':34s} {skip:8.2f}")
        print(f"{'warm-up incl. 2 LoRA folds':34s} {warmup:8.2f}")
        print(
            "overhead = median factory / median bare - 1; own = factory wall - its own run_merge time (same call);"
            " paired = own / that run_merge time"
        )
        dest = REPO / "dev" / "results" / "merge_overhead.json"
        mf.write_json(dest, result)
        print(f"\nwrote {dest}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
