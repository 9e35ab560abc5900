"""Resuming a training stage (SFT, the preference stage) from the last checkpoint in its work folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import TrainError
from .loss import completion_only_head


def train_or_load(trainer: Any, checkpoint: str | None, max_steps: int) -> None:
    """Train ``trainer`` to ``max_steps``, resuming from ``checkpoint`` when there is one. A checkpoint that already
    reached ``max_steps`` (a later stage or the final write was interrupted) is loaded as saved, weights and log, and
    not trained: ``Trainer.train(resume_from_checkpoint=...)`` would take one more optimizer step there
    (transformers 5.17; with a constant schedule that step moves the weights, and the step count reads max_steps + 1)."""
    if checkpoint is None or _steps_in(checkpoint) < max_steps:
        with completion_only_head():
            trainer.train(resume_from_checkpoint=checkpoint)
        return
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import TrainerState

    weights = Path(checkpoint) / "adapter_model.safetensors"
    result: Any = set_peft_model_state_dict(trainer.model, load_file(str(weights)))
    missing = [k for k in result.missing_keys if "lora_" in k and ".default." in k]
    if result.unexpected_keys or missing:
        raise TrainError(
            f"{weights}: does not fit the adapter being resumed "
            f"({len(result.unexpected_keys)} unexpected, {len(missing)} missing LoRA tensors); delete {checkpoint}"
        )
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))


def _steps_in(checkpoint: str) -> int:
    return int(json.loads((Path(checkpoint) / "trainer_state.json").read_text())["global_step"])
