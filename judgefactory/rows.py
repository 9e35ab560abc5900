"""A judged row -> its prompts: the fields a grade or a comparison needs, checked, rendered in the judges' formats.

Shared by the public API (``api.Judge``), the grade/compare commands and the user-data loader (``data.user``), so a
row is valid for judging exactly when it is valid for training. A missing field is an ``InputError`` naming the row
and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import formats
from .errors import JudgeFactoryError

SCORE_KEYS = tuple(f"score{i}_description" for i in range(1, 6))


class InputError(JudgeFactoryError):
    """A row handed to the judge lacks a field it needs; the message names the row and the field."""


def rubric_text(rubric: str | Mapping[str, Any]) -> str:
    """A Prometheus score rubric: given as text (used as is) or as a mapping with ``criteria`` and
    ``score1_description`` … ``score5_description``."""
    if isinstance(rubric, str):
        if not rubric.strip():
            raise InputError("rubric is empty")
        return rubric.strip()
    missing = [k for k in ("criteria", *SCORE_KEYS) if not str(rubric.get(k) or "").strip()]
    if missing:
        raise InputError(f"rubric lacks {', '.join(missing)}")
    return formats.rubric(str(rubric["criteria"]), [str(rubric[k]) for k in SCORE_KEYS])


def _text(row: Mapping[str, Any], key: str, where: str, required: bool = True) -> str | None:
    value = row.get(key)
    if value is None or (isinstance(value, float) and value != value) or not str(value).strip():
        if required:
            raise InputError(f"{where}: field '{key}' is missing or empty")
        return None
    return str(value)


def grade_prompt(row: Mapping[str, Any], where: str = "row", max_response_chars: int | None = None) -> str:
    """The absolute prompt of a row: ``instruction``, ``response``, ``rubric`` (text or mapping) or ``criteria`` +
    ``score1_description`` … ``score5_description``, optional ``reference_answer``."""
    instruction = _text(row, "instruction", where)
    response = _text(row, "response", where)
    rubric: Any = row.get("rubric")
    if rubric is None or (isinstance(rubric, str) and not rubric.strip()):
        if row.get("criteria") is None:
            raise InputError(f"{where}: field 'rubric' (or 'criteria' with score1..5_description) is missing or empty")
        rubric = {k: row.get(k) for k in ("criteria", *SCORE_KEYS)}
    try:
        text = rubric_text(rubric)
    except InputError as err:
        raise InputError(f"{where}: field 'rubric': {err}") from None
    assert instruction is not None and response is not None
    return formats.absolute_prompt(
        instruction,
        formats.clip(response, max_response_chars),
        text,
        _text(row, "reference_answer", where, required=False),
    )


def _choices(value: Any, where: str) -> list[str] | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):  # a CSV cell: "one | two | three"
        return [c.strip() for c in value.split("|") if c.strip()]
    if isinstance(value, Sequence):
        return [str(c) for c in value]
    raise InputError(f"{where}: field 'choices' must be a list or a '|'-separated string")


def compare_prompts(
    row: Mapping[str, Any], where: str = "row", max_response_chars: int | None = None, task: str | None = None
) -> tuple[str, str]:
    """The pairwise prompts of a row in both orders (A first, B first): ``question`` (or ``context``),
    ``response_a``, ``response_b``, optional ``context`` and ``choices``."""
    context = _text(row, "context", where, required=False)
    question = _text(row, "question", where, required=context is None) or ""
    a, b = _text(row, "response_a", where), _text(row, "response_b", where)
    assert a is not None and b is not None
    choices = _choices(row.get("choices"), where)
    return (
        formats.bias_prompt(context, question, choices, a, b, max_response_chars, task=task),
        formats.bias_prompt(context, question, choices, b, a, max_response_chars, task=task),
    )
