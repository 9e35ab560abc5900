"""The ``checks`` mapping of a consistency run's ``summary.json``: swap consistency, primacy and recency (pooled and per
suite, each naming its items), repetition stability, TrustJudge CR plain and remedied, NTR_k and the parse rate, from
the judgements ``judgefactory.consistency`` made (``build_checks``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .consistency_metrics import conflict_ratio
from .tables import number

KS = (3, 4, 5)
SAMPLING_TEMPERATURE = 1.0
"""the sampled pass's temperature (repetition stability)."""

__all__ = ["KS", "SAMPLING_TEMPERATURE", "build_checks", "conflict_summary"]


def conflict_summary(pair_rows: Sequence[Mapping[str, Any]], score_tol: float) -> dict[str, Any]:
    """Plain and remedied CR over the given pairs, and both on the pairs valid under both."""
    plain = [{"s_x": r["s_x"], "s_y": r["s_y"], "c": r["c"]} for r in pair_rows]
    rem = [{"s_x": r["e_x"], "s_y": r["e_y"], "c": r["c_remedied"]} for r in pair_rows]
    common = [
        k for k, (p, q) in enumerate(zip(plain, rem, strict=False)) if None not in p.values() and None not in q.values()
    ]
    return {
        "plain": conflict_ratio(plain, tol=score_tol),
        "remedied": conflict_ratio(rem, tol=score_tol),
        "common": {
            "n": len(common),
            "plain": conflict_ratio([plain[k] for k in common], tol=score_tol)["cr"],
            "remedied": conflict_ratio([rem[k] for k in common], tol=score_tol)["cr"],
        },
    }


def _swap_checks(
    swaps: Mapping[str, Mapping[str, Any]], pairs_swaps: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    n_tot = sum(s["metrics"]["n"] for s in swaps.values())
    if swaps:
        for key in ("position_consistency", "primacy", "recency"):
            val = sum(s["metrics"][key] * s["metrics"]["n"] for s in swaps.values()) / n_tot if n_tot else None
            checks[key] = {
                "value": number(val),
                "n": n_tot,
                "n_errors": sum(s["metrics"]["n_errors"] for s in swaps.values()),
                "suites": ",".join(swaps),
            }
    else:
        for key in ("position_consistency", "primacy", "recency"):
            checks[key] = {"value": None, "reason": "no pairwise suite ran"}
    for name, s in {**swaps, **pairs_swaps}.items():
        for key in ("position_consistency", "primacy", "recency"):
            checks[f"{key}/{name}"] = {
                "value": number(s["metrics"][key]),
                "n": s["metrics"]["n"],
                "n_errors": s["metrics"]["n_errors"],
                "items_sha256": s.get("items_sha256"),
            }
    reps = {n: s["metrics"]["repetition_stability"] for n, s in swaps.items() if "repetition_stability" in s["metrics"]}
    if reps:
        n_items = sum(2 * swaps[n]["metrics"]["n"] for n in reps)
        val = sum(reps[n] * 2 * swaps[n]["metrics"]["n"] for n in reps) / n_items if n_items else None
        checks["repetition_stability"] = {
            "value": number(val),
            "n": n_items,
            "samples": next(iter(swaps[n]["metrics"]["samples"] for n in reps)),
            "temperature": SAMPLING_TEMPERATURE,
        }
    else:
        checks["repetition_stability"] = {"value": None, "reason": "samples=1 (run with --samples N > 1)"}
    return checks


def _cr_check(cr: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "value": number(cr["cr"]),
        "n": cr["n"],
        "n_valid": cr["n_valid"],
        "n_conflicts": cr["n_conflicts"],
        "n_errors": cr["n_errors"],
        "cr_errors_as_conflicts": number(cr["cr_errors_as_conflicts"]),
        **extra,
    }


def build_checks(
    swaps: Mapping[str, Any],
    pairs_swaps: Mapping[str, Any],
    scores: Sequence[Mapping[str, Any]],
    pair_rows: Sequence[Mapping[str, Any]],
    transitivity: Mapping[str, Any],
    judge: Any,
    *,
    score_tol: float,
    verdict_tol: float,
    with_reference: bool,
    absolute_ran: bool,
) -> dict[str, Any]:
    """The ``checks`` mapping of summary.json (``judge``: the run's judge, its reply and parse-error counters)."""
    checks = _swap_checks(swaps, pairs_swaps)
    real = [r for r in pair_rows if not r["reference"]]
    n_score_fb = sum(s["remedy_source"] == "fallback" for s in scores)
    n_verdict_fb = sum(r["verdict_source"] == "fallback" for r in pair_rows)
    if absolute_ran:
        cs = conflict_summary(real, score_tol)
        checks["conflict_ratio"] = _cr_check(cs["plain"], {"score_tol": score_tol})
        checks["conflict_ratio_remedied"] = _cr_check(
            cs["remedied"],
            {
                "score_tol": score_tol,
                "verdict_tol": verdict_tol,
                "n_common": cs["common"]["n"],
                "common_value": number(cs["common"]["remedied"]),
                "common_plain_value": number(cs["common"]["plain"]),
                "n_score_fallbacks": n_score_fb,
                "n_verdict_fallbacks": n_verdict_fb,
            },
        )
        if len(pair_rows) > len(real):
            both = conflict_summary(pair_rows, score_tol)
            checks["conflict_ratio"]["with_reference"] = number(both["plain"]["cr"])
            checks["conflict_ratio_remedied"]["with_reference"] = number(both["remedied"]["cr"])
        for k in KS:
            for key, suffix in (("plain", ""), ("remedied", "_remedied")):
                pooled = transitivity["pooled"][key][f"ntr_{k}"]
                cell = {
                    "value": pooled["value"],
                    "n_subsets": pooled["n_subsets"],
                    "n_scored": pooled["n_scored"],
                    "n_violating": pooled["n_violating"],
                }
                if pooled["groups_with_reference"]:
                    cell["reference_as_response"] = True
                if k == 3:
                    cell.update({f"triples_{s}": n for s, n in transitivity["pooled"][key]["triples"].items()})
                if pooled["value"] is None:
                    cell["reason"] = (
                        "no group has 5 responses; the reference answer was not added (with_reference=False)"
                        if k == 5 and not with_reference
                        else "no k-subset could be scored (errors or too few responses)"
                    )
                checks[f"ntr_{k}{suffix}"] = cell
    else:
        for name in ("conflict_ratio", "conflict_ratio_remedied") + tuple(
            f"ntr_{k}{s}" for k in KS for s in ("", "_remedied")
        ):
            checks[name] = {"value": None, "reason": "no absolute suite (vicuna, mt_bench) ran"}
    total, errs = sum(judge.replies.values()), sum(judge.errors.values())
    checks["parse_rate"] = {
        "value": number(1 - errs / total) if total else None,
        "n_replies": total,
        "n_errors": errs,
        **{f"n_errors_{a}": judge.errors[a] for a in sorted(judge.replies)},
    }
    return checks
