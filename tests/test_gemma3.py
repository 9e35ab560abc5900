"""The Gemma 3 multimodal plumbing on a CPU stand-in (D24): a tiny random ``Gemma3ForConditionalGeneration``
(the layout google/gemma-3-4b-it loads as) goes through train (trl backend) -> quick check -> mergekit merge -> judge.

What it guards: the layer count read from the text config, LoRA kept out of the vision tower (which has the same
projection names), and checkpoints conformed to the tensor names mergekit's ``gemma3vl`` definition reads
(transformers 5.17 saves the vision tower as ``vision_tower.*``, mergekit 0.1.5 reads ``vision_tower.vision_model.*``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from conftest import PKG_MIRROR, build_tiny_gemma3, fx_pair_setup, tiny_pairwise_recipe
from safetensors import safe_open

from judgefactory import merge, recipes, train

FIX_MIRROR = Path(__file__).parent / "fixtures" / "mirror"
QUICK = {"source": "judge-from-scratch/bbq-pairs", "file": "eval_in_dist", "limit": 4}


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in folder.glob("*.safetensors"):
        with safe_open(str(f), "pt") as h:
            out.update({k: h.get_tensor(k) for k in h.keys()})  # noqa: SIM118 - safe_open is not a mapping
    return out


def test_tiny_multimodal_gemma3_trains_merges_and_judges(tmp_path, monkeypatch):
    from judgefactory.engine import Engine

    monkeypatch.setenv("JUDGEFACTORY_CACHE", str(tmp_path / "cache"))
    base = build_tiny_gemma3(tmp_path / "tiny-gemma3")
    pairwise = fx_pair_setup(base, tmp_path, monkeypatch, name="g3-pairwise", quick_eval=QUICK)
    absolute = tiny_pairwise_recipe(
        base,
        name="g3-absolute",
        task="absolute",
        data={"source": "prometheus-eval/Feedback-Collection", "max_response_chars": 200},
        train={"max_steps": 4},
    )
    adapters = tmp_path / "adapters"
    pw = train.run(pairwise, adapters_dir=adapters, mirror=PKG_MIRROR)
    ab = train.run(absolute, adapters_dir=adapters, mirror=FIX_MIRROR, quick_eval=False)
    m = json.loads((pw / "manifest.json").read_text())
    assert m["training"]["completed"] and m["training"]["loss_last"] < m["training"]["loss_first"], m["training"]
    assert m["quick_eval"]["adapter"]["n"] > 0 and "failed" not in m["quick_eval"]  # the check ran on the adapter
    for folder in (pw, ab):
        names = list(_tensors(folder))
        assert names and all(".language_model.layers." in n for n in names), names[:3]  # no vision-tower LoRA

    recipe = recipes.from_dict(
        {
            "kind": "merge",
            "name": "g3-nuslerp",
            "method": "nuslerp",
            "base": str(base),
            "models": [{"adapter": "g3-absolute", "weight": 0.5}, {"adapter": "g3-pairwise", "weight": 0.5}],
            "use_base": True,
            "dtype": "float32",
        }
    )
    out = merge.run(recipe, adapters_dir=adapters, merges_dir=tmp_path / "merges", quiet=True)
    assert json.loads((out / "config.json").read_text())["architectures"] == ["Gemma3ForConditionalGeneration"]
    merged, original = _tensors(out), _tensors(base)
    vision = [k for k in merged if k.startswith("vision_tower.vision_model.")]  # mergekit's layout, written back
    assert vision and all(torch.equal(merged[k], original[k.replace("vision_model.", "", 1)]) for k in vision)
    q = "language_model.model.layers.1.self_attn.q_proj.weight"
    o = "language_model.model.layers.1.self_attn.o_proj.weight"
    assert not torch.equal(merged[q], original[q]) and torch.equal(merged[o], original[o])  # only LoRA'd tensors moved

    judge = Engine.from_ref(str(out), batch_size=2)
    verdicts = judge.judge([[{"role": "user", "content": "a b the verdict"}]] * 2, max_new_tokens=4, answer="verdict")
    assert len(verdicts) == 2 and all(len(v.texts) == 1 for v in verdicts)


def test_a_base_mergekit_cannot_read_is_refused_before_any_fold(tmp_path):
    """mergekit 0.1.5 has no definition for Gemma 4 (google/gemma-4-E4B-it): the merge stops with one line naming it
    before folding anything, instead of failing inside mergekit after minutes of folding."""
    import pytest
    from transformers import Gemma4Config

    from judgefactory.merge import MergeError, _conformed_base

    config = Gemma4Config()
    config.architectures = ["Gemma4ForConditionalGeneration"]
    config.save_pretrained(tmp_path / "gemma4")
    with pytest.raises(
        MergeError, match="mergekit .* has no architecture definition for Gemma4ForConditionalGeneration"
    ):
        _conformed_base(str(tmp_path / "gemma4"), tmp_path / "cache")


def test_qlora_on_cpu_trains_checks_unfolded_and_folded_and_merges(tmp_path, monkeypatch):
    """bitsandbytes 0.50 quantises to NF4 on a CPU, so the QLoRA path runs here: a tiny 4-bit base trains a LoRA
    (trl backend), the quick check judges it unfolded on the 4-bit base (base = adapter disabled) and folded into the
    full-precision base (what a merge receives) with their agreement, and mergekit folds it like any other adapter."""
    import pytest

    pytest.importorskip("bitsandbytes")
    from conftest import build_tiny_llama

    monkeypatch.setenv("JUDGEFACTORY_CACHE", str(tmp_path / "cache"))
    # bitsandbytes' CPU inference kernel repacks NF4 weights in blocks of 64 input features: a 32-wide layer fails there
    # (``shape '[32, 0]' is invalid``), so this tiny model is 64 wide
    base = build_tiny_llama(tmp_path / "tiny-llama", hidden_size=64)
    recipe = fx_pair_setup(
        base, tmp_path, monkeypatch, name="q-pairwise", train={"quantization": "4bit"}, quick_eval=QUICK
    )
    adapters = tmp_path / "adapters"
    out = train.run(recipe, adapters_dir=adapters, mirror=PKG_MIRROR)
    m = json.loads((out / "manifest.json").read_text())
    assert m["training"]["completed"] and m["training"]["loss_last"] < m["training"]["loss_first"], m["training"]
    qe = m["quick_eval"]
    assert {"base", "adapter", "folded"} <= set(qe) and 0.0 <= qe["folded_agreement"] <= 1.0
    assert len(qe["adapter"]["values"]) == len(qe["folded"]["values"]) == 2 * qe["adapter"]["n"]
    other = train.run(
        tiny_pairwise_recipe(base, name="q-other", train={"quantization": "4bit", "seed": 7}),
        adapters_dir=adapters,
        mirror=PKG_MIRROR,
    )
    recipe = recipes.from_dict(
        {
            "kind": "merge",
            "name": "q-merge",
            "method": "nuslerp",
            "base": str(base),
            "models": [{"adapter": "q-pairwise", "weight": 0.5}, {"adapter": other.name, "weight": 0.5}],
            "use_base": True,
            "dtype": "float32",
        }
    )
    merged = merge.run(recipe, adapters_dir=adapters, merges_dir=tmp_path / "merges", quiet=True)
    q = "model.layers.1.self_attn.q_proj.weight"
    assert not torch.equal(_tensors(merged)[q], _tensors(base)[q])
