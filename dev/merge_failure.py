"""Usage: .venv/bin/python dev/merge_failure.py [LABEL ...] [--out PATH] [--cpu TEXT] [--retention DIR ...]

Why a merge loses the bias judgment (D36): reads the greedy predictions the eval bench kept
(bench/<LABEL>/{bbq_pairs,bbq_pairs_ood}/predictions.jsonl) and splits each reply into what the trained format makes it
say (data/pairs.py: one clause per response, `A chose C, "The lawyer": stereotyped.`, a closing sentence, then the
verdict). Per model and suite, over both orders (the B-A reply mirrored back):

- verdict accuracy on the tie pairs and on the A/B pairs, and how many replies say TIE;
- the verdict the reply's own clauses imply (the response labelled `stereotyped` when exactly one is, TIE when both
  get the same word) and its accuracy: whether the model still tells the responses apart;
- how often the verdict follows its own clauses, and, where both clauses carry the same word, how often the closing
  sentence says so (`Neither relies...`, `Both rely...`, `Both guess...`) instead of picking a side.

Beside them, the labels' pairwise rows of the retention tables (DIR/retention.json, default bench/retention; paired
CIs; a merge of another absolute specialist has its table in its own folder, `judgefactory retention --out DIR`).
Default labels: the pairwise specialist, the chosen merge, nuslerp 50/50 and the joint adapter where benched.
Writes docs/results/merge_failure.json. No model is loaded; the figures are counts with Wilson 95% intervals."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from judgefactory import formats, paths, precision  # noqa: E402
from judgefactory import manifest as mf  # noqa: E402
from judgefactory.bench.retention import SUITE_WORDS  # noqa: E402

CLAUSE = re.compile(r'\b([AB]) chose [A-C], "[^"]*": (\w+)\.')
SAME_SENTENCES = ("Neither relies", "Both rely", "Both guess")
SUITES = ("bbq_pairs", "bbq_pairs_ood")
DEFAULT = ["adapter-pairwise-full", "merge-full_search-chosen", "merge-full_nuslerp_50_50", "adapter-joint-full"]


def implied(raw: str) -> tuple[str | None, bool | None]:
    """(the verdict the clauses imply, whether both clauses carry the same word); (None, None) without two clauses."""
    words = dict(CLAUSE.findall(raw))
    if set(words) != {"A", "B"}:
        return None, None
    a, b = words["A"] == "stereotyped", words["B"] == "stereotyped"
    same = words["A"] == words["B"]
    return ("A" if a and not b else "B" if b and not a else "TIE"), same


def wilson(k: int, n: int) -> dict:
    if n == 0:
        return {"value": None, "k": 0, "n": 0, "ci": None}
    p, z = k / n, 1.96
    mid, half = (
        (p + z * z / (2 * n)) / (1 + z * z / n),
        z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n),
    )
    return {"value": p, "k": k, "n": n, "ci": [max(0.0, mid - half), min(1.0, mid + half)]}


def analyse(path: Path) -> dict:
    c: dict[str, int] = {}

    def add(key: str, hit: bool) -> None:
        c[key + "/n"] = c.get(key + "/n", 0) + 1
        c[key + "/k"] = c.get(key + "/k", 0) + int(hit)

    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r.get("mode") != "greedy":
            continue
        raw, verdict = r["raw"][0], (r.get("parsed") or [None])[0]
        imp, same = implied(raw)
        back = formats.swap_verdict if r["key"] == "ba" else (lambda v: v)
        gold, tie_gold = r["gold"], r["gold"] == "TIE"
        add("says_tie", verdict == "TIE")
        add("verdict_acc_tie_pairs" if tie_gold else "verdict_acc_ab_pairs", back(verdict) == gold)
        add("has_clauses", imp is not None)
        if imp is None:
            continue
        add("clauses_acc_tie_pairs" if tie_gold else "clauses_acc_ab_pairs", back(imp) == gold)
        add("verdict_follows_clauses", verdict == imp)
        if same:
            tail = raw.split("</reasoning>")[0]
            add("same_words_closing_says_so", any(s in tail for s in SAME_SENTENCES))
    return {k[:-2]: wilson(c[k[:-2] + "/k"], c[k]) for k in c if k.endswith("/n")}


def retention(labels: list[str], folders: list[Path]) -> list[dict]:
    """The labels' pairwise rows of the retention tables in ``folders`` (retention.json: kappa / specialist, paired
    CIs), each row naming the table it came from."""
    keep = ("model", "suite", "metric", "merged", "specialist", "retention", "ci", "n", "model_manifest_sha256")
    out = []
    for folder in folders:
        path = folder / "retention.json"
        rows = json.loads(path.read_text())["rows"] if path.is_file() else []
        out += [
            {**{k: r.get(k) for k in keep}, "table": os.path.relpath(path.resolve(), REPO)}
            for r in rows
            if r["model"] in labels and r["skill"] == "pairwise"
        ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("labels", nargs="*", default=None)
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "merge_failure.json"))
    ap.add_argument("--cpu", default=None, help="the CPU the bench predictions were generated on, in words")
    ap.add_argument("--retention", nargs="+", default=None, help="retention folders (default: bench/retention)")
    args = ap.parse_args()
    tables = [Path(f) for f in args.retention] if args.retention else [paths.bench() / "retention"]
    labels = args.labels or [x for x in DEFAULT if (paths.bench() / x / SUITES[0] / "predictions.jsonl").is_file()]
    rows, sources = {}, {}
    for label in labels:
        for suite in SUITES:
            pred = paths.bench() / label / suite / "predictions.jsonl"
            if not pred.is_file():
                ref = label.replace("-", ":", 1)  # bench label merge-x / adapter-x -> model ref merge:x / adapter:x
                print(f"error: {pred}: no predictions (judgefactory bench {ref} retention_pairwise)", file=sys.stderr)
                sys.exit(2)
            rows.setdefault(label, {})[suite] = analyse(pred)
            sources[f"{label}/{suite}"] = mf.sha256_file(pred)
    keys = [
        "says_tie",
        "verdict_acc_tie_pairs",
        "verdict_acc_ab_pairs",
        "clauses_acc_tie_pairs",
        "clauses_acc_ab_pairs",
        "verdict_follows_clauses",
        "same_words_closing_says_so",
    ]
    for suite in SUITES:
        print(f"\n{suite}\n| model | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
        for label in labels:
            cells = [rows[label][suite].get(k, {}).get("value") for k in keys]
            print(f"| {label} | " + " | ".join("—" if v is None else f"{v:.2f}" for v in cells) + " |")
    doc = {
        "name": "merge_failure",
        "what": "where the merges lose the bias judgment: each reply's verdict against its own per-response clauses, "
        "on the eval pairs (greedy, both orders)",
        "split": {s: SUITE_WORDS[s] for s in SUITES},
        "rows": rows,
        "retention_eval": retention(labels, tables),
        "interval": "Wilson 95% (replies are not independent: two orders per pair; the intervals are too narrow by "
        "up to sqrt(2))",
        "predictions_sha256": sources,
        "command": "python dev/merge_failure.py "
        + " ".join(labels)
        + ("" if not args.retention else " --retention " + " ".join(args.retention)),
        "commit": mf.git_commit(REPO),
        "cpu": args.cpu or f"{precision.machine().get('cpu')} (where the predictions were generated), float32, greedy",
    }
    mf.write_json(Path(args.out), doc)


if __name__ == "__main__":
    main()
