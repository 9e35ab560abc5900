"""An optional second opinion on a built pair set: an OpenAI-compatible LLM judges every pair and each
disagreement with the rule label is logged (the rule label stays the label). ``pairs.build`` calls it when the
recipe names ``llm_labeler``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import formats

if TYPE_CHECKING:
    from .pairs import Pair

__all__ = ["ask_llm", "llm_second_opinion"]


def ask_llm(base_url: str, model: str, prompt: str, timeout: float = 120.0) -> str:
    """One chat completion from an OpenAI-compatible endpoint (``POST {base}/chat/completions``): the reply text."""
    body = {"model": model, "messages": formats.bias_messages(prompt), "temperature": 0, "max_tokens": 256}
    req = urllib.request.Request(
        base_url.rstrip("/") + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the user's configured endpoint
        data = json.loads(resp.read().decode())
    return str(data["choices"][0]["message"]["content"])


def llm_second_opinion(
    pairs: Sequence[Pair], rows: list[dict[str, Any]], base_url: str, model: str, out: Path, progress: bool = True
) -> dict[str, Any]:
    """Ask the LLM for a verdict on every pair (A/B order ``ab``); write each disagreement with the rule label
    (including unparseable replies and failed requests) to ``out`` (JSONL). The rule label stays the label."""
    from tqdm.auto import tqdm

    stats: Counter = Counter()
    ab = {r["pair_id"]: r for r in rows if r["order"] == "ab"}
    with open(out, "w") as f:
        for p in tqdm(pairs, desc="llm labeler", disable=not progress, unit="pair"):
            r = ab[p.pair_id]
            try:
                reply = ask_llm(base_url, model, r["prompt"])
                verdict = formats.parse_verdict(reply)
            except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as err:
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
