"""RegMean: merge specialists layer by layer from the inputs each one saw in training, with no labels.

Jin, Ren, Preotiuc-Pietro and Cheng, "Dataless Knowledge Fusion by Merging Weights of Language Models", ICLR 2023
(https://arxiv.org/abs/2212.09849). For a linear layer that model i computes as ``x W_iᵀ`` on its inputs ``X_i``,
the weight closest to every model's outputs on its own inputs, argmin_W Σ_i ||X_i Wᵀ - X_i W_iᵀ||², is

    W = (Σ_i W_i G_i) (Σ_i G_i)⁻¹,    G_i = X_iᵀ X_i  (the Gram matrix of the layer's inputs),

with W of shape (out, in). RegMean's ridge term keeps a share ``alpha`` of each Gram matrix's off-diagonal:
``G̃ = alpha·G + (1 - alpha)·diag(G)`` (alpha 0.9 in the paper; 1 is the plain regression, 0 a per-input-feature
weighted average). The factory's form scales each model's Gram matrices by its recipe weight (equal weights: the
paper's formula, which is invariant to a common scale), so a sweep moves between the specialists.

Here ``X_i`` is collected by forward hooks on the LoRA target layers (``nn.Linear``) of specialist i's folded model
(base + its LoRA, PEFT ``merge_and_unload`` in float32) while it reads up to ``n_prompts`` of its own training prompts
(``train.examples`` of the adapter's recipe, distinct prompts, a seeded sample; rendered with the chat template and
cut at the recipe's ``train.max_length`` tokens), one prompt per forward pass (no padding enters a Gram matrix).
Input features no model's inputs ever reach (a zero diagonal) leave the objective blind to their weight columns:
those columns take the fallback's value. Every other tensor (embeddings, norms, biases, layers no LoRA adapted) is
the ``fallback`` merge of the folded models: ``linear`` (their weighted mean) or ``task_arithmetic`` (the base plus
the weighted sum of their task vectors).

``run`` is called by ``merge.run`` once the base and the adapters are resolved and checked; it writes the same folder
as a mergekit merge (checkpoint, tokenizer, ``recipe.yaml``, ``trained_on.json``, ``manifest.json``, atomically),
fresh when the recipe, weights, base, parents' files and the prompts' token ids are those it was built from.
"""

from __future__ import annotations

import copy
import json
import logging
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from . import bases, leakage
from . import manifest as mf
from .errors import JudgeFactoryError
from .recipes import MERGE_METHODS, AdapterRecipe, MergeRecipe, dump

log = logging.getLogger(__name__)

ALGORITHM = "regmean-1"
"""bumped when the arithmetic changes: part of every RegMean merge's freshness key."""
FOLD_DTYPE = "float32"


class RegMeanError(JudgeFactoryError):
    """A RegMean merge cannot run as asked; the message is one line saying what to change."""


class Parent(Protocol):
    """One resolved recipe model (``merge._Input``): what RegMean reads of it."""

    name: str
    kind: str
    location: str
    files: dict[str, str]
    manifest: dict[str, Any] | None


def settings(recipe: MergeRecipe) -> dict[str, Any]:
    """``alpha``, ``n_prompts`` and ``fallback`` of a RegMean recipe, defaults filled in (``MERGE_METHODS``)."""
    s = {**MERGE_METHODS["regmean"]["defaults"], **recipe.parameters}
    return {"alpha": float(s["alpha"]), "n_prompts": int(s["n_prompts"]), "fallback": str(s["fallback"])}


# --------------------------------------------------------------------------- the arithmetic
def regularise(gram: Any, alpha: float) -> Any:
    """RegMean's ridge term: ``alpha·G + (1 - alpha)·diag(G)`` (the off-diagonal scaled by ``alpha``)."""
    import torch

    return alpha * gram + (1.0 - alpha) * torch.diag(torch.diagonal(gram))


def fallback_tensor(tensors: Sequence[Any], scales: Sequence[float], method: str, base: Any = None) -> Any:
    """The fallback merge of one tensor, in float64: ``linear`` Σ s_i T_i / Σ s_i; ``task_arithmetic``
    base + Σ s_i (T_i - base)."""
    if method == "linear":
        return sum(s * t.double() for s, t in zip(scales, tensors, strict=True)) / float(sum(scales))
    if method == "task_arithmetic":
        if base is None:
            raise RegMeanError("fallback task_arithmetic needs the base tensor")
        return base.double() + sum(s * (t.double() - base.double()) for s, t in zip(scales, tensors, strict=True))
    raise RegMeanError(
        f"unknown RegMean fallback {method!r}: one of {', '.join(MERGE_METHODS['regmean']['fallbacks'])}"
    )


def merge_linear(
    weights: Sequence[Any],
    grams: Sequence[Any],
    alpha: float = 0.9,
    scales: Sequence[float] | None = None,
    fallback: Any = None,
) -> Any:
    """RegMean of one linear layer: ``W = (Σ s_i W_i G̃_i)(Σ s_i G̃_i)⁻¹`` for weights W_i (out, in) and input Gram
    matrices G_i (in, in), solved (never inverted) in float64 as ``(Σ s_i G̃_i) Wᵀ = Σ s_i G̃_i W_iᵀ``. Columns of
    input features with a zero diagonal in Σ s_i G̃_i (no model's inputs reach them) take ``fallback``'s columns (by
    default the weighted mean of the W_i). Returns float64."""
    import torch

    scales = list(scales) if scales is not None else [1.0] * len(weights)
    reg = [s * regularise(g.double(), alpha) for s, g in zip(scales, grams, strict=True)]
    lhs = sum(reg)
    rhs = sum(r @ w.double().T for r, w in zip(reg, weights, strict=True))
    out = (fallback if fallback is not None else fallback_tensor(weights, scales, "linear")).double().clone()
    active = torch.diagonal(lhs) > 0
    if not bool(active.any()):
        return out
    a = lhs[active][:, active]
    b = rhs[active]
    try:
        solved = torch.linalg.solve(a, b)
    except torch.linalg.LinAlgError:  # a singular system (alpha 1 on rank-deficient inputs): the least-squares one
        solved = torch.linalg.lstsq(a, b).solution
    out[:, active] = solved.T
    return out


# --------------------------------------------------------------------------- the specialists' inputs
def adapter_recipe(parent: Parent) -> AdapterRecipe:
    """The adapter's own recipe (``recipe.yaml`` in its folder), whose training rows give its prompts."""
    from . import recipes

    path = Path(parent.location) / "recipe.yaml"
    try:
        r = recipes.load(path)
    except recipes.RecipeError as err:
        raise RegMeanError(
            f"adapter {parent.name!r}: RegMean reads its training prompts from its recipe.yaml: {err}"
        ) from None
    if not isinstance(r, AdapterRecipe):
        raise RegMeanError(f"adapter {parent.name!r}: {path} is a {r.kind} recipe, not the adapter's")
    return r


def training_prompts(recipe: AdapterRecipe, tok: Any, n: int, mirror: Any = None) -> list[list[int]]:
    """Token ids of up to ``n`` distinct training prompts of ``recipe`` (a sample seeded by its ``train.seed``, in
    training-row order), each chat-templated with the generation prompt and cut at ``train.max_length`` tokens."""
    from .generate import render
    from .train import examples

    rows, _ = examples(recipe, mirror)
    distinct: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        distinct.setdefault(json.dumps(r["prompt"], sort_keys=True), r["prompt"])
    messages = list(distinct.values())
    if len(messages) > n:
        keep = sorted(random.Random(recipe.train.seed).sample(range(len(messages)), n))
        messages = [messages[i] for i in keep]
    limit = recipe.train.max_length
    return [tok(render(tok, m), add_special_tokens=False)["input_ids"][:limit] for m in messages]


def lora_targets(peft_model: Any) -> list[str]:
    """Names (in the folded model) of the ``nn.Linear`` layers a PEFT model's LoRA adapts."""
    from peft.tuners.lora import LoraLayer

    prefix = "base_model.model."
    return sorted(n.removeprefix(prefix) for n, m in peft_model.named_modules() if isinstance(m, LoraLayer))


def input_grams(model: Any, modules: Sequence[str], prompts: Sequence[Sequence[int]]) -> dict[str, Any]:
    """``XᵀX`` (float64) of the inputs of each ``nn.Linear`` named in ``modules`` over every token of ``prompts``,
    one forward pass per prompt, by forward hooks (removed afterwards)."""
    import torch

    named = dict(model.named_modules())
    grams: dict[str, Any] = {}

    def hook(name: str) -> Any:
        def record(_module: Any, args: tuple[Any, ...], _output: Any) -> None:
            x = args[0].detach()
            x = x.reshape(-1, x.shape[-1])
            g = (x.T @ x).double()
            grams[name] = g if name not in grams else grams[name].add_(g)

        return record

    handles = []
    for name in modules:
        layer = named.get(name)
        if not isinstance(layer, torch.nn.Linear):
            raise RegMeanError(f"{name}: RegMean merges nn.Linear layers, the model has {type(layer).__name__} there")
        handles.append(layer.register_forward_hook(hook(name)))
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for ids in prompts:
                model(input_ids=torch.tensor([list(ids)], device=device), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    for name in modules:  # a layer no prompt reached (no prompts at all): no constraint, the fallback decides
        if name not in grams:
            n_in = named[name].in_features
            grams[name] = torch.zeros(n_in, n_in, dtype=torch.float64, device=device)
    return grams


# --------------------------------------------------------------------------- the merge
def merge_states(
    states: Sequence[Mapping[str, Any]],
    grams: Sequence[Mapping[str, Any]],
    base: Mapping[str, Any],
    scales: Sequence[float],
    alpha: float,
    fallback: str,
) -> dict[str, Any]:
    """Every tensor of the merged model (float32, on the CPU): ``<layer>.weight`` of each layer with Gram matrices by
    ``merge_linear``, everything else by ``fallback``."""
    import torch

    targets = {f"{layer}.weight" for layer in grams[0]}
    out = {}
    for name, b in base.items():
        tensors = [s[name].cpu() for s in states]
        fb = fallback_tensor(tensors, scales, fallback, b.cpu())
        if name in targets:
            layer = name.removesuffix(".weight")
            merged = merge_linear(tensors, [g[layer].cpu() for g in grams], alpha, scales, fallback=fb)
        else:
            merged = fb
        out[name] = merged.to(torch.float32)
    return out


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        log.info("%s", msg)


def run(
    recipe: MergeRecipe,
    parents: Sequence[Parent],
    *,
    out: Path,
    base_path: Path | str,
    base_key: str,
    weights: Sequence[float],
    cuda: bool = False,
    force: bool = False,
    quiet: bool = False,
    mirror: Any = None,
) -> Path:
    """RegMean-merge the resolved, checked ``parents`` (adapters on ``base_path``) into ``out`` and return it; skipped
    when ``out``'s manifest has the same inputs and its files still hash as recorded, unless ``force``. ``cuda``: the
    forward passes and Gram matrices on the GPU."""
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    s = settings(recipe)
    if any(p.kind != "adapter" for p in parents):
        raise RegMeanError(f"{recipe.name}: RegMean merges adapters (their training prompts come from their recipes)")
    tok = AutoTokenizer.from_pretrained(str(base_path), trust_remote_code=False)

    # 1. each specialist's own training prompts; their token ids are part of the freshness key
    _say(f"[1/4] {recipe.name}: up to {s['n_prompts']} training prompts of each of {len(parents)} adapters", quiet)
    prompts = [training_prompts(adapter_recipe(p), tok, s["n_prompts"], mirror) for p in parents]
    prompt_info = [
        {"name": p.name, "prompts": len(ids), "tokens": sum(map(len, ids)), "sha256": mf.sha256_json(ids)}
        for p, ids in zip(parents, prompts, strict=True)
    ]
    prompts_sha256 = mf.sha256_json([i["sha256"] for i in prompt_info])
    inputs_sha256 = mf.sha256_json(
        {
            "recipe": dump(recipe),
            "weights": list(weights),
            "base": {"name": recipe.base, "key": base_key},
            "parents": [{"name": p.name, "kind": p.kind, "files": p.files} for p in parents],
            "prompts_sha256": prompts_sha256,
            "fold_dtype": FOLD_DTYPE,
            "algorithm": ALGORITHM,
        }
    )
    if not force and mf.is_fresh(out, inputs_sha256):
        _say(f"fresh, skipped: {out}", quiet)
        return out
    if any(not ids for ids in prompts):
        empty = [p.name for p, ids in zip(parents, prompts, strict=True) if not ids]
        raise RegMeanError(f"{recipe.name}: adapter {empty[0]!r} has no training prompts to collect its inputs from")

    # 2. fold each adapter into its own float32 copy of the base; Gram matrices of its LoRA targets' inputs
    device = "cuda" if cuda and torch.cuda.is_available() else "cpu"
    base_model, _ = bases.load(base_path, FOLD_DTYPE)
    base_model.eval()
    states, grams, targets = [], [], None
    for p, ids in zip(parents, prompts, strict=True):
        _say(f"[2/4] {p.name}: fold, then the inputs of its LoRA layers on {len(ids)} prompts ({device})", quiet)
        peft_model = PeftModel.from_pretrained(copy.deepcopy(base_model), p.location)
        mods = lora_targets(peft_model)
        if targets is not None and mods != targets:
            raise RegMeanError(f"adapter {p.name!r} adapts other layers than {parents[0].name!r}: retrain them alike")
        targets = mods
        folded = peft_model.merge_and_unload().eval().to(device)
        grams.append(input_grams(folded, mods, ids))
        states.append({k: v.detach().cpu() for k, v in folded.state_dict().items()})
        del folded, peft_model

    # 3. the merge, written beside the output and renamed into place when complete
    _say(f"[3/4] RegMean alpha={s['alpha']} over {len(targets or [])} layers, fallback {s['fallback']}", quiet)
    merged = merge_states(states, grams, base_model.state_dict(), list(weights), s["alpha"], s["fallback"])
    del states, grams
    base_model.load_state_dict(merged)
    model = base_model.to(getattr(torch, recipe.dtype))
    with mf.atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if tok.chat_template and AutoTokenizer.from_pretrained(str(tmp)).chat_template != tok.chat_template:
            raise RegMeanError(f"merged tokenizer in {out} lost the base chat template: not written")
        mf.write_text(tmp / "recipe.yaml", dump(recipe))
        # copied, not looked up later: the merge stays bound to the parents it was built from, even moved alone
        leakage.write(tmp, leakage.merged([Path(p.location) for p in parents], f"merge {out.name}"))
        _say("[4/4] hashing files into manifest.json", quiet)
        mf.finalize(
            tmp,
            {
                "kind": "merge",
                "name": out.name,
                "recipe": recipe.model_dump(mode="json"),
                "recipe_sha256": mf.sha256_text(dump(recipe)),
                "inputs_sha256": inputs_sha256,
                "base": bases.manifest_entry(recipe.base, key=base_key),
                "weights": list(weights),
                "method": recipe.method,
                "parents": [
                    {"name": p.name, "kind": p.kind, "location": p.location, "files": p.files, "manifest": p.manifest}
                    for p in parents
                ],
                "regmean": {
                    **s,
                    "algorithm": ALGORITHM,
                    "layers": targets,
                    "prompts": prompt_info,
                    "prompts_sha256": prompts_sha256,
                    "device": device,
                },
            },
        )
    return out


__all__ = [
    "RegMeanError",
    "run",
    "settings",
    "regularise",
    "merge_linear",
    "fallback_tensor",
    "merge_states",
    "input_grams",
    "lora_targets",
    "training_prompts",
]
