"""A judge is never scored on prompts it trained on: training fingerprints, their inheritance by merges, and the
exclusion every scoring station (bench, consistency, card) applies. Offline, a tiny Llama, the package's fixture
mirror (its MT-Bench file: 4 instructions x 4 responses)."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import PKG_MIRROR, build_tiny_llama
from test_bench import Scripted

from judgefactory import card, consistency, leakage, merge, recipes, train
from judgefactory import manifest as mf
from judgefactory.bench import run as bench_run
from judgefactory.bench import suites
from judgefactory.data import pairs, prometheus
from judgefactory.errors import JudgeFactoryError, TrainError


def _recipe(base: Path, name: str = "tiny-mt", **data) -> recipes.AdapterRecipe:
    return recipes.from_dict(
        {
            "kind": "adapter",
            "name": name,
            "task": "absolute",
            "base": str(base),
            "data": {"source": "prometheus-eval/mt-bench", "max_response_chars": 300, **data},
            "lora": {"r": 4, "target_modules": ["q_proj", "v_proj"]},
            "train": {
                "max_steps": 2,
                "batch_size": 4,
                "max_length": 500,
                "logging_steps": 1,
                "save_steps": 2,
                "bf16": False,
                "base_dtype": "float32",
            },
        }
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A tiny base; an adapter trained on 3 of the fixture's 4 MT-Bench instructions (dev quarter held out) and one
    trained on all 4."""
    root = tmp_path_factory.mktemp("leak")
    base = build_tiny_llama(root / "base")
    adapters = root / "adapters"
    part = train.run(_recipe(base, dev_fraction=0.25), adapters_dir=adapters, mirror=PKG_MIRROR, quick_eval=False)
    full = train.run(_recipe(base, "tiny-mt-all"), adapters_dir=adapters, mirror=PKG_MIRROR, quick_eval=False)
    items, _ = prometheus.load_absolute("prometheus-eval/mt-bench", mirror=PKG_MIRROR)
    _, dev = prometheus.dev_split(items, 0.25, 0)
    return {"root": root, "base": base, "adapters": adapters, "part": part, "full": full, "dev": dev}


def _judge() -> Scripted:
    return Scripted(lambda prompt, k: "Feedback: fine. [RESULT] " + ("A" if "###Response A" in prompt else "3"))


def _instruction(messages) -> str:
    return leakage.normalise(leakage.instruction_of(messages[-1]["content"]) or "")


def test_training_records_its_fingerprints_beside_the_adapter(world):
    m = mf.read(world["part"])
    assert leakage.TRAINED_ON in m["files"]  # hashed with the adapter's files, not inlined into the manifest
    doc = json.loads((world["part"] / leakage.TRAINED_ON).read_text())
    assert doc["instructions"] and doc["prompts"] and doc["sources"] == ["prometheus-eval/mt-bench"]
    dev = {leakage.digest(leakage.instruction_of(it.prompt)) for it in world["dev"]}
    assert not dev & set(doc["instructions"])  # the dev quarter never reached training


def test_a_bench_run_leaves_out_the_items_the_adapter_trained_on(world, tmp_path, caplog):
    eng = _judge()
    with caplog.at_level(logging.WARNING, logger="judgefactory"):
        folder = bench_run.run(
            str(world["part"]),
            "mt_bench",
            out_root=tmp_path,
            engine=eng,
            mirror=PKG_MIRROR,
            n_boot=0,
            max_response_chars=100,  # clipped otherwise than in training: the raw instruction still matches
        )
    doc = json.loads((folder / "metrics.json").read_text())
    assert (
        doc["n"] == 4 and doc["excluded_trained_on"]["n"] == 12 and "12 of 16" in doc["excluded_trained_on"]["reason"]
    )
    assert mf.read(folder)["excluded_trained_on"]["n"] == 12
    judged = {json.loads(line)["id"] for line in (folder / "predictions.jsonl").read_text().splitlines()}
    assert judged == {it.id for it in world["dev"]} and eng.judged == 4
    assert any("12 excluded" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_a_suite_the_model_trained_on_entirely_is_refused_in_one_line(world, tmp_path, capsys):
    with pytest.raises(leakage.LeakageError, match=r"suite mt_bench refused for .*all 16 items") as err:
        bench_run.run(str(world["full"]), "mt_bench", out_root=tmp_path, engine=_judge(), mirror=PKG_MIRROR, n_boot=0)
    assert isinstance(err.value, JudgeFactoryError) and "\n" not in str(err.value)
    assert not (tmp_path / "scripted" / "mt_bench").exists()
    from judgefactory.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["--data-mirror", str(PKG_MIRROR), "bench", str(world["full"]), "mt_bench", "--out", str(tmp_path)])
    assert done.value.code == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "mt_bench" in lines[0] and "tiny-mt-all" in lines[0]


def test_a_merge_inherits_the_union_of_its_parents_fingerprints(world, tmp_path):
    """The fixture's Vicuna file asks MT-Bench's four instructions: the first adapter trained on three of them, this
    one (seed 1) on two, one of which the first left out; so each parent leaves items, their merge none."""
    vic = _recipe(world["base"], "tiny-vicuna", source="prometheus-eval/vicuna", dev_fraction=0.5)
    vic = recipes.from_dict({**vic.model_dump(mode="json"), "train": {**vic.train.model_dump(), "seed": 1}})
    train.run(vic, adapters_dir=world["adapters"], mirror=PKG_MIRROR, quick_eval=False)
    judged = bench_run.run(
        str(world["adapters"] / "tiny-vicuna"), "mt_bench", out_root=tmp_path / "v", engine=_judge(), mirror=PKG_MIRROR
    )
    assert json.loads((judged / "metrics.json").read_text())["excluded_trained_on"]["n"] == 8
    r = recipes.from_dict(
        {
            "kind": "merge",
            "name": "mt-merge",
            "method": "linear",
            "base": str(world["base"]),
            "models": [{"adapter": "tiny-mt", "weight": 0.5}, {"adapter": "tiny-vicuna", "weight": 0.5}],
            "dtype": "float32",
        }
    )
    out = merge.run(
        r, adapters_dir=world["adapters"], merges_dir=tmp_path / "merges", cache_dir=tmp_path / "c", quiet=True
    )
    assert leakage.TRAINED_ON in mf.read(out)["files"]  # copied in at merge time: the merge carries its own
    shutil.rmtree(world["adapters"] / "tiny-vicuna")  # and needs no parent folder afterwards
    assert (
        leakage.for_model(str(out)).fingerprints["instructions"]
        >= leakage.for_folder(world["part"]).fingerprints["instructions"]
    )
    with pytest.raises(leakage.LeakageError, match="suite mt_bench refused for .*all 16 items.*merge mt-merge"):
        bench_run.run(str(out), "mt_bench", out_root=tmp_path / "b", engine=_judge(), mirror=PKG_MIRROR, n_boot=0)


def test_consistency_scores_only_the_groups_the_judge_did_not_train_on(world, tmp_path):
    out = consistency.run(
        str(world["part"]),
        suites=["mt_bench"],
        limit_groups=None,
        out_root=tmp_path,
        mirror=PKG_MIRROR,
        engine=_judge(),
        show=False,
    )
    m = mf.read(out)
    assert m["n_groups"] == {"mt_bench": 1} and m["excluded_trained_on"]["mt_bench"]["n"] == 12
    pairs_judged = json.loads((out / "conflict.json").read_text())["pairs"]
    assert {p["group"] for p in pairs_judged} == {world["dev"][0].group}
    with pytest.raises(leakage.LeakageError, match="mt_bench"):
        consistency.run(
            str(world["full"]), suites=["mt_bench"], out_root=tmp_path, mirror=PKG_MIRROR, engine=_judge(), show=False
        )


def _model_index(text: str) -> dict[str, list[str]]:
    front = yaml.safe_load(re.match(r"^---\n(.*?)\n---\n", text, flags=re.S).group(1))
    out: dict[str, list[str]] = {}
    for entry in front.get("model-index", [{}])[0].get("results", []):
        out.setdefault(entry["task"]["name"], []).extend(m["type"] for m in entry["metrics"])
    return out


def test_a_card_shows_no_figure_computed_over_trained_on_items(world, tmp_path):
    bench = tmp_path / "bench"
    bench_run.run(
        str(world["part"]), "mt_bench", out_root=bench, engine=_judge(), mirror=PKG_MIRROR, n_boot=0
    )  # screened: n = 4
    for suite in (
        "vicuna",
        "feedback_bench",
    ):  # results from a run that never screened them (written before the check existed)
        (bench / "scripted" / suite).mkdir(parents=True)
        doc = {"model": "scripted", "suite": suite, "n": 16, "metrics": {"pearson": {"value": 0.5, "ci": None}}}
        (bench / "scripted" / suite / "metrics.json").write_text(json.dumps({**doc, "source": f"x/{suite}"}))
    text = card.write_card(
        world["part"], bench, tmp_path / "consistency", "scripted", out=tmp_path / "c.md"
    ).read_text()
    index = _model_index(text)
    assert set(index) == {"LLM-as-a-judge (mt_bench)"}
    assert "`vicuna` is left out of this card" in text and "12 items the model trained on were excluded" in text
    # an adapter trained before fingerprints were recorded: the suite of its own training source stays off the card,
    # and a bench run on it is refused
    legacy = shutil.copytree(world["full"], tmp_path / "legacy")
    (legacy / leakage.TRAINED_ON).unlink()
    m = mf.read(legacy)
    mf.finalize(legacy, {k: v for k, v in m.items() if k not in ("files", "stat")})
    doc = json.loads((bench / "scripted" / "mt_bench" / "metrics.json").read_text())
    doc.pop("excluded_trained_on")
    (bench / "scripted" / "mt_bench" / "metrics.json").write_text(json.dumps(doc))
    build = mf.sha256_file(legacy / mf.MANIFEST)  # a card shows only figures measured on its artifact's build
    for suite in ("vicuna", "feedback_bench", "mt_bench"):
        folder = bench / "scripted" / suite
        mf.write_json(
            folder / "metrics.json",
            {**json.loads((folder / "metrics.json").read_text()), "model_manifest_sha256": build},
        )
        mf.finalize(folder, {"kind": "bench", "model": {"manifest_sha256": build}})
    text = card.write_card(legacy, bench, tmp_path / "consistency", "scripted", out=tmp_path / "l.md").read_text()
    assert set(_model_index(text)) == {"LLM-as-a-judge (vicuna)", "LLM-as-a-judge (feedback_bench)"}
    assert "`mt_bench` is left out of this card: trained on prometheus-eval/mt-bench" in text
    with pytest.raises(leakage.LeakageError, match="records no training fingerprints"):
        bench_run.run(str(legacy), "mt_bench", out_root=tmp_path / "b2", engine=_judge(), mirror=PKG_MIRROR, n_boot=0)


def test_a_holdout_that_cannot_be_loaded_stops_training(world):
    r = _recipe(world["base"], holdout=["prometheus-eval/no-such-set"])
    with pytest.raises(TrainError, match=r"holdout prometheus-eval/no-such-set could not be loaded") as err:
        train.examples(r, mirror=PKG_MIRROR)
    assert "\n" not in str(err.value)


def test_a_pair_set_leak_is_a_named_error_not_an_assert():
    row = {"pair_id": "p1", "split": "train", "template_id": "age:1"}

    class Inputs:
        eval_templates = {"age:1"}
        items: dict = {}

    with pytest.raises(pairs.PairSetLeakError, match="1 eval templates leaked into train/test"):
        pairs._check_disjoint({"age:1": "train"}, [row], Inputs())
    with pytest.raises(pairs.PairSetLeakError, match="template age:1 is not in split train"):
        pairs._check_disjoint({"age:1": "test"}, [row], Inputs())


def test_bbq_items_are_fingerprinted_by_context_question_and_template():
    data = suites.load("bbq_pairs", mirror=PKG_MIRROR)
    it = data.items[0]
    fps = leakage.item_fingerprints(it)
    bbq = it.meta["pair"].item
    assert leakage.template_digest(bbq.template_id) in fps["templates"]
    assert leakage.bbq_digest(bbq.context, bbq.question) in fps["instructions"]
    assert leakage.prompt_fingerprints(it.requests["ab"][-1]["content"])["instructions"] & fps["instructions"]
    trained = leakage.TrainedOn(
        "a pairwise adapter", {"templates": frozenset({leakage.template_digest(bbq.template_id)})}
    )
    assert all(i.meta["pair"].item.template_id == bbq.template_id for i in data.items)  # the fixture: one template
    with pytest.raises(leakage.LeakageError, match=r"suite bbq_pairs refused for m: all \d+ items"):
        leakage.screen(trained, "bbq_pairs", "m", data.items)


def test_a_pairwise_adapter_records_the_templates_and_questions_of_its_pair_set(tmp_path, monkeypatch):
    from conftest import fx_pair_setup

    base = build_tiny_llama(tmp_path / "base")
    r = fx_pair_setup(base, tmp_path, monkeypatch, train={"max_steps": 1})
    out = train.run(r, adapters_dir=tmp_path / "adapters", quick_eval=False)
    doc = json.loads((out / leakage.TRAINED_ON).read_text())
    rows = [json.loads(x) for x in (tmp_path / "data" / "pairs" / "fx" / "train.jsonl").read_text().splitlines()]
    test = [json.loads(x) for x in (tmp_path / "data" / "pairs" / "fx" / "test.jsonl").read_text().splitlines()]
    assert set(doc["templates"]) == {leakage.template_digest(x["template_id"]) for x in rows}
    assert {leakage.bbq_digest(x["context"], x["question"]) for x in rows} <= set(doc["instructions"])
    assert not {leakage.template_digest(x["template_id"]) for x in test} & set(doc["templates"])
