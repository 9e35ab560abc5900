"""Prometheus absolute-grading rows: one schema for the Collections/Benches and the eval files.

Two upstream layouts are read into ``AbsoluteItem``:
- Feedback-Collection / Feedback-Bench (hub): ``orig_instruction``, ``orig_response``, ``orig_reference_answer``,
  ``orig_criteria``, ``orig_score1_description``..``5``, ``orig_feedback``, ``orig_score`` — the prompt is built
  with prometheus-eval's ``ABSOLUTE_PROMPT``.
- prometheus-eval benchmark files (vicuna_eval.json, mt_bench_eval.json): ``instruction`` is the full prompt,
  ``gpt4_score`` / ``gpt4_feedback`` hold three GPT-4 samples (as Python-literal strings).
"""

from __future__ import annotations

import ast
import itertools
import math
import random
import re
import statistics
from dataclasses import dataclass, field

from .. import formats
from .sources import load_rows

_RESPONSE = re.compile(r"(###Response to evaluate:\n)(.*?)(\n\n###(?:Reference Answer|Score Rubrics))", re.S)
_REFERENCE = re.compile(r"(###Reference Answer \(Score 5\):\n)(.*?)(\n\n###Score Rubrics)", re.S)
_INSTRUCTION = re.compile(r"(###The instruction to evaluate:\n)(.*?)(\n\n###Response to evaluate)", re.S)


@dataclass
class AbsoluteItem:
    id: str
    prompt: str
    scores: list[int]
    feedbacks: list[str] = field(default_factory=list)
    group: str = ""
    """items sharing a group answer the same instruction (4 responses per prompt in Vicuna / MT-Bench)."""
    source: str = ""

    @property
    def mean_score(self) -> float:
        return sum(self.scores) / len(self.scores)


def _literal_list(value, name: str, where: str) -> list:
    if isinstance(value, list):
        return value
    try:
        out = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise ValueError(f"{where}: field '{name}' is not a list literal") from None
    if not isinstance(out, list):
        raise ValueError(f"{where}: field '{name}' is not a list")
    return out


def _item(row: dict, i: int, source: str) -> AbsoluteItem:
    where = f"{row.get('_file', source)} row {i}"
    if "orig_instruction" in row:
        for k in ("orig_response", "orig_criteria", "orig_score"):
            if row.get(k) in (None, ""):
                raise ValueError(f"{where}: missing field '{k}'")
        rub = formats.rubric(row["orig_criteria"], [row.get(f"orig_score{j}_description", "") for j in range(1, 6)])
        prompt = formats.absolute_prompt(
            row["orig_instruction"], row["orig_response"], rub, row.get("orig_reference_answer")
        )
        score = int(row["orig_score"])
        return AbsoluteItem(
            id=str(row.get("id", i)),
            prompt=prompt,
            scores=[score],
            feedbacks=[row.get("orig_feedback") or ""],
            group=str(row.get("orig_instruction"))[:200],
            source=source,
        )
    for k in ("instruction", "gpt4_score"):
        if row.get(k) in (None, ""):
            raise ValueError(f"{where}: missing field '{k}'")
    scores = [int(s) for s in _literal_list(row["gpt4_score"], "gpt4_score", where)]
    if not scores or any(s < 1 or s > 5 for s in scores):
        raise ValueError(f"{where}: field 'gpt4_score' must hold scores 1-5, got {scores}")
    feedbacks = [str(f) for f in _literal_list(row.get("gpt4_feedback", "[]"), "gpt4_feedback", where)]
    return AbsoluteItem(
        id=f"{row.get('idx', i)}:{row.get('response_source', '')}",
        prompt=row["instruction"],
        scores=scores,
        feedbacks=feedbacks,
        group=str(row.get("idx", i)),
        source=source,
    )


def load_absolute(source: str, config: str | None = None, mirror=None) -> tuple[list[AbsoluteItem], list[str]]:
    """Items and per-row errors (malformed rows are reported with file and row, never dropped silently)."""
    loaded = load_rows(source, config, mirror=mirror)
    items, errors = [], list(loaded.errors)
    for i, row in enumerate(loaded.rows):
        try:
            items.append(_item(row, i, source))
        except ValueError as err:
            errors.append(str(err))
    return items, errors


def dev_split(
    items: list[AbsoluteItem], fraction: float, seed: int = 0
) -> tuple[list[AbsoluteItem], list[AbsoluteItem]]:
    """(train, dev): ``fraction`` of the instructions (``group``: every response to one instruction together, so no
    instruction is seen on both sides) held out as the dev split, seeded; order kept. ``fraction`` 0: no dev split."""
    groups = sorted({it.group for it in items})
    random.Random(seed).shuffle(groups)
    held = set(groups[: round(fraction * len(groups))]) if fraction else set()
    return [it for it in items if it.group not in held], [it for it in items if it.group in held]


def shorten(prompt: str, max_response_chars: int) -> str:
    """Truncate the instruction, the judged response and the reference answer inside a full Prometheus prompt
    to ``max_response_chars`` each (CPU budget); the task description and the rubric stay whole."""

    def cut(m: re.Match) -> str:
        body = m.group(2)
        if len(body) > max_response_chars:  # keep the end of a long instruction too: the last turn is what is judged
            half = max_response_chars // 2
            body = (
                body[:half].rstrip() + " … " + body[-half:].lstrip()
                if m.re is _INSTRUCTION
                else body[:max_response_chars].rstrip() + " …"
            )
        return m.group(1) + body + m.group(3)

    for pattern in (_INSTRUCTION, _RESPONSE, _REFERENCE):
        prompt = pattern.sub(cut, prompt, count=1)
    return prompt


def targets(item: AbsoluteItem, how: str) -> list[tuple[str, int]]:
    """(feedback, score) training targets from an item's reference samples.

    ``median``: the median score, with the feedback of a sample that gave exactly that score (so text and
    score agree); ``round_mean``: the rounded mean with the feedback of the closest sample;
    ``each``: every sample as its own target.
    """
    pairs = list(zip(item.feedbacks or [""] * len(item.scores), item.scores, strict=False))
    if how == "each":
        return pairs
    goal = int(statistics.median_low(item.scores)) if how == "median" else int(math.floor(item.mean_score + 0.5))
    fb, _ = min(pairs, key=lambda p: (abs(p[1] - goal), pairs.index(p)))
    return [(fb, goal)]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def first_sentences(text: str, n: int | None) -> str:
    """The first ``n`` sentences of ``text`` (all of it when n is None)."""
    if n is None:
        return text.strip()
    return " ".join(_SENTENCE_END.split(text.strip())[:n])


def target_score(item: AbsoluteItem, how: str) -> int:
    """The one score an item is trained towards (``each`` counts as ``median`` here)."""
    return targets(item, "median" if how == "each" else how)[0][1]


def relative_pairs(
    items: list[AbsoluteItem], n: int, how: str = "median", seed: int = 0, min_gap: int = 1
) -> list[tuple[AbsoluteItem, AbsoluteItem]]:
    """Up to ``n`` (better, worse) pairs of responses to the same instruction (same ``group``) whose target scores
    (``target_score``) differ by at least ``min_gap``: a seeded sample, the better response first. Equal scores are
    left out (no tie in the Prometheus relative format)."""
    groups: dict[str, list[AbsoluteItem]] = {}
    for it in items:
        groups.setdefault(it.group, []).append(it)
    cands = []
    for g in groups.values():
        for x, y in itertools.combinations(g, 2):
            sx, sy = target_score(x, how), target_score(y, how)
            if abs(sx - sy) >= min_gap:
                cands.append((x, y) if sx > sy else (y, x))
    random.Random(seed).shuffle(cands)
    return cands[:n]


def relative_feedback(better: AbsoluteItem, worse: AbsoluteItem, winner: str, how: str) -> str:
    """A relative judgement's feedback from the two references: the score each response is trained towards (so the
    verdict never contradicts the absolute targets), then the comparison. Templated and short (~25 tokens): a CPU run
    sees a few dozen of these rows, and a free-text sentence taught quoting instead of the ``[RESULT]`` marker (D14)."""
    loser = "B" if winner == "A" else "A"
    return (
        f"Response {winner} would score {target_score(better, how)} and Response {loser} {target_score(worse, how)} "
        f"on this rubric, so Response {winner} is better."
    )
