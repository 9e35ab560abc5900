"""An optional second opinion on a built pair set: an OpenAI-compatible LLM judges every pair and each
disagreement with the rule label is logged (the rule label stays the label). ``pairs.build`` calls it when the
recipe names ``llm_labeler``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import formats
from ..engine import EngineError, OpenAIBackend, Sampling

if TYPE_CHECKING:
    from .pairs import Pair

__all__ = ["ask_llm", "llm_second_opinion"]


def ask_llm(backend: OpenAIBackend, prompt: str) -> str:
    """One greedy chat completion (the bias system prompt + ``prompt``) through the engine's ``openai`` backend: the
    reply text."""
    raw = backend.run([formats.bias_messages(prompt)], spec=None, sampling=Sampling(256), batch_size=1, progress=None)
    return raw[0].texts[0]


def llm_second_opinion(
    pairs: Sequence[Pair], rows: list[dict[str, Any]], base_url: str, model: str, out: Path, progress: bool = True
) -> dict[str, Any]:
    """Ask the LLM for a verdict on every pair (A/B order ``ab``); write each disagreement with the rule label
    (including unparseable replies and failed requests) to ``out`` (JSONL). The rule label stays the label."""
    from tqdm.auto import tqdm

    stats: Counter = Counter()
    ab = {r["pair_id"]: r for r in rows if r["order"] == "ab"}
    backend = OpenAIBackend(base_url, model, timeout=120.0, workers=1)  # one client (and connection pool) for all pairs
    with open(out, "w") as f:
        for p in tqdm(pairs, desc="llm labeler", disable=not progress, unit="pair"):
            r = ab[p.pair_id]
            try:
                reply = ask_llm(backend, r["prompt"])
                verdict = formats.parse_verdict(reply)
            except EngineError as err:
                reply, verdict = f"error: {type(err).__name__}: {err}", None
                stats["errors"] += 1
            stats["labelled"] += 1
            if verdict == r["label"]:
                stats["agree"] += 1
                continue
            stats["disagree" if verdict else "unparseable_or_failed"] += 1
            f.write(
                json.dumps(
                    {
                        "pair_id": p.pair_id,
                        "split": p.split,
                        "bucket": p.bucket,
                        "rule_label": r["label"],
                        "llm_verdict": verdict,
                        "class_a": r["class_a"],
                        "class_b": r["class_b"],
                        "reply": reply,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    return {
        "url": base_url,
        "model": model,
        **{k: stats.get(k, 0) for k in ("labelled", "agree", "disagree", "unparseable_or_failed", "errors")},
        "file": out.name,
    }
