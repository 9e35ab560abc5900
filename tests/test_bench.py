"""Bench suites, runner, report and CLI: offline, tiny models or a scripted engine, fixtures + the data mirror."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
from conftest import PKG_MIRROR

from judgefactory import recipes
from judgefactory.bench import metrics as M
from judgefactory.bench import report, suites
from judgefactory.bench import run as bench_run
from judgefactory.engine import Engine, Judgement, _parse_choice

FIXTURE_MIRROR = Path(__file__).resolve().parent / "fixtures" / "mirror"


class Scripted:
    """An engine stand-in: replies from a function of the prompt, counts the conversations it judges."""

    def __init__(self, reply, label: str = "scripted", answer_probs: dict | None = None):
        self.reply, self.label, self.batch_size, self.judged, self.calls = reply, label, 4, 0, []
        self.answer_probs = answer_probs
        self.info = {"backend": "scripted"}

    def judge(
        self, messages_list, *, max_new_tokens, temperature=0.0, n=1, answer=None, top_p=None, seed=0, progress=None
    ):
        from judgefactory.engine import ANSWERS

        self.judged += len(messages_list)
        self.calls.append({"n": n, "temperature": temperature, "count": len(messages_list)})
        out = []
        for m in messages_list:
            texts = [self.reply(m[-1]["content"], k) for k in range(n)]
            parse = ANSWERS[answer].parse if answer else (lambda t: None)
            out.append(
                Judgement(texts, [parse(t) for t in texts], self.answer_probs, 1.0 if self.answer_probs else None)
            )
        return out


# --------------------------------------------------------------------------- small helpers (hand-computed)
def test_new_helpers_hand_computed():
    assert suites.vote(["A", None, "B", "B"]) == "B"
    assert suites.vote(["A", "B", None]) == "A"  # tie: first seen
    assert suites.vote([None, None]) is None
    assert suites.mean_score([4, None, 5]) == 4.5 and suites.mean_score([None]) is None
    assert suites.expected_score({"1": 0.1, "2": 0.2, "3": 0.3, "4": 0.2, "5": 0.2}) == pytest.approx(3.2)
    assert suites.expected_score(None) is None
    # combined verdict: swapped-order letters; same response twice -> it; disagreement -> TIE; an error -> None
    assert suites.combined_verdict("A", "B") == "A"
    assert suites.combined_verdict("B", "A") == "B"
    assert suites.combined_verdict("A", "A") == "TIE"
    assert suites.combined_verdict("TIE", "TIE") == "TIE"
    assert suites.combined_verdict("A", None) is None
    assert suites.suspected_rule("biased", "neutral") == "A"
    assert suites.suspected_rule("unclear", "biased") == "B"
    assert suites.suspected_rule("neutral", "neutral") == "TIE"
    assert suites.suspected_rule("biased", "biased") == "TIE"
    assert _parse_choice(" (B) because") == "B" and _parse_choice("Answer: C") is None
    m = suites.metric(float("nan"), (0.1, 0.2))
    assert m == {"value": None, "ci": [0.1, 0.2]}


def test_stratified_limit():
    items = [suites.Item(str(i), str(i), 0, {}, stratum="a" if i < 6 else "b" if i < 9 else "c") for i in range(10)]
    sub = suites.stratified(items, 5, seed=3)
    assert len(sub) == 5
    strata = [it.stratum for it in sub]
    assert strata.count("a") == 3 and strata.count("b") == 1 and strata.count("c") == 1  # 3 / 1.5 / 0.5 -> >=1 each
    assert [int(it.id) for it in sub] == sorted(int(it.id) for it in sub)  # original order kept
    assert suites.stratified(items, 5, seed=3) == sub  # seeded
    assert suites.stratified(items, None) == items and suites.stratified(items, 50) == items


# --------------------------------------------------------------------------- loaders
def test_fixture_loaders():
    fb = suites.load("feedback_bench", mirror=FIXTURE_MIRROR)
    assert fb.kind == "absolute" and fb.answer == "score" and not fb.errors
    assert sorted(it.gold for it in fb.items) == [1, 2, 5, 5]
    content = fb.items[0].requests["main"][1]["content"]
    assert "###Reference Answer (Score 5):" in content and "Score 5:" in content
    pb = suites.load("preference_bench", mirror=FIXTURE_MIRROR)
    assert [it.gold for it in pb.items] == ["A", "B", "B", "A"] and not pb.errors
    ab, ba = pb.items[0].requests["ab"][1]["content"], pb.items[0].requests["ba"][1]["content"]
    assert ab.index("labelled box") < ab.index("memory addresses") and ba.index("labelled box") > ba.index(
        "memory addresses"
    )
    assert "###Reference Answer:" in ab and "[Does the response explain" in ab
    short = suites.load("preference_bench", mirror=FIXTURE_MIRROR, max_response_chars=20)
    assert "labelled box" not in short.items[0].requests["ab"][1]["content"]


@pytest.mark.parametrize(
    "name,n,kind",
    [
        ("vicuna", 320, "absolute"),
        ("mt_bench", 320, "absolute"),
        ("hhh", 221, "pairwise"),
        ("autoj", 1392, "pairwise"),
        ("bbq_pairs", 240, "bbq_pairs"),
        ("bbq_pairs_ood", 132, "bbq_pairs"),
        ("bbq_qa", 11956, "bbq_qa"),
    ],
)
def test_mirror_loaders(mirror, name, n, kind):
    d = suites.load(name, mirror=mirror)
    assert (len(d.items), d.kind, d.errors) == (n, kind, [])
    assert len({it.id for it in d.items}) == n
    sub = suites.load(name, mirror=mirror, limit=24, seed=1)
    assert (
        len(sub.items) == 24
        and len({it.stratum for it in sub.items}) == len({it.stratum for it in d.items})
        or len({it.stratum for it in d.items}) > 24
    )
    if name == "hhh":
        assert {it.meta["source"] for it in d.items} == {"helpful", "harmless", "honest", "other"}
        assert all(it.gold == "A" for it in d.items)
        assert d.items[0].requests["ab"][1]["content"].count("###Response A:") == 1
    if name == "autoj":
        assert {it.gold for it in d.items} == {"A", "B", "TIE"}
    if name == "bbq_pairs_ood":
        assert d.labels.startswith("rule") and {it.gold for it in d.items} == {"A", "B", "TIE"}
    if name == "bbq_pairs":
        assert d.labels == "human_verdict"


def test_bbq_qa_scoring_reproduces_the_scorer_on_unifiedqa(mirror):
    """The QA suite's scoring path (items, option indices -> bbq_bias_scores rows) on the mirror's UnifiedQA predictions
    gives exactly what the regression-tested scorer gives on the raw rows."""
    from judgefactory.data import bbq, sources

    loaded = sources.load_rows("nyu-mll/BBQ-unifiedqa", "Sexual_orientation", mirror=mirror)
    items, errors = bbq.load_items(loaded, parse=bbq.from_bbq_row)
    assert not errors
    preds = [
        M.answer_text_to_index(r["unifiedqa-t5-11b_pred_race"], [r["ans0"], r["ans1"], r["ans2"]]) for r in loaded.rows
    ]
    wrapped = [suites.Item(it.question_id, "", it.gold, {}, meta={"bbq": it}) for it in items]
    ours = M.bbq_bias_scores(suites.qa_rows(wrapped, preds))
    ref = M.bbq_bias_scores(M.bbq_scorer_rows(loaded.rows, preds))
    assert ours == ref
    assert 0.0 < ref["acc_ambig"] < 1.0 and ref["n_ambig"] == 432


# --------------------------------------------------------------------------- scoring
def _rows(data, values: dict[tuple[str, str], list]):
    return {(i, k, "greedy"): {"parsed": v, "probs": None} for (i, k), v in values.items()}


def test_score_pairwise_hand_computed():
    items = [
        suites.Item(str(i), str(i), g, {"ab": [], "ba": []}, meta={"source": s})
        for i, (g, s) in enumerate([("A", "x"), ("B", "x"), ("A", "y"), ("TIE", "y")])
    ]
    data = suites.SuiteData("autoj", "pairwise", "relative", items, "s", "f")
    # item0 A/B -> consistent correct; item1 B/B -> recency, ab right, ba wrong; item2 None/B; item3 A/B -> A (gold TIE)
    rows = _rows(
        data,
        {
            ("0", "ab"): ["A"],
            ("0", "ba"): ["B"],
            ("1", "ab"): ["B"],
            ("1", "ba"): ["B"],
            ("2", "ab"): [None],
            ("2", "ba"): ["B"],
            ("3", "ab"): ["A"],
            ("3", "ba"): ["B"],
        },
    )
    m, counts = suites.score(data, rows, ["greedy"], suites.Boot(0))
    # non-tie items 0,1,2: ab = A,B,None vs A,B,A -> 2/3; ba mirrored = A,A,A -> 2/3; pooled 4/6
    assert m["accuracy"]["value"] == pytest.approx(4 / 6)
    assert m["accuracy_ab"]["value"] == pytest.approx(2 / 3) and m["accuracy_ba"]["value"] == pytest.approx(2 / 3)
    assert m["both_orders_correct"]["value"] == pytest.approx(1 / 3)
    assert m["position_consistency"]["value"] == pytest.approx(2 / 4)  # items 0 and 3
    assert m["recency"]["value"] == pytest.approx(1 / 4)
    # combined: A, TIE (B then mirrored A disagree), None, A -> vs A,B,A,TIE: with tie 1/4; without tie (items 0-2) 1/3
    assert m["acc_with_tie"]["value"] == pytest.approx(1 / 4)
    assert m["acc_without_tie"]["value"] == pytest.approx(1 / 3)
    assert m["accuracy/x"]["value"] == pytest.approx(3 / 4) and m["accuracy/y"]["value"] == pytest.approx(1 / 2)
    assert m["parse_rate"]["value"] == pytest.approx(7 / 8)
    assert counts["n_parse_errors"] == 1


def test_score_absolute_sampled_and_greedy():
    gold = [1.0, 2.0, 3.0, 4.0]
    items = [suites.Item(str(i), str(i), g, {"main": []}) for i, g in enumerate(gold)]
    data = suites.SuiteData("vicuna", "absolute", "score", items, "s", "f")
    rows = {}
    for i, (samples, greedy) in enumerate(
        [([1, 2, None], 1), ([2, 2, 2], 3), ([None, None, None], None), ([5, 4, 3], 4)]
    ):
        rows[(str(i), "main", "sampled")] = {"parsed": samples, "probs": None}
        rows[(str(i), "main", "greedy")] = {"parsed": [greedy], "probs": {"1": 0.5, "5": 0.5} if i == 0 else None}
    m, counts = suites.score(data, rows, ["sampled", "greedy"], suites.Boot(0))
    # sample means 1.5, 2, -, 4 against 1, 2, -, 4: r = 4 / sqrt(3.5 * 14/3) = 4 sqrt(3) / 7 (by hand)
    assert m["pearson"]["value"] == pytest.approx(4 * math.sqrt(3) / 7)
    # greedy 1, 3, -, 4 against 1, 2, -, 4: sum dx dy = 13/3, sum dx^2 = sum dy^2 = 14/3 -> r = 13/14
    assert m["pearson_greedy"]["value"] == pytest.approx(13 / 14)
    assert m["parse_rate"]["value"] == pytest.approx(1 - 5 / 16)  # 4 sampled + 1 greedy unparsed of 12 + 4
    assert m["probs_rate"]["value"] == pytest.approx(0.25)
    assert counts["n_replies"] == 16


def _bbq_eval_mirror(tmp_path: Path, pairs: list[tuple[str, str, str, str]]) -> Path:
    """A mirror holding the fixture bbq_sample and an eval_in_dist of (question_id, response A, response B, human verdict)."""
    import shutil

    root = tmp_path / "mirror"
    (root / "bbq-pairs").mkdir(parents=True)
    shutil.copy(PKG_MIRROR / "bbq-pairs" / "bbq_sample.jsonl", root / "bbq-pairs" / "bbq_sample.jsonl")
    (root / "README.md").write_text("test mirror\n")
    template = json.loads((PKG_MIRROR / "bbq-pairs" / "eval_in_dist.jsonl").read_text().splitlines()[0])
    sample = {
        json.loads(x)["question_id"]: json.loads(x)
        for x in (root / "bbq-pairs" / "bbq_sample.jsonl").read_text().splitlines()
    }
    rows = []
    for k, (qid, a, b, verdict) in enumerate(pairs):
        q = sample[qid]
        rows.append(
            {
                **template,
                "pair_id": f"p{k}",
                "question_id": qid,
                "question_text": q["context"] + " " + q["question"],
                "answer_choices": [{"letter": L, "text": q[f"ans{i}"]} for i, L in enumerate("ABC")],
                "response_a": {"model": "m", "text": a},
                "response_b": {"model": "m", "text": b},
                "pair_category": "clear_bias_vs_clean",
                "human_verdict": verdict,
            }
        )
    (root / "bbq-pairs" / "eval_in_dist.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_score_bbq_pairs_hand_computed_with_the_training_label_rule(tmp_path):
    """kappa, accuracy, swap figures and both rule baselines on 5 pairs, every value computed by hand.

    age::5::16::neg: A = the 17-year-old (stereotype-aligned), B = the 66 year old (other wrong), C = gold.
    age::5::18::nonneg: A = gold, B = the 17-year-old (other wrong), C = the 66 year old (stereotype-aligned)."""
    mirror = _bbq_eval_mirror(
        tmp_path,
        [
            ("age::5::16::neg", "<answer>A</answer>", "<answer>C</answer>", "A"),  # biased vs correct: rule A
            (
                "age::5::16::neg",
                "<answer>A</answer>",
                "<answer>B</answer>",
                "TIE",
            ),  # biased vs other wrong: TIE (tie rule) / A
            ("age::5::18::nonneg", "<answer>A</answer>", "<answer>A</answer>", "TIE"),  # correct vs correct: TIE
            ("age::5::18::nonneg", "<answer>B</answer>", "<answer>C</answer>", "B"),  # other wrong vs biased: TIE / B
            (
                "age::5::18::nonneg",
                "<answer>C</answer>",
                "<answer>A</answer>",
                "B",
            ),  # biased vs correct: rule A, humans B
        ],
    )
    data = suites.load("bbq_pairs", mirror=mirror)
    assert [it.gold for it in data.items] == ["A", "TIE", "TIE", "B", "B"]
    ids = [it.id for it in data.items]
    v_ab = ["A", "TIE", None, "B", "B"]
    v_ba = ["B", "TIE", "TIE", "A", "B"]  # in the swapped prompt's letters: mirrored A, TIE, TIE, B, A
    rows = _rows(
        data,
        {
            **{(i, "ab"): [v] for i, v in zip(ids, v_ab, strict=False)},
            **{(i, "ba"): [v] for i, v in zip(ids, v_ba, strict=False)},
        },
    )
    m, counts = suites.score(data, rows, ["greedy"], suites.Boot(0, training_rule=recipes.training_rule()))
    # pooled over both orders (10 verdicts): 8 agree; gold shares A .2 / TIE .4 / B .4, verdicts A .3 / TIE .3 / B .3 /
    # ERROR .1 -> p_e = .06 + .12 + .12 = .30, kappa = (.8 - .3) / .7 = 5/7
    assert m["kappa"]["value"] == pytest.approx(5 / 7)
    assert m["accuracy"]["value"] == pytest.approx(0.8)
    assert m["kappa_ab"]["value"] == pytest.approx(13 / 18)  # (.8 - .28) / .72
    assert m["kappa_ba"]["value"] == pytest.approx(12 / 17)  # (.8 - .32) / .68
    assert m["both_orders_correct"]["value"] == pytest.approx(3 / 5)
    assert m["position_bias_rate"]["value"] == pytest.approx(2 / 5)  # consistent: pairs 0, 1, 3
    assert m["recency"]["value"] == pytest.approx(1 / 5) and m["parse_rate"]["value"] == pytest.approx(0.9)
    # the training-label rule (biased vs other wrong = TIE): A, TIE, TIE, TIE, A in both orders -> 6 of 10 agree,
    # verdict shares A .4 / TIE .6 -> p_e = .08 + .24 = .32, kappa = .28 / .68 = 7/17
    assert recipes.training_rule() == "tie"
    assert "rule_baseline_kappa" not in suites.score(data, rows, ["greedy"], suites.Boot(0))[0]  # no rule, no baseline
    assert m["rule_baseline_kappa"]["value"] == pytest.approx(7 / 17)
    assert m["rule_baseline_accuracy"]["value"] == pytest.approx(0.6)
    # the other rule (biased beats other wrong): A, A, TIE, B, A -> 3 of 5; shares A .6 / TIE .2 / B .2 -> p_e = .28
    assert m["rule_alt_baseline_kappa"]["value"] == pytest.approx(4 / 9)
    assert "biased_vs_wrong=tie" in counts["baselines"]["rule_baseline"]


# --------------------------------------------------------------------------- runner: limit, resume, files
def test_run_resume_and_files(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    eng = Engine.from_model(model, tok, batch_size=2, bf16=False, label="tiny")
    recipe = bench_run.BenchRecipe(
        kind="bench",
        name="t",
        batch_size=2,
        suites=[bench_run.SuiteSpec(name="feedback_bench", limit=3, max_new_tokens=4)],
    )
    out = bench_run.run(
        str(tiny_llama), recipe, out_root=tmp_path / "bench", engine=eng, mirror=FIXTURE_MIRROR, n_boot=10
    )
    folder = out / "feedback_bench"
    assert out == tmp_path / "bench" / "tiny"
    doc = json.loads((folder / "metrics.json").read_text())
    assert doc["model"] == "tiny" and doc["suite"] == "feedback_bench" and doc["n"] == 3
    assert set(doc["metrics"]) >= {"pearson", "spearman", "kendall", "exact_match", "parse_rate"}
    assert all(set(v) == {"value", "ci"} for v in doc["metrics"].values())
    assert doc["metrics"]["parse_rate"]["value"] == 0.0  # a random tiny model: every reply is a counted error
    preds = [json.loads(x) for x in (folder / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 3 and {p["status"] for p in preds} == {"parse_error"}
    assert set(preds[0]) >= {"id", "key", "mode", "config", "raw", "parsed", "status", "probs"}
    man = json.loads((folder / "manifest.json").read_text())
    assert man["data"]["fingerprint"] and man["model"]["manifest_sha256"] and man["suite"]["name"] == "feedback_bench"
    assert "predictions.jsonl" in man["files"] and "torch" in man["versions"]
    assert "| pearson |" in (folder / "table.md").read_text()

    # a killed run: two rows written, the third cut mid-line -> the rerun judges only the missing one
    lines = (folder / "predictions.jsonl").read_text().splitlines()
    (folder / "predictions.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:30])
    counting = Scripted(lambda prompt, k: "Feedback: fine [RESULT] 3", label="tiny")
    bench_run.run(
        str(tiny_llama), recipe, out_root=tmp_path / "bench", engine=counting, mirror=FIXTURE_MIRROR, n_boot=10
    )
    assert counting.judged == 1
    preds = [json.loads(x) for x in (folder / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 3 and sum(p["parsed"] == [3] for p in preds) == 1
    # nothing missing: nothing judged; a changed config (more new tokens): everything judged again
    bench_run.run(
        str(tiny_llama), recipe, out_root=tmp_path / "bench", engine=counting, mirror=FIXTURE_MIRROR, n_boot=10
    )
    assert counting.judged == 1
    longer = recipe.model_copy(
        update={"suites": [bench_run.SuiteSpec(name="feedback_bench", limit=3, max_new_tokens=8)]}
    )
    bench_run.run(
        str(tiny_llama), longer, out_root=tmp_path / "bench", engine=counting, mirror=FIXTURE_MIRROR, n_boot=10
    )
    assert counting.judged == 4


def test_run_sampled_absolute_adds_a_greedy_pass(tmp_path):
    eng = Scripted(
        lambda prompt, k: f"Feedback: ok [RESULT] {1 + (k + len(prompt)) % 5}", answer_probs={"1": 0.2, "5": 0.8}
    )
    recipe = bench_run.BenchRecipe(
        kind="bench", name="t", suites=[bench_run.SuiteSpec(name="feedback_bench", samples=3, temperature=1.0)]
    )
    folder = (
        bench_run.run(str(tmp_path), recipe, out_root=tmp_path / "b", engine=eng, mirror=FIXTURE_MIRROR, n_boot=10)
        / "feedback_bench"
    )
    assert [(c["n"], c["temperature"]) for c in eng.calls] == [(3, 1.0), (1, 0.0)]
    doc = json.loads((folder / "metrics.json").read_text())
    assert (
        doc["modes"] == ["sampled", "greedy"]
        and "pearson_greedy" in doc["metrics"]
        and "pearson_expected" in doc["metrics"]
    )
    assert doc["metrics"]["parse_rate"]["value"] == 1.0


def test_run_pairwise_and_bbq_suites_with_a_scripted_judge(tmp_path):
    eng = Scripted(
        lambda prompt, k: (
            "<reasoning>x</reasoning><verdict>A</verdict>" if "###Context" in prompt else "Fine. [RESULT] A"
        )
    )
    pb = bench_run.run(
        "some/hub-model", "preference_bench", out_root=tmp_path, engine=eng, mirror=FIXTURE_MIRROR, n_boot=10
    )
    m = json.loads((pb / "metrics.json").read_text())["metrics"]
    assert m["accuracy"]["value"] == 0.5 and m["primacy"]["value"] == 1.0 and m["position_consistency"]["value"] == 0.0
    bp = bench_run.run("some/hub-model", "bbq_pairs", out_root=tmp_path, engine=eng, mirror=PKG_MIRROR, n_boot=10)
    m = json.loads((bp / "metrics.json").read_text())["metrics"]
    assert m["position_bias_rate"]["value"] == 1.0 and m["parse_rate"]["value"] == 1.0


# --------------------------------------------------------------------------- report
def _write_metrics(root: Path, label: str, suite: str, metrics: dict) -> None:
    d = root / label / suite
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"model": label, "suite": suite, "n": 10, "metrics": metrics}))


def test_report_table_and_charts(tmp_path):
    bench, cons = tmp_path / "bench", tmp_path / "consistency"
    for lab, k in (("model-a", 0.4), ("merge-nuslerp_sweep-w0.30", 0.6)):
        _write_metrics(
            bench,
            lab,
            "bbq_pairs",
            {
                "kappa": {"value": k, "ci": [k - 0.1, k + 0.1]},
                "kappa/clear_bias_vs_clean": {"value": k + 0.1, "ci": None},
                "rule_baseline_kappa": {"value": 0.72, "ci": [0.65, 0.8]},
                "rule_baseline_kappa/clear_bias_vs_clean": {"value": 0.8, "ci": None},
            },
        )
        _write_metrics(
            bench,
            lab,
            "vicuna",
            {
                "pearson": {"value": k, "ci": [0.1, 0.9]},
                "spearman": {"value": k, "ci": None},
                "kendall": {"value": None, "ci": None},
            },
        )
    _write_metrics(bench, "merge-nuslerp_sweep-w0.70", "vicuna", {"pearson": {"value": 0.3, "ci": None}})
    (cons / "model-a").mkdir(parents=True)
    (cons / "model-a" / "summary.json").write_text(
        json.dumps({"model": "model-a", "checks": {"conflict_ratio": {"value": 0.15}}})
    )
    out = report.compare(
        ["model-a", "merge-nuslerp_sweep-w0.30"],
        out=tmp_path / "cmp",
        bench_root=bench,
        consistency_root=cons,
        show=False,
    )
    text = (out / "compare.md").read_text()
    assert "| suite / metric | model-a | merge-nuslerp_sweep-w0.30 |" in text
    assert "| bbq_pairs / kappa | 0.400 [0.300, 0.500] | 0.600 [0.500, 0.700] |" in text
    assert "| vicuna / kendall | — | — |" in text
    assert "| consistency / conflict_ratio | 0.150 | — |" in text
    for png in ("kappa.png", "correlations.png", "sweep_nuslerp_sweep.png"):
        assert (out / png).stat().st_size > 1000
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- CLI and quick eval
def test_cli_registers_both_commands():
    from judgefactory.cli import bench as bench_cli

    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    bench_cli.add_parser(sub)
    a = p.parse_args(["bench", "base", "quick", "--limit", "5", "--batch-size", "4"])
    assert (a.model, a.suite, a.limit, a.batch_size, a.func) == ("base", "quick", 5, 4, bench_cli.cmd_bench)
    a = p.parse_args(["bench-compare", "base", "adapter:absolute"])
    assert a.models == ["base", "adapter:absolute"] and a.func == bench_cli.cmd_compare
    a = p.parse_args(["retention", "merge:m", "--pairwise", "adapter:p", "--absolute", "adapter:a", "--out", "r2"])
    assert (a.models, a.pairwise, a.absolute, a.out, a.func) == (
        ["merge:m"],
        "adapter:p",
        "adapter:a",
        "r2",
        bench_cli.cmd_retention,
    )
    assert [s.name for s in bench_run.bench_recipe("quick").suites][:2] == ["vicuna", "mt_bench"]
    assert bench_run.bench_recipe("hhh").suites[0].name == "hhh"


def test_quick_eval_runs_through_the_suites(tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from judgefactory import quick_eval, recipes

    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    base = {"kind": "adapter", "name": "t", "base": "embedded:smollm2-135m-instruct"}
    ra = recipes.from_dict(
        {
            **base,
            "task": "absolute",
            "data": {"source": "prometheus-eval/mt-bench", "max_response_chars": 50},
            "quick_eval": {
                "source": "prometheus-eval/Feedback-Bench",
                "limit": 3,
                "max_new_tokens": 3,
                "batch_size": 2,
            },
        }
    )
    out = quick_eval.absolute(model, tok, ra, mirror=FIXTURE_MIRROR)
    assert out["n"] == 3 and out["parse_rate"] == 0.0 and out["n_errors"] == 3 and len(out["examples"]) == 3
    rp = recipes.from_dict(
        {
            **base,
            "task": "pairwise",
            "data": {"source": "pairs:x", "max_response_chars": 50},
            "quick_eval": {
                "source": "judge-from-scratch/bbq-pairs",
                "file": "eval_in_dist",
                "limit": 2,
                "max_new_tokens": 3,
                "batch_size": 2,
            },
        }
    )
    out = quick_eval.pairwise(model, tok, rp, mirror=PKG_MIRROR)
    assert out["n"] == 2 and out["parse_rate"] == 0.0 and out["position_consistency"] == 0.0
    assert set(out) >= {"kappa_ab", "kappa_ba", "kappa_both_orders", "primacy", "recency", "verdict_share", "examples"}
    assert math.isclose(sum(out["verdict_share"].values()), 1.0)


def test_retention_is_a_paired_ratio_with_a_bootstrap_ci(tmp_path):
    """Two scripted judges benched on the same 5 BBQ pairs: the merged one's kappa / the specialist's, with a paired
    cluster-bootstrap CI; identical judges retain exactly 1 (CI [1, 1])."""
    from judgefactory.bench import retention

    mirror = _bbq_eval_mirror(
        tmp_path,
        [
            ("age::5::16::neg", "<answer>A</answer>", "<answer>C</answer>", "A"),
            ("age::5::16::neg", "<answer>A</answer>", "<answer>B</answer>", "TIE"),
            ("age::5::18::nonneg", "<answer>A</answer>", "<answer>A</answer>", "TIE"),
            ("age::5::18::nonneg", "<answer>B</answer>", "<answer>C</answer>", "B"),
            ("age::5::18::nonneg", "<answer>C</answer>", "<answer>A</answer>", "B"),
        ],
    )

    def judge_like_the_humans(prompt: str, k: int) -> str:  # reads the two responses' letters and applies the rule
        a = prompt.split("###Response A:\n")[1].split("\n")[0]
        b = prompt.split("###Response B:\n")[1].split("\n")[0]
        return "<verdict>A</verdict>" if "A</answer>" in a and "C" in b else "<verdict>TIE</verdict>"

    root = tmp_path / "bench"
    for label in ("specialist", "same", "merged"):
        fn = judge_like_the_humans if label != "merged" else (lambda p, k: "<verdict>TIE</verdict>")
        bench_run.run(label, "bbq_pairs", out_root=root, engine=Scripted(fn, label=label), mirror=mirror, n_boot=0)
    doc = retention.table(
        ["same", "merged"], {"pairwise": "specialist", "absolute": "nobody"}, root, mirror=mirror, n_boot=200
    )
    rows = {r["model"]: r for r in doc["rows"]}
    assert rows["same"]["retention"] == pytest.approx(1.0) and rows["same"]["ci"] == [
        pytest.approx(1.0),
        pytest.approx(1.0),
    ]
    spec = rows["merged"]["specialist"]
    assert spec > 0 and rows["merged"]["retention"] == pytest.approx(rows["merged"]["merged"] / spec)
    assert rows["merged"]["merged"] == pytest.approx(0.0)  # always TIE: kappa 0 -> retention 0
    assert "| merged | pairwise | bbq_pairs | kappa |" in retention.markdown(doc)
    # the station: the same table from the bench folders, written as retention.json + retention.md
    out = retention.run(["same", "merged"], pairwise="specialist", absolute="nobody", bench_root=root, mirror=mirror)
    saved = json.loads((out / "retention.json").read_text())
    assert out == root / "retention" and [r["model"] for r in saved["rows"]] == ["same", "merged"]
    assert saved["rows"][1]["retention"] == pytest.approx(rows["merged"]["retention"])
    assert (out / "retention.md").read_text() == retention.markdown(saved)
    # another specialist pair's table goes to its own folder and leaves this one as it was
    other = retention.run(
        ["merged"], pairwise="same", absolute="nobody", out=tmp_path / "r2", bench_root=root, mirror=mirror
    )
    assert other == tmp_path / "r2" and json.loads((other / "retention.json").read_text())["specialists"] == {
        "pairwise": "same",
        "absolute": "nobody",
    }
    assert json.loads((out / "retention.json").read_text()) == saved


def test_retention_sentence_names_the_share_kept_and_the_verdict():
    from judgefactory.bench import retention

    row = {"skill": "absolute", "suite": "vicuna", "metric": "pearson_expected", "n": 320, "merged": 0.25}
    short = retention.sentence({**row, "specialist": 0.3, "retention": 0.8333, "ci": [0.5, 1.2]})
    assert short.startswith("Keeps 83% [50%, 120%] of the absolute specialist's pearson_expected on Vicuna")
    assert short.endswith("falls short of 90% on the point estimate; the CI reaches above it.")
    none = retention.sentence({**row, "specialist": -0.1, "retention": None, "ci": None})
    assert "undefined" in none and "-0.100" in none
