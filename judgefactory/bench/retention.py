"""Retention on the eval sets: how much of each specialist's judgment a merged (or jointly trained) judge keeps.

For every skill suite, ``retention = merged / specialist`` on the suite's headline figure, with a paired cluster
bootstrap CI: each replicate draws the suite's clusters (BBQ questions, Vicuna instructions, pairs) once and scores
BOTH models on the same draw, so the CI is of the ratio itself. Everything is read from ``bench/<model>/<suite>/``
(``predictions.jsonl`` and the suite's own scoring code, ``bench.suites.score``): run ``judgefactory bench`` with the
retention bench recipe first.

    table = retention.table(models, specialists, bench_root)

Skills and their suites (``SKILLS``): the pairwise bias skill on the 240 human-labelled in-distribution pairs and the
religion pairs (out of distribution, rule labels); the absolute skill on Vicuna (expected-score Pearson), and the
relative Prometheus format the absolute specialist also learns, on HHH and Auto-J (accuracy).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import leakage
from ..tables import fmt, fmt_ci, md_table
from . import suites

SKILLS: dict[str, list[tuple[str, str]]] = {
    "pairwise": [("bbq_pairs", "kappa"), ("bbq_pairs_ood", "kappa_vs_rule")],
    "absolute": [("vicuna", "pearson_expected"), ("hhh", "accuracy"), ("autoj", "acc_with_tie")],
}


def _suite_run(bench_root: Path, label: str, suite: str) -> tuple[dict, dict] | None:
    """(predictions keyed (id, key, mode), the run's manifest) of one model's suite, or None when not benchmarked."""
    from .. import manifest as mf
    from .run import read_predictions

    folder = Path(bench_root) / label / suite
    m = mf.read(folder)
    if m is None or not (folder / "predictions.jsonl").is_file():
        return None
    return read_predictions(folder / "predictions.jsonl"), m


def _trained(bench_manifest: dict) -> leakage.TrainedOn:
    """The training fingerprints of the model a bench run judged (its manifest's model reference)."""
    ref = (bench_manifest.get("model") or {}).get("ref")
    return leakage.for_model(str(ref)) if ref else leakage.NONE


def _value(data: suites.SuiteData, rows: dict, modes: list[str], metric: str) -> float:
    value = suites.score(data, rows, modes, suites.Boot(0))[0].get(metric, {}).get("value")
    return float("nan") if value is None else float(value)


def ratio(
    data: suites.SuiteData, rows_a: dict, rows_b: dict, modes: list[str], metric: str, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """``a / b`` on ``metric`` over the suite's items, with a paired cluster-bootstrap 95% CI (replicates where the
    specialist's value is not positive are left out: a ratio to it says nothing)."""
    a, b = _value(data, rows_a, modes, metric), _value(data, rows_b, modes, metric)
    members: dict[str, list[suites.Item]] = {}
    for it in data.items:
        members.setdefault(it.cluster, []).append(it)
    groups = list(members.values())
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(groups), size=len(groups))
        sub = [it for g in pick for it in groups[g]]
        # resampled items keep their ids: duplicates are scored as often as they were drawn
        resampled = suites.SuiteData(
            data.name, data.kind, data.answer, sub, data.source, data.fingerprint, labels=data.labels
        )
        va, vb = _value(resampled, rows_a, modes, metric), _value(resampled, rows_b, modes, metric)
        if vb == vb and vb > 0 and va == va:
            draws.append(va / vb)
    ok = b == b and b > 0 and a == a
    ci = [float(x) for x in np.percentile(draws, [2.5, 97.5])] if len(draws) >= max(20, n_boot // 2) else None
    return {
        "merged": a,
        "specialist": b,
        "retention": a / b if ok else None,
        "ci": ci,
        "n": len(data.items),
        "replicates": len(draws),
    }


def table(
    models: Sequence[str], specialists: dict[str, str], bench_root: Path, mirror: Any = None, n_boot: int = 1000
) -> dict[str, Any]:
    """Per model label and skill suite: the model's figure, the specialist's, and the retention with its CI.
    ``specialists``: skill -> the specialist's bench label. Suites a model was not benchmarked on are left out."""
    out: dict[str, Any] = {"specialists": specialists, "rows": []}
    for skill, pairs in SKILLS.items():
        spec = specialists[skill]
        for suite, metric in pairs:
            got = _suite_run(bench_root, spec, suite)
            if got is None:
                continue
            spec_rows, spec_m = got
            limit = spec_m.get("limit")
            data = suites.load(
                suite,
                mirror=mirror,
                limit=limit,
                seed=spec_m.get("seed", 0),
                max_response_chars=spec_m.get("max_response_chars"),
            )
            modes = [m["name"] for m in spec_m.get("modes", [{"name": "greedy"}])]
            for label in models:
                mine = _suite_run(bench_root, label, suite)
                if mine is None:
                    continue
                rows, m = mine
                if (m.get("limit"), m.get("max_response_chars")) != (limit, spec_m.get("max_response_chars")):
                    continue  # not the same items: no paired comparison
                # both models are scored on the same items: those neither of them trained on
                trained = leakage.union((_trained(spec_m), _trained(m)), f"{label} or {spec}")
                mine_data = dataclasses.replace(data, items=list(data.items))
                excluded = leakage.screen_suite(
                    trained,
                    mine_data,
                    label,
                    mirror=mirror,
                    limit=limit,
                    seed=spec_m.get("seed", 0),
                    max_response_chars=spec_m.get("max_response_chars"),
                )
                r = ratio(mine_data, rows, spec_rows, modes, metric, n_boot)
                row = {"model": label, "skill": skill, "suite": suite, "metric": metric, **r}
                row["excluded_trained_on"] = excluded
                # what was benched (a card reads only rows of the artifact it describes, never a rebuilt one's)
                row["model_manifest_sha256"] = (m.get("model") or {}).get("manifest_sha256")
                out["rows"].append(row)
    return out


def markdown(doc: dict[str, Any]) -> str:
    """``table``'s rows as a Markdown table (the retention's CI to 2 decimals)."""
    header = ["model", "skill", "suite", "metric", "model's value", "specialist's value", "retention [95% CI]", "n"]
    rows = [
        (
            *(r[k] for k in ("model", "skill", "suite", "metric")),
            fmt(r["merged"]),
            fmt(r["specialist"]),
            fmt(r["retention"]) + (f" {fmt_ci(r['ci'], 2)}" if r.get("ci") else ""),
            r["n"],
        )
        for r in doc["rows"]
    ]
    return md_table(header, rows) + "\n"


KEEP = 0.9
"""The share of a specialist's figure a merged judge should keep (D22; the shipped merge gates' default)."""

SUITE_WORDS = {
    "bbq_pairs": "the 240 human-labelled in-distribution BBQ pairs (both orders)",
    "bbq_pairs_ood": "the out-of-distribution religion pairs (rule labels, both orders)",
    "vicuna": "Vicuna (GPT-4 scores)",
    "hhh": "HHH alignment",
    "autoj": "the Auto-J pairwise test set",
}


def sentence(row: dict[str, Any]) -> str:
    """What one retention row says in words: the share kept, its CI, and whether that is the ``KEEP`` share."""
    what = f"the {row['skill']} specialist's {row['metric']} on {SUITE_WORDS.get(row['suite'], row['suite'])}"
    r, ci = row.get("retention"), row.get("ci")
    if r is None:
        return f"Retention of {what} is undefined (the specialist's figure is not positive: {fmt(row['specialist'])})."
    kept = f"{r:.0%}" + (f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else "")
    if ci and ci[0] >= KEEP:
        verdict = f"keeps it (the whole CI is at or above {KEEP:.0%})"
    elif ci and ci[1] < KEEP:
        verdict = f"**loses** part of it (the whole CI is below {KEEP:.0%})"
    elif r >= KEEP:
        verdict = f"keeps it on the point estimate; the CI reaches below {KEEP:.0%}"
    else:
        verdict = f"falls short of {KEEP:.0%} on the point estimate; the CI reaches above it"
    return f"Keeps {kept} of {what} ({fmt(row['merged'])} vs {fmt(row['specialist'])}, n = {row['n']}): {verdict}."


def run(
    models: Sequence[str],
    *,
    pairwise: str,
    absolute: str,
    out: Path | None = None,
    bench_root: Path | None = None,
    mirror: Any = None,
    n_boot: int = 1000,
) -> Path:
    """The retention table of ``models`` (model refs or bench labels) against the two specialists, from their bench
    results (``bench/<label>/<suite>/``, e.g. the retention_pairwise / retention_absolute bench recipes). Writes
    ``retention.json`` and ``retention.md`` into ``out`` (default ``bench/retention``); returns the folder."""
    from .. import manifest as mf
    from .. import models as model_refs
    from .. import paths

    def label(ref: str) -> str:
        return ref if ":" not in ref and "/" not in ref and ref != "base" else model_refs.label(ref)

    root = Path(bench_root) if bench_root is not None else paths.bench()
    folder = Path(out) if out is not None else root / "retention"
    labels = [label(m) for m in models]
    doc = table(labels, {"pairwise": label(pairwise), "absolute": label(absolute)}, root, mirror, n_boot)
    doc["created"] = mf.now()
    mf.write_json(folder / "retention.json", doc)
    mf.write_text(folder / "retention.md", markdown(doc))
    return folder
