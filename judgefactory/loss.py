"""What the training loss scores: only the completion positions (TRL's fused LM head, also off Triton devices) and,
for absolute judges, a regression-aware term on the expected score. Used by the SFT station (``train``) and the
preference stage (``preference``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .errors import TrainError


@contextlib.contextmanager
def completion_only_head() -> Iterator[bool]:
    """Score only the completion positions in TRL's fused LM head, also off Triton devices.

    TRL (1.15-1.16) projects the hidden states onto the vocabulary in chunks and, on devices without Triton, scores
    *every* position and masks the prompt's afterwards (there, a varying number of positions would recompile
    Neuron graphs). On an eager CPU that is pure waste: with completion-only loss ~85% of a BBQ row is prompt, and
    the 49k-wide projection plus its backward was half of each step (20.4 -> 10.1 s per step at batch 4, identical
    losses; D17). This switches TRL's ``compact`` choice on for the duration and restores it; yields False (and
    changes nothing) where TRL has no such switch."""
    from trl.trainer import utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None:
        yield False
        return
    trl_utils._use_triton = lambda device: True
    try:
        yield True
    finally:
        trl_utils._use_triton = original


def score_loss_trainer(base_cls: type, tok: Any) -> type:
    """``base_cls`` (TRL's SFTTrainer) with a regression-aware loss for absolute judges (RAFT, Lukasik et al. 2025):
    completion-token cross-entropy plus ``score_loss_weight * (E[s] - s)^2`` at the score digit, E[s] = sum_k k p(k)
    over the digits 1-5 at the position that emits the ``[RESULT]`` score. The backbone runs once; the LM head projects
    only the completion positions (as TRL's own completion-only path does), and the score term reads 5 of its columns.
    A row's score position is its last completion token before the end-of-turn tokens; rows whose last token is not a
    digit 1-5 (relative ``[RESULT] A``, pairwise ``</verdict>``, in a joint adapter) get no score term."""
    import torch
    import torch.nn.functional as F

    trailing = set(tok.all_special_ids)
    trailing |= {i for t in ("\n", " ") for i in tok.encode(t, add_special_tokens=False)}
    digit_ids = []
    for d in "12345":
        ids = tok.encode(d, add_special_tokens=False)
        if len(ids) != 1:
            raise TrainError(
                f"train.score_loss_weight needs the digit {d!r} to be one token; this tokenizer splits it into {ids}"
            )
        digit_ids.append(ids[0])

    class ScoreLossTrainer(base_cls):
        score_loss_weight = 0.0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            hidden = base.get_decoder()(
                input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"), use_cache=False
            ).last_hidden_state[:, :-1]
            labels = inputs["labels"][:, 1:]
            mask = labels != -100
            head = base.get_output_embeddings()
            logits = head(hidden[mask]).float()
            n_tokens = num_items_in_batch if num_items_in_batch is not None else mask.sum()
            ce = F.cross_entropy(logits, labels[mask], reduction="sum") / torch.as_tensor(n_tokens).clamp(min=1)
            digits = torch.tensor(digit_ids, device=labels.device)
            content = mask & ~torch.isin(labels, torch.tensor(sorted(trailing), device=labels.device))
            last = (content.long() * torch.arange(labels.shape[1], device=labels.device)).argmax(
                dim=1
            )  # last content token
            is_score = content.any(dim=1) & torch.isin(labels.gather(1, last.unsqueeze(1)).squeeze(1), digits)
            rows = is_score.nonzero().squeeze(1)
            if rows.numel() == 0:
                return (ce, None) if return_outputs else ce
            pos = last[rows]
            digit_logits = (hidden[rows, pos] @ head.weight[digits].T).float()
            expected = (digit_logits.softmax(-1) * torch.arange(1, 6, device=labels.device, dtype=torch.float32)).sum(
                -1
            )
            target = (labels[rows, pos].unsqueeze(1) == digits).float().argmax(dim=1) + 1.0
            loss = ce + self.score_loss_weight * ((expected - target) ** 2).mean()
            return (loss, None) if return_outputs else loss

    return ScoreLossTrainer
