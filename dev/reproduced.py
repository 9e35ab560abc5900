"""Usage: .venv/bin/python dev/reproduced.py  (after retraining pairwise-full anywhere)

Write docs/results/pairwise_full_reproduced.json: the full pairwise recipe retrained on another CPU against the
committed run (same recipe, data and seed; float32)."""

import json
import subprocess

old = json.load(open("docs/results/pairwise_full.json"))
m = json.load(open("adapters/pairwise-full/manifest.json"))
keys = ("kappa", "accuracy", "position_consistency", "parse_rate", "train_loss")
pairs = [
    {"step": a["step"], **{k: {"committed": a[k], "this_run": b[k], "equal": a[k] == b[k]} for k in keys}}
    for a, b in zip(old["learning_curve"]["points"], m["curve"], strict=True)
]
out = {
    "name": "pairwise_full_reproduced",
    "what": "recipes/adapters/pairwise-full.yaml retrained from scratch on another CPU, thread count and session; its dev learning curve and training losses against the committed run (docs/results/pairwise_full.json)",
    "command": "OMP_NUM_THREADS=1 judgefactory train pairwise-full --no-eval (beside a second training on the other core)",
    "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
    "committed_commit": old["commit"],
    "cpu": "AMD EPYC (family 25, model 17), Zen 4, 2 cores, AVX-512 + avx512_bf16, float32, 1 torch thread",
    "committed_cpu": old["machine"],
    "split": "dev: the pair set's template-disjoint test split, 92 pairs x 2 orders",
    "n": 92,
    "examples": {
        "committed": old["training"]["examples"],
        "this_run": m["training"]["examples"],
        "this_run_sha256": m["data"][0]["examples_sha256"],
    },
    "training": {
        k: {"committed": old["training"][k], "this_run": m["training"][k]}
        for k in ("steps", "loss_first", "loss_last", "train_seconds")
    },
    "curve": pairs,
    "all_equal": all(p[k]["equal"] for p in pairs for k in keys)
    and old["training"]["loss_first"] == m["training"]["loss_first"]
    and old["training"]["loss_last"] == m["training"]["loss_last"]
    and old["training"]["examples"] == m["training"]["examples"],
}
json.dump(out, open("docs/results/pairwise_full_reproduced.json", "w"), indent=1)
print(out["all_equal"], [(p["step"], p["kappa"]["this_run"]) for p in pairs], out["training"]["train_seconds"])
