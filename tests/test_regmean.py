"""RegMean (judgefactory/regmean.py): the closed form on layers computed by hand, then ``merge.run`` on a tiny Llama
checked tensor by tensor against the formula recomputed here from forward hooks and PEFT folds."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from conftest import build_tiny_llama, fx_pair_setup, tiny_pairwise_recipe
from test_merge import ALL, folded, make_adapter, merged_tensors

from judgefactory import manifest as mf
from judgefactory import merge, recipes, regmean

T = torch.tensor


def _f64(rows):
    return T(rows, dtype=torch.float64)


# --------------------------------------------------------------------------- the closed form, by hand
def test_two_layers_by_hand():
    """Two tiny models, two linear layers each, Gram matrices fixed.

    l1: diagonal Grams (alpha has no effect): G1 = diag(1, 3), G2 = diag(3, 1), W1 = [[4, 0]], W2 = [[0, 8]];
        column j of W is (g1_j W1_j + g2_j W2_j) / (g1_j + g2_j): [[(4*1 + 0*3)/4, (0*3 + 8*1)/4]] = [[1, 2]].
    l2: G1 = [[2, 1], [1, 2]], G2 = [[2, -1], [-1, 2]], W1 = [[1, 0]], W2 = [[0, 1]];
        alpha 0.5: G~1 = [[2, .5], [.5, 2]], G~2 = [[2, -.5], [-.5, 2]], G~1 + G~2 = 4 I,
        W1 G~1 + W2 G~2 = [[2, .5]] + [[-.5, 2]] = [[1.5, 2.5]] -> W = [[0.375, 0.625]];
        alpha 1: W1 G1 + W2 G2 = [[2, 1]] + [[-1, 2]] = [[1, 3]] -> W = [[0.25, 0.75]].
    norm (no Gram): the fallback, linear [1, 3] -> [2] or task_arithmetic around base [1]: 1 + 0.5*(0 + 2) = 2.
    """
    states = [
        {"l1.weight": _f64([[4, 0]]), "l2.weight": _f64([[1, 0]]), "norm.weight": _f64([1])},
        {"l1.weight": _f64([[0, 8]]), "l2.weight": _f64([[0, 1]]), "norm.weight": _f64([3])},
    ]
    grams = [
        {"l1": _f64([[1, 0], [0, 3]]), "l2": _f64([[2, 1], [1, 2]])},
        {"l1": _f64([[3, 0], [0, 1]]), "l2": _f64([[2, -1], [-1, 2]])},
    ]
    base = {"l1.weight": _f64([[0, 0]]), "l2.weight": _f64([[0, 0]]), "norm.weight": _f64([1])}
    out = regmean.merge_states(states, grams, base, [0.5, 0.5], alpha=0.5, fallback="linear")
    torch.testing.assert_close(out["l1.weight"], T([[1.0, 2.0]]))
    torch.testing.assert_close(out["l2.weight"], T([[0.375, 0.625]]))
    torch.testing.assert_close(out["norm.weight"], T([2.0]))
    assert all(t.dtype == torch.float32 for t in out.values())
    out = regmean.merge_states(states, grams, base, [0.5, 0.5], alpha=1.0, fallback="task_arithmetic")
    torch.testing.assert_close(out["l2.weight"], T([[0.25, 0.75]]))
    torch.testing.assert_close(out["norm.weight"], T([1 + 0.5 * (0 + 2)], dtype=torch.float32))


def test_closed_form_is_the_least_squares_merge():
    """alpha 1: W = (Σ W_i G_i)(Σ G_i)⁻¹ is argmin_W Σ ||X_i Wᵀ - X_i W_iᵀ||² (the stacked least-squares problem),
    for rectangular weights; alpha < 1 is the same formula on G~ = alpha G + (1 - alpha) diag(G)."""
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(40, 5, generator=g, dtype=torch.float64) for _ in range(2)]
    ws = [torch.randn(3, 5, generator=g, dtype=torch.float64) for _ in range(2)]
    grams = [x.T @ x for x in xs]
    got = regmean.merge_linear(ws, grams, alpha=1.0)
    want = torch.linalg.lstsq(torch.cat(xs), torch.cat([x @ w.T for x, w in zip(xs, ws, strict=True)])).solution.T
    torch.testing.assert_close(got, want)
    alpha = 0.9
    reg = [alpha * gm + (1 - alpha) * torch.diag(torch.diagonal(gm)) for gm in grams]
    want = (ws[0] @ reg[0] + ws[1] @ reg[1]) @ torch.linalg.inv(reg[0] + reg[1])
    torch.testing.assert_close(regmean.merge_linear(ws, grams, alpha=alpha), want)
    torch.testing.assert_close(regmean.regularise(grams[0], alpha), reg[0])


def test_identical_grams_with_alpha_one_are_the_plain_average():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64)
    ws = [torch.randn(2, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    gram = x.T @ x
    torch.testing.assert_close(regmean.merge_linear(ws, [gram, gram], alpha=1.0), (ws[0] + ws[1]) / 2)
    weighted = regmean.merge_linear(ws, [gram, gram], alpha=1.0, scales=[0.25, 0.75])
    torch.testing.assert_close(weighted, 0.25 * ws[0] + 0.75 * ws[1])


def test_a_layer_with_zero_inputs_in_one_model_takes_the_other_models_weight():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64)
    ws = [torch.randn(2, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    zero = torch.zeros(4, 4, dtype=torch.float64)
    for alpha in (0.9, 1.0):
        torch.testing.assert_close(regmean.merge_linear(ws, [zero, x.T @ x], alpha=alpha), ws[1])
    # no model's inputs reach a feature: its column is the fallback's (the weighted mean); both zero: all of it
    x[:, 2] = 0
    got = regmean.merge_linear(ws, [zero, x.T @ x], alpha=0.9)
    torch.testing.assert_close(got[:, [0, 1, 3]], ws[1][:, [0, 1, 3]])
    torch.testing.assert_close(got[:, 2], (ws[0][:, 2] + ws[1][:, 2]) / 2)
    torch.testing.assert_close(regmean.merge_linear(ws, [zero, zero]), (ws[0] + ws[1]) / 2)


def test_input_grams_hook_the_linear_inputs():
    lin = torch.nn.Linear(3, 2, bias=False)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 3), lin)

    def forward(input_ids, use_cache):  # the causal-LM call input_grams makes
        return torch.nn.Sequential.forward(model, input_ids)

    model.forward = forward  # type: ignore[method-assign]
    prompts = [[1, 2, 3], [4, 5]]
    got = regmean.input_grams(model, ["1"], prompts)["1"]
    x = model[0](T([1, 2, 3, 4, 5])).detach().double()
    torch.testing.assert_close(got, x.T @ x)
    assert not lin._forward_hooks  # the hooks are removed


# --------------------------------------------------------------------------- recipes
REGMEAN = """kind: merge
name: rm
method: regmean
base: embedded:smollm2-135m-instruct
models:
  - {adapter: absolute, weight: 0.5}
  - {adapter: pairwise, weight: 0.5}
"""


@pytest.mark.parametrize(
    "extra, error",
    [
        ("parameters: {alpha: 1.5}\n", "regmean's alpha is a number in [0, 1]"),
        ("parameters: {alpha: true}\n", "regmean's alpha is a number in [0, 1]"),
        ("parameters: {n_prompts: 2.5}\n", "regmean's n_prompts is a whole number >= 1"),
        ("parameters: {n_prompts: 0}\n", "regmean's n_prompts is a whole number >= 1"),
        ("parameters: {fallback: ties}\n", "parameters.fallback='ties': one of linear, task_arithmetic"),
        ("parameters: {lambda: 1.0}\n", "parameters.lambda is not a regmean parameter"),
    ],
)
def test_regmean_recipes_validate_their_parameters(tmp_path, extra, error):
    path = tmp_path / "r.yaml"
    path.write_text(REGMEAN + extra)
    with pytest.raises(recipes.RecipeError) as e:
        recipes.load(path)
    assert error in str(e.value) and "\n" not in str(e.value)


def test_regmean_recipes_take_adapters_and_defaults(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(REGMEAN)
    r = recipes.load(path)
    assert regmean.settings(r) == {"alpha": 0.9, "n_prompts": 256, "fallback": "linear"}
    path.write_text(REGMEAN + "parameters: {alpha: 0.5, n_prompts: 16, fallback: task_arithmetic}\n")
    assert regmean.settings(recipes.load(path)) == {"alpha": 0.5, "n_prompts": 16, "fallback": "task_arithmetic"}
    path.write_text(REGMEAN.replace("{adapter: pairwise", "{model: org/name"))
    with pytest.raises(recipes.RecipeError, match="models.1: regmean reads each model's training prompts"):
        recipes.load(path)
    path.write_text(REGMEAN.replace("regmean", "linear") + "parameters: {normalize: linear}\n")
    with pytest.raises(recipes.RecipeError, match="linear's parameters are numbers or true/false"):
        recipes.load(path)
    assert recipes.MERGE_METHODS["regmean"]["factory"] and not recipes.MERGE_METHODS["linear"].get("factory")


# --------------------------------------------------------------------------- end to end on a tiny Llama
def _specialist(folder, base, seed, recipe):
    """A random LoRA (test_merge.make_adapter) whose folder carries ``recipe`` as its recipe.yaml."""
    make_adapter(folder, base, seed=seed, modules=ALL)
    (folder / "recipe.yaml").write_text(recipes.dump(recipe))
    m = mf.read(folder)
    assert m is not None
    mf.finalize(folder, {k: v for k, v in m.items() if k not in ("files", "stat")})
    return folder


@pytest.fixture()
def world(tmp_path, monkeypatch):
    base = build_tiny_llama(tmp_path / "base", seed=0)
    fx_pair_setup(base, tmp_path, monkeypatch)  # the fixture pair set both specialists' recipes read
    specs = {
        "rm-a": tiny_pairwise_recipe(base, name="rm-a"),
        "rm-b": tiny_pairwise_recipe(base, name="rm-b", data={"max_response_chars": 40}, train={"max_length": 120}),
    }
    adapters = tmp_path / "adapters"
    for seed, (name, spec) in enumerate(specs.items(), start=1):
        _specialist(adapters / name, base, seed, spec)
    return {"base": base, "adapters": adapters, "merges": tmp_path / "merges", "cache": tmp_path / "cache", **specs}


def _recipe(world, **parameters):
    return recipes.from_dict(
        {
            "kind": "merge",
            "name": "t_regmean",
            "method": "regmean",
            "base": str(world["base"]),
            "models": [{"adapter": "rm-a", "weight": 0.5}, {"adapter": "rm-b", "weight": 0.5}],
            "parameters": parameters,
        }
    )


def _run(world, r, **kw):
    return merge.run(
        r, adapters_dir=world["adapters"], merges_dir=world["merges"], cache_dir=world["cache"], quiet=True, **kw
    )


def _prompt_ids(spec, tok):
    """Every distinct training prompt of an adapter recipe, chat-templated and cut at its max_length (built here)."""
    from judgefactory.train import examples

    rows, _ = examples(spec)
    seen, out = set(), []
    for r in rows:
        text = tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
        if text not in seen:
            seen.add(text)
            out.append(tok(text, add_special_tokens=False)["input_ids"][: spec.train.max_length])
    return out


def _expected(world, alpha):
    """The merge recomputed here: PEFT folds, Gram matrices from this test's own hooks, the closed form by inverse."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(world["base"]))
    folds, grams = [], []
    for name in ("rm-a", "rm-b"):
        state = folded(world["base"], world["adapters"] / name)
        model = AutoModelForCausalLM.from_pretrained(str(world["base"]), dtype=torch.float32)
        model.load_state_dict(state)
        layers = {n: m for n, m in model.named_modules() if n.split(".")[-1] in ALL}
        acc: dict[str, torch.Tensor] = {}
        hooks = [
            m.register_forward_hook(
                lambda _m, args, _o, n=n, acc=acc: acc.__setitem__(
                    n, acc.get(n, 0) + args[0][0].double().T @ args[0][0].double()
                )
            )
            for n, m in layers.items()
        ]
        with torch.no_grad():
            for ids in _prompt_ids(world[name], tok):
                model(input_ids=torch.tensor([ids]))
        for h in hooks:
            h.remove()
        folds.append(state)
        grams.append(acc)
    out = {}
    for key in folds[0]:
        layer = key.removesuffix(".weight")
        if layer in grams[0]:
            reg = [alpha * g[layer] + (1 - alpha) * torch.diag(torch.diagonal(g[layer])) for g in grams]
            lhs = 0.5 * reg[0] + 0.5 * reg[1]
            rhs = 0.5 * folds[0][key].double() @ reg[0] + 0.5 * folds[1][key].double() @ reg[1]
            out[key] = rhs @ torch.linalg.inv(lhs)
        else:
            out[key] = (folds[0][key].double() + folds[1][key].double()) / 2
    return out, len(grams[0])


def test_merge_run_writes_the_regmean_closed_form_and_reruns_only_when_inputs_change(world, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    r = _recipe(world, alpha=0.9, n_prompts=1000)
    out = _run(world, r)
    want, n_layers = _expected(world, 0.9)
    assert n_layers == 2 * len(ALL)
    got = merged_tensors(out)
    assert set(want) - set(got) <= {"lm_head.weight"}  # tied embeddings
    for key, tensor in got.items():
        torch.testing.assert_close(tensor, want[key].float(), atol=1e-4, rtol=1e-4, msg=lambda m, k=key: f"{k}: {m}")
    q = "model.layers.0.self_attn.q_proj.weight"
    fa, fb = (folded(world["base"], world["adapters"] / n)[q] for n in ("rm-a", "rm-b"))
    assert not torch.allclose(got[q], (fa + fb) / 2, atol=1e-3)  # not the plain average

    # a loadable checkpoint with the base's chat template; its manifest names the prompts, parents and settings
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert model(input_ids=torch.tensor([[1, 2, 3]])).logits.isfinite().all()
    assert (
        AutoTokenizer.from_pretrained(str(out)).chat_template
        == AutoTokenizer.from_pretrained(str(world["base"])).chat_template
    )
    m = mf.read(out)
    assert m is not None and m["kind"] == "merge" and m["method"] == "regmean"
    assert [p["name"] for p in m["parents"]] == ["rm-a", "rm-b"] and all(p["files"] for p in m["parents"])
    info = m["regmean"]
    assert info["alpha"] == 0.9 and info["fallback"] == "linear" and len(info["layers"]) == 2 * len(ALL)
    assert [p["prompts"] for p in info["prompts"]] == [
        len(_prompt_ids(world[n], AutoTokenizer.from_pretrained(str(world["base"])))) for n in ("rm-a", "rm-b")
    ]
    assert info["prompts_sha256"] and (out / "trained_on.json").is_file()
    assert recipes.from_dict(yaml.safe_load((out / "recipe.yaml").read_text())) == r
    assert mf.is_fresh(out)

    # the same inputs: skipped as fresh (nothing merged); another alpha: merged again
    def boom(*a, **k):
        raise AssertionError("merged again")

    with monkeypatch.context() as mp:
        mp.setattr(regmean, "merge_states", boom)
        assert _run(world, r) == out
    _run(world, _recipe(world, alpha=0.5, n_prompts=1000))
    assert mf.read(out)["regmean"]["alpha"] == 0.5 and mf.read(out)["inputs_sha256"] != m["inputs_sha256"]
    want5, _ = _expected(world, 0.5)
    torch.testing.assert_close(merged_tensors(out)[q], want5[q].float(), atol=1e-4, rtol=1e-4)


def test_n_prompts_caps_the_prompts_and_changes_the_merge(world):
    out = _run(world, _recipe(world, n_prompts=3))
    info = mf.read(out)["regmean"]
    assert [p["prompts"] for p in info["prompts"]] == [3, 3]
    sha = mf.read(out)["inputs_sha256"]
    _run(world, _recipe(world, n_prompts=4))
    assert mf.read(out)["inputs_sha256"] != sha


def test_a_parent_without_its_recipe_is_one_line(world):
    (world["adapters"] / "rm-b" / "recipe.yaml").write_text("name: rm-b\n")
    with pytest.raises(regmean.RegMeanError) as e:
        _run(world, _recipe(world))
    assert "rm-b" in str(e.value) and "recipe.yaml" in str(e.value) and "\n" not in str(e.value)
    assert not (world["merges"] / "t_regmean").exists()


def test_manifest_records_json_serialisable_settings(world):
    out = _run(world, _recipe(world, n_prompts=2, fallback="task_arithmetic"))
    doc = json.loads((out / mf.MANIFEST).read_text())
    assert doc["regmean"]["fallback"] == "task_arithmetic" and doc["regmean"]["n_prompts"] == 2
