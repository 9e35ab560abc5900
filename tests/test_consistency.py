"""The consistency station (judgefactory.consistency): hand-computed CR / NTR through a scripted engine, the remedies,
the gate, the CLI parser, and one run with the real Engine on a tiny model from a config.

The pure TrustJudge functions (27 verdict triples, conflicts, NTR_k) are covered in test_consistency_metrics.py.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import PKG_MIRROR

from judgefactory import consistency as C
from judgefactory import consistency_report, formats
from judgefactory import manifest as mf
from judgefactory.consistency_metrics import is_conflict
from judgefactory.engine import ANSWERS, Judgement

RUBRIC = formats.rubric("Is the answer helpful?", ["useless", "weak", "fair", "good", "excellent"])
INSTRUCTION = "Explain how to water a plant."
REFERENCE = "Reference answer: water the soil slowly until it is moist."
RESPONSES = [
    "Alpha: pour water on the soil.",
    "Bravo: water it every day.",
    "Charlie: plants like water.",
    "Delta: do not water it.",
]
ALL = RESPONSES + [REFERENCE]  # index 4 = the reference answer as a 5th response

# Scripted judge. Plain scores (argmax) and the score-token probabilities (None: no [RESULT] read-out -> fallback).
SCORES = [4, 3, 3, 2, 5]
SCORE_PROBS = [{"4": 1.0}, {"3": 0.6, "4": 0.4}, {"3": 0.8, "2": 0.2}, {"2": 1.0}, None]  # E = 4.0, 3.4, 2.8, 2.0, -
# Pair winners (i < j); the pair (0, 2) is position-biased instead: "A" in both orders.
WINNER = {(0, 1): 0, (0, 3): 0, (1, 2): 1, (1, 3): 3, (2, 3): 2, **{(i, 4): 4 for i in range(4)}}
BIASED_PROBS = {(0, 2): {"A": 0.7, "B": 0.3}, (2, 0): {"A": 0.6, "B": 0.4}}  # likelihood-aware: 0 gets 1.1 vs 0.9


def _section(prompt: str, head: str, tail: str) -> str:
    m = re.search(re.escape(head) + r"\n(.*?)\n\n" + re.escape(tail), prompt, re.S)
    assert m, (head, prompt[:200])
    return m.group(1).strip()


class Scripted:
    """An Engine stand-in with known scores and verdicts, keyed on which responses sit in the prompt."""

    label, batch_size, info = "scripted", 4, {"backend": "scripted"}

    def __init__(self) -> None:
        self.index = {r: i for i, r in enumerate(ALL)}
        self.calls: list[dict] = []

    def judge(
        self, messages_list, *, max_new_tokens, temperature=0.0, n=1, answer=None, top_p=None, seed=0, progress=None
    ):
        self.calls.append({"answer": answer, "n": n, "temperature": temperature, "count": len(messages_list)})
        out = []
        for m in messages_list:
            prompt = m[-1]["content"]
            if answer == "score":
                i = self.index[_section(prompt, "###Response to evaluate:", "###Reference Answer")]
                texts, probs = [f"Feedback: scripted. [RESULT] {SCORES[i]}"] * n, SCORE_PROBS[i]
            elif answer == "relative":
                a = self.index[_section(prompt, "###Response A:", "###Response B:")]
                b = self.index[_section(prompt, "###Response B:", "###Reference Answer:")]
                key = (min(a, b), max(a, b))
                if key in WINNER:
                    v = "A" if WINNER[key] == a else "B"
                    probs = None if 4 in key else {v: 0.9, "B" if v == "A" else "A": 0.1}
                else:
                    v, probs = "A", BIASED_PROBS[(a, b)]
                texts = [f"Feedback: scripted. [RESULT] {v}"] * n
            else:  # the BBQ bias prompt: always "A" when greedy; the k-th sample alternates A / B
                texts = [
                    "<reasoning>r</reasoning><verdict>" + ("A" if k % 2 == 0 else "B") + "</verdict>" for k in range(n)
                ]
                probs = {"A": 0.8, "B": 0.1, "TIE": 0.1}
            out.append(Judgement(texts, [ANSWERS[answer].parse(t) for t in texts], probs, 1.0 if probs else None))
        return out


@pytest.fixture()
def mini_mirror(tmp_path: Path) -> Path:
    """A data mirror with one Vicuna group (4 responses to one instruction) and the 2 BBQ fixture pairs."""
    root = tmp_path / "mirror"
    (root / "prometheus").mkdir(parents=True)
    rows = [
        {
            "idx": 7,
            "response_source": f"m{i}",
            "instruction": formats.absolute_prompt(INSTRUCTION, r, RUBRIC, REFERENCE),
            "gpt4_score": "[3, 3, 3]",
            "gpt4_feedback": "['a', 'b', 'c']",
        }
        for i, r in enumerate(RESPONSES)
    ]
    (root / "prometheus" / "vicuna_eval.json").write_text(json.dumps(rows))
    shutil.copytree(PKG_MIRROR / "bbq-pairs", root / "bbq-pairs")
    return root


# --------------------------------------------------------------------------- remedies (hand-built)
def test_remedy_switches_a_conflict_into_a_non_conflict() -> None:
    # Two responses both scored 3 (argmax), the pair judged: x wins in both orders (C = 1).
    # Plain: equal scores with C != 0 -> a conflict. Distribution-sensitive: E = 3.4 vs 2.8 -> x > y, C = 1 -> none.
    px, py = {"3": 0.6, "4": 0.4}, {"2": 0.2, "3": 0.8}
    ex, src_x = C.remedied_score(px, 3)
    ey, src_y = C.remedied_score(py, 3)
    assert (ex, ey) == (pytest.approx(3.4), pytest.approx(2.8)) and src_x == src_y == "probs"
    assert is_conflict(3, 3, 1, tol=0.1) is True
    assert is_conflict(ex, ey, 1, tol=0.1) is False
    # Likelihood-aware aggregation turns a position-biased pair (A, A -> C = 0) into a win for x.
    c, src = C.remedied_outcome({"A": 0.7, "B": 0.3}, "A", {"A": 0.6, "B": 0.4}, "A", tol=0.1)
    assert (c, src) == (1, "probs")
    assert C.remedied_outcome({"A": 0.55, "B": 0.45}, "A", {"A": 0.55, "B": 0.45}, "A", tol=0.1) == (
        0,
        "probs",
    )  # 1.0 vs 1.0


def test_remedy_fallbacks_and_errors() -> None:
    assert C.remedied_score(None, 4) == (4.0, "fallback")  # no [RESULT] read-out: the argmax score
    assert C.remedied_score({}, None) == (None, "error")
    assert C.score_probs({"1": 0.5, "5": 0.5}) == {1: 0.5, 5: 0.5}
    # one-hot fallback in both orders reduces to pair_outcome
    assert C.remedied_outcome(None, "A", None, "B") == (1, "fallback")
    assert C.remedied_outcome(None, "A", None, "A") == (0, "fallback")
    # probs in one order, one-hot in the other: A = 0.9, B = 0.1 + 1.0 (the swapped "A" is a vote for B)
    assert C.remedied_outcome({"A": 0.9, "B": 0.1}, "A", None, "A") == (-1, "fallback")
    assert C.remedied_outcome(None, None, {"A": 1.0}, "A") == (None, "error")


# --------------------------------------------------------------------------- the station, hand-computed
def test_station_hand_computed(tmp_path: Path, mini_mirror: Path) -> None:
    eng = Scripted()
    out = C.run(
        "some/hub-judge",
        engine=eng,
        suites=["vicuna", "hhh", "bbq_pairs"],
        mirror=mini_mirror,
        out_root=tmp_path / "consistency",
        limit_groups=None,
        samples=2,
        show=False,
    )
    assert out == tmp_path / "consistency" / "some__hub-judge"
    for f in ("swap.json", "conflict.json", "transitivity.json", "summary.json", "summary.md", "manifest.json"):
        assert (out / f).is_file(), f
    assert mf.is_fresh(out)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"model", "checks"} and summary["model"] == "some__hub-judge"
    checks = summary["checks"]
    assert all(isinstance(c, dict) and (c["value"] is None or isinstance(c["value"], float)) for c in checks.values())
    v = {k: c["value"] for k, c in checks.items()}

    # CR over the 6 pairs of the 4 real responses (scores 4, 3, 3, 2):
    # (0,2) position-biased C=0 with 4>3, (1,2) C=1 with 3=3, (1,3) C=-1 with 3>2 -> 3 conflicts of 6.
    assert v["conflict_ratio"] == pytest.approx(0.5)
    assert checks["conflict_ratio"]["n_conflicts"] == 3 and checks["conflict_ratio"]["n_errors"] == 0
    # Remedied: E = 4.0, 3.4, 2.8, 2.0; (0,2) likelihood-aware -> 0 wins; only (1,3) still conflicts.
    assert v["conflict_ratio_remedied"] == pytest.approx(1 / 6)
    assert checks["conflict_ratio_remedied"]["n_score_fallbacks"] == 1  # the reference answer had no probs
    assert checks["conflict_ratio_remedied"]["n_verdict_fallbacks"] == 4  # its 4 pairs had none either
    assert checks["conflict_ratio"]["with_reference"] == pytest.approx(3 / 10)  # reference pairs: ref wins, 5 > all

    # Triples of real responses (plain): 012 = 0>1>2 with 0=2 (cycle), 013 valid, 023 valid, 123 = 1>2>3>1 (cycle).
    assert (
        v["ntr_3"] == pytest.approx(0.5)
        and checks["ntr_3"]["triples_cycle"] == 2
        and checks["ntr_3"]["triples_valid"] == 2
    )
    assert v["ntr_4"] == 1.0 and checks["ntr_4"]["n_scored"] == 1
    assert v["ntr_5"] == 1.0 and checks["ntr_5"]["reference_as_response"] is True
    # Remedied: only 123 stays a cycle.
    assert v["ntr_3_remedied"] == pytest.approx(0.25) and v["ntr_4_remedied"] == 1.0 and v["ntr_5_remedied"] == 1.0

    # Swap: BBQ pairs always "A" greedy -> all primacy; the sampled pass alternates A/B -> stability 1/2.
    assert v["position_consistency"] == 0.0 and v["primacy"] == 1.0 and v["recency"] == 0.0
    assert v["position_consistency/bbq_pairs"] == 0.0 and checks["position_consistency"]["n"] == 2
    assert v["repetition_stability"] == pytest.approx(0.5)
    # the same measure on the score-comparison pairs: only (0,2) is position-biased
    assert v["position_consistency/vicuna_pairs"] == pytest.approx(5 / 6) and v[
        "primacy/vicuna_pairs"
    ] == pytest.approx(1 / 6)
    assert v["parse_rate"] == 1.0

    conflict = json.loads((out / "conflict.json").read_text())
    p12 = next(p for p in conflict["pairs"] if (p["i"], p["j"]) == (1, 2))
    assert p12["conflict"] is True and p12["conflict_remedied"] is False
    assert p12["e_x"] == pytest.approx(3.4) and p12["e_y"] == pytest.approx(2.8)
    assert len(conflict["pairs"]) == 10 and len(conflict["scores"]) == 5
    trans = json.loads((out / "transitivity.json").read_text())
    assert trans["groups"][0]["names"][-1] == C.REFERENCE

    manifest = mf.read(out)
    assert any(s.startswith("hhh") for s in manifest["skipped"])  # not in this mirror: skipped, named
    md = (out / "summary.md").read_text()
    assert "| conflict ratio (CR) | 0.500 | 0.167 |" in md and "skipped" in md and "5th response" in md
    # every pair judged in both orders, scores once per response
    assert [(c["answer"], c["count"]) for c in eng.calls] == [
        ("score", 5),
        ("relative", 20),
        ("verdict", 4),
        ("verdict", 4),
    ]


def test_station_without_reference_reports_ntr5_undefined(tmp_path: Path, mini_mirror: Path) -> None:
    out = C.run(
        "some/hub-judge",
        engine=Scripted(),
        suites=["vicuna"],
        mirror=mini_mirror,
        out_root=tmp_path,
        with_reference=False,
        show=False,
    )
    checks = json.loads((out / "summary.json").read_text())["checks"]
    assert checks["ntr_5"]["value"] is None and "with_reference=False" in checks["ntr_5"]["reason"]
    assert checks["conflict_ratio"]["value"] == pytest.approx(0.5) and "with_reference" not in checks["conflict_ratio"]
    assert checks["position_consistency"]["value"] is None  # no pairwise suite ran
    assert checks["repetition_stability"]["value"] is None and "samples=1" in checks["repetition_stability"]["reason"]


def test_errors_are_counted_not_dropped(tmp_path: Path, mini_mirror: Path) -> None:
    class Broken(Scripted):
        """Response 3's score and the verdict on pair (1, 3) in order ab are unparseable, with no probabilities."""

        def judge(self, messages_list, **kw):
            got = super().judge(messages_list, **kw)
            for m, j in zip(messages_list, got, strict=False):
                p = m[-1]["content"]
                hit = (kw["answer"] == "score" and RESPONSES[3] in p) or (
                    kw["answer"] == "relative" and p.index(RESPONSES[1]) < p.index(RESPONSES[3])
                    if RESPONSES[1] in p and RESPONSES[3] in p
                    else False
                )
                if hit:
                    j.texts, j.values, j.probs = ["no answer here"], [None], None
            return got

    out = C.run("some/hub-judge", engine=Broken(), suites=["vicuna"], mirror=mini_mirror, out_root=tmp_path, show=False)
    checks = json.loads((out / "summary.json").read_text())["checks"]
    cr = checks["conflict_ratio"]
    assert (cr["n"], cr["n_valid"], cr["n_errors"]) == (6, 3, 3)  # the 3 pairs with response 3
    assert cr["value"] == pytest.approx(2 / 3)  # (0,2) and (1,2) among 01, 02, 12
    assert cr["cr_errors_as_conflicts"] == pytest.approx(5 / 6)
    assert checks["conflict_ratio_remedied"]["n_errors"] == 3
    assert checks["parse_rate"]["n_errors"] == 2 and checks["parse_rate"]["n_errors_score"] == 1
    assert checks["parse_rate"]["n_errors_relative"] == 1
    # NTR: triples with the pair (1, 3) cannot be scored; 012 (a cycle) and 023 (valid) can
    assert (
        checks["ntr_3"]["n_scored"] == 2 and checks["ntr_3"]["value"] == 0.5 and checks["ntr_3"]["triples_error"] == 2
    )
    assert checks["ntr_4"]["value"] is None and checks["ntr_4"]["n_scored"] == 0
    assert checks["ntr_4"]["reason"].startswith("no k-subset could be scored")
    rows = {title: (plain, rem) for title, plain, rem in consistency_report.table_rows(checks)}
    assert rows["conflict ratio (CR)"] == (
        "0.667 (3/6 err)",
        "0.000 (3/6 err)",
    )  # remedied: (0,2) is no longer a conflict
    assert rows["NTR_4"] == ("— (1/1 err)", "— (1/1 err)") and rows["parse rate"] == (
        "0.920 (2/25 err)",
        "n/a",
    )  # 5 scores + 20 verdicts


def test_unknown_suite_and_nothing_loadable(tmp_path: Path, mini_mirror: Path) -> None:
    from judgefactory.data.sources import DataError

    with pytest.raises(C.ConsistencyError, match="unknown consistency suite"):
        C.run("some/hub-judge", engine=Scripted(), suites=["bbq_qa"], mirror=mini_mirror, out_root=tmp_path)
    with pytest.raises(DataError, match="no consistency suite"):
        C.run("some/hub-judge", engine=Scripted(), suites=["mt_bench"], mirror=mini_mirror, out_root=tmp_path)


# --------------------------------------------------------------------------- CLI parser
def test_cli_parser() -> None:
    from judgefactory.cli import consistency as consistency_cli

    p = argparse.ArgumentParser()
    consistency_cli.add_parser(p.add_subparsers(dest="command"))
    a = p.parse_args(
        ["consistency", "merge:x", "--limit", "4", "--suites", "vicuna", "bbq_pairs", "--limit-pairs", "0"]
    )
    assert (a.model, a.limit, a.suites, a.limit_pairs, a.func) == (
        "merge:x",
        4,
        ["vicuna", "bbq_pairs"],
        0,
        consistency_cli.cmd_consistency,
    )
    assert consistency_cli._limit(0) is None and consistency_cli._limit(4) == 4
    with pytest.raises(SystemExit):
        p.parse_args(["consistency", "base", "--suites", "bbq_qa"])


# --------------------------------------------------------------------------- the real Engine on a tiny model
def test_real_engine_tiny_model_files_and_schema(tmp_path: Path, tiny_llama: Path, mini_mirror: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from judgefactory.engine import Engine

    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    eng = Engine.from_model(model, tok, batch_size=8, bf16=False)
    out = C.run(
        str(tiny_llama),
        engine=eng,
        suites=["vicuna", "bbq_pairs"],
        mirror=mini_mirror,
        out_root=tmp_path / "consistency",
        max_new_tokens=3,
        show=False,
    )
    assert out.name == "tiny-llama"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"model", "checks"}
    for name in (
        "position_consistency",
        "primacy",
        "recency",
        "repetition_stability",
        "conflict_ratio",
        "conflict_ratio_remedied",
        "ntr_3",
        "ntr_4",
        "ntr_5",
        "ntr_3_remedied",
        "parse_rate",
    ):
        assert name in summary["checks"] and "value" in summary["checks"][name], name
    checks = summary["checks"]
    # 3 new tokens from a random tiny model: nothing parses; every reply is an error, counted
    assert checks["parse_rate"]["n_replies"] == 5 + 20 + 4
    assert checks["conflict_ratio"]["n"] == 6
    assert checks["conflict_ratio"]["n_valid"] + checks["conflict_ratio"]["n_errors"] == 6
    json.loads((out / "conflict.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert mf.read(out)["model"]["label"] == "tiny-llama"


# --------------------------------------------------------------------------- resuming a killed run
def test_a_killed_run_resumes_from_the_replies_it_journalled(tmp_path: Path, mini_mirror: Path) -> None:
    """Each chunk of replies reaches judged.jsonl as it finishes; after a kill the rerun judges only what is missing
    and writes the same summary as an uninterrupted run; a finished folder keeps the journal and reuses it."""

    class Killed(Exception):
        pass

    class DiesOnSecondCall(Scripted):
        def judge(self, messages_list, **kw):
            if self.calls:
                raise Killed
            return super().judge(messages_list, **kw)

    kw = {"suites": ["vicuna", "bbq_pairs"], "mirror": mini_mirror, "show": False, "batch_size": 2}
    whole = C.run("some/hub-judge", engine=Scripted(), out_root=tmp_path / "whole", **kw)
    with pytest.raises(Killed):
        C.run("some/hub-judge", engine=DiesOnSecondCall(), out_root=tmp_path / "c", **kw)
    folder = tmp_path / "c" / whole.name
    journalled = (folder / C.JOURNAL).read_text().splitlines()
    assert len(journalled) == 4 and not (folder / "summary.json").exists()  # one chunk (2 x batch 2) kept
    resumed = Scripted()
    out = C.run("some/hub-judge", engine=resumed, out_root=tmp_path / "c", **kw)
    total = json.loads((whole / "summary.json").read_text())["checks"]["parse_rate"]["n_replies"]
    assert sum(c["count"] for c in resumed.calls) == total - 4
    assert json.loads((out / "summary.json").read_text()) == json.loads((whole / "summary.json").read_text())
    assert mf.read(out)["reused"] == 4
    again = Scripted()
    C.run("some/hub-judge", engine=again, out_root=tmp_path / "c", **kw)
    assert again.calls == []
