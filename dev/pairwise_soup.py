"""D39's figures in one file: the RPO runs' task vectors (norms, cosines) and the soup candidates' dev / eval figures.

    .venv/bin/python dev/pairwise_soup.py --runs pairwise-full-rpo pairwise-full-rpo-lr1e4 pairwise-full-rpo-nll05 \
        pairwise-full-rpo-seed1 --compare DEV.json ... --out docs/results/pairwise_soup.json

``--compare`` takes the JSON files ``dev/pairwise_dev_compare.py`` wrote (dev or eval split, each with its own command,
commit and CPU); they are copied in as they are. The task vectors are dW = (alpha / r) B A of every LoRA module
(dev/task_vectors.py), concatenated over the whole model: a soup (linear merge, equal weights) is the base plus their
mean, so the cosine between two runs says how much of each the soup keeps (a soup of two runs at cosine c has the norm
sqrt((1 + c) / 2) of theirs, for equal norms). CPU only, seconds; float64 on the saved LoRA factors.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "dev"))

from task_vectors import pair_stats, task_vectors  # noqa: E402

from judgefactory import manifest as mf  # noqa: E402
from judgefactory import models  # noqa: E402


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", required=True, help="adapter names (adapters/<name>/)")
    ap.add_argument("--compare", nargs="*", type=Path, default=[], help="dev/pairwise_dev_compare.py outputs")
    ap.add_argument("--adapters-dir", type=Path, default=REPO / "adapters")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()

    flat = {}
    for name in a.runs:
        f = a.adapters_dir / name / "adapter_model.safetensors"
        if not f.is_file():
            print(f"error: {f}: no trained adapter {name!r} (judgefactory train ...)", file=sys.stderr)
            raise SystemExit(2)
        tv = task_vectors(a.adapters_dir / name)
        flat[name] = torch.cat([tv[m] for m in sorted(tv)])
    norms = {n: float(v.norm()) for n, v in flat.items()}
    figures = [json.loads(p.read_text()) for p in a.compare]
    pairs = list(itertools.combinations(a.runs, 2))
    cosines = {f"{x} vs {y}": pair_stats(flat[x], flat[y])["cosine"] for x, y in pairs}
    soup_norms = {f"{x} vs {y}": float(((flat[x] + flat[y]) / 2).norm()) for x, y in pairs}
    print("| run | ‖ΔW‖ |\n|---|---|")
    for n, v in norms.items():
        print(f"| {n} | {v:.2f} |")
    print("\n| runs | cosine of ΔW | ‖ΔW‖ of their soup |\n|---|---|---|")
    for k, v in cosines.items():
        print(f"| {k} | {v:.5f} | {soup_norms[k]:.2f} |")
    # what each soup in the figures is (its folder may be gone): the adapters its merge recipe averaged
    soups = {}
    for fig in figures:
        for ref in fig["models"]:
            try:
                kind, folder = models.resolve(ref)
            except models.ModelRefError:  # a candidate's scratch folder deleted after scoring
                continue
            m = mf.read(Path(folder)) if kind == "merge" else None
            if m:
                soups[ref] = {"method": m["recipe"]["method"], "models": m["recipe"]["models"]}
    result = {
        "name": "pairwise_soup",
        "what": "D39: model soups (mergekit linear, equal weights) of the four RPO runs as the pairwise judge; the "
        "runs' LoRA task vectors, and the candidates' figures on dev (where the soup was chosen) and eval (reported)",
        "task_vectors": {"norm": norms, "cosine": cosines, "norm_of_two_run_soup": soup_norms},
        "soups": soups,
        "figures": figures,
        "command": "python " + " ".join(["dev/pairwise_soup.py", *sys.argv[1:]]),
        "commit": mf.git_commit(REPO),
        "cpu": f"{platform.machine()}; task vectors in float64 on the saved LoRA factors (any CPU); the figures "
        "carry their own CPU",
    }
    mf.write_json(a.out, result)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
