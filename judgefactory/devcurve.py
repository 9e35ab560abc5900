"""The learning curve of a training run: at each ``dev.steps`` step the adapter so far judges the recipe's dev split
(``quick_eval.dev_data``) on a folded copy; one JSON line per point in the run's work folder (a resumed run keeps the
points it has), a plot in the adapter folder. Used by the SFT station (``train``) and the preference stage."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from .recipes import AdapterRecipe

log = logging.getLogger(__name__)


def callback(recipe: AdapterRecipe, tok: Any, mirror: Any, path: Path):  # a TrainerCallback, built lazily
    """The learning curve: at each ``dev.steps`` step, a folded copy of the adapter so far judges the dev split
    (``quick_eval.dev_data``); one JSON line per point in ``path`` (the work folder, so a resumed run keeps the points
    it already has)."""
    from transformers import TrainerCallback

    from .quick_eval import dev_data

    assert recipe.dev is not None, f"{recipe.name}: a learning curve needs a dev block"
    steps = recipe.dev.steps
    data = dev_data(recipe, mirror)
    log.info(
        "%s: learning curve at steps %s on the dev split (%d items, %s)",
        recipe.name,
        steps,
        len(data.items),
        data.source,
    )

    class Curve(TrainerCallback):
        def __init__(self) -> None:
            self.points = read(path)

        def _score(self, model: Any, step: int, state: Any) -> None:
            if step not in steps or any(p["step"] == step for p in self.points):
                return
            t0 = time.time()
            point = {
                "step": step,
                **evaluate_adapter(model, tok, recipe, data),
                "seconds": 0.0,
                "train_loss": next((h["loss"] for h in reversed(state.log_history) if "loss" in h), None),
            }
            point["seconds"] = round(time.time() - t0, 1)
            self.points.append(point)
            with open(path, "a") as f:
                f.write(json.dumps(point) + "\n")
            from .quick_eval import DEV_HEADLINE

            key = DEV_HEADLINE[recipe.task]
            log.info("%s: dev %s %.3f at step %d (%.0f s)", recipe.name, key, point[key], step, point["seconds"])

        def on_train_begin(self, args, state, control, model=None, **kw):
            self._score(model, state.global_step, state)

        def on_step_end(self, args, state, control, model=None, **kw):
            self._score(model, state.global_step, state)

    return Curve()


def evaluate_adapter(peft_model: Any, tok: Any, recipe: AdapterRecipe, data: Any) -> dict[str, Any]:
    """Dev-split figures of a PEFT model in training, judged on a folded float copy (training is not disturbed)."""
    import copy

    import torch

    from .precision import judge_dtype
    from .quick_eval import dev_scores

    was_training = peft_model.training
    folded = copy.deepcopy(peft_model).merge_and_unload()
    # TRL's fused LM head replaces the instance's forward with a closure over the ORIGINAL model's forward; a deep copy
    # keeps that closure, so without this the "copy" would decode on the training model (unfolded LoRA, plain SDPA)
    folded.__dict__.pop("forward", None)
    folded = folded.to(getattr(torch, judge_dtype())).eval()
    try:
        return dev_scores(folded, tok, recipe, data)
    finally:
        del folded
        peft_model.train(was_training)


def read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
    return out


def plot(curve: list[dict], path: Path, recipe: AdapterRecipe) -> None:
    """The learning curve: the dev split's headline figure (and the pairwise judge's position consistency or the
    absolute judge's argmax Pearson) per scored step, with the training loss on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .quick_eval import DEV_HEADLINE

    pts = sorted(curve, key=lambda p: p["step"])
    key = DEV_HEADLINE[recipe.task]
    second = "position_consistency" if recipe.task == "pairwise" else "pearson"
    fig, ax = plt.subplots(figsize=(6, 3.6))
    xs = [p["step"] for p in pts]
    ys: list[Any] = [p.get(key) for p in pts]  # None where a point has no figure: a gap in the line
    ys2: list[Any] = [p.get(second) for p in pts]
    ax.plot(xs, ys, marker="o", label=f"dev {key}")
    ax.plot(xs, ys2, marker="s", linestyle="--", label=f"dev {second}")
    ax.set(xlabel="optimizer step", ylabel="dev figure", title=f"{recipe.name}: learning curve (dev split)")
    ax.legend(loc="lower right", fontsize=8)
    losses = [(p["step"], p["train_loss"]) for p in pts if p.get("train_loss") is not None]
    if losses:
        ax2 = ax.twinx()
        ax2.plot(*zip(*losses, strict=False), color="grey", alpha=0.5, label="train loss")
        ax2.set_ylabel("train loss", color="grey")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
