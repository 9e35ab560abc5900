"""The quick check's cache of the untrained base's result: keyed on everything that decides the replies."""

from __future__ import annotations

from conftest import tiny_pairwise_recipe

from judgefactory import manifest as mf
from judgefactory import precision, quick_eval
from judgefactory.bench import suites


def test_the_base_cache_key_follows_the_judging_dtype_and_the_libraries(tmp_path, monkeypatch):
    recipe = tiny_pairwise_recipe(tmp_path, quick_eval={"source": "judge-from-scratch/bbq-pairs", "limit": 4})
    item = suites.Item(id="p1", cluster="q1", gold="A", requests={"ab": [{"role": "user", "content": "x"}]})
    data = suites.SuiteData("bbq_pairs", "bbq_pairs", "verdict", [item], "src", "fp")
    monkeypatch.setattr(precision, "judge_dtype", lambda: "float32")
    f32 = quick_eval._base_cache(recipe, data)
    assert quick_eval._base_cache(recipe, data) == f32  # stable
    monkeypatch.setattr(precision, "judge_dtype", lambda: "bfloat16")
    assert quick_eval._base_cache(recipe, data) != f32
    monkeypatch.setattr(precision, "judge_dtype", lambda: "float32")
    real = mf.versions
    monkeypatch.setattr(mf, "versions", lambda: {**real(), "transformers": "0.0.1"})
    assert quick_eval._base_cache(recipe, data) != f32
