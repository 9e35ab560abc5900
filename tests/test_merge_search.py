"""The merge search on tiny specialists: candidates merged by mergekit, scored on both dev splits only, resumable,
a chosen recipe written; the search never reads an eval set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FX_PAIRS, PKG_MIRROR

from judgefactory import recipes, train

MODULES = ["q_proj", "v_proj", "up_proj", "down_proj"]
EVAL_FILES = {"eval_in_dist", "pairs_unused_religion", "vicuna"}


@pytest.fixture()
def specialists(tiny_llama, tmp_path, monkeypatch):
    from judgefactory.data import pairs

    monkeypatch.setenv("JUDGEFACTORY_HOME", str(tmp_path / "ws"))
    monkeypatch.setenv("JUDGEFACTORY_CACHE", str(tmp_path / "cache"))
    pairs.build(
        recipes.from_dict(FX_PAIRS),
        mirror=PKG_MIRROR,
        progress=False,
    )
    common = {
        "base": str(tiny_llama),
        "lora": {"r": 4, "target_modules": MODULES},
        "train": {
            "max_steps": 2,
            "batch_size": 2,
            "max_length": 700,
            "logging_steps": 1,
            "save_steps": 5,
            "bf16": False,
            "base_dtype": "float32",
            "learning_rate": 1e-2,
        },
    }
    absolute = recipes.from_dict(
        {
            "kind": "adapter",
            "name": "abs",
            "task": "absolute",
            **common,
            "data": {"source": "prometheus-eval/mt-bench", "max_response_chars": 80, "dev_fraction": 0.25},
            "dev": {"steps": [2], "max_new_tokens": 4, "batch_size": 8},
        }
    )
    pairwise = recipes.from_dict(
        {
            "kind": "adapter",
            "name": "pw",
            "task": "pairwise",
            **common,
            "data": {"source": "pairs:fx", "max_response_chars": 80},
            "dev": {"steps": [2], "max_new_tokens": 4, "batch_size": 8},
        }
    )
    train.run(absolute, mirror=PKG_MIRROR, quick_eval=False)
    train.run(pairwise, mirror=PKG_MIRROR, quick_eval=False)
    return tmp_path


def test_search_scores_candidates_on_dev_splits_only_and_resumes(specialists, tiny_llama, monkeypatch):
    import builtins
    import io

    from judgefactory import merge_search

    opened: list[str] = []
    real_open, real_io_open = builtins.open, io.open

    def spy(file, *a, **kw):  # every file the search opens, whatever reads it
        opened.append(str(file))
        return real_open(file, *a, **kw)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", lambda file, *a, **kw: (opened.append(str(file)), real_io_open(file, *a, **kw))[1])
    search = recipes.from_dict(
        {
            "kind": "search",
            "name": "s",
            "base": str(tiny_llama),
            "absolute": "abs",
            "pairwise": "pw",
            "candidates": [{"method": "nuslerp", "weights": [0.3, 0.5]}, {"method": "linear", "weights": [0.5]}],
            "dev": {"batch_size": 8},
        }
    )
    tracked = {q: q.stat().st_mtime_ns for q in recipes.RECIPES_DIR.rglob("*")}
    try:
        folder = merge_search.run(search, mirror=PKG_MIRROR)
    finally:  # the search writes its choice into its own folder only, never into the tracked recipes/ tree
        written = {q: q.stat().st_mtime_ns for q in recipes.RECIPES_DIR.rglob("*")}
        for q in set(written) - set(tracked):
            q.unlink()
    assert written == tracked
    # never an eval set: the absolute dev is the held-out quarter of MT-Bench, the pairwise dev the pair set's test split
    data_files = [f for f in opened if f.endswith((".json", ".jsonl"))]
    assert any("mt_bench_eval" in f for f in data_files) and any(f.endswith("fx/test.jsonl") for f in data_files)
    assert not any(Path(f).name.split(".")[0] in EVAL_FILES | {"vicuna_eval"} for f in data_files), data_files
    rows = [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]
    assert {r["id"] for r in rows} == {
        "specialist:absolute",
        "specialist:pairwise",
        "nuslerp-a0.30-p0.70",
        "nuslerp-a0.50-p0.50",
        "linear-a0.50-p0.50",
    }
    m = json.loads((folder / "manifest.json").read_text())
    assert m["chosen"]["id"] in {"nuslerp-a0.30-p0.70", "nuslerp-a0.50-p0.50", "linear-a0.50-p0.50"}
    assert (folder / "pareto.png").is_file() and "| model |" in (folder / "table.md").read_text()
    chosen = recipes.load(folder / "chosen.yaml")
    assert chosen.kind == "merge" and chosen.name == "s-chosen" and [x.adapter for x in chosen.models] == ["abs", "pw"]
    assert chosen.gate is not None and chosen.gate.keep_of_specialists == 0.9  # the gate follows the specialists
    assert not (folder / ".candidates").exists()  # candidate checkpoints are deleted once scored
    # a rerun skips every scored candidate (nothing merged or judged again)
    from judgefactory import merge

    monkeypatch.setattr(merge, "run", lambda *a, **kw: pytest.fail("a scored candidate was merged again"))
    merge_search.run(search, mirror=PKG_MIRROR)
    assert len((folder / "results.jsonl").read_text().splitlines()) == 5


def test_retention_and_choice_by_hand():
    from judgefactory import merge_search as S

    def sc(a: float, pa: float, k: float, pk: float = 1.0) -> dict:
        return {"absolute": {"pearson_expected": a, "parse_rate": pa}, "pairwise": {"kappa": k, "parse_rate": pk}}

    ref = sc(0.4, 1.0, 0.6)
    r = S.retention(sc(0.3, 1.0, 0.6), ref)
    assert r == {"absolute": pytest.approx(0.75), "pairwise": pytest.approx(1.0)} and S.worst(r) == pytest.approx(0.75)
    # a Pearson over the third of the items that parse is a third of a kept skill: 0.3 x 1/3 / 0.4 = 0.25; kappa
    # already scores an unparsed verdict as an error, so its parse rate does not count twice
    r = S.retention(sc(0.3, 1 / 3, 0.6, 0.5), ref)
    assert r == {"absolute": pytest.approx(0.25), "pairwise": pytest.approx(1.0)}
    assert S.retention(sc(0.3, 1.0, 0.6), sc(-0.1, 1.0, 0.6))["absolute"] is None
    assert S.worst({"absolute": None, "pairwise": 1.0}) == float("-inf")


def test_a_specialist_without_a_learning_curve_is_judged_like_its_quick_check(tmp_path, monkeypatch):
    """The demo's specialists have no ``dev:`` section: the search still sizes their dev split by its own limits and
    judges with the answer length of their quick check (the shipped demo search runs on them)."""
    from judgefactory import merge_search
    from judgefactory.data import pairs

    monkeypatch.setenv("JUDGEFACTORY_HOME", str(tmp_path))
    pairs.build(recipes.from_dict(FX_PAIRS), mirror=PKG_MIRROR, progress=False)
    shipped = recipes.load(recipes.find("adapters", "pairwise"))
    assert isinstance(shipped, recipes.AdapterRecipe) and shipped.dev is None and shipped.quick_eval is not None
    pw = shipped.model_copy(update={"data": shipped.data.model_copy(update={"source": "pairs:fx"})})
    demo = recipes.load(recipes.find("searches", "demo_search"))
    assert isinstance(demo, recipes.SearchRecipe) and (demo.absolute, demo.pairwise) == ("absolute", "pairwise")
    search = demo.model_copy(update={"dev": demo.dev.model_copy(update={"pairwise_limit": 3})})
    sized, data = merge_search.dev_split(search, pw, PKG_MIRROR)
    assert len(data.items) == 3 and all(set(it.requests) == {"ab", "ba"} for it in data.items)
    assert sized.dev is not None and sized.dev.limit == 3 and sized.dev.batch_size == demo.dev.batch_size
    assert sized.dev.max_new_tokens == shipped.quick_eval.max_new_tokens
    # the shipped demo absolute specialist holds out its dev split (the search refuses one without)
    absolute = recipes.load(recipes.find("adapters", "absolute"))
    assert isinstance(absolute, recipes.AdapterRecipe) and absolute.data.dev_fraction == 0.25
