"""Usage: .venv/bin/python dev/reproduced.py ADAPTER [--cpu TEXT] [--note TEXT]   (ADAPTER: pairwise-full, absolute-full)

Write docs/results/<ADAPTER with _>_reproduced.json: a full-profile recipe retrained from scratch on another CPU
against the committed run (docs/results/<ADAPTER with _>.json: same recipe, data and seed; float32). Reads the
adapter's manifest, or, for a run still in progress, the dev points its work folder has so far (curve.jsonl). Trained
with --no-eval, the retrained adapter has no quick check: its eval figure is read from its retention bench
(bench/adapter-<ADAPTER>/<suite>/metrics.json: the same items and scoring as the quick check; absolute: Vicuna, all
320, expected-score Pearson with responses clipped at 2,000 chars; pairwise: the 240 pairs' kappa), when there."""

import argparse
import json
import math
from pathlib import Path

from judgefactory import manifest as mf

REPO = Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("adapter")
ap.add_argument(
    "--cpu", default="AMD EPYC (family 25, model 17), Zen 4, 2 cores, AVX-512 + avx512_bf16, float32, 1 torch thread"
)
ap.add_argument("--note", default="")
args = ap.parse_args()
stem = args.adapter.replace("-", "_")
old = json.load(open(f"docs/results/{stem}.json"))
folder = Path("adapters") / args.adapter
m = json.load(open(folder / "manifest.json")) if (folder / "manifest.json").is_file() else None
if m is not None:
    curve, training = m["curve"], m["training"]
else:  # in progress: the dev points written so far
    work = sorted((Path("adapters") / ".work").glob(f"{args.adapter}-*"))[-1]
    curve = [json.loads(x) for x in (work / "curve.jsonl").read_text().splitlines()]
    training = None


def same(a, b):
    nan = lambda v: v is None or (isinstance(v, float) and math.isnan(v))  # noqa: E731
    return (nan(a) and nan(b)) or a == b


mine = {p["step"]: p for p in curve}
keys = [k for k in old["learning_curve"]["points"][0] if k not in ("step", "n", "seconds", "source")]
points = [
    {
        "step": a["step"],
        **{
            k: {
                "committed": a.get(k),
                "this_run": mine[a["step"]].get(k),
                "equal": same(a.get(k), mine[a["step"]].get(k)),
            }
            for k in keys
        },
    }
    for a in old["learning_curve"]["points"]
    if a["step"] in mine
]
out = {
    "name": f"{stem}_reproduced",
    "what": f"recipes/adapters/{args.adapter}.yaml retrained from scratch on another CPU, thread count and process; its dev learning curve (and training losses, once complete) against the committed run (docs/results/{stem}.json)",
    "command": f"OMP_NUM_THREADS=1 judgefactory train {args.adapter} --no-eval; python dev/reproduced.py {args.adapter}",
    "commit": mf.git_commit(REPO),
    "committed_commit": old["commit"],
    "cpu": args.cpu,
    "committed_cpu": old["machine"],
    "split": old["learning_curve"].get("split", "dev"),
    "n": curve[-1].get("n"),
    "complete": training is not None,
    "training": None
    if training is None
    else {
        k: {"committed": old["training"][k], "this_run": training[k]}
        for k in ("steps", "examples", "loss_first", "loss_last", "train_seconds")
    },
    "curve": points,
    "all_equal": all(p[k]["equal"] for p in points for k in keys)
    and (training is None or all(old["training"][k] == training[k] for k in ("examples", "loss_first", "loss_last"))),
    "note": args.note,
}
EVAL = {"absolute-full": ("vicuna", "pearson_expected"), "pairwise-full": ("bbq_pairs", "kappa")}
if args.adapter in EVAL:
    suite, metric = EVAL[args.adapter]
    bench = Path("bench") / f"adapter-{args.adapter}" / suite / "metrics.json"
    if bench.is_file():
        doc = json.load(open(bench))
        got = doc["metrics"]  # {name: {"value", "ci"}}
        fig = got.get(metric) or {}
        committed = old["figures"].get(f"adapter.{metric}") or old["figures"].get(f"adapter.{metric}_both_orders") or {}
        out["eval"] = {
            "suite": suite,
            "metric": metric,
            "command": f"judgefactory bench adapter:{args.adapter} retention_{args.adapter.split('-')[0]}"
            + (" --max-response-chars 2000" if suite == "vicuna" else ""),
            "this_run": {"value": fig.get("value"), "ci": fig.get("ci"), "n": doc.get("n")},
            "committed": {"value": committed.get("value"), "ci": committed.get("ci"), "n": committed.get("n")},
            "parse_rate": (got.get("parse_rate") or {}).get("value"),
        }
clean = json.loads(json.dumps(out).replace("NaN", "null"))  # strict JSON: an undefined correlation is null
mf.write_json(Path(f"docs/results/{stem}_reproduced.json"), clean)
print(out["all_equal"], [(p["step"], {k: p[k]["this_run"] for k in keys[:2]}) for p in points])
