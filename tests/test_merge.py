"""Station 2 (merge.py): the factory's mergekit merges on a tiny Llama, checked tensor by tensor.

The expected tensors are computed here independently: each adapter is folded with PEFT
``merge_and_unload`` in float32 and the merge formula is applied in float64.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import build_tiny_llama
from safetensors.torch import load_file

from judgefactory import manifest as mf
from judgefactory import merge, recipes

ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


# --------------------------------------------------------------------------- helpers
def make_adapter(folder: Path, base: Path, seed: int, modules=ALL, base_name: str | None = None, layers=None) -> Path:
    """A non-zero LoRA (random A and B) in the trainer's layout, with its manifest."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    extra = {"layers_to_transform": layers, "layers_pattern": "layers"} if layers is not None else {}
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=list(modules), init_lora_weights=False, **extra)
    )
    if folder.exists():
        shutil.rmtree(folder)
    peft_model.save_pretrained(str(folder))
    (folder / "recipe.yaml").write_text(f"name: {folder.name}\n")
    (folder / "train_log.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    mf.finalize(
        folder,
        {
            "kind": "adapter",
            "name": folder.name,
            "recipe": {"task": "absolute", "lora": {"r": 4, "alpha": 8, "target_modules": list(modules)}},
            "recipe_sha256": f"seed{seed}",
            "base": {"name": base_name or str(base), "hub_id": None, "license": None},
            "data": [],
        },
    )
    return folder


def folded(base: Path, adapter: Path) -> dict[str, torch.Tensor]:
    """base + adapter folded by PEFT in float32 (the test's own reference, not mergekit's)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def base_state(base: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return {
        k: v.detach().clone()
        for k, v in AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32).state_dict().items()
    }


def nuslerp_ref(t: float, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of the whole tensors (nuslerp_flatten=true), written from the formula.

    Mirrors mergekit/merge_methods/nuslerp.py, ``nuslerp()`` (lines 16-52 in mergekit 0.1.5): the angle comes
    from the *normalised* flattened vectors (norm clamped at 1e-7), the clamped cosine gives
    omega = arccos(cos); the result combines the *raw* (un-normalised) vectors,
    (sin((1-t)omega) a + sin(t omega) b) / sin omega  -- no norm rescaling -- and falls back to the lerp
    (1-t) a + t b when 1 - cos^2 <= eps^2 (eps = 1e-8), i.e. nearly parallel vectors.
    """
    va, vb = a.double().reshape(-1), b.double().reshape(-1)
    ua, ub = va / va.norm().clamp(min=1e-7), vb / vb.norm().clamp(min=1e-7)
    cos = float((ua * ub).sum().clamp(-1, 1))
    if 1 - cos * cos <= 1e-16:
        out = (1 - t) * va + t * vb
    else:
        omega = math.acos(cos)
        out = (math.sin((1 - t) * omega) * va + math.sin(t * omega) * vb) / math.sin(omega)
    return out.reshape(a.shape)


def merged_tensors(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def check_all(folder: Path, expected_fn, names: list[str], atol: float = 1e-5) -> int:
    """Every tensor of the merged checkpoint equals ``expected_fn(name)``; every base tensor is present."""
    got = merged_tensors(folder)
    missing = [n for n in names if n not in got and n != "lm_head.weight"]  # tied embeddings: lm_head not stored
    assert not missing, f"tensors missing from the merge: {missing}"
    for name, tensor in got.items():
        want = expected_fn(name).to(torch.float32)
        assert tensor.dtype == torch.float32, name
        torch.testing.assert_close(tensor, want, atol=atol, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
    return len(got)


def recipe(method: str, base: Path, models: list[dict], **extra) -> recipes.MergeRecipe:
    name = extra.pop("name", f"t_{method}")
    return recipes.from_dict(
        {
            "kind": "merge",
            "name": name,
            "method": method,
            "base": str(base),
            "models": models,
            "dtype": "float32",
            **extra,
        }
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny base and two non-zero adapters with the same target modules."""
    root = tmp_path_factory.mktemp("merge")
    base = build_tiny_llama(root / "base", seed=0)
    adapters = root / "adapters"
    a = make_adapter(adapters / "alpha", base, seed=1)
    b = make_adapter(adapters / "beta", base, seed=2)
    return {
        "root": root,
        "base": base,
        "adapters": adapters,
        "cache": root / "cache",
        "A": folded(base, a),
        "B": folded(base, b),
        "W": base_state(base),
    }


def kw(world, sub: str) -> dict:
    return {
        "adapters_dir": world["adapters"],
        "merges_dir": world["root"] / sub,
        "cache_dir": world["cache"],
        "quiet": True,
    }


# --------------------------------------------------------------------------- 1. NuSLERP
@pytest.mark.parametrize("w1,w2", [(0.5, 0.5), (0.3, 0.7)])
def test_nuslerp_matches_formula_on_every_tensor(world, w1, w2):
    r = recipe(
        "nuslerp",
        world["base"],
        [{"adapter": "alpha", "weight": w1}, {"adapter": "beta", "weight": w2}],
        parameters={"nuslerp_flatten": True, "nuslerp_row_wise": False},
    )
    out = merge.run(r, **kw(world, "nuslerp"))
    t = w2 / (w1 + w2)
    n = check_all(out, lambda k: nuslerp_ref(t, world["A"][k], world["B"][k]), list(world["W"]))
    assert n >= 2 * 9 + 2  # 2 layers x 9 weights + embeddings + final norm
    # the interpolation really moved: a LoRA'd tensor differs from both parents
    q = merged_tensors(out)["model.layers.0.self_attn.q_proj.weight"]
    assert not torch.allclose(q, world["A"]["model.layers.0.self_attn.q_proj.weight"], atol=1e-4)
    assert not torch.allclose(q, world["B"]["model.layers.0.self_attn.q_proj.weight"], atol=1e-4)


def test_nuslerp_task_vector_mode(world):
    r = recipe(
        "nuslerp",
        world["base"],
        [{"adapter": "alpha", "weight": 0.4}, {"adapter": "beta", "weight": 0.6}],
        use_base=True,
    )
    out = merge.run(r, **kw(world, "nuslerp_tv"))
    W, A, B = world["W"], world["A"], world["B"]
    check_all(out, lambda k: W[k].double() + nuslerp_ref(0.6, A[k] - W[k], B[k] - W[k]), list(W))
    assert "base_model" in yaml.safe_load((out / "mergekit_config.yaml").read_text())


# --------------------------------------------------------------------------- 2. linear
def test_linear_matches_weighted_mean(world):
    r = recipe(
        "linear",
        world["base"],
        [{"adapter": "alpha", "weight": 0.25}, {"adapter": "beta", "weight": 1.0}],
        parameters={"normalize": True},
    )
    out = merge.run(r, **kw(world, "linear"))
    A, B = world["A"], world["B"]
    check_all(out, lambda k: (0.25 * A[k].double() + 1.0 * B[k].double()) / 1.25, list(world["W"]))


def test_a_soup_of_three_runs_is_the_base_plus_the_mean_of_their_lora_deltas(world):
    """The premise of recipes/experiments/merges/pairwise_rpo_soup.yaml (D39): equal-weight linear over more than two adapters."""
    c = make_adapter(world["adapters"] / "gamma", world["base"], seed=3)
    C = folded(world["base"], c)
    r = recipe(
        "linear",
        world["base"],
        [{"adapter": n, "weight": 1.0} for n in ("alpha", "beta", "gamma")],
        parameters={"normalize": True},
    )
    out = merge.run(r, **kw(world, "soup"))
    W, A, B = world["W"], world["A"], world["B"]
    check_all(out, lambda k: W[k].double() + ((A[k] - W[k]) + (B[k] - W[k]) + (C[k] - W[k])).double() / 3, list(W))


def test_task_arithmetic_runs_around_the_base(world):
    r = recipe(
        "task_arithmetic", world["base"], [{"adapter": "alpha", "weight": 1.0}, {"adapter": "beta", "weight": 0.5}]
    )
    out = merge.run(r, **kw(world, "ta"))
    W, A, B = world["W"], world["A"], world["B"]
    check_all(out, lambda k: W[k].double() + (A[k] - W[k]).double() + 0.5 * (B[k] - W[k]).double(), list(W), atol=2e-5)


def test_task_arithmetic_with_a_zero_weight_leaves_that_model_out(world):
    """The premise of recipes/experiments/merges/full_pairwise_only_0.7.yaml (D36): weight 0 adds nothing of that task vector."""
    r = recipe(
        "task_arithmetic", world["base"], [{"adapter": "alpha", "weight": 0.0}, {"adapter": "beta", "weight": 0.7}]
    )
    out = merge.run(r, **kw(world, "ta_zero"))
    W, B = world["W"], world["B"]
    check_all(out, lambda k: W[k].double() + 0.7 * (B[k] - W[k]).double(), list(W), atol=2e-5)


@pytest.mark.parametrize("method", ["ties", "dare_linear", "breadcrumbs"])
def test_sparsifying_methods_run_around_the_base_reproducibly(world, method):
    r = recipe(
        method,
        world["base"],
        [{"adapter": "alpha", "weight": 1.0, "density": 0.5}, {"adapter": "beta", "weight": 1.0, "density": 0.5}],
    )
    out = merge.run(r, **kw(world, method))
    cfg = yaml.safe_load((out / "mergekit_config.yaml").read_text())
    assert cfg["base_model"] and [m["parameters"] for m in cfg["models"]] == [{"weight": 1.0, "density": 0.5}] * 2
    first = merged_tensors(out)
    merge.run(r, force=True, **kw(world, method))  # dare drops at random: the fixed seed makes it reproducible
    second = merged_tensors(out)
    W = world["W"]
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(first[key], W[key]) and all(torch.equal(first[k], second[k]) for k in first)
    assert torch.equal(first["model.norm.weight"], W["model.norm.weight"])  # untouched by both LoRAs


# --------------------------------------------------------------------------- 3. retrained adapter, freshness
def test_retrained_adapter_changes_merge_and_unchanged_is_skipped(world, monkeypatch):
    root = world["root"] / "retrain"
    adapters = root / "adapters"
    make_adapter(adapters / "alpha", world["base"], seed=1)
    make_adapter(adapters / "beta", world["base"], seed=2)
    cfg = {"adapters_dir": adapters, "merges_dir": root / "merges", "cache_dir": world["cache"], "quiet": True}
    r = recipe("nuslerp", world["base"], [{"adapter": "alpha", "weight": 0.5}, {"adapter": "beta", "weight": 0.5}])
    out = merge.run(r, **cfg)
    first = merged_tensors(out)
    m1 = mf.read(out)

    # nothing changed -> skipped without calling mergekit
    import mergekit.merge

    def boom(*a, **k):
        raise AssertionError("mergekit called for a fresh merge")

    monkeypatch.setattr(mergekit.merge, "run_merge", boom)
    assert merge.run(r, **cfg) == out
    assert mf.read(out)["created"] == m1["created"]
    monkeypatch.undo()

    # retrain beta at the same path: new weights, new manifest -> new fold, new merge
    b2 = make_adapter(adapters / "beta", world["base"], seed=7)
    out2 = merge.run(r, **cfg)
    assert out2 == out
    m2 = mf.read(out)
    assert m2["inputs_sha256"] != m1["inputs_sha256"]
    second = merged_tensors(out)
    key = "model.layers.1.mlp.down_proj.weight"
    assert not torch.allclose(first[key], second[key])
    B2 = folded(world["base"], b2)
    check_all(out, lambda k: nuslerp_ref(0.5, world["A"][k], B2[k]), list(world["W"]))
    # the LoRA fold cache is keyed by adapter content: the retrained adapter got its own staged copy
    staged = {
        json.loads((d / "manifest.json").read_text())["name"] for d in (world["cache"] / "lora").iterdir() if d.is_dir()
    }
    assert {"alpha", "beta"} <= staged
    assert len([d for d in (world["cache"] / "lora").iterdir() if d.is_dir() and not d.name.startswith(".")]) >= 3


def test_base_is_verified_once_per_process_until_it_changes(world, monkeypatch):
    import os

    from judgefactory import bases

    calls = []
    real = bases.prepare
    monkeypatch.setattr(bases, "prepare", lambda name, **k: (calls.append(name), real(name, **k))[1])
    monkeypatch.setattr(merge, "_PREPARED", {})
    r = recipe("linear", world["base"], [{"adapter": "alpha", "weight": 0.5}, {"adapter": "beta", "weight": 0.5}])
    merge.run(r, **kw(world, "memo"))
    merge.run(r, **kw(world, "memo"))
    assert len(calls) == 1
    cfg = world["base"] / "config.json"
    os.utime(cfg, ns=(cfg.stat().st_atime_ns, cfg.stat().st_mtime_ns + 1000))  # the base folder changed
    merge.run(r, **kw(world, "memo"))
    assert len(calls) == 2


def test_force_remerges(world, monkeypatch):
    r = recipe("linear", world["base"], [{"adapter": "alpha", "weight": 0.5}, {"adapter": "beta", "weight": 0.5}])
    out = merge.run(r, **kw(world, "force"))
    calls = []
    import mergekit.merge

    real = mergekit.merge.run_merge
    monkeypatch.setattr(mergekit.merge, "run_merge", lambda *a, **k: (calls.append(1), real(*a, **k)))
    merge.run(r, force=True, **kw(world, "force"))
    assert calls == [1] and mf.is_fresh(out)


# --------------------------------------------------------------------------- 4. refusals
def test_refuses_different_target_modules(world):
    make_adapter(world["adapters"] / "attn_only", world["base"], seed=3, modules=["q_proj", "v_proj"])
    r = recipe("nuslerp", world["base"], [{"adapter": "alpha"}, {"adapter": "attn_only"}])
    with pytest.raises(merge.MergeError) as e:
        merge.run(r, **kw(world, "refuse"))
    msg = str(e.value)
    assert "'alpha'" in msg and "'attn_only'" in msg and "q_proj" in msg and "down_proj" in msg and "\n" not in msg
    assert not (world["root"] / "refuse" / r.name).exists()


def test_refuses_adapters_on_different_layers(world):
    make_adapter(world["adapters"] / "top_only", world["base"], seed=6, layers=[1])
    r = recipe("nuslerp", world["base"], [{"adapter": "alpha"}, {"adapter": "top_only"}])
    with pytest.raises(
        merge.MergeError, match=r"'alpha' \(layers all\) and 'top_only' \(layers \[1\]\) adapt different decoder layers"
    ):
        merge.run(r, **kw(world, "refuse"))


def test_refuses_adapter_from_another_base(world):
    make_adapter(world["adapters"] / "foreign", world["base"], seed=4, base_name="embedded:gemma3-270m")
    r = recipe("linear", world["base"], [{"adapter": "alpha"}, {"adapter": "foreign"}])
    with pytest.raises(
        merge.MergeError, match=r"adapter 'foreign' was trained on base 'embedded:gemma3-270m'.*other adapters: alpha"
    ):
        merge.run(r, **kw(world, "refuse"))


def test_refuses_adapter_trained_on_another_build_of_the_base(world):
    folder = make_adapter(world["adapters"] / "old_build", world["base"], seed=5)
    m = mf.read(folder)
    mf.finalize(folder, {**m, "base": {**m["base"], "files": {"model.safetensors": "0" * 64}}})
    r = recipe("linear", world["base"], [{"adapter": "alpha"}, {"adapter": "old_build"}])
    with pytest.raises(merge.MergeError, match=r"adapter 'old_build' was trained on another build"):
        merge.run(r, **kw(world, "refuse"))


def test_refuses_the_same_adapter_twice(world):
    r = recipe("nuslerp", world["base"], [{"adapter": "alpha"}, {"adapter": "alpha"}])
    with pytest.raises(merge.MergeError, match=r"'alpha' and 'alpha' are the same adapter"):
        merge.run(r, **kw(world, "refuse"))


def test_refuses_missing_adapter_naming_the_command(world):
    r = recipe("linear", world["base"], [{"adapter": "alpha"}, {"adapter": "pairwise"}])
    with pytest.raises(merge.MergeError, match=r"adapter 'pairwise' not found .*make adapter-pairwise"):
        merge.run(r, **kw(world, "refuse"))


def test_refuses_adapter_edited_after_its_manifest(world, tmp_path):
    adapters = tmp_path / "adapters"
    shutil.copytree(world["adapters"] / "alpha", adapters / "alpha")
    shutil.copytree(world["adapters"] / "beta", adapters / "beta")
    shutil.copy2(adapters / "beta" / "adapter_model.safetensors", adapters / "alpha" / "adapter_model.safetensors")
    r = recipe("linear", world["base"], [{"adapter": "alpha"}, {"adapter": "beta"}])
    with pytest.raises(
        merge.MergeError, match=r"adapter 'alpha': adapter_model.safetensors changed since its manifest"
    ):
        merge.run(r, adapters_dir=adapters, merges_dir=tmp_path / "m", cache_dir=world["cache"], quiet=True)


def test_half_written_folds_are_pruned(tmp_path, world):
    import torch as _t
    from safetensors.torch import save_file

    good, bad = tmp_path / "folds" / "good", tmp_path / "folds" / "bad"
    for d in (good, bad):
        d.mkdir(parents=True)
        (d / "config.json").write_text("{}")
        save_file({"w": _t.zeros(64, 64)}, str(d / "model.safetensors"))
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])  # a crash mid-write
    merge._prune_incomplete_folds(tmp_path / "folds")
    assert good.is_dir() and not bad.exists()


def _two_shard_fold(folder: Path) -> Path:
    import torch as _t
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    save_file({"w1": _t.zeros(4)}, str(folder / "model-00001-of-00002.safetensors"))
    save_file({"w2": _t.ones(4)}, str(folder / "model-00002-of-00002.safetensors"))
    index = {"w1": "model-00001-of-00002.safetensors", "w2": "model-00002-of-00002.safetensors"}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": index}))
    return folder


def test_a_conform_cut_short_leaves_a_fold_that_is_made_again(tmp_path, monkeypatch):
    """Renaming tensors shard by shard, then the index: a crash in between leaves shards whose names the index does
    not hold; the next run must not reuse that fold."""
    import os

    fold = _two_shard_fold(tmp_path / "folds" / "f")
    monkeypatch.setattr(merge, "_renames", lambda folder, files: {"w1": "model.w1", "w2": "model.w2"})
    real = os.replace

    def crash_on_the_second_shard(src, dst):
        if str(dst).endswith("model-00002-of-00002.safetensors"):
            raise KeyboardInterrupt  # the process stops here
        return real(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_the_second_shard)
    with pytest.raises(KeyboardInterrupt):
        merge._conform(fold)
    monkeypatch.setattr(os, "replace", real)
    merge._prune_incomplete_folds(tmp_path / "folds")
    assert not fold.exists()
    # a conform that completes writes the index from the shards: the fold is kept
    fold = _two_shard_fold(tmp_path / "folds" / "f")
    merge._conform(fold)
    doc = json.loads((fold / "model.safetensors.index.json").read_text())
    assert doc["weight_map"] == {
        "model.w1": "model-00001-of-00002.safetensors",
        "model.w2": "model-00002-of-00002.safetensors",
    }
    merge._prune_incomplete_folds(tmp_path / "folds")
    assert fold.is_dir()


def test_an_unexpected_error_keeps_the_fold_and_its_traceback_and_the_next_run_rehashes_it(tmp_path, monkeypatch):
    import safetensors

    fold = _two_shard_fold(tmp_path / "folds" / "f")
    mf.finalize(fold, {"kind": "fold"})  # as a run seals a fold it checked
    real_open = safetensors.safe_open

    def denied(*a, **kw):
        raise PermissionError("permission denied")

    monkeypatch.setattr(safetensors, "safe_open", denied)
    with pytest.raises(PermissionError, match="permission denied"):
        merge._prune_incomplete_folds(tmp_path / "folds")
    assert fold.is_dir() and (fold / merge.REVERIFY).exists()  # kept, and marked for the next run
    monkeypatch.setattr(safetensors, "safe_open", real_open)
    merge._prune_incomplete_folds(tmp_path / "folds")
    assert fold.is_dir() and not (fold / merge.REVERIFY).exists()  # its files hash as sealed: kept
    # marked again, and a shard changed in place (same size, valid header): the hash check drops it
    (fold / merge.REVERIFY).touch()
    shard = fold / "model-00002-of-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0x01
    shard.write_bytes(bytes(data))
    merge._prune_incomplete_folds(tmp_path / "folds")
    assert not fold.exists()


def test_refuses_unknown_model_entry(world):
    r = recipe("linear", world["base"], [{"adapter": "alpha"}, {"model": "not-a-folder"}])
    with pytest.raises(
        merge.MergeError, match=r"model 'not-a-folder' is neither an existing checkpoint folder nor a hub id"
    ):
        merge.run(r, **kw(world, "refuse"))


# --------------------------------------------------------------------------- 5. '+' and '@' in paths
def test_plus_and_at_in_paths_merge(world, tmp_path):
    odd = tmp_path / "odd+dir@v1"
    base = odd / "base+x"
    shutil.copytree(world["base"], base)
    adapters = odd / "ad+apters"
    for n in ("alpha", "beta"):
        shutil.copytree(world["adapters"] / n, adapters / n)
        m = mf.read(adapters / n)
        mf.finalize(adapters / n, {**m, "base": {**m["base"], "name": str(base)}})
    r = recipe("nuslerp", base, [{"adapter": "alpha", "weight": 0.3}, {"adapter": "beta", "weight": 0.7}])
    out = merge.run(r, adapters_dir=adapters, merges_dir=odd / "merges", cache_dir=world["cache"], quiet=True)
    check_all(out, lambda k: nuslerp_ref(0.7, world["A"][k], world["B"][k]), list(world["W"]))
    cfg = yaml.safe_load((out / "mergekit_config.yaml").read_text())
    for m in cfg["models"]:
        base_ref, adapter_ref = m["model"].split("+")
        assert "@" not in m["model"] and Path(base_ref).is_absolute() and Path(adapter_ref).is_absolute()


# --------------------------------------------------------------------------- 6. the output folder
def test_output_loads_with_chat_template_manifest_and_config(world):
    from mergekit.config import MergeConfiguration
    from transformers import AutoModelForCausalLM, AutoTokenizer

    r = recipe("nuslerp", world["base"], [{"adapter": "alpha", "weight": 0.5}, {"adapter": "beta", "weight": 0.5}])
    out = merge.run(r, **kw(world, "nuslerp"))
    model = AutoModelForCausalLM.from_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(str(out))
    base_tok = AutoTokenizer.from_pretrained(str(world["base"]))
    assert tok.chat_template and tok.chat_template == base_tok.chat_template
    assert tok.get_vocab() == base_tok.get_vocab()
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "the answer"}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert model(ids).logits.shape[-1] == model.config.vocab_size

    m = mf.read(out)
    assert m["kind"] == "merge" and m["method"] == "nuslerp" and m["weights"] == [0.5, 0.5] and m["name"] == r.name
    assert [p["name"] for p in m["parents"]] == ["alpha", "beta"]
    assert m["parents"][0]["manifest"] == mf.read(world["adapters"] / "alpha")
    assert m["base"]["name"] == str(world["base"]) and m["recipe_sha256"] == mf.sha256_text(recipes.dump(r))
    assert mf.is_fresh(out) and "model.safetensors" in m["files"]
    text = (out / "mergekit_config.yaml").read_text()
    config = MergeConfiguration.model_validate(yaml.safe_load(text))
    assert (
        config.merge_method == "nuslerp"
        and config.dtype == "float32"
        and config.chat_template == base_tok.chat_template
    )
    assert yaml.safe_load(text) == m["mergekit_config"]
    assert m["mergekit_options"]["lora_merge_dtype"] == "float32" and m["mergekit_options"]["write_model_card"] is False
    assert recipes.from_dict(yaml.safe_load((out / "recipe.yaml").read_text())) == r
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))  # atomic: no leftovers
    folds = [d for d in (world["cache"] / "folds" / merge.FOLD_DTYPE).iterdir() if d.is_dir()]
    assert folds and all(mf.read(d)["kind"] == "fold" and mf.is_fresh(d) for d in folds)  # sealed: re-verifiable


def test_sweep_writes_one_folder_per_point(world):
    r = recipe(
        "nuslerp", world["base"], [{"adapter": "alpha"}, {"adapter": "beta"}], name="sw", sweep={"weights": [0.3, 0.8]}
    )
    outs = merge.run_sweep(r, **kw(world, "sweep"))
    assert [o.name for o in outs] == ["sw-w0.30", "sw-w0.80"]
    assert mf.read(outs[1])["weights"] == [0.8, 0.2]
    check_all(outs[0], lambda k: nuslerp_ref(0.7, world["A"][k], world["B"][k]), list(world["W"]))


# --------------------------------------------------------------------------- 7. full fine-tunes as inputs
def test_full_checkpoints_merge_linear(world, tmp_path):
    from transformers import AutoModelForCausalLM

    ckpts = []
    for n, seed in (("ft_a", 11), ("ft_b", 12)):
        p = build_tiny_llama(tmp_path / n, seed=seed)  # same architecture and tokenizer, other weights
        ckpts.append(p)
    r = recipe(
        "linear", world["base"], [{"model": str(ckpts[0]), "weight": 0.6}, {"model": str(ckpts[1]), "weight": 0.4}]
    )
    out = merge.run(r, **kw(world, "ft"))
    A, B = base_state(ckpts[0]), base_state(ckpts[1])
    check_all(out, lambda k: 0.6 * A[k].double() + 0.4 * B[k].double(), list(A))
    m = mf.read(out)
    assert [p["kind"] for p in m["parents"]] == ["checkpoint", "checkpoint"] and m["parents"][0]["location"] == str(
        ckpts[0]
    )
    AutoModelForCausalLM.from_pretrained(str(out))


# --------------------------------------------------------------------------- CLI
def test_cli_merge_and_sweep_parse(world, tmp_path, capsys):
    import argparse

    from judgefactory.cli import merge as merge_cli

    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    merge_cli.add_parser(sub)
    rec = tmp_path / "r.yaml"
    rec.write_text(
        yaml.safe_dump(
            {
                "kind": "merge",
                "name": "cli",
                "method": "linear",
                "base": str(world["base"]),
                "models": [{"adapter": "alpha"}, {"adapter": "beta"}],
            }
        )
    )
    args = p.parse_args(["merge", str(rec), "--set", "dtype=float32", "--cuda"])
    assert args.cuda and args.set == ["dtype=float32"] and args.command == "merge" and not args.force
    args = p.parse_args(
        [
            "merge",
            str(rec),
            "--adapters-dir",
            str(world["adapters"]),
            "--merges-dir",
            str(tmp_path / "m"),
            "--cache-dir",
            str(world["cache"]),
        ]
    )
    args.func(args)
    printed = capsys.readouterr().out
    assert str(tmp_path / "m" / "cli") in printed and mf.read(tmp_path / "m" / "cli")["weights"] == [0.5, 0.5]
    args = p.parse_args(["sweep", str(rec)])
    assert args.command == "sweep"


# --------------------------------------------------------------------------- dev/task_vectors.py (D35)
def _task_vectors_script():
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "dev" / "task_vectors.py"
    spec = importlib.util.spec_from_file_location("task_vectors", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_task_vectors_are_peft_deltas_and_projections_match_the_nuslerp_merge(world):
    """The analysis behind D35 reads the adapters' own LoRA factors: its dW equals what PEFT folds in, and the share of
    each task vector it says a NuSLERP merge keeps is the share the merged checkpoint mergekit wrote carries."""
    tv = _task_vectors_script()
    W, A = world["W"], world["A"]
    va = tv.task_vectors(world["adapters"] / "alpha")
    vb = tv.task_vectors(world["adapters"] / "beta")
    assert len(va) == 2 * 7  # 2 layers x 7 target modules
    for m, v in va.items():
        torch.testing.assert_close(v.float(), (A[m + ".weight"] - W[m + ".weight"]).reshape(-1), atol=1e-5, rtol=1e-4)
    out = merge.run(
        recipe(
            "nuslerp",
            world["base"],
            [{"adapter": "alpha", "weight": 0.7}, {"adapter": "beta", "weight": 0.3}],
            use_base=True,
        ),
        **kw(world, "nuslerp_tv_projection"),
    )
    got = merged_tensors(out)
    num_a = num_b = 0.0
    for m in va:
        d = (got[m + ".weight"].double() - W[m + ".weight"].double()).reshape(-1)
        num_a += float(d @ va[m])
        num_b += float(d @ vb[m])
    kept_a, kept_b = tv.projections(0.7, va, vb)
    assert kept_a == pytest.approx(num_a / sum(float(v @ v) for v in va.values()), rel=1e-4)
    assert kept_b == pytest.approx(num_b / sum(float(v @ v) for v in vb.values()), rel=1e-4)


def test_nuslerp_keeps_sine_and_cosine_of_orthogonal_task_vectors():
    """Hand-computed: for orthogonal task vectors mergekit's NuSLERP (no renormalisation) keeps sin(w pi/2) of the
    first and cos(w pi/2) of the second: at w = 0.65, 0.852 and 0.522."""
    tv = _task_vectors_script()
    va = {"m": torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64)}
    vb = {"m": torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64)}
    kept_a, kept_b = tv.projections(0.65, va, vb)
    assert kept_a == pytest.approx(0.8526, abs=1e-4)
    assert kept_b == pytest.approx(0.5225, abs=1e-4)
