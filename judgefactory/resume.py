"""Resuming a training stage (SFT, the preference stage) from the last checkpoint in its work folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .errors import TrainError
from .loss import completion_only_head

log = logging.getLogger(__name__)


def train_or_load(trainer: Any, folder: Path, max_steps: int) -> str | None:
    """Train ``trainer`` to ``max_steps``, resuming from the last checkpoint in ``folder`` when there is one; returns
    that checkpoint (None for a fresh start). A checkpoint that already reached ``max_steps`` (a later stage or the
    final write was interrupted) is loaded as saved, weights and log, and not trained:
    ``Trainer.train(resume_from_checkpoint=...)`` would take one more optimizer step there (transformers 5.17; with a
    constant schedule that step moves the weights, and the step count reads max_steps + 1)."""
    from transformers import TrainerState
    from transformers.trainer_utils import get_last_checkpoint

    checkpoint = get_last_checkpoint(str(folder)) if folder.is_dir() else None
    state = None
    if checkpoint:
        log.info("resuming from %s", checkpoint)
        state = TrainerState.load_from_json(f"{checkpoint}/trainer_state.json")
    if checkpoint is None or state is None or state.global_step < max_steps:
        with completion_only_head():
            trainer.train(resume_from_checkpoint=checkpoint)
        return checkpoint
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = Path(checkpoint) / "adapter_model.safetensors"
    result: Any = set_peft_model_state_dict(trainer.model, load_file(str(weights)))
    missing = [k for k in result.missing_keys if "lora_" in k and ".default." in k]
    if result.unexpected_keys or missing:
        raise TrainError(
            f"{weights}: does not fit the adapter being resumed "
            f"({len(result.unexpected_keys)} unexpected, {len(missing)} missing LoRA tensors); delete {checkpoint}"
        )
    trainer.state = state
    return checkpoint
