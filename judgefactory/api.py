"""The public Python API: load a judge, grade a response on a 1-5 rubric, compare two responses.

```python
from judgefactory import Judge

judge = Judge.load("merge:demo_search-chosen")  # adapter:NAME, merge:NAME, a folder, a hub id
g = judge.grade("Explain DNS.", "DNS maps names to IP addresses.", rubric)
g.score, g.expected_score, g.probs, g.feedback, g.error
c = judge.compare(question, response_a, response_b, both_orders=True)
c.verdict, c.probs, c.reasoning, c.consistent, c.error
judge.grade_many(rows); judge.compare_many(rows)  # lists of mappings or a datasets.Dataset
```

Everything goes through the factory's judging engine (``engine.Engine``): the same prompts the specialists were
trained on (``formats``), greedy decoding, the answer's probabilities read at the answer token. A reply that does
not parse is a result whose ``error`` says so, never dropped and never guessed (its ``score`` / ``verdict`` is None).
Any backend the engine has: in-process ``transformers`` (CPU or GPU), ``vllm`` (GPU), ``openai`` (any
OpenAI-compatible server, such as ``make serve``'s llama-server).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import formats
from .errors import JudgeFactoryError
from .rows import compare_prompts, grade_prompt

GRADE_TOKENS = 256
"""default reply budget of a grade (a feedback paragraph and ``[RESULT] N``)."""
COMPARE_TOKENS = 192
"""default reply budget of a comparison (a short reasoning and the verdict)."""
_REASONING = re.compile(r"<reasoning>(.*?)(?:</reasoning>|<verdict>|$)", re.S | re.I)
_RESULT = re.compile(r"\[RESULT\]")


@dataclass(frozen=True)
class Grade:
    """One absolute judgement: the 1-5 score (None when the reply does not parse), the expected score Σ p(s)·s
    under the score-token distribution, that distribution, the feedback text, the raw reply and an error if any."""

    score: int | None
    expected_score: float | None
    probs: dict[str, float] | None
    feedback: str | None
    raw: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """One pairwise judgement. With both orders: ``verdict`` combines them (the same response both times, else TIE;
    an unparseable order makes it None), ``consistent`` says whether the swapped order named the same response, and
    ``swapped`` holds the B-first judgement mapped back to the original letters."""

    verdict: str | None
    probs: dict[str, float] | None
    reasoning: str | None
    raw: str
    error: str | None = None
    consistent: bool | None = None
    swapped: Comparison | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- reading replies
def feedback_of(text: str) -> str | None:
    """The feedback before the last ``[RESULT]`` (``Feedback:`` dropped), or None when there is none."""
    parts = _RESULT.split(text or "")
    body = parts[0] if len(parts) == 1 else "[RESULT]".join(parts[:-1])
    body = body.strip().removeprefix("Feedback:").strip()
    return body or None


def reasoning_of(text: str) -> str | None:
    m = _REASONING.search(text or "")
    return m.group(1).strip() if m and m.group(1).strip() else None


def expected_score(probs: Mapping[str, float] | None) -> float | None:
    """Σ p(s)·s over the score options 1-5, renormalised over them (``consistency_metrics.expected_score``, the
    factory's one definition); None without a distribution or with no mass on the scores."""
    from .consistency_metrics import expected_score as renormalised

    if not probs or sum(probs.values()) <= 0:
        return None
    return renormalised({int(k): v for k, v in probs.items()})


def _grade(j: Any) -> Grade:
    score = j.value
    return Grade(
        score=score,
        expected_score=expected_score(j.probs),
        probs=j.probs,
        feedback=feedback_of(j.text),
        raw=j.text,
        error=None if score is not None else "unparseable reply: it does not end in '[RESULT] 1-5'",
    )


def _one_order(j: Any, swapped: bool) -> Comparison:
    verdict = formats.swap_verdict(j.value) if swapped else j.value
    probs = j.probs
    if swapped and probs:
        probs = {"A": probs.get("B", 0.0), "B": probs.get("A", 0.0), "TIE": probs.get("TIE", 0.0)}
    error = None if verdict is not None else "unparseable reply: no single <verdict>A|B|TIE</verdict>"
    return Comparison(verdict, probs, reasoning_of(j.text), j.text, error)


def _both(ab: Comparison, ba: Comparison) -> Comparison:
    """Both orders as one comparison (``ba`` already in the original letters)."""
    errors = [f"{name}: {c.error}" for name, c in (("A first", ab), ("B first", ba)) if c.error]
    consistent = None if errors else ab.verdict == ba.verdict
    verdict = None if errors else (ab.verdict if consistent else "TIE")
    probs = None
    if ab.probs and ba.probs:
        probs = {k: (ab.probs.get(k, 0.0) + ba.probs.get(k, 0.0)) / 2 for k in formats.VERDICTS}
    return Comparison(verdict, probs, ab.reasoning, ab.raw, "; ".join(errors) or None, consistent, ba)


# --------------------------------------------------------------------------- the judge
class Judge:
    """A judge: a model reference on a backend, with the prompts its specialists were trained on."""

    def __init__(
        self,
        engine: Any,
        *,
        grade_tokens: int = GRADE_TOKENS,
        compare_tokens: int = COMPARE_TOKENS,
        max_response_chars: int | None = None,
        criterion: str | None = None,
    ):
        self.engine = engine
        self.grade_tokens, self.compare_tokens = grade_tokens, compare_tokens
        self.max_response_chars = max_response_chars
        self.criterion = criterion
        """the pairwise criterion the judge was trained on (None: the BBQ bias question)."""

    @classmethod
    def load(
        cls,
        ref: str,
        backend: str = "transformers",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        batch_size: int = 8,
        dtype: str = "auto",
        **settings: Any,
    ) -> Judge:
        """A judge for any model reference (``base``, ``adapter:NAME``, ``merge:NAME``, a folder, a hub id) on
        ``transformers`` (default), ``vllm`` or ``openai`` (``base_url`` of an OpenAI-compatible server; ``ref`` is
        then the server's model name). ``settings``: ``grade_tokens``, ``compare_tokens``, ``max_response_chars``,
        ``criterion`` (default: the one the model's pairwise adapter was trained on)."""
        from .engine import Engine

        engine = Engine.from_ref(ref, backend, dtype, batch_size, base_url=base_url, api_key=api_key)
        if "criterion" not in settings and backend != "openai":
            settings["criterion"] = trained_criterion(ref)
        return cls(engine, **settings)

    @property
    def task(self) -> str | None:
        return formats.pairwise_task(self.criterion)

    # ---- absolute
    def grade(
        self,
        instruction: str,
        response: str,
        rubric: str | Mapping[str, Any],
        reference_answer: str | None = None,
    ) -> Grade:
        """Score ``response`` to ``instruction`` on a 1-5 ``rubric`` (text, or a mapping with ``criteria`` and
        ``score1_description`` … ``score5_description``), optionally against a score-5 ``reference_answer``."""
        row = {"instruction": instruction, "response": response, "rubric": rubric, "reference_answer": reference_answer}
        return self.grade_many([row], progress=False)[0]

    def grade_many(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        progress: bool = True,
        on_batch: Callable[[int, list[Grade]], None] | None = None,
    ) -> list[Grade]:
        """Grade every row (keys as ``grade``'s arguments; a ``datasets.Dataset`` works as is), in input order.
        ``on_batch(first_index, grades)`` is called after each batch (the CLI writes its output there)."""
        rows = list(rows)
        prompts = [grade_prompt(r, f"row {i}", self.max_response_chars) for i, r in enumerate(rows)]
        messages = [formats.absolute_messages(p) for p in prompts]

        def chunk(first: int, judged: list[Any]) -> None:
            if on_batch is not None:
                on_batch(first, [_grade(j) for j in judged])

        return [_grade(j) for j in self._judge(messages, "score", self.grade_tokens, progress, "grading", 1, chunk)]

    # ---- pairwise
    def compare(
        self,
        question: str,
        response_a: str,
        response_b: str,
        *,
        context: str | None = None,
        choices: Sequence[str] | None = None,
        both_orders: bool = False,
    ) -> Comparison:
        """Which of two responses the criterion picks (A, B or TIE). ``both_orders``: judge B-first too and say
        whether the verdict follows the response rather than the position (``consistent``)."""
        row = {
            "question": question,
            "response_a": response_a,
            "response_b": response_b,
            "context": context,
            "choices": list(choices) if choices else None,
        }
        return self.compare_many([row], both_orders=both_orders, progress=False)[0]

    def compare_many(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        both_orders: bool = False,
        progress: bool = True,
        on_batch: Callable[[int, list[Comparison]], None] | None = None,
    ) -> list[Comparison]:
        """Compare every row (keys as ``compare``'s arguments), in input order; see ``grade_many``."""
        rows = list(rows)
        pairs = [compare_prompts(r, f"row {i}", self.max_response_chars, self.task) for i, r in enumerate(rows)]
        step = 2 if both_orders else 1
        messages = [formats.bias_messages(p) for pair in pairs for p in pair[:step]]

        def combine(judged: list[Any]) -> list[Comparison]:
            if not both_orders:
                return [_one_order(j, False) for j in judged]
            return [
                _both(_one_order(a, False), _one_order(b, True)) for a, b in zip(judged[::2], judged[1::2], strict=True)
            ]

        def chunk(first: int, judged: list[Any]) -> None:
            if on_batch is not None:
                on_batch(first // step, combine(judged))

        desc = "comparing (both orders)" if both_orders else "comparing"
        return combine(self._judge(messages, "verdict", self.compare_tokens, progress, desc, step, chunk))

    def _judge(
        self,
        messages: list[Any],
        answer: str,
        max_new_tokens: int,
        progress: bool,
        desc: str,
        step: int,
        on_chunk: Callable[[int, list[Any]], None],
    ) -> list[Any]:
        """The engine's judgements of ``messages`` in input order, in chunks of its batch size (a multiple of
        ``step``: both orders of a pair stay in one chunk), with a progress bar over rows; ``on_chunk(first message
        index, judgements)`` after each chunk."""
        from tqdm.auto import tqdm

        size = max(step, self.engine.batch_size - self.engine.batch_size % step)
        out: list[Any] = []
        with tqdm(total=len(messages) // step, desc=desc, disable=not progress or len(messages) <= size) as bar:
            for first in range(0, len(messages), size):
                judged = self.engine.judge(messages[first : first + size], max_new_tokens=max_new_tokens, answer=answer)
                out += judged
                on_chunk(first, judged)
                bar.update(len(judged) // step)
        return out


def trained_criterion(ref: str) -> str | None:
    """The pairwise criterion a model was trained on: its own adapter recipe's ``data.criterion``, or that of the
    pairwise adapter a merge was made from; None for the BBQ bias judge (and for models the factory did not make)."""
    from . import manifest as mf
    from . import models

    if models.is_route(ref):  # the routed judge compares with its pairwise part
        return trained_criterion(models.parts(ref)[1])
    try:
        kind, loc = models.resolve(ref)
    except JudgeFactoryError:
        return None
    if kind == "base" or not isinstance(loc, Path):
        return None
    m = mf.read(loc) or {}
    recipes = [m.get("recipe") or {}]
    if kind == "merge":
        recipes = [((p.get("manifest") or {}).get("recipe") or {}) for p in m.get("parents") or []]
    for r in recipes:
        if r.get("task") == "pairwise" and (r.get("data") or {}).get("criterion"):
            return str(r["data"]["criterion"])
    return None
