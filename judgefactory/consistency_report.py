"""The consistency station's report: ``summary.md`` and the table ``judgefactory consistency`` prints.

Reads only the ``checks`` mapping of ``summary.json`` (``consistency.build_checks``) and the run's facts (``info``);
the station (``consistency.run``) calls ``summary_md`` and ``print_table``. Rows: the checks, columns: plain vs
remedied (``TABLE_ROWS``); then every check with its details.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from .tables import MISSING, fmt, md_table

TABLE_ROWS: tuple[tuple[str, str, str | None], ...] = (
    ("position consistency", "position_consistency", None),
    ("primacy", "primacy", None),
    ("recency", "recency", None),
    ("repetition stability", "repetition_stability", None),
    ("conflict ratio (CR)", "conflict_ratio", "conflict_ratio_remedied"),
    ("NTR_3", "ntr_3", "ntr_3_remedied"),
    ("NTR_4", "ntr_4", "ntr_4_remedied"),
    ("NTR_5", "ntr_5", "ntr_5_remedied"),
    ("parse rate", "parse_rate", None),
)


def _cell(c: Mapping[str, Any] | None) -> str:
    """``0.500``, ``0.500 (3/12 err)`` when errors were left out or counted, ``—`` when undefined."""
    c = c or {}
    if "n_subsets" in c:
        errors, n = c["n_subsets"] - c.get("n_scored", 0), c["n_subsets"]
    else:
        errors, n = c.get("n_errors", 0), c.get("n", c.get("n_replies", 0))
    return fmt(c.get("value")) + (f" ({errors}/{n} err)" if errors else "")


def table_rows(checks: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(check, plain, remedied) cells; "n/a" where a remedy does not apply (order-invariant by construction)."""
    return [
        (title, _cell(checks.get(plain)), _cell(checks.get(rem)) if rem else "n/a") for title, plain, rem in TABLE_ROWS
    ]


def _details(c: Mapping[str, Any]) -> str:
    """``n=40, n_errors=2, cr_errors_as_conflicts=0.8333``: every field but the value (floats to 4 significant
    digits), ``—`` when there is none."""
    return ", ".join(f"{k}={fmt(v, 4, sig=True)}" for k, v in c.items() if k != "value") or MISSING


def summary_md(label: str, checks: Mapping[str, Mapping[str, Any]], info: Mapping[str, Any]) -> str:
    lines = [
        f"# Consistency — {label}",
        "",
        f"Suites: {', '.join(info['suites_ran']) or 'none'}"
        + (f" · skipped: {'; '.join(info['skipped'])}" if info["skipped"] else ""),
        f"Groups: {', '.join(f'{k} {v}' for k, v in info['n_groups'].items()) or 'none'} · pairs per pairwise suite: {info['limit_pairs'] or 'all'} · "
        f"max_new_tokens {info['max_new_tokens']} · max_response_chars {info['max_response_chars']} · "
        f"samples {info['samples']} · {info['seconds']:.0f} s",
        "",
        md_table(["check", "plain", "remedied"], table_rows(checks), align="lrr"),
        "",
        md_table(
            ["check", "value", "details"],
            [(name, fmt(c.get("value")), _details(c)) for name, c in checks.items()],
            align="lrl",
        ),
    ]
    cr = checks.get("conflict_ratio_remedied") or {}
    lines += [
        "",
        "Notes:",
        "- Remedied = distribution-sensitive scores (E[s] over the score-token probabilities at `[RESULT]`) and "
        "likelihood-aware aggregation (verdict probabilities of both orders added); same judgements as plain.",
        f"- Ties: scores within {info['score_tol']} are equal; likelihood-aware totals within {info['verdict_tol']} are a TIE.",
        "- Missing probabilities (no `[RESULT]` marker): the remedy falls back to the parsed value as a one-point "
        f"distribution (argmax score; one-hot verdict): {cr.get('n_score_fallbacks', 0)} score and "
        f"{cr.get('n_verdict_fallbacks', 0)} pair fallbacks.",
        "- Unparseable replies are errors, never dropped: CR uses valid pairs (`cr_errors_as_conflicts` counts them "
        "as conflicts); NTR leaves k-subsets touching an error pair out and says how many.",
        "- CR, NTR_3 and NTR_4 use the 4 real responses of each prompt. "
        + (
            "NTR_5 adds the prompt's reference answer as a 5th response (judged like the others, with itself as the "
            "reference answer)."
            if info["with_reference"]
            else "NTR_5 is undefined: 4 responses per prompt."
        ),
        "- Position consistency pools the pairwise suites; `position_consistency/<suite>_pairs` is the same measure "
        "on the score-comparison pairs.",
    ]
    if info["data_errors"]:
        lines.append(f"- Malformed source rows/groups (reported, not judged): {info['data_errors']}")
    return "\n".join(lines) + "\n"


def print_table(label: str, checks: Mapping[str, Mapping[str, Any]], file: Any = None) -> None:
    """One rich table: rows = checks, columns = plain vs remedied."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"consistency — {label}")
    t.add_column("check")
    t.add_column("plain", justify="right")
    t.add_column("remedied", justify="right")
    for row in table_rows(checks):
        t.add_row(*row)
    Console(file=file or sys.stdout).print(t)
