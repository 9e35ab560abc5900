"""House rules for what the repository tells its readers: no process words.

Tracked docs, recipes, results and the package's own text say *when* with a date or a commit and *why* with a decision
id (``docs/DECISIONS.md`` Dnn), never with a numbered work period ("session 7") or a tracker number ("issue #20").
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RULES = {
    "a numbered work period (say a date or a commit)": re.compile(r"(?<![A-Za-z])sessions?[\s_-]*\d+", re.I),
    "an issue number (say a decision id Dnn, or nothing)": re.compile(
        r"\bissues?\s*#\s*\d+|\bissues?\s+\d+\b|(?<![\w&/.#-])#\d+\b", re.I
    ),
}
SCANNED = re.compile(
    r"^(README\.md|CITATION\.cff|Makefile|pyproject\.toml|docs/.+\.(md|json)|recipes/.+\.ya?ml"
    r"|judgefactory/.+\.(py|md|yaml)|tests/.+\.py|scripts/.+|dev/.+\.py)$"
)
SELF = "tests/test_house_rules.py"


def violations(text: str) -> list[tuple[int, str, str]]:
    """(line number, rule, matched text) for each process word in ``text``."""
    found = []
    for rule, pattern in RULES.items():  # on the whole text: a phrase broken across two lines is caught too
        found += [(text.count("\n", 0, m.start()) + 1, rule, m.group(0)) for m in pattern.finditer(text)]
    return sorted(found)


def tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [p for p in out.splitlines() if SCANNED.match(p) and p != SELF and (REPO / p).is_file()]


@pytest.mark.parametrize(
    "line",
    [
        "measured in session 19 on two cores",
        "sessions 3-5: the AVX2 machine",
        "Sessions 3–5 measured",
        "docs/results/merge_eval_session13.json",
        "the session-13 choice",
        "## D29. llama-server runs with --no-repack (issue #20)",
        "both of issue #17's targets",
        "(#22 item 5)",
        "issues #17, #22",
        "on 2 AVX2 cores (session\n  3-5 float32 ratio)",
    ],
)
def test_a_planted_process_word_is_caught(line):
    assert violations(f"fine line\n{line}\n"), line


@pytest.mark.parametrize(
    "line",
    [
        "measured on 2026-12-06 at 2398413 (D40)",
        "pytest's session-scoped fixture",
        "ggml-org/llama.cpp#20824",
        "# 4-bit base",
        "colour #1f77b4",
        "&#8212;",
    ],
)
def test_plain_lines_pass(line):
    assert violations(line) == []


def test_no_process_words_in_tracked_files():
    bad = []
    for path in tracked():
        try:
            text = (REPO / path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        bad += [f"{path}:{i}: {rule}: {hit!r}" for i, rule, hit in violations(text)]
    assert not bad, f"{len(bad)} process words:\n" + "\n".join(bad[:40])


def test_results_page_is_the_regenerated_one(tmp_path):
    """docs/RESULTS.md is generated from docs/results/*.json (``judgefactory results-doc``): the committed page is what
    the json files give, and writing it again changes nothing."""
    from judgefactory import results_doc

    results, page = results_doc.default_paths()
    assert page.read_text() == results_doc.render(results), "run: judgefactory results-doc"
    out = tmp_path / "RESULTS.md"
    assert results_doc.write(results, out) == (out, True)
    first = out.read_bytes()
    assert results_doc.write(results, out) == (out, False) and out.read_bytes() == first


MACHINE = re.compile(r"\bEPYC\b|\bXeon\b|\bZen ?\d|\bAMD\b|\bIntel\b")
PROSE = re.compile(r"^(README\.md|docs/[^/]+\.md)$")


def test_machine_names_stay_in_the_results_files():
    """README and docs prose name a machine by what decides its figures (AVX2, AVX-512, AMX, native bf16); the model
    name lives only in each results file's ``cpu`` field."""
    bad = [
        f"{path}:{(REPO / path).read_text().count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
        for path in tracked()
        if PROSE.match(path)
        for m in MACHINE.finditer((REPO / path).read_text())
    ]
    assert not bad, "\n".join(bad[:40])
    assert MACHINE.search("on 2 AMD EPYC Zen 4 cores") and not MACHINE.search("2 AVX-512 cores, AMX, bf16")
