from pathlib import Path

import pydantic
import pytest

from judgefactory import recipes


def test_every_shipped_recipe_validates():
    paths = recipes.shipped() + recipes.experiments()
    kinds = {recipes.load(p).kind for p in paths}
    assert {"adapter", "merge", "pairs", "bench"} <= kinds
    names = {p.stem for p in paths}
    assert {
        "absolute",
        "pairwise",
        "nuslerp_50_50",
        "linear_50_50",
        "ties",
        "dare_linear",
        "task_arithmetic",
        "nuslerp_sweep",
    } <= names


def test_gpu_and_cpu_recipes_pick_their_backend():
    gpu = recipes.load(recipes.find("adapters", "pairwise-gemma-3-4b"))
    cpu = recipes.load(recipes.find("adapters", "pairwise"))
    assert (gpu.backend, gpu.train.quantization, gpu.base) == ("unsloth", "4bit", "google/gemma-3-4b-it")
    assert (cpu.backend, cpu.train.quantization, cpu.base) == ("trl", "none", "embedded:smollm2-135m-instruct")
    a, p = recipes.load(recipes.find("adapters", "absolute")), cpu
    assert a.lora.target_modules == p.lora.target_modules, "specialists must share target modules to merge cleanly"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


GOOD = """kind: adapter
name: t
task: absolute
base: embedded:smollm2-135m-instruct
data: {source: prometheus-eval/mt-bench}
"""


def test_unknown_key_names_file_and_field(tmp_path):
    p = _write(tmp_path, GOOD + "train: {max_step: 3}\n")
    with pytest.raises(recipes.RecipeError) as e:
        recipes.load(p)
    msg = str(e.value)
    assert str(p) in msg and "train.max_step" in msg and "\n" not in msg


def test_wrong_type_names_field_and_value(tmp_path):
    p = _write(tmp_path, GOOD + "train: {learning_rate: fast}\n")
    with pytest.raises(recipes.RecipeError, match=r"r\.yaml: field 'train\.learning_rate'.*'fast'"):
        recipes.load(p)


def test_missing_and_unknown_base(tmp_path):
    p = _write(tmp_path, GOOD.replace("base: embedded:smollm2-135m-instruct\n", ""))
    with pytest.raises(recipes.RecipeError, match=r"field 'base': Field required"):
        recipes.load(p)
    p = _write(tmp_path, GOOD.replace("smollm2-135m-instruct", "nope"))
    with pytest.raises(recipes.RecipeError, match=r"field 'base': unknown embedded base 'embedded:nope'"):
        recipes.load(p)


def test_overrides_apply_typed_and_fail_like_files(tmp_path):
    p = _write(tmp_path, GOOD)
    r = recipes.load(p, ["train.max_steps=7", "lora.target_modules=[q_proj, v_proj]", "train.bf16=false"])
    assert r.train.max_steps == 7 and r.lora.target_modules == ["q_proj", "v_proj"] and r.train.bf16 is False
    with pytest.raises(recipes.RecipeError, match=r"field 'train\.max_steps'"):
        recipes.load(p, ["train.max_steps=-1"])
    with pytest.raises(recipes.RecipeError, match="expected key=value"):
        recipes.parse_overrides(["train.max_steps"])


def test_recipes_are_frozen():
    r = recipes.load(recipes.find("merges", "nuslerp_50_50"))
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        r.name = "x"  # type: ignore[misc]


def test_cross_field_rules(tmp_path):
    p = _write(tmp_path, GOOD + "train: {quantization: 4bit}\n")
    assert recipes.load(p).train.quantization == "4bit"  # QLoRA runs on the trl backend too (bitsandbytes, CPU or GPU)
    merge = "kind: merge\nname: m\nmethod: nuslerp\nbase: embedded:smollm2-135m-instruct\nmodels: [{adapter: a}, {adapter: b}, {adapter: c}]\n"
    with pytest.raises(recipes.RecipeError, match="nuslerp merges exactly two models"):
        recipes.load(_write(tmp_path, merge))
    with pytest.raises(recipes.RecipeError, match="invalid YAML"):
        recipes.load(_write(tmp_path, "kind: [unclosed\n"))
    with pytest.raises(recipes.RecipeError, match="name 'a\\+b'"):
        recipes.load(_write(tmp_path, GOOD.replace("name: t", "name: a+b")))


def test_a_recipe_without_kind_says_which_kinds_exist_and_names_strays(tmp_path):
    p = _write(tmp_path, "name: x\nbase: embedded:smollm2-135m-instruct\ntrian: {max_steps: 3}\n")
    with pytest.raises(recipes.RecipeError) as e:
        recipes.load(p)
    msg = str(e.value)
    assert "field 'kind' is missing: one of adapter, merge, pairs, bench" in msg and "field 'trian'" in msg
    with pytest.raises(recipes.RecipeError, match="field 'kind' is 'adaptor': one of adapter"):
        recipes.load(_write(tmp_path, GOOD.replace("kind: adapter", "kind: adaptor")))
    # an unknown key is named beside another error of the same recipe
    with pytest.raises(recipes.RecipeError) as e:
        recipes.load(_write(tmp_path, GOOD + "trian: {max_steps: 3}\nlora: {r: -1}\n"))
    assert "field 'trian': Extra inputs are not permitted" in str(e.value) and "field 'lora.r'" in str(e.value)


MERGE = "kind: merge\nname: m\nmethod: {method}\nbase: embedded:smollm2-135m-instruct\nmodels: [{{adapter: a, weight: {w0}}}, {{adapter: b, weight: 0.5}}]\n"


@pytest.mark.parametrize(
    "method,w0,extra,error",
    [
        (
            "nuslerp",
            -0.5,
            "",
            "models.0.weight=-0.5: nuslerp interpolates between the models, its weights must be >= 0",
        ),
        ("linear", -0.5, "", "models.0.weight=-0.5: linear interpolates"),
        ("nuslerp", 0.5, "parameters: {lambda: 2}\n", "parameters.lambda is not a nuslerp parameter"),
        (
            "linear",
            0.5,
            "parameters: {nuslerp_flatten: true}\n",
            "parameters.nuslerp_flatten is not a linear parameter",
        ),
        (
            "nuslerp",
            0.5,
            "sweep: {weights: [0.5, 1.5]}\n",
            "field 'sweep.weights.1': Input should be less than or equal to 1",
        ),
        ("nuslerp", float("nan"), "", "models.0.weight must be a finite number"),
        ("nuslerp", -0.5, "", "its weights must be >= 0"),
        ("slerp", 0.5, "", "field 'method': unknown merge method 'slerp'; known: nuslerp, linear, task_arithmetic"),
    ],
)
def test_merge_recipes_refuse_weights_and_parameters_a_method_does_not_define(tmp_path, method, w0, extra, error):
    text = MERGE.format(method=method, w0=".nan" if w0 != w0 else w0) + extra
    with pytest.raises(recipes.RecipeError) as e:
        recipes.load(_write(tmp_path, text))
    assert error in str(e.value)


def test_signed_weights_and_density_where_the_method_defines_them(tmp_path):
    ta = recipes.load(_write(tmp_path, MERGE.format(method="task_arithmetic", w0=-1.0)))  # task negation: defined
    assert ta.models[0].weight == -1.0
    ties = recipes.load(
        _write(tmp_path, MERGE.format(method="ties", w0=1.0).replace("weight: 1.0}", "weight: 1.0, density: 0.5}"))
    )
    assert ties.models[0].density == 0.5
    with pytest.raises(recipes.RecipeError, match="models.0.density: nuslerp does not sparsify"):
        recipes.load(
            _write(
                tmp_path,
                MERGE.format(method="nuslerp", w0=0.5).replace("weight: 0.5}", "weight: 0.5, density: 0.5}", 1),
            )
        )


def test_list_items_can_be_overridden_by_index(tmp_path):
    r = recipes.load(recipes.find("merges", "nuslerp_50_50"), ["models.0.weight=0.3", "models.1.weight=0.7"])
    assert [m.weight for m in r.models] == [0.3, 0.7] and r.models[0].adapter == "absolute"
    with pytest.raises(recipes.RecipeError, match="override key '5': the list has items 0..1"):
        recipes.load(recipes.find("merges", "nuslerp_50_50"), ["models.5.weight=0.3"])


def test_cpu_recipes_fix_their_work_and_precision():
    """Every shipped CPU recipe decides its artifact by steps, data and seed, in float32 (the same adapter on an AVX2
    machine and a bf16-native one); a time cap, where present, is a safety net well above the expected time."""
    for p in recipes.shipped() + recipes.experiments():
        r = recipes.load(p)
        if r.kind != "adapter" or r.backend != "trl":
            continue
        assert (r.train.bf16, r.train.base_dtype) == (False, "float32"), p
        if r.dev is not None:
            assert max(r.dev.steps) <= r.train.max_steps, p


def test_bench_suite_names_are_checked_against_the_suite_definitions():
    """A bench recipe names suites of ``bench.suites.SUITES`` (no second list of names to keep in step)."""
    from judgefactory.bench.suites import SUITES

    ok = recipes.from_dict({"kind": "bench", "name": "b", "suites": [{"name": n} for n in SUITES]})
    assert isinstance(ok, recipes.BenchRecipe) and [s.name for s in ok.suites] == list(SUITES)
    with pytest.raises(
        recipes.RecipeError, match=r"field 'suites\.0\.name': unknown suite; suites are feedback_bench, "
    ):
        recipes.from_dict({"kind": "bench", "name": "b", "suites": [{"name": "nope"}]}, "b.yaml")


def test_a_variant_states_only_what_differs_and_validates_as_the_full_recipe(tmp_path):
    """``extends``: the shipped lr 1e-4 variant resolves to its parent with one field changed, the same validated
    recipe (so the same artifact freshness) as a full copy; mappings merge, lists are replaced, overrides come last."""
    import yaml

    parent = recipes.load(recipes.find("adapters", "pairwise-full-rpo"))
    variant = recipes.load(recipes.find("adapters", "pairwise-full-rpo-lr1e4"))
    assert variant.preference is not None and parent.preference is not None
    assert variant.preference.learning_rate == 1e-4
    full = parent.model_dump(mode="json")
    full["name"] = "pairwise-full-rpo-lr1e4"
    full["preference"]["learning_rate"] = 1e-4
    assert recipes.dump(variant) == recipes.dump(recipes.from_dict(full))
    folder = tmp_path / "adapters"
    folder.mkdir()
    (folder / "base.yaml").write_text(yaml.safe_dump(full))
    (folder / "v.yaml").write_text(
        "extends: base.yaml\nname: v\nlora: {target_modules: [q_proj]}\ntrain: {max_steps: 7}\ndev: {steps: [7]}\n"
    )
    v = recipes.load(folder / "v.yaml", ["train.seed=3"])
    assert v.lora.target_modules == ["q_proj"] and v.lora.r == parent.lora.r  # list replaced, mapping merged
    assert (v.train.max_steps, v.train.seed, v.train.learning_rate) == (7, 3, parent.train.learning_rate)


@pytest.mark.parametrize(
    "text, message",
    [
        ("extends: base.yaml\n", "field 'name' must differ from its parent's"),
        ("extends: base.yaml\nname: pairwise-full-rpo-lr1e4\n", "field 'name' must differ"),
        ("extends: nowhere.yaml\nname: x\n", "recipe file not found"),
        ("extends: v.yaml\nname: x\n", "a cycle"),
        ("extends: 3\nname: x\n", "a recipe name or a relative path"),
    ],
)
def test_a_broken_extends_is_one_line_naming_the_file(tmp_path, text, message):
    import yaml

    full = recipes.load(recipes.find("adapters", "pairwise-full-rpo-lr1e4")).model_dump(mode="json")
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(full))
    (tmp_path / "v.yaml").write_text(text)
    with pytest.raises(recipes.RecipeError, match=message) as e:
        recipes.load(tmp_path / "v.yaml")
    assert str(tmp_path / "v.yaml") in str(e.value) and "\n" not in str(e.value)
