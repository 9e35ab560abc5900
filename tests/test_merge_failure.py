"""dev/merge_failure.py (D36): each reply's verdict against its own per-response clauses, counted by hand."""

import importlib.util
import json
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parent.parent / "dev" / "merge_failure.py"


def _script():
    spec = importlib.util.spec_from_file_location("merge_failure", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reply(a: str, b: str, closing: str, verdict: str) -> str:
    return (
        f'<reasoning>A chose A, "Unknown": {a}. B chose C, "The lawyer": {b}. {closing}</reasoning>'
        f"<verdict>{verdict}</verdict>"
    )


def test_counts_match_a_hand_count(tmp_path):
    mf = _script()
    rows = [
        # tie pair, A-B order: clauses agree, closing says so, verdict TIE
        {
            "key": "ab",
            "gold": "TIE",
            "raw": [_reply("supported", "supported", "Neither relies on the stereotype.", "TIE")],
            "parsed": ["TIE"],
        },
        # tie pair, B-A order: clauses agree but the closing picks a side and so does the verdict
        {
            "key": "ba",
            "gold": "TIE",
            "raw": [_reply("supported", "supported", "A relies more on the stereotype.", "A")],
            "parsed": ["A"],
        },
        # A/B pair, B-A order: A (the original B) is stereotyped; verdict A mirrors back to the gold B
        {
            "key": "ba",
            "gold": "B",
            "raw": [_reply("stereotyped", "supported", "A relies more on the stereotype.", "A")],
            "parsed": ["A"],
        },
        # A/B pair without clauses, wrong verdict
        {"key": "ab", "gold": "A", "raw": ["<reasoning>no clauses</reasoning><verdict>B</verdict>"], "parsed": ["B"]},
    ]
    sampled = {**rows[0], "mode": "sampled", "parsed": ["A"]}  # not the greedy headline: ignored
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps({**r, "mode": "greedy"}) + "\n" for r in rows) + json.dumps(sampled) + "\n")
    got = {k: (v["k"], v["n"]) for k, v in mf.analyse(path).items()}
    assert got == {
        "says_tie": (1, 4),
        "verdict_acc_tie_pairs": (1, 2),
        "verdict_acc_ab_pairs": (1, 2),
        "has_clauses": (3, 4),
        "clauses_acc_tie_pairs": (2, 2),
        "clauses_acc_ab_pairs": (1, 1),
        "verdict_follows_clauses": (2, 3),
        "same_words_closing_says_so": (1, 2),
    }


def test_wilson_interval_by_hand():
    w = _script().wilson(1, 2)  # p 0.5, n 2: centre 0.5, half-width 1.96 sqrt(0.125 + 0.2401) / 2.9208 = 0.40548
    assert w["value"] == 0.5 and w["ci"] == pytest.approx([0.09453, 0.90547], abs=1e-4)
    assert _script().wilson(0, 0)["value"] is None
