"""Markdown tables and numbers as the reports write them: one table writer, one number format, one missing-value mark.

Used by every Markdown output: ``bench/<model>/<suite>/table.md`` (``bench.run``), ``compare.md`` (``bench.report``),
``consistency/<model>/summary.md`` (``consistency_report``), the model card (``card``), the merge search's ``table.md``
(``merge_search``), the retention table (``bench.retention``) and the demo report (``pipeline``).

    md_table(["metric", "value", "95% CI"], [("kappa", fmt(0.41234), fmt_ci([0.3, 0.5]))], align="lrl")
    # | metric | value | 95% CI |
    # |---|---:|---|
    # | kappa | 0.412 | [0.300, 0.500] |
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MISSING = "—"
"""The cell of a value that is undefined (None, NaN, ±inf) or was not measured."""


def number(x: Any) -> float | None:
    """``x`` as a finite float; None for None, NaN, ±inf, a bool or anything that is not a number."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def fmt(x: Any, digits: int = 3, *, sig: bool = False, missing: str = MISSING) -> str:
    """A float with ``digits`` decimals (``sig``: ``digits`` significant digits, e.g. ``0.4123``, ``1.235e+04``);
    ``missing`` for None, NaN and ±inf; anything else (an int count, a bool, text) as it is."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return missing
    if isinstance(x, float):
        return f"{x:.{digits}{'g' if sig else 'f'}}"
    return str(x)


def _pair(ci: Any) -> tuple[float, float] | None:
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        lo, hi = number(ci[0]), number(ci[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def fmt_ci(ci: Any, digits: int = 3, *, sig: bool = False, missing: str = MISSING) -> str:
    """A confidence interval ``[lo, hi]`` (bounds as ``fmt`` writes floats); ``missing`` unless ``ci`` is a pair of
    finite numbers."""
    pair = _pair(ci)
    if pair is None:
        return missing
    return "[" + ", ".join(fmt(x, digits, sig=sig) for x in pair) + "]"


def fmt_metric(m: Mapping[str, Any] | None, digits: int = 3) -> str:
    """A metric ``{"value", "ci"}`` as ``0.512 [0.401, 0.611]``; ``0.512`` without a CI; ``MISSING`` without a value."""
    value = number((m or {}).get("value"))
    if value is None:
        return MISSING
    ci = (m or {}).get("ci")
    return fmt(value, digits) + (f" {fmt_ci(ci, digits)}" if _pair(ci) else "")


def cell(value: Any) -> str:
    """``value`` as one Markdown table cell: ``str`` of it, ``|`` escaped (``\\|``) and line breaks as spaces, so
    it never splits the row."""
    return " ".join(str(value).replace("|", "\\|").splitlines())


def _line(cells: Sequence[Any]) -> str:
    return "|" + "|".join(f" {cell(c)} " if str(c) else " " for c in cells) + "|"


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> str:
    """A Markdown table, one line per row, without a trailing newline. ``align``: one letter per column, ``l``
    (``---``) or ``r`` (``---:``); columns past its end are left-aligned. Cells are written as ``cell`` gives them
    (``str``, ``|`` escaped, one line; an empty cell as one space): format numbers with ``fmt`` first."""
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in align.ljust(len(header), "l"))
    return "\n".join([_line(header), rule, *(_line(r) for r in rows)])
