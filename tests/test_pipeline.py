"""The demo line's bookkeeping: station timing/ETA and the report's keeps/gains/loses rule."""

from __future__ import annotations

from judgefactory.pipeline import Line, plainly, verdict


def test_line_records_stations_in_order_with_budget_ahead(capsys):
    line = Line(budget={"one": 60, "two": 30})
    assert line.station("one", lambda: "/a/folder") == "/a/folder"
    line.station("two", lambda: None)
    out = capsys.readouterr().out
    assert "station 1/2: one" in out and "ETA ≤ 1:30" in out and "ETA ≤ 0:30" in out
    assert [s["station"] for s in line.stations] == ["one", "two"]
    assert line.stations[0]["artifact"] == "/a/folder" and line.stations[1]["artifact"] == ""


def test_verdict_uses_the_specialists_interval():
    spec = {"value": 0.50, "ci": [0.40, 0.60]}
    assert verdict({"value": 0.45}, spec, True) == "keeps"
    assert verdict({"value": 0.70}, spec, True) == "gains"
    assert verdict({"value": 0.30}, spec, True) == "loses"
    assert verdict({"value": 0.30}, spec, False) == "gains"  # lower is better (e.g. position-bias rate)
    assert verdict({"value": 0.515}, {"value": 0.50}, True) == "keeps"  # no CI: ±0.02
    assert verdict({"value": 0.53}, {"value": 0.50}, True) == "gains"
    assert verdict(None, spec, True) == "n/a" and verdict({"value": float("nan")}, spec, True) == "n/a"


def test_undefined_values_say_why():
    from judgefactory.pipeline import _fmt

    assert _fmt({"value": 0.5, "ci": [0.4, 0.6]}) == "0.500 [0.400, 0.600]"
    assert _fmt({"value": None, "n": 6, "n_errors": 6}) == "— (6/6 unparseable)"
    assert _fmt({"value": None, "n_subsets": 4, "triples_error": 3}) == "— (3/4 unparseable)"
    assert _fmt(None) == "—" and _fmt({"value": None, "ci": None}) == "—"


def test_report_states_plainly_what_the_merge_keeps_and_loses():
    text = plainly(
        "absolute", {"keeps": ["HHH accuracy"], "loses": ["Vicuna parse rate", "Vicuna Pearson"], "n/a": ["NTR_3"]}
    )
    assert text == (
        "- Against the absolute specialist the merge keeps HHH accuracy; **loses** Vicuna parse rate, Vicuna Pearson "
        "(not comparable, a value is undefined: NTR_3)."
    )
    assert (
        plainly("pairwise", {"gains": ["BBQ pair κ"]})
        == "- Against the pairwise specialist the merge gains BBQ pair κ."
    )


def _table_cells(text: str, heading: str) -> list[list[str]]:
    """The body rows (cells, stripped) of the first Markdown table under ``heading``."""
    import re

    lines = text.split(heading + "\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def test_report_leads_with_what_the_merge_keeps(tmp_path, monkeypatch):
    """The demo report's first section says what the merge keeps and loses (and that the demo subsets are not the eval
    sets); the full comparison follows. With no bench results every figure is undefined, never invented."""
    from judgefactory.pipeline import MODELS, Line, write_report

    monkeypatch.setenv("JUDGEFACTORY_HOME", str(tmp_path))
    for ref in MODELS[1:]:  # the specialists and the merge exist (no results yet)
        kind, name = ref.split(":")
        (tmp_path / f"{kind}s" / name).mkdir(parents=True)
        (tmp_path / f"{kind}s" / name / "manifest.json").write_text("{}")
    (tmp_path / "compare").mkdir()
    search = tmp_path / "merges" / "demo_search"  # the demo's merge search: its table and plot follow the comparison
    search.mkdir(parents=True)
    (search / "table.md").write_text(
        "# Merge search `demo_search` (dev splits only)\n\n| model | x |\n|---|---|\n| c | 1 |\n"
    )
    (search / "pareto.png").write_bytes(b"png")
    out = write_report(tmp_path / "report", tmp_path / "compare", Line(), False, tmp_path)
    text = (out / "index.md").read_text()
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[:2] == ["## What the merge keeps and loses", "## Base vs specialists vs merged judge"]
    assert "not how good the judges are" in text and "make retention" in text
    # no bench results: every figure of both tables is undefined, none invented
    keeps = _table_cells(text, "## What the merge keeps and loses")
    figures = _table_cells(text, "## Base vs specialists vs merged judge")
    assert len(keeps) >= 5 and all(row[1:] == ["n/a", "n/a"] for row in keeps), keeps
    assert len(figures) >= 5 and all(row[1:] == ["—"] * len(MODELS) for row in figures), figures
    assert "## Which merge: the search on the dev splits" in sections and "| c | 1 |" in text
    assert "# Merge search" not in text and (out / "merge_search.png").read_bytes() == b"png"
    assert "merge:demo_search-chosen" in text and "![merge search](merge_search.png)" in text


def test_the_judge_at_work_grades_and_compares_through_the_api(tiny_llama, tmp_path):
    """The demo's last judging station: one grade and one comparison (both orders) through ``Judge``, written and
    shown in the report; an unparseable reply (a random tiny model) is shown as such, not hidden."""
    import json

    from judgefactory import pipeline

    path = pipeline.judge_at_work(str(tiny_llama), tmp_path)
    doc = json.loads(path.read_text())
    assert doc["grade"]["input"] == pipeline.GRADE_EXAMPLE and set(doc["compare"]) >= {
        "verdict",
        "consistent",
        "b_first",
    }
    text = "\n".join(pipeline._at_work_section(path))
    assert "## The judge at work" in text and "What a judge of this size and profile can and cannot do" in text
    if doc["grade"]["score"] is None:
        assert "score **unparseable**" in text and doc["grade"]["error"]
