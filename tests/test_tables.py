"""judgefactory.tables: the one Markdown table writer and number format every report uses."""

from __future__ import annotations

import re

from judgefactory.tables import MISSING, fmt, fmt_ci, fmt_metric, md_table, number


def test_numbers_and_the_missing_mark() -> None:
    assert fmt(0.41234) == "0.412" and fmt(0.41234, 2) == "0.41" and fmt(12345.678, 4, sig=True) == "1.235e+04"
    assert fmt(None) == fmt(float("nan")) == fmt(float("inf")) == MISSING == "—"
    assert fmt(None, missing="n/a") == "n/a"
    assert fmt(320) == "320" and fmt(True) == "True" and fmt("hhh,bbq_pairs") == "hhh,bbq_pairs"  # counts, text
    assert number(1) == 1.0 and number(True) is None and number("0.5") is None and number(float("nan")) is None
    assert fmt_ci([0.3, 0.5]) == "[0.300, 0.500]" and fmt_ci([0.1, 0.32], 4, sig=True) == "[0.1, 0.32]"
    assert fmt_ci(None) == fmt_ci([None, 0.7]) == fmt_ci("bad") == MISSING
    assert fmt_metric({"value": 0.512, "ci": [0.401, 0.611]}) == "0.512 [0.401, 0.611]"
    assert fmt_metric({"value": 0.512, "ci": None}) == "0.512" and fmt_metric(None) == MISSING


def test_md_table() -> None:
    assert md_table(["check", "plain", "remedied"], [("CR", "0.500", "0.167")], align="lrr") == (
        "| check | plain | remedied |\n|---|---:|---:|\n| CR | 0.500 | 0.167 |"
    )
    # an empty cell is one space (the card's key/value header, the demo report's total row); no rows: header only
    assert md_table(["", ""], [("Kind", "merge")]) == "| | |\n|---|---|\n| Kind | merge |"
    assert md_table(["a", "b"], [("x", "")]).endswith("| x | |")
    assert md_table(["n", "value"], []) == "| n | value |\n|---|---|"


def test_md_table_keeps_a_pipe_or_a_line_break_inside_its_cell() -> None:
    table = md_table(["model", "note"], [("a|b", "x | y"), ("two\nlines", "`p|q`")])
    assert table.splitlines()[2:] == ["| a\\|b | x \\| y |", "| two lines | `p\\|q` |"]
    for row in table.splitlines():  # every row has exactly the header's columns
        assert len(re.findall(r"(?<!\\)\|", row)) == 3, row
