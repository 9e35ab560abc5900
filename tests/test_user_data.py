"""Specialists from a user's own file (``data.source: file:…``): the same training rows as the built-in paths on the
same data, group-disjoint splits, both A/B orders, the learning curve on the dev split and the quick check on the
test split, and the export of public data into the user formats."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import fx_pair_setup, tiny_pairwise_recipe

from judgefactory import formats, quick_eval, recipes, train
from judgefactory.data import user, user_export


def test_the_bbq_pairs_written_out_train_on_exactly_the_pair_sets_rows(tiny_llama, tmp_path, monkeypatch):
    recipe = fx_pair_setup(tiny_llama, tmp_path, monkeypatch)
    out = tmp_path / "fx.user.jsonl"
    n = user_export.pairs_to_user(tmp_path / "data" / "pairs" / "fx", out)
    assert n == len(
        {json.loads(x)["pair_id"] for x in (tmp_path / "data/pairs/fx/train.jsonl").read_text().splitlines()}
    )
    generic = tiny_pairwise_recipe(tiny_llama, name="tiny-pw-file", data={"source": f"file:{out}"})
    rows_bbq, _ = train.examples(recipe)
    rows_file, info = train.examples(generic)
    assert rows_file == rows_bbq  # the same prompts and targets, in the same order: the same adapter
    assert info["split_rows"] == {"train": n, "dev": 0, "test": 0}


def _pairs_file(path: Path, n_groups: int = 10, per_group: int = 3, reasoning: bool = True) -> Path:
    rows = []
    for g in range(n_groups):
        for k in range(per_group):
            label = "ABT"[(g + k) % 3].replace("T", "TIE")
            row = {
                "id": f"{g}-{k}",
                "topic": f"t{g}",
                "question": f"Question {g}?",
                "response_a": f"first answer {g} {k}",
                "response_b": f"second answer {g} {k}",
                "label": label,
            }
            if reasoning:
                row["reasoning"] = f"Response A is short; Response B is long ({label})."
            rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _user_pairwise(base: Path, src: Path, **data):
    return tiny_pairwise_recipe(
        base,
        name="tiny-user-pw",
        data={
            "source": f"file:{src}",
            "columns": {"group": "topic"},
            "criterion": "Which answer is more helpful?",
            **data,
        },
    )


def test_user_pairs_split_by_group_in_both_orders_with_their_criterion(tiny_llama, tmp_path):
    src = _pairs_file(tmp_path / "mine.jsonl")
    recipe = _user_pairwise(tiny_llama, src, dev_fraction=0.2, test_fraction=0.2)
    splits = user.recipe_splits(recipe)
    groups = {k: {splits.rows[i]["group"] for i in v} for k, v in splits.index.items()}
    assert [len(groups[k]) for k in ("train", "dev", "test")] == [6, 2, 2]
    assert (
        not (groups["train"] & groups["dev"])
        and not (groups["train"] & groups["test"])
        and not (groups["dev"] & groups["test"])
    )
    rows, info = train.examples(recipe)
    assert len(rows) == 2 * 6 * 3 and info["split_groups"] == {"train": 6, "dev": 2, "test": 2}
    first = rows[0]["prompt"][-1]["content"]
    assert first.startswith("###Task: Which answer is more helpful? Explain briefly")
    assert "###Context:" not in first and "###Answer choices:" not in first
    # the swapped order: responses exchanged, label mirrored, "Response A/B" exchanged in the reasoning
    pr = user.pair_rows(splits.rows, splits.index["train"][:1], recipe.data.criterion)
    ab, ba = pr
    assert (ba["response_a"], ba["response_b"]) == (ab["response_b"], ab["response_a"])
    assert ba["label"] == formats.swap_verdict(ab["label"])
    assert ba["target"] == formats.bias_target(f"Response B is short; Response A is long ({ab['label']}).", ba["label"])
    # the dev split is the learning curve's, the test split the quick check's: disjoint, both orders
    dev = quick_eval.dev_data(recipe.model_copy(update={"dev": recipes.DevSpec(steps=[0])}))
    test = quick_eval.user_split_data(recipe, "test", None)
    assert {it.cluster for it in dev.items} == groups["dev"] and {it.cluster for it in test.items} == groups["test"]
    assert all(set(it.requests) == {"ab", "ba"} for it in test.items)


def test_rows_without_reasoning_get_a_short_target_that_names_the_verdict(tiny_llama, tmp_path):
    src = _pairs_file(tmp_path / "plain.jsonl", n_groups=2, per_group=2, reasoning=False)
    rows, _ = train.examples(_user_pairwise(tiny_llama, src))
    targets = {r["completion"][0]["content"] for r in rows}
    assert formats.bias_target(user.default_reasoning("A"), "A") in targets
    assert all(formats.parse_verdict(t) is not None for t in targets)


def test_too_few_groups_for_the_splits_is_one_line(tiny_llama, tmp_path):
    src = _pairs_file(tmp_path / "few.jsonl", n_groups=2)
    with pytest.raises(user.UserDataError, match="2 groups are too few"):
        user.recipe_splits(_user_pairwise(tiny_llama, src, dev_fraction=0.1, test_fraction=0.1))


def test_a_user_source_recipe_is_validated(tiny_llama):
    with pytest.raises(recipes.RecipeError, match="split:test' needs a test split"):
        recipes.from_dict({**_spec(tiny_llama, "file:x.csv"), "quick_eval": {"source": "split:test"}})
    with pytest.raises(recipes.RecipeError, match="are for user sources"):
        recipes.from_dict(
            {
                **_spec(tiny_llama, "prometheus-eval/mt-bench"),
                "data": {"source": "prometheus-eval/mt-bench", "columns": {"score": "s"}},
            }
        )
    with pytest.raises(recipes.RecipeError, match="criterion is the pairwise judge's"):
        recipes.from_dict({**_spec(tiny_llama, "file:x.csv"), "data": {"source": "file:x.csv", "criterion": "Which?"}})


def _spec(base: Path, source: str) -> dict:
    return {
        "kind": "adapter",
        "name": "tiny-abs",
        "task": "absolute",
        "base": str(base),
        "data": {"source": source},
        "lora": {"r": 4, "target_modules": ["q_proj", "v_proj"]},
        "train": {
            "max_steps": 20,
            "batch_size": 2,
            "max_length": 600,
            "logging_steps": 1,
            "save_steps": 10,
            "bf16": False,
            "base_dtype": "float32",
            "learning_rate": 1e-2,
        },
    }


def test_an_absolute_specialist_trains_from_a_user_csv_and_is_checked_on_its_test_split(tiny_llama, tmp_path):
    src = tmp_path / "grades.csv"
    with open(src, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["q", "answer", "rubric", "score", "feedback"])
        w.writeheader()
        for i in range(10):
            w.writerow(
                {
                    "q": f"Task {i}?",
                    "answer": f"reply {i}",
                    "rubric": "Is it right? Score 1-5.",
                    "score": 1 + i % 5,
                    "feedback": "" if i % 2 else f"Reason {i}.",
                }
            )
    spec = _spec(tiny_llama, f"file:{src}")
    spec["data"] = {
        "source": f"file:{src}",
        "columns": {"instruction": "q", "response": "answer"},
        "dev_fraction": 0.2,
        "test_fraction": 0.2,
    }
    spec["quick_eval"] = {"source": "split:test", "limit": 10, "max_new_tokens": 4, "batch_size": 4, "n_boot": 0}
    recipe = recipes.from_dict(spec)
    out = train.run(recipe, adapters_dir=tmp_path / "adapters", quick_eval=True)
    m = json.loads((out / "manifest.json").read_text())
    assert m["training"]["loss_last"] < 0.7 * m["training"]["loss_first"], m["training"]
    assert m["data"][0]["rows"] == 6 and m["data"][0]["dev_rows"] == 2
    q = json.loads((out / "quick_eval.json").read_text()) if (out / "quick_eval.json").is_file() else m["quick_eval"]
    assert q["adapter"]["n"] == 2 and q["base"]["n"] == 2  # the two held-out test rows, never trained on
