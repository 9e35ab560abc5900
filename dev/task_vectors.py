"""Why a merge keeps one skill and loses the other: the two specialists' task vectors, layer by layer.

For each LoRA module the task vector is dW = (alpha / r) * B @ A, what the adapter adds to the base weight. For the
absolute and pairwise specialists this prints, per decoder layer: the Frobenius norm of each task vector (over all of
the layer's modules), their ratio, and the cosine between them (over the layer's concatenated modules); then, for a
few NuSLERP weights, the share of each task vector the merged one carries. mergekit's NuSLERP with a base applies to
each tensor's task vector separately and does not renormalise: for orthogonal vectors it keeps sin(w pi/2) of the
absolute one and cos(w pi/2) of the pairwise one, whatever their norms, so no weight keeps more than 0.71 of both.

    .venv/bin/python dev/task_vectors.py [--absolute absolute-full] [--pairwise pairwise-full]
        [--adapters-dir adapters] [--out docs/results/task_vectors.json] [--weights 0.5 0.6 ...]

CPU only, seconds; reads only the two adapter_model.safetensors files.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from judgefactory import manifest as mf  # noqa: E402


def task_vectors(adapter: Path) -> dict[str, torch.Tensor]:
    import torch
    from safetensors.torch import load_file

    cfg = json.loads((adapter / "adapter_config.json").read_text())
    scale = cfg["lora_alpha"] / cfg["r"]
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    out = {}
    for key, a in weights.items():
        if ".lora_A." not in key:
            continue
        b = weights[key.replace(".lora_A.", ".lora_B.")]
        module = key.split(".lora_A.")[0].removeprefix("base_model.model.")
        out[module] = (scale * (b.to(torch.float64) @ a.to(torch.float64))).flatten()
    return out


def projections(w: float, va: dict[str, torch.Tensor], vp: dict[str, torch.Tensor]) -> tuple[float, float]:
    """The flattened NuSLERP merge at weight w of the absolute specialist, module by module with mergekit's own
    function (``nuslerp(t, v0, v1)`` with t = the pairwise weight, as mergekit's nuslerp method with a base model
    calls it on each tensor's task vector). Returns the share of each task vector the merged vector carries:
    sum over modules of <merged, v> / sum of |v|^2 (1.0 = all of it, as in the specialist)."""
    from mergekit.merge_methods.nuslerp import nuslerp

    num_a = num_p = den_a = den_p = 0.0
    for m in va:
        merged = nuslerp(1 - w, va[m], vp[m], flatten=True)
        num_a += float(merged @ va[m])
        num_p += float(merged @ vp[m])
        den_a += float(va[m] @ va[m])
        den_p += float(vp[m] @ vp[m])
    return num_a / den_a, num_p / den_p


def pair_stats(a: torch.Tensor, p: torch.Tensor) -> dict[str, float]:
    """Norms, their ratio and the cosine of two flattened task vectors."""
    na, np_ = float(a.norm()), float(p.norm())
    return {"norm_absolute": na, "norm_pairwise": np_, "ratio": na / np_, "cosine": float(a @ p) / (na * np_)}


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--absolute", default="absolute-full")
    ap.add_argument("--pairwise", default="pairwise-full")
    ap.add_argument("--adapters-dir", type=Path, default=REPO / "adapters")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "task_vectors.json")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.5, 0.55, 0.6, 0.65, 0.7])
    args = ap.parse_args()

    paths = {"absolute": args.adapters_dir / args.absolute, "pairwise": args.adapters_dir / args.pairwise}
    for name, p in paths.items():
        if not (p / "adapter_model.safetensors").is_file():
            print(
                f"error: {p}/adapter_model.safetensors: no trained {name} adapter (judgefactory train ...)",
                file=sys.stderr,
            )
            raise SystemExit(2)
    va, vp = task_vectors(paths["absolute"]), task_vectors(paths["pairwise"])
    if set(va) != set(vp):
        print("error: the two adapters target different modules", file=sys.stderr)
        raise SystemExit(2)

    def layer(m: str) -> int:
        found = re.search(r"layers\.(\d+)\.", m)
        return int(found.group(1)) if found else -1

    rows = []
    for i in sorted({layer(m) for m in va}):
        mods = sorted(m for m in va if layer(m) == i)
        rows.append({"layer": i, **pair_stats(torch.cat([va[m] for m in mods]), torch.cat([vp[m] for m in mods]))})
    whole = pair_stats(torch.cat([va[m] for m in sorted(va)]), torch.cat([vp[m] for m in sorted(vp)]))
    kept = [
        dict(zip(("w_absolute", "absolute_kept", "pairwise_kept"), (w, *projections(w, va, vp)), strict=True))
        for w in args.weights
    ]
    print("| layer | ‖ΔW‖ absolute | ‖ΔW‖ pairwise | ratio | cosine |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['layer']} | {r['norm_absolute']:.3f} | {r['norm_pairwise']:.3f} | {r['ratio']:.2f} | {r['cosine']:.3f} |"
        )
    print(
        f"| all | {whole['norm_absolute']:.3f} | {whole['norm_pairwise']:.3f} | {whole['ratio']:.2f} | {whole['cosine']:.3f} |"
    )
    print("\n| NuSLERP w (absolute) | projection kept: absolute | pairwise |\n|---|---|---|")
    for k in kept:
        print(f"| {k['w_absolute']:.2f} | {k['absolute_kept']:.3f} | {k['pairwise_kept']:.3f} |")
    result = {
        "name": "task_vectors",
        "what": "the absolute and pairwise specialists' LoRA task vectors dW = (alpha/r) B A: norms and cosine per "
        "decoder layer and over all modules, and how much of each the flattened NuSLERP merge keeps (projection of "
        "the merged vector on each task vector / its squared norm, summed over modules, mergekit's nuslerp per tensor)",
        "adapters": {k: str(v.relative_to(REPO)) if v.is_relative_to(REPO) else str(v) for k, v in paths.items()},
        "all_modules": whole,
        "layers": rows,
        "nuslerp_projection": kept,
        "command": "python " + " ".join(["dev/task_vectors.py", *sys.argv[1:]]),
        "commit": mf.git_commit(REPO),
        "cpu": f"{platform.machine()}; float64 arithmetic on the saved LoRA factors, the same on any CPU",
    }
    mf.write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
