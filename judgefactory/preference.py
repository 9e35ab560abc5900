"""The preference stage after SFT: TRL's DPO on judgements of the pair set's training prompts.

Chosen: the pair row's own target (the rule's reasoning and verdict). Rejected, per ``preference.rejected``:

* ``swapped_reading``: the judgement written for the same pair in the other A/B order. It reads each response in the
  other slot and gives the mirrored verdict: exactly the position-biased answer (the same letter whatever the order).
* ``wrong_verdict``: the right reading with a verdict that does not follow from it (A <-> B; a TIE row gets ``A``).

The SFT adapter keeps training; TRL copies it into a frozen ``ref`` adapter that serves as the DPO reference, which is
dropped again before saving, so the result is one LoRA adapter of the recipe's rank that merges like any other.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from . import devcurve, formats, paths
from .errors import TrainError
from .recipes import AdapterRecipe
from .resume import train_or_load

_END = re.compile(
    r"(?:[AB] relies more on the stereotype\.|Both guess; neither relies more on the stereotype\.|"
    r"Both rely on the stereotype equally\.|Neither relies on the stereotype\.)$"
)


def wrong_verdict(reasoning: str, verdict: str) -> str:
    """The row's reasoning with a verdict that contradicts it (and a closing sentence that says so)."""
    wrong = {"A": "B", "B": "A", "TIE": "A"}[verdict]
    return formats.bias_target(_END.sub(f"{wrong} relies more on the stereotype.", reasoning.strip()), wrong)


def preference_rows(recipe: AdapterRecipe) -> list[dict[str, Any]]:
    """(prompt, chosen, rejected) rows in TRL's conversational format from the pair set's training split."""
    spec = recipe.preference
    assert spec is not None, f"{recipe.name}: no preference block"
    folder = paths.pair_sets() / recipe.data.source.split(":", 1)[1]
    if not (folder / "train.jsonl").is_file():
        raise TrainError(f"pair set {folder.name!r} not built at {folder}")
    rows = [json.loads(line) for line in open(folder / "train.jsonl")]
    by_pair: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_pair.setdefault(r["pair_id"], {})[r["order"]] = r
    out = []
    for pid in sorted(by_pair):
        orders = by_pair[pid]
        for order, r in sorted(orders.items()):
            other = orders.get("ba" if order == "ab" else "ab")
            prompt = formats.bias_messages(formats.pair_prompt(r, recipe.data.max_response_chars))
            rejected = []
            if "swapped_reading" in spec.rejected and other is not None:
                rejected.append(other["target"])
            if "wrong_verdict" in spec.rejected:
                rejected.append(wrong_verdict(r["reasoning"], r["label"]))
            for rej in dict.fromkeys(rejected):
                if rej != r["target"]:
                    out.append(
                        {
                            "prompt": prompt,
                            "chosen": [{"role": "assistant", "content": r["target"]}],
                            "rejected": [{"role": "assistant", "content": rej}],
                        }
                    )
    return out


def run_dpo(model: Any, tok: Any, recipe: AdapterRecipe, work: Path, mirror: Any = None) -> dict[str, Any]:
    """DPO on top of the SFT adapter in ``model`` (a PEFT model, trained in place); returns what the manifest records.
    Checkpoints go to ``work/dpo`` (a rerun resumes); the dev split is scored after the stage when the recipe has one."""
    import random

    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    p = recipe.preference
    assert p is not None, f"{recipe.name}: no preference block"
    rows = preference_rows(recipe)
    random.Random(recipe.train.seed).shuffle(rows)
    out_dir = work / "dpo"
    cfg = DPOConfig(
        output_dir=str(out_dir),
        max_steps=p.steps,
        per_device_train_batch_size=p.batch_size,
        learning_rate=p.learning_rate,
        beta=p.beta,
        loss_type=["sigmoid", "sft"] if p.nll_weight else ["sigmoid"],
        loss_weights=[1.0, p.nll_weight] if p.nll_weight else None,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        logging_steps=min(5, max(1, p.steps // 10)),
        save_steps=max(10, p.steps // 4),
        save_total_limit=1,
        seed=recipe.train.seed,
        bf16=False,
        max_length=recipe.train.max_length,
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        gradient_checkpointing=recipe.train.gradient_checkpointing,
    )
    trainer = DPOTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok)
    started = time.time()
    resume = train_or_load(trainer, out_dir, p.steps)
    seconds = time.time() - started
    policy: Any = trainer.model  # the PEFT model (TRL types it as a plain PreTrainedModel / Module)
    if "ref" in getattr(policy, "peft_config", {}):
        policy.delete_adapter("ref")
    policy.set_adapter("default")
    log = [h for h in trainer.state.log_history if "loss" in h]
    info: dict[str, Any] = {
        "method": "dpo",
        "nll_weight": p.nll_weight,
        "steps": trainer.state.global_step,
        "rows": len(rows),
        "seconds": round(seconds, 1),
        "loss_first": log[0]["loss"] if log else None,
        "loss_last": log[-1]["loss"] if log else None,
        "reward_accuracy_last": next(
            (h.get("rewards/accuracies") for h in reversed(log) if "rewards/accuracies" in h), None
        ),
        "chosen_logps_last": next((h.get("logps/chosen") for h in reversed(log) if "logps/chosen" in h), None),
        "resumed_from": resume,
    }
    if recipe.dev is not None:
        from .quick_eval import dev_data

        point = {
            "step": recipe.train.max_steps + trainer.state.global_step,
            "stage": "dpo",
            **devcurve.evaluate_adapter(policy, tok, recipe, dev_data(recipe, mirror)),
        }
        if not any(q.get("stage") == "dpo" for q in devcurve.read(work / "curve.jsonl")):
            with open(work / "curve.jsonl", "a") as f:
                f.write(json.dumps(point) + "\n")
        info["dev_after"] = point
    return info
