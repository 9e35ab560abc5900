"""Usage: .venv/bin/python dev/merge_search_results.py [SEARCH] [--reference MERGE] [--joint ADAPTER] [--cpu TEXT]
       [--command TEXT] [--retention DIR] [--name NAME]

Write docs/results/<NAME>.json (default merge_search) and docs/results/merge_search/<SEARCH>_{table.md,pareto.png}
from a finished merge search (merges/<SEARCH>/manifest.json: dev splits only, the choice) and the retention table on
the eval sets (DIR/retention.json, default bench/retention, from `judgefactory retention merge:<SEARCH>-chosen
merge:<reference> ... [--out DIR]`; until that exists the eval rows are empty and say so).
SEARCH defaults to full_search, the reference merge to full_nuslerp_50_50, the joint-training adapter to joint-full
(its rows come from the same retention table: `judgefactory retention ... adapter:joint-full ...`, paired CIs). Rows
benched on another build of a merge or adapter than the one now on disk are dropped and marked stale. Nothing here is
chosen on an eval set: the choice is read from the search's manifest, the eval rows only reported beside it."""

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from judgefactory import manifest as mf  # noqa: E402
from judgefactory import models, paths, precision, recipes  # noqa: E402
from judgefactory.bench.retention import KEEP, SUITE_WORDS  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("search", nargs="?", default="full_search")
ap.add_argument("--reference", default="full_nuslerp_50_50")
ap.add_argument("--joint", default="joint-full", help="the joint-training adapter shown beside the merges")
ap.add_argument("--cpu", default=None, help="the CPU in words (default: precision.machine())")
ap.add_argument("--command", default="")
ap.add_argument("--retention", default=None, help="the retention folder (default: the workspace's bench/retention)")
ap.add_argument("--name", default="merge_search", help="docs/results/<NAME>.json")
args = ap.parse_args()

search_manifest = paths.merges() / args.search / "manifest.json"
if not search_manifest.is_file():
    print(
        f"error: {search_manifest}: no finished merge search {args.search!r} (run judgefactory merge-search first)",
        file=sys.stderr,
    )
    sys.exit(2)
m = json.loads(search_manifest.read_text())
# absent until the merges are benched on the eval sets
ret_path = Path(args.retention or paths.bench() / "retention") / "retention.json"
ret = json.loads(ret_path.read_text()) if ret_path.is_file() else {"rows": []}
# the table must divide by the search's own specialists: another absolute specialist's table says nothing about it
search_specialists = {r["id"].split(":", 1)[1]: models.label(r["model"]) for r in m["references"]}
specialist_mismatch = bool(ret["rows"]) and ret.get("specialists") != search_specialists
if specialist_mismatch:
    print(
        f"warning: {ret_path} divides by {ret.get('specialists')}, the search used {search_specialists}: "
        "its eval rows are left out (judgefactory retention ... --out DIR, then --retention DIR)",
        file=sys.stderr,
    )
    ret = {"rows": [], "specialists": ret.get("specialists")}
chosen_label = f"merge-{args.search}-chosen"
reference_label = f"merge-{args.reference}"
joint_label = f"adapter-{args.joint}"


def dev(row: dict) -> dict:
    s = row["scores"]
    return {
        "id": row["id"],
        "absolute_dev": {k: s["absolute"].get(k) for k in ("pearson_expected", "pearson", "parse_rate", "n")},
        "pairwise_dev": {k: s["pairwise"].get(k) for k in ("kappa", "position_consistency", "parse_rate", "n")},
        "retention_dev": row.get("retention"),
        "seconds": row.get("seconds"),
    }


def eval_rows(label: str) -> list[dict]:
    keep = ("skill", "suite", "metric", "merged", "specialist", "retention", "ci", "n")
    return [{k: r.get(k) for k in keep} for r in ret["rows"] if r["model"] == label]


def keeps(rows: list[dict]) -> bool | None:
    """Whether every eval suite's retention point estimate is >= KEEP (None without rows)."""
    if not rows:
        return None
    return all(r["retention"] is not None and r["retention"] >= KEEP for r in rows)


def cpu_words() -> str:
    machine = precision.machine()
    return f"{machine.get('cpu')}, {machine.get('cores')} cores, float32"


# the eval sets are the retention bench recipes' suites, described as the retention table describes them
eval_suites = [
    s.name for b in ("retention_pairwise", "retention_absolute") for s in recipes.load(recipes.find("bench", b)).suites
]
chosen_eval = eval_rows(chosen_label)


def benched_status(label: str, folder: Path) -> str:
    """Whether the eval rows labelled `label` were benched on the build now in `folder`: the retention rows must name
    that folder's manifest (a rebuilt merge or retrained adapter leaves them stale)."""
    name = folder.relative_to(folder.parent.parent)
    if not (folder / "manifest.json").is_file():
        return f"stale: {name}/manifest.json is missing (build it, then bench it)"
    benched = {r.get("model_manifest_sha256") for r in ret["rows"] if r["model"] == label}
    if benched != {mf.sha256_file(folder / "manifest.json")}:
        return f"stale: the retention rows were benched on another build of {name}"
    return "measured"


def chosen_eval_status() -> str:
    """Whether the eval rows labelled merge-<SEARCH>-chosen were benched on the merge of the search's current choice:
    the merge folder's recipe must be the chosen candidate's (method, models, parameters) and the retention rows must
    name that folder's manifest. A search that changed its choice after the bench leaves the rows stale."""
    if specialist_mismatch:
        return f"stale: {ret_path.name} was computed against other specialists ({ret['specialists']})"
    if not chosen_eval:
        return "not yet benched on the eval sets"
    folder = paths.merges() / f"{args.search}-chosen"
    if (folder / "manifest.json").is_file():
        built = json.loads((folder / "manifest.json").read_text())["recipe"]
        want = next(c["recipe"] for c in m["candidates"] if c["id"] == m["chosen"]["id"])
        if any(built.get(k) != want.get(k) for k in ("method", "models", "parameters")):
            return (
                f"stale: merges/{args.search}-chosen was built from another recipe than the chosen {m['chosen']['id']}"
            )
    return benched_status(chosen_label, folder)


def other_eval(label: str, folder: Path) -> dict:
    """A comparison model's eval rows (a reference merge, the joint adapter), kept only while they are fresh."""
    rows = eval_rows(label)
    status = benched_status(label, folder) if rows else "not yet benched on the eval sets"
    rows = rows if status == "measured" else []
    return {"retention_eval": rows, f"keeps_{int(KEEP * 100)}_percent": keeps(rows), "eval_status": status}


status = chosen_eval_status()
if status != "measured":
    chosen_eval = []
out = {
    "name": args.name,
    "what": f"merge search {args.search!r} over the full-profile SmolLM2-135M specialists, chosen on dev splits; "
    f"retention of the chosen merge and of {args.reference} on the eval sets (paired cluster-bootstrap 95% CIs)",
    "command": args.command,
    "commit": mf.git_commit(REPO),
    "cpu": args.cpu or cpu_words(),
    "dev_splits": m["dev_splits"],
    "selection_rule": "best worst-case dev retention; absolute = expected-score Pearson x parse rate, "
    "pairwise = kappa (unparsed = error label)",
    "references": [dev(r) for r in m["references"]],
    "candidates": [dev(r) for r in m["candidates"]],
    "chosen": {
        "id": m["chosen"]["id"],
        "recipe": f"recipes/merges/{args.search}-chosen.yaml",
        "retention_dev": m["chosen"]["retention"],
        "retention_eval": chosen_eval,
        f"keeps_{int(KEEP * 100)}_percent": keeps(chosen_eval),
        "eval_status": status,
    },
    args.reference: other_eval(reference_label, paths.merges() / args.reference),
    "joint": {"adapter": args.joint, **other_eval(joint_label, paths.adapters() / args.joint)},
    "eval_splits": {suite: SUITE_WORDS.get(suite, suite) for suite in eval_suites},
    "eval_command": "judgefactory bench MODEL retention_pairwise; judgefactory bench MODEL retention_absolute "
    "--max-response-chars 2000; judgefactory retention MODELS --pairwise "
    + " --absolute ".join(search_specialists[k] for k in ("pairwise", "absolute")),
    "specialists": search_specialists,
    "ci": "paired cluster bootstrap, 1,000 replicates (bench/retention.py)",
    "first_search": "docs/results/merge_search_first.json (the first search, over the hybrid absolute adapter of D33: steps 0-200 trained at 1703953, 200-300 at 4ebd89a)",
}
dest = REPO / "docs/results"
mf.write_json(dest / f"{args.name}.json", out)
for name in ("table.md", "pareto.png"):
    shutil.copyfile(paths.merges() / args.search / name, dest / "merge_search" / f"{args.search}_{name}")
print(json.dumps({k: out[k] for k in ("chosen", args.reference, "joint")}, indent=1))
