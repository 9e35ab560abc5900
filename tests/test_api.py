"""The public API (``judgefactory.Judge``) and ``judgefactory grade / compare`` on a user's file: the real engine and
OpenAI SDK against a loopback stand-in server, a tiny transformers model, and malformed user files."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from conftest import build_tiny_llama, chat_server

import judgefactory
from judgefactory import formats
from judgefactory.cli.main import main
from judgefactory.data.user import UserDataError

RUBRIC = {
    "criteria": "Is the answer correct?",
    **{f"score{i}_description": f"level {i}" for i in range(1, 6)},
}


def _reply(content: str, answer_at: str | None, tops: dict[str, float]) -> dict:
    """A chat completion with ``content``; the token starting at the first ``answer_at`` gets top log-probs ``tops``."""
    if answer_at is None:
        toks = [content]
    else:
        k = content.rindex(answer_at)
        rest = content[k + len(answer_at) :]
        toks = [content[:k], answer_at, rest] if rest else [content[:k], answer_at]
    content_lp = []
    for t in toks:
        top = [{"token": t, "logprob": 0.0}]
        if t == answer_at:
            top = [{"token": x, "logprob": math.log(p)} for x, p in tops.items()]
        content_lp.append({"token": t, "logprob": 0.0, "top_logprobs": top})
    choice = {"message": {"role": "assistant", "content": content}, "finish_reason": "stop", "index": 0}
    choice["logprobs"] = {"content": content_lp}
    return {"id": "x", "object": "chat.completion", "choices": [choice]}


def _grader(body: dict) -> dict:
    """Scores 4 unless the response says 'garbage' (then a reply without [RESULT])."""
    prompt = body["messages"][-1]["content"]
    if "garbage" in prompt:
        return _reply("I cannot say.", None, {})
    return _reply("Feedback: Mostly right. [RESULT] 4", "4", {"4": 0.5, "3": 0.25, "5": 0.25})


def _bias_judge(body: dict) -> dict:
    """Names the response that says 'stereotype' when it sits in slot A; always says A when both are plain (a judge
    that follows the position)."""
    prompt = body["messages"][-1]["content"]
    a = prompt.split("###Response A:")[1].split("###Response B:")[0]
    b = prompt.split("###Response B:")[1]
    if "stereotype" in a:
        verdict = "A"
    elif "stereotype" in b:
        verdict = "B"
    else:
        verdict = "A"
    return _reply(
        f"<reasoning>Looked at both.</reasoning><verdict>{verdict}</verdict>", verdict, {verdict: 0.8, "TIE": 0.2}
    )


def test_grade_returns_score_expected_score_probs_and_feedback():
    with chat_server(_grader) as (url, reqs):
        judge = judgefactory.Judge.load("judge", backend="openai", base_url=url)
        g = judge.grade("What is 2+2?", "4", RUBRIC, reference_answer="4")
        bad = judge.grade("What is 2+2?", "garbage", formats.rubric("Correct?", ["a", "b", "c", "d", "e"]))
    assert g.score == 4 and g.error is None and g.feedback == "Mostly right."
    assert g.probs == pytest.approx({"1": 0, "2": 0, "3": 0.25, "4": 0.5, "5": 0.25})
    assert g.expected_score == pytest.approx(3 * 0.25 + 4 * 0.5 + 5 * 0.25)
    # the prompt is the Prometheus absolute prompt with its system prompt, the rubric built from the mapping
    sent = reqs[0]["body"]["messages"]
    assert sent == formats.absolute_messages(
        formats.absolute_prompt(
            "What is 2+2?", "4", formats.rubric("Is the answer correct?", [f"level {i}" for i in range(1, 6)]), "4"
        )
    )
    # an unparseable reply is a result marked as an error, not dropped and not guessed
    assert (
        bad.score is None and bad.expected_score is None and "unparseable" in bad.error and bad.raw == "I cannot say."
    )


def test_compare_both_orders_flags_a_verdict_that_follows_the_position():
    with chat_server(_bias_judge) as (url, _):
        judge = judgefactory.Judge.load("judge", backend="openai", base_url=url)
        rows = [
            {"question": "Who is bad at math?", "response_a": "The girl, a stereotype.", "response_b": "Unknown."},
            {"question": "Who is bad at math?", "response_a": "Unknown.", "response_b": "Cannot tell."},
        ]
        got = judge.compare_many(rows, both_orders=True, progress=False)
        one = judge.compare("Who?", "Unknown.", "The boy, a stereotype.")
    assert got[0].verdict == "A" and got[0].consistent is True and got[0].swapped.verdict == "A"
    assert got[0].probs == pytest.approx({"A": 0.8, "B": 0.0, "TIE": 0.2})
    # row 2: A first -> A, B first -> A (= B in the original letters): inconsistent, combined TIE
    assert got[1].consistent is False and got[1].verdict == "TIE" and got[1].swapped.verdict == "B"
    assert one.verdict == "B" and one.reasoning == "Looked at both." and one.consistent is None


def test_a_tiny_transformers_judge_marks_unparseable_replies_as_errors(tmp_path):
    path = build_tiny_llama(tmp_path / "tiny")
    judge = judgefactory.Judge.load(str(path), batch_size=4, grade_tokens=6, compare_tokens=6)
    rows = [{"instruction": f"q{i}", "response": "r", "rubric": "Correct? Score 1-5."} for i in range(5)]
    grades = judge.grade_many(rows, progress=False)
    assert len(grades) == 5 and all(g.score is None and g.error for g in grades)
    assert all(isinstance(g.raw, str) for g in grades)


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_grade_command_keeps_fields_in_order_and_resumes_without_judging_twice(tmp_path, capsys):
    rows = [
        {"my_id": i, "prompt": f"Question {i}?", "response": f"answer {i}", "rubric": "Correct? 1-5"} for i in range(6)
    ]
    src = _write_jsonl(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "out.jsonl"
    state = {"left": 3}

    def flaky(body: dict) -> dict:
        state["left"] -= 1
        if state["left"] < 0:
            raise RuntimeError("server down")  # the stand-in answers nothing: the SDK gets a broken connection
        return _grader(body)

    args = ["grade", "judge", str(src), "--out", str(out), "--column", "instruction=prompt", "--batch-size", "2"]
    with chat_server(flaky) as (url, reqs):
        with pytest.raises(SystemExit):
            main([*args, "--backend", "openai", "--base-url", url])
        assert not out.exists()
        partial = out.with_name("out.jsonl.partial")
        done_before = len(partial.read_text().splitlines()) - 1
        assert done_before == 2
        state["left"] = 10**6  # the server is back
        before = len(reqs)
        main([*args, "--backend", "openai", "--base-url", url])
        assert len(reqs) - before == 6 - done_before  # only the rows not judged yet
        got = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["my_id"] for r in got] == list(range(6))
        assert all(r["prompt"] == f"Question {r['my_id']}?" and r["judge_score"] == 4 for r in got)
        assert not partial.exists()
        meta = json.loads(out.with_name("out.jsonl.manifest.json").read_text())
        assert meta["rows"] == 6 and meta["unparseable"] == 0 and meta["complete"]
        before = len(reqs)
        main([*args, "--backend", "openai", "--base-url", url])  # finished: up to date, nothing judged
        assert len(reqs) == before
    # another input into the same output is refused, the earlier output kept
    other = _write_jsonl(tmp_path / "other.jsonl", rows[:2])
    with pytest.raises(SystemExit) as e:
        main(
            [
                "grade",
                "judge",
                str(other),
                "--out",
                str(out),
                "--column",
                "instruction=prompt",
                "--backend",
                "openai",
                "--base-url",
                "http://127.0.0.1:9/v1",
            ]
        )
    assert e.value.code == 2 and len(out.read_text().splitlines()) == 6
    assert "exists and was not made by this job" in capsys.readouterr().err


def test_compare_command_on_a_csv_with_choices(tmp_path):
    src = tmp_path / "pairs.csv"
    src.write_text(
        "question,response_a,response_b,choices\n"
        'Who?,"A stereotype, sadly.",Unknown.,the man | the woman | unknown\n'
        "Who?,Unknown.,Cannot tell.,\n"
    )
    out = tmp_path / "verdicts.csv"
    with chat_server(_bias_judge) as (url, reqs):
        main(
            ["compare", "judge", str(src), "--out", str(out), "--both-orders", "--backend", "openai", "--base-url", url]
        )
    assert "###Answer choices:\nA. the man\nB. the woman\nC. unknown" in reqs[0]["body"]["messages"][-1]["content"]
    text = out.read_text()
    assert text.splitlines()[0].startswith("question,response_a,response_b,choices,judge_verdict")
    meta = json.loads(out.with_name("verdicts.csv.manifest.json").read_text())
    assert meta["position_consistency"] == 0.5


BAD_FILES = {
    "missing_column.jsonl": ('{"instruction": "q", "rubric": "r"}\n', r"row 0: field 'response' is missing"),
    "empty_response.jsonl": ('{"instruction": "q", "response": "  ", "rubric": "r"}\n', r"row 0: field 'response'"),
    "no_rubric.csv": ("instruction,response\nq,r\n", r"row 0: field 'rubric'"),
    "bad_json.jsonl": (
        '{"instruction": "q", "response": "r", "rubric": "x"}\n{"instruction": \n',
        r"line 2: invalid JSON",
    ),
    "latin1.csv": (b"instruction,response,rubric\nq,caf\xe9,r\n", r"not UTF-8 text \(byte \d+, line 2\)"),
    "duplicate_id.jsonl": (
        '{"id": 1, "instruction": "q", "response": "r", "rubric": "x"}\n'
        '{"id": 1, "instruction": "q", "response": "s", "rubric": "x"}\n',
        r"row 1: field 'id' '1' repeats row 0",
    ),
    "ragged.csv": ("instruction,response,rubric\nq,r,x,extra\n", r"row 0: 4 cells for a header of 3 columns"),
    "empty.jsonl": ("\n", r"no rows"),
    "not_a_list.json": ('{"instruction": "q"}', r"must hold a list of objects"),
    "rubric_levels.jsonl": (
        '{"instruction": "q", "response": "r", "criteria": "c", "score1_description": "x"}\n',
        r"rubric lacks score2_description",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_malformed_user_file_is_one_line_and_writes_nothing(tmp_path, capsys, name):
    content, message = BAD_FILES[name]
    src = tmp_path / name
    src.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit) as e:
        main(
            [
                "grade",
                "judge",
                str(src),
                "--out",
                str(out),
                "--backend",
                "openai",
                "--base-url",
                "http://127.0.0.1:9/v1",
            ]
        )
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and re.search(message, err), err
    assert str(src) in err
    assert list(tmp_path.iterdir()) == [src]  # nothing written


def test_a_bad_compare_row_and_a_bad_column_mapping(tmp_path, capsys):
    src = _write_jsonl(tmp_path / "p.jsonl", [{"question": "q", "response_a": "x", "response_b": ""}])
    for extra, message in (
        ([], r"row 0: field 'response_b' is missing"),
        (["--column", "answer=foo"], r"'answer' is not a field of pairwise rows"),
    ):
        with pytest.raises(SystemExit) as e:
            main(["compare", "judge", str(src), *extra, "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"])
        assert e.value.code == 2 and re.search(message, capsys.readouterr().err)


def test_user_rows_for_training_need_valid_labels_and_scores(tmp_path):
    from judgefactory.data import user

    src = _write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"instruction": "q", "response": "r", "rubric": "x", "score": 7},
            {"instruction": "q", "response": "r", "rubric": "x", "score": "4.5"},
            {"instruction": "q", "response": "r", "rubric": "x", "score": "4"},
        ],
    )
    with pytest.raises(UserDataError, match=r"row 0: field 'score' must be an integer 1-5, got 7 \(1 more bad rows\)"):
        user.load(str(src), {}, "absolute", training=True)
    src = _write_jsonl(tmp_path / "p.jsonl", [{"question": "q", "response_a": "x", "response_b": "y", "label": "C"}])
    with pytest.raises(UserDataError, match=r"row 0: field 'label' must be A, B or TIE, got 'C'"):
        user.load(str(src), {}, "pairwise", training=True)
    # Feedback-Collection's own keys are read as they are
    fc = {
        "orig_instruction": "q",
        "orig_response": "r",
        "orig_criteria": "c",
        "orig_score": "3",
        **{f"orig_score{i}_description": f"d{i}" for i in range(1, 6)},
    }
    rows, _ = user.load(str(_write_jsonl(tmp_path / "fc.jsonl", [fc])), {}, "absolute", training=True)
    assert rows[0]["instruction"] == "q" and rows[0]["score"] == "3" and rows[0]["score5_description"] == "d5"


def test_prometheus_evals_own_client_grades_through_a_served_judge(monkeypatch):
    """The README's prometheus-eval example: ``PrometheusEval`` over its LiteLLM route to an OpenAI-compatible server
    (here the loopback stand-in), with the same absolute prompt ``Judge.grade`` sends."""
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    from prometheus_eval import PrometheusEval
    from prometheus_eval.litellm import LiteLLM
    from prometheus_eval.prompts import ABSOLUTE_PROMPT, SCORE_RUBRIC_TEMPLATE

    with chat_server(_grader) as (url, reqs):
        pe = PrometheusEval(model=LiteLLM("openai/judge", api_base=url), absolute_grade_template=ABSOLUTE_PROMPT)
        feedback, score = pe.single_absolute_grade(
            instruction="What is 2+2?",
            response="4",
            rubric=SCORE_RUBRIC_TEMPLATE.format(**RUBRIC),
            reference_answer="4",
            params={"temperature": 0, "max_tokens": 64},
        )
        via_api = judgefactory.Judge.load("judge", backend="openai", base_url=url).grade(
            "What is 2+2?", "4", RUBRIC, "4"
        )
    assert score == 4 == via_api.score and "Mostly right" in feedback
    assert reqs[0]["body"]["messages"][-1]["content"] == reqs[1]["body"]["messages"][-1]["content"]
