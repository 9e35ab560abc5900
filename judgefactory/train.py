"""Station 1: one supervised fine-tuning path for both judge specialists (TRL SFTTrainer + PEFT LoRA).

``run(recipe) -> adapters/<name>/`` reads top to bottom: build the examples (absolute: Prometheus rows;
pairwise: a built BBQ pair set), load the base, train with completion-only loss, save the adapter with
its recipe, loss log and manifest, then run the recipe's quick held-out check for base vs adapter.
Checkpoints go to ``adapters/.work/<name>-<inputs hash>/`` so Ctrl-C and a rerun resume.
The ``unsloth`` backend (GPU, QLoRA) is imported only on that path.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from . import bases, devcurve, formats, leakage, paths
from . import manifest as mf
from .data.user import is_user_source
from .errors import TrainError
from .loss import score_loss_trainer
from .recipes import AdapterRecipe, dump
from .resume import train_or_load

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- examples
def examples(recipe: AdapterRecipe, mirror: Any = None) -> tuple[list[dict], dict]:
    """Conversational prompt/completion rows for TRL, and the data provenance for the manifest."""
    d = recipe.data
    if recipe.task == "joint":  # the union of two specialists' rows, each rendered by its own recipe
        from . import recipes as _recipes

        rows, parts = [], []
        for name in d.source.split(":", 1)[1].split(","):
            part = _recipes.load(_recipes.find("adapters", name.strip()))
            if part.kind != "adapter" or part.task == "joint":
                raise TrainError(f"{d.source}: {name} is not a specialist adapter recipe")
            got, info = examples(part, mirror)
            rows += got
            parts.append({"recipe": part.name, **info, "examples": len(got)})
        return _limit(rows, d.max_rows, recipe.train.seed), {"source": d.source, "parts": parts, "rows": len(rows)}
    if recipe.task == "pairwise" and is_user_source(d.source):  # a user's own pairs, split by group here
        from .data import user

        splits = user.recipe_splits(recipe)
        rows = user.pair_rows(splits.rows, splits.index["train"], d.criterion)
        out = _pair_examples(rows, d.max_response_chars)
        return _limit(out, d.max_rows, recipe.train.seed), {"source": d.source, **splits.info(), "rows": len(rows)}
    if recipe.task == "pairwise":
        name = d.source.split(":", 1)[1]
        folder = paths.pair_sets() / name
        m = mf.read(folder)
        if m is None or not (folder / "train.jsonl").is_file():
            raise TrainError(
                f"pair set {name!r} not built at {folder}: run `judgefactory pairs build recipes/pairs/{name}.yaml`"
            )
        rows = [json.loads(line) for line in open(folder / "train.jsonl")]
        out = _pair_examples(rows, d.max_response_chars)
        info = {
            "source": d.source,
            "file": str(folder / "train.jsonl"),
            "sha256": m["files"].get("train.jsonl"),
            "rows": len(rows),
            "pair_set_manifest_sha256": mf.sha256_json(m),
        }
        return _limit(out, d.max_rows, recipe.train.seed), info

    from .data.prometheus import (
        dev_split,
        first_sentences,
        load_absolute,
        relative_feedback,
        relative_pairs,
        shorten,
        targets,
    )
    from .data.sources import fingerprint, load_rows

    user_sha = None
    if is_user_source(d.source):  # a user's rows: every row valid or none trained on; train/dev/test by group
        from .data import user

        splits = user.recipe_splits(recipe)
        items, errors = user.absolute_items(splits.rows, splits.index["train"], d.source), list[str]()
        dev = user.absolute_items(splits.rows, splits.index["dev"], d.source)
        user_sha = splits.table.sha256
    else:
        items, errors = load_absolute(d.source, d.file, mirror=mirror)
        if errors:
            log.warning("%d malformed rows skipped and counted; first: %s", len(errors), errors[0])
        items, dev = dev_split(items, d.dev_fraction, recipe.train.seed)  # the dev split never reaches training
    if not items:
        raise TrainError(f"{d.source}: no usable rows ({len(errors)} malformed)")
    for held in d.holdout:
        src, _, cfg = held.partition(":")
        if src == d.source and (cfg or None) == d.file:
            raise TrainError(f"data.source {d.source} is listed in data.holdout: it must stay unseen")
        try:
            held_items, _ = load_absolute(src, cfg or None, mirror=mirror)
        except Exception as err:  # noqa: BLE001 - a holdout that cannot be loaded cannot be checked for leaks
            why = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise TrainError(f"holdout {held} could not be loaded to check it stays unseen: {why}") from None
        leaked = {i.prompt for i in items} & {i.prompt for i in held_items}
        if leaked:
            raise TrainError(f"{len(leaked)} training prompts from {d.source} also appear in holdout {held}")
    out = []
    clipped = {id(it): shorten(it.prompt, d.max_response_chars) for it in items}  # by object: row ids may repeat
    for it in items:
        prompt = formats.absolute_messages(clipped[id(it)])
        for fb, score in targets(it, d.score_target):
            fb = first_sentences(fb, d.max_feedback_sentences)
            out.append(
                {"prompt": prompt, "completion": [{"role": "assistant", "content": formats.absolute_target(fb, score)}]}
            )
    n_absolute = len(out)
    pairs = relative_pairs(items, d.relative_pairs, d.score_target, seed=recipe.train.seed) if d.relative_pairs else []
    for better, worse in pairs:  # both orders, the verdict mirrored
        for first, second, winner in ((better, worse, "A"), (worse, better, "B")):
            sections = formats.relative_from_absolute(clipped[id(first)], clipped[id(second)])
            if sections is None:
                raise TrainError(
                    f"{d.source}: prompt of {first.id} does not split into instruction / response / rubric sections"
                )
            fb = relative_feedback(better, worse, winner, d.score_target)
            out.append(
                {
                    "prompt": formats.relative_messages(sections),
                    "completion": [{"role": "assistant", "content": formats.relative_target(fb, winner)}],
                }
            )
    info = {
        "source": d.source,
        "file": d.file,
        "sha256": user_sha or fingerprint(load_rows(d.source, d.file, mirror=mirror)),
        "rows": len(items),
        "dev_rows": len(dev),
        "examples": len(out),
        "absolute_examples": n_absolute,
        "relative_examples": len(out) - n_absolute,
        "malformed": len(errors),
        "score_target": d.score_target,
    }
    return _limit(out, d.max_rows, recipe.train.seed), info


def _pair_examples(rows: list[dict], max_response_chars: int) -> list[dict]:
    """Pair-set rows (a built pair set's or a user file's) as TRL prompt/completion rows."""
    return [
        {
            "prompt": formats.bias_messages(formats.pair_prompt(r, max_response_chars)),
            "completion": [{"role": "assistant", "content": r["target"]}],
        }
        for r in rows
    ]


def _limit(rows: list[dict], n: int | None, seed: int) -> list[dict]:
    import random

    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows[:n] if n else rows


def _fit(rows: list[dict], tok: Any, max_length: int) -> tuple[list[dict], int]:
    """Drop (and count) examples whose prompt + completion exceed max_length: truncation would cut the verdict."""
    kept, dropped = [], 0
    for r in rows:
        n = len(tok.apply_chat_template(r["prompt"] + r["completion"], tokenize=True, return_dict=False))
        (kept.append(r) if n <= max_length else None)
        dropped += n > max_length
    return kept, dropped


# --------------------------------------------------------------------------- backends
def precision(recipe: AdapterRecipe) -> dict[str, Any]:
    """The recipe's bf16 settings where this machine runs bf16 natively (CUDA Ampere+, CPUs with AVX512-BF16/AMX),
    else float32: emulated bf16 matmuls on an AVX2-only CPU ran 140x slower than fp32 (0.9 vs 127 GFLOP/s, D15)."""
    import torch

    from .precision import bf16_supported

    device = "cuda" if torch.cuda.is_available() else "cpu"
    native = bf16_supported(device)
    t = recipe.train
    wanted = t.bf16 or t.base_dtype == "bfloat16"
    return {
        "device": device,
        "native_bf16": native,
        "bf16": t.bf16 and native,
        "base_dtype": t.base_dtype if native else "float32",
        "fell_back_to_float32": wanted and not native,
    }


def _load_trl(recipe: AdapterRecipe, base_dtype: str):
    from peft import LoraConfig, prepare_model_for_kbit_training

    model, tok = bases.load(recipe.base, base_dtype, recipe.train.quantization)
    if recipe.train.quantization == "4bit":  # QLoRA: norms in float32, input grads on for the frozen 4-bit base
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=recipe.train.gradient_checkpointing)
    lora = LoraConfig(
        r=recipe.lora.r,
        lora_alpha=recipe.lora.alpha,
        lora_dropout=recipe.lora.dropout,
        task_type="CAUSAL_LM",
        **lora_scope(recipe, model.config),
    )
    return model, tok, lora


def lora_scope(recipe: AdapterRecipe, config: Any) -> dict[str, Any]:
    """PEFT's ``target_modules`` (and layers) for the recipe: ``lora.target_modules`` in the language model only, and
    with ``lora.top_layers`` only in the top N of its decoder layers.

    A text model takes the names as they are (``layers_to_transform`` for the top layers). A multimodal checkpoint
    (Gemma 3 4B loads as ``Gemma3ForConditionalGeneration``) has the same names in its vision tower, and its layer count
    lives in the text config: the scope becomes one regex over ``…language_model.layers.<i>.….<name>`` (PEFT takes no
    ``layers_to_transform`` beside a regex)."""
    import re

    text = config.get_text_config()
    n_layers = text.num_hidden_layers
    top = recipe.lora.top_layers
    if top is not None and top > n_layers:
        raise TrainError(f"lora.top_layers={top} but base {recipe.base} has {n_layers} decoder layers")
    layers = list(range(n_layers - top, n_layers)) if top is not None else None
    names = list(recipe.lora.target_modules)
    if text is config:
        return {"target_modules": names} | (
            {"layers_to_transform": layers, "layers_pattern": "layers"} if layers is not None else {}
        )
    index = "|".join(map(str, layers)) if layers is not None else r"\d+"
    return {"target_modules": rf".*language_model\.layers\.({index})\..*\.({'|'.join(map(re.escape, names))})"}


def _unsloth_first(recipe: AdapterRecipe) -> None:
    """unsloth patches transformers, TRL and PEFT when it is imported, and warns that importing it after them breaks
    its patches: on the unsloth path it is imported before any of them (after torch, which it needs for the GPU check).
    Without a CUDA GPU: one line, before anything is loaded."""
    import torch

    if not torch.cuda.is_available():
        raise TrainError(
            f"recipe {recipe.name!r} uses backend: unsloth, which needs a CUDA GPU; use a CPU recipe (backend: trl)"
        )
    import unsloth  # noqa: F401, PLC0415 - GPU-only; first, so that its patches apply


def _load_unsloth(recipe: AdapterRecipe, base_dtype: str):
    from unsloth import FastLanguageModel  # noqa: PLC0415 - GPU-only import (already imported first by run)

    model, tok = FastLanguageModel.from_pretrained(
        model_name=recipe.base,
        max_seq_length=recipe.train.max_length,
        load_in_4bit=recipe.train.quantization == "4bit",
        dtype=None,
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=recipe.lora.r,
        lora_alpha=recipe.lora.alpha,
        lora_dropout=recipe.lora.dropout,
        use_gradient_checkpointing="unsloth",
        random_state=recipe.train.seed,
        **lora_scope(recipe, model.config),
    )
    # a multimodal checkpoint (Gemma 3 4B) comes with a processor; text is tokenised (tok(p, ...), tok.pad, the chat
    # template) by the tokenizer inside it
    return model, getattr(tok, "tokenizer", tok), None


def _TimeCap(minutes: float):  # noqa: N802 - builds a TrainerCallback lazily (transformers import stays inside)
    from transformers import TrainerCallback

    class TimeCap(TrainerCallback):
        """The safety net: stop (and checkpoint) at the first step past ``minutes`` of training in this process. A run
        it stops is incomplete: marked so in the manifest, resumed (never reused) by the next run."""

        def on_train_begin(self, args, state, control, **kw):
            self.start = time.time()

        def on_step_end(self, args, state, control, **kw):
            if time.time() - self.start > minutes * 60 and state.global_step < state.max_steps:
                log.warning(
                    "time cap of %s min reached at step %d of %d: the adapter will be marked INCOMPLETE; "
                    "rerun the same command to resume",
                    minutes,
                    state.global_step,
                    state.max_steps,
                )
                control.should_training_stop = True
                control.should_save = True
            return control

    return TimeCap()


# --------------------------------------------------------------------------- the station
def completed(manifest: dict[str, Any] | None) -> bool:
    """Whether an adapter's manifest records all of its recipe's optimizer steps (an adapter a time cap stopped is not)."""
    t = (manifest or {}).get("training") or {}
    want = (((manifest or {}).get("recipe") or {}).get("train") or {}).get("max_steps")
    return bool(t) and want is not None and t.get("steps", 0) >= want


def run(
    recipe: AdapterRecipe,
    *,
    adapters_dir: Path | None = None,
    mirror: Any = None,
    force: bool = False,
    quick_eval: bool = True,
) -> Path:
    """Train (or resume, or skip when fresh and complete) the adapter of ``recipe``; returns ``adapters/<name>/``.

    The adapter is saved first (atomically, complete or not); the quick check runs on the saved adapter afterwards, so
    a failing check is recorded in the manifest and never costs the trained adapter."""
    if recipe.backend == "unsloth":
        _unsloth_first(recipe)
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    adapters_dir = Path(adapters_dir) if adapters_dir is not None else paths.adapters()
    out = adapters_dir / recipe.name
    rows, data_info = examples(recipe, mirror)
    base_path = bases.prepare(recipe.base) if recipe.backend == "trl" else recipe.base
    base_m = mf.read(Path(base_path)) if isinstance(base_path, Path) else None
    # keyed on what is trained on: the rendered prompt/completion rows (prompt templates, clipping, targets), not on a
    # version number someone must remember to bump; the base's files carry its tokenizer and chat template
    data_info = {**data_info, "examples_sha256": mf.sha256_json(rows)}
    inputs = mf.sha256_json(
        {"recipe": recipe.model_dump(mode="json"), "data": data_info, "base": (base_m or {}).get("files", recipe.base)}
    )
    if not force and mf.is_fresh(out, inputs) and completed(mf.read(out)):
        log.info(
            "adapter %s is fresh (same recipe, data and base; %d steps done): %s",
            recipe.name,
            recipe.train.max_steps,
            out,
        )
        done_check = (mf.read(out) or {}).get("quick_eval")
        if quick_eval and recipe.quick_eval is not None and (not done_check or "failed" in done_check):
            check(out, recipe, mirror)  # never run, or failed: (re)checked, the adapter is not retrained
        return out

    from .precision import machine

    prec = precision(recipe)
    if prec["fell_back_to_float32"]:
        log.warning(
            "%s: this %s has no native bf16: training in float32 (bf16 would be emulated; the adapter differs from "
            "one trained where bf16 runs)",
            recipe.name,
            prec["device"],
        )
    model, tok, lora = (_load_unsloth if recipe.backend == "unsloth" else _load_trl)(recipe, prec["base_dtype"])
    rows, too_long = _fit(rows, tok, recipe.train.max_length)
    log.info(
        "%s: %d training examples (%d longer than max_length=%d dropped)",
        recipe.name,
        len(rows),
        too_long,
        recipe.train.max_length,
    )
    trained_on = leakage.record(recipe, rows, data_info, mirror)  # what every scoring station later leaves out
    work = Path(adapters_dir) / ".work" / f"{recipe.name}-{inputs[:12]}"
    work.mkdir(parents=True, exist_ok=True)
    t = recipe.train
    cfg = SFTConfig(
        output_dir=str(work),
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=int(t.warmup_ratio * t.max_steps),
        logging_steps=t.logging_steps,
        save_steps=t.save_steps,
        save_total_limit=2,
        seed=t.seed,
        bf16=prec["bf16"],
        max_length=t.max_length,
        completion_only_loss=True,
        report_to=[],
        gradient_checkpointing=t.gradient_checkpointing,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
        save_only_model=False,
    )
    callbacks = [_TimeCap(t.max_minutes)] if t.max_minutes else []
    if recipe.dev is not None:
        callbacks.append(devcurve.callback(recipe, tok, mirror, work / "curve.jsonl"))
    trainer_cls = score_loss_trainer(SFTTrainer, tok) if t.score_loss_weight else SFTTrainer
    trainer = trainer_cls(
        model=model,
        args=cfg,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=lora,
        callbacks=callbacks,
    )
    if t.score_loss_weight:
        trainer.score_loss_weight = t.score_loss_weight
    started = time.time()
    resume = train_or_load(trainer, work, t.max_steps)
    train_s = time.time() - started
    losses = [h for h in trainer.state.log_history if "loss" in h]
    first, last = _loss_ends(losses)
    steps = trainer.state.global_step
    done = steps >= t.max_steps
    log.info(
        "%s: loss %.3f -> %.3f over %d of %d steps (%.1f min)%s",
        recipe.name,
        first,
        last,
        steps,
        t.max_steps,
        train_s / 60,
        "" if done else " -- INCOMPLETE: stopped by the time cap",
    )
    preference = None
    if done and recipe.preference is not None:
        from .preference import run_dpo

        preference = run_dpo(trainer.model, tok, recipe, work, mirror)
    curve = devcurve.read(work / "curve.jsonl")

    with mf.atomic_dir(out) as tmp:
        trainer.model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        _portable_adapter_config(tmp, bases.hub_id(recipe.base))
        mf.write_text(tmp / "recipe.yaml", dump(recipe))
        mf.write_text(tmp / "train_log.jsonl", "".join(json.dumps(h) + "\n" for h in trainer.state.log_history))
        _plot_loss(losses, tmp / "loss_curve.png", recipe.name)
        leakage.write(tmp, trained_on)
        if curve:
            mf.write_text(tmp / "curve.jsonl", "".join(json.dumps(p) + "\n" for p in curve))
            devcurve.plot(curve, tmp / "curve.png", recipe)
        mf.finalize(
            tmp,
            {
                "kind": "adapter",
                "name": recipe.name,
                "task": recipe.task,
                "recipe": recipe.model_dump(mode="json"),
                "recipe_sha256": mf.sha256_text(dump(recipe)),
                "inputs_sha256": inputs,
                "base": bases.manifest_entry(recipe.base, files=(base_m or {}).get("files")),
                "data": [data_info],
                "backend": recipe.backend,
                "precision": prec,
                "machine": machine(),
                "training": {
                    "steps": steps,
                    "max_steps": t.max_steps,
                    "completed": done,
                    "stopped_by": None if done else f"time cap ({t.max_minutes} min)",
                    "examples": len(rows),
                    "dropped_too_long": too_long,
                    "loss_first": first,
                    "loss_last": last,
                    "train_seconds": round(train_s, 1),
                    "resumed_from": resume,
                },
                "curve": curve or None,
                "preference": preference,
                "quick_eval": None,
            },
        )
    if done:
        shutil.rmtree(work, ignore_errors=True)
    else:
        log.warning(
            "%s: INCOMPLETE adapter saved at %s (%d/%d steps); checkpoints kept in %s",
            recipe.name,
            out,
            steps,
            t.max_steps,
            work,
        )
    if quick_eval and recipe.quick_eval is not None:
        check(out, recipe, mirror, peft_model=trainer.model, tok=tok)
    return out


def check(out: Path, recipe: AdapterRecipe, mirror: Any, peft_model: Any = None, tok: Any = None) -> dict:
    """The quick check of a saved adapter (base vs adapter on the recipe's eval items), written into its folder and
    manifest. A check that fails is recorded there as failed and re-raised; the adapter stays."""
    from peft import PeftModel

    from .quick_eval import compare

    m = mf.read(out) or {}
    try:
        if peft_model is None:
            base, tok = bases.load(recipe.base, "float32", recipe.train.quantization)
            peft_model = PeftModel.from_pretrained(base, str(out))
        evals = compare(peft_model, tok, recipe, mirror=mirror, training=m.get("training"), adapter_dir=out)
    except BaseException as err:
        mf.finalize(
            out,
            {**m, "quick_eval": {"failed": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}},
        )
        log.warning(
            "%s: the adapter is saved at %s; its quick check FAILED (recorded in its manifest)", recipe.name, out
        )
        raise
    mf.write_json(out / "quick_eval.json", evals)
    mf.finalize(out, {**m, "quick_eval": evals})
    return evals


def _portable_adapter_config(folder: Path, hub_id: str) -> None:
    """Point adapter_config.json at the public base id (not this machine's cache path); drop PEFT's stub card."""
    cfg_path = folder / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = hub_id
    mf.write_text(cfg_path, json.dumps(cfg, indent=2) + "\n")
    (folder / "README.md").unlink(missing_ok=True)


def _loss_ends(log: list[dict], k: int = 3) -> tuple[float, float]:
    losses = [h["loss"] for h in log]
    if not losses:
        return float("nan"), float("nan")
    k = max(1, min(k, len(losses) // 2 or 1))
    return sum(losses[:k]) / k, sum(losses[-k:]) / k


def _plot_loss(log: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([h["step"] for h in log], [h["loss"] for h in log], marker=".")
    ax.set(xlabel="step", ylabel="train loss (completion tokens)", title=f"{title} LoRA SFT")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
