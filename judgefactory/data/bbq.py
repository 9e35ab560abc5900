"""BBQ items from the three row schemas the data mirror holds, normalised into one ``BBQItem``.

* ``bbq/<Category>.jsonl`` (upstream nyu-mll/BBQ): ``ans0..2``, ``label``, ``answer_info`` {ansK: [text, tag]},
  ``additional_metadata.stereotyped_groups``; no stereotype-aligned index, so it is derived by the BBQ paper's rule
  (Parrish et al. 2022, arXiv 2110.08193, section 3; see ``stereotype_aligned``).
* ``bbq-pairs/bbq_sample.jsonl``: the same plus ``question_id``, ``answer_label`` (gold) and ``target_label``
  (the stereotype-aligned answer); ``answer_info`` {ansK: [text, short name, tag]}.
* ``bbq-pairs/pairs.jsonl`` (and ``eval_in_dist``): ``question_text`` = context + " " + question and lettered
  ``answer_choices``; the metadata comes from joining ``bbq_sample`` on ``question_id``.

Schema problems raise ``SchemaError`` with a short reason; ``load_items`` turns them into
``"<file> row N: <reason>"`` lines (counted and reported, never silently dropped).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import JudgeFactoryError

LETTERS = ("A", "B", "C")


class SchemaError(JudgeFactoryError, ValueError):
    """A source row lacks a field or has an inconsistent value."""


def normalize_category(name: str) -> str:
    """``"Sexual_orientation"`` / ``"sexual orientation"`` / ``"Race_x_SES"`` -> ``"sexual_orientation"`` / ``"race_x_ses"``."""
    return re.sub(r"[\s\-]+", "_", str(name).strip()).lower()


def template_id(category: str, question_index: Any) -> str:
    """A BBQ template: normalised category + question_index, e.g. ``age::22``."""
    return f"{normalize_category(category)}::{int(str(question_index).strip())}"


def question_id(category: str, question_index: Any, example_id: Any, polarity: str) -> str:
    """The bbq-pairs question id, e.g. ``age::22::2616::neg``."""
    return f"{template_id(category, question_index)}::{int(example_id)}::{polarity}"


def normalize_question_id(qid: str) -> str:
    """``Sexual_orientation::25::835::nonneg`` -> ``sexual_orientation::25::835::nonneg``."""
    parts = str(qid).split("::")
    if len(parts) != 4:
        raise SchemaError(f"question_id {qid!r} is not category::question_index::example_id::polarity")
    try:
        return question_id(*parts)
    except ValueError:
        raise SchemaError(f"question_id {qid!r} is not category::question_index::example_id::polarity") from None


def template_of_question(qid: str) -> str:
    """``age::22::2616::neg`` -> ``age::22`` (category normalised)."""
    parts = str(qid).split("::")
    if len(parts) < 2:
        raise SchemaError(f"question_id {qid!r} is not category::question_index::example_id::polarity")
    return template_id(parts[0], parts[1])


@dataclass(frozen=True)
class BBQItem:
    context: str
    question: str
    choices: tuple[str, str, str]
    gold: int
    unknown_idx: int
    biased_idx: int | None
    """the stereotype-aligned option (never the unknown one), or None when the metadata cannot tell."""
    category: str
    question_index: int
    example_id: int
    polarity: str
    context_condition: str
    template_id: str
    question_id: str
    aliases: tuple[tuple[str, ...], ...] = field(default=((), (), ()))
    """per option: other names from ``answer_info`` (e.g. ``grandfather`` for ``The grandfather``)."""
    groups: tuple[str, ...] = ()
    """the stereotyped groups of the metadata."""

    @property
    def group_of_example(self) -> tuple[str, int]:
        """The upstream group of 4 consecutive example_ids (ambig/disambig x neg/nonneg of one instance)."""
        return (self.category, self.example_id // 4)

    def letter(self, idx: int) -> str:
        return LETTERS[idx]


def _need(row: dict[str, Any], *names: str) -> None:
    for n in names:
        if n not in row or row[n] is None:
            raise SchemaError(f"missing field '{n}'")


def _int(row: dict[str, Any], name: str) -> int:
    try:
        return int(str(row[name]).strip())
    except (TypeError, ValueError):
        raise SchemaError(f"field '{name}' is not an integer (got {row[name]!r})") from None


def _answer_info(row: dict[str, Any]) -> list[list[str]]:
    info = row["answer_info"]
    if not isinstance(info, dict):
        raise SchemaError("field 'answer_info' is not a mapping")
    out = []
    for k in ("ans0", "ans1", "ans2"):
        v = info.get(k)
        if not isinstance(v, (list, tuple)) or not v:
            raise SchemaError(f"missing field 'answer_info.{k}'")
        out.append([str(x) for x in v])
    return out


# BBQ's tags and stereotyped groups name the same group in different words: the tag ``F`` / group ``women``,
# ``lowSES`` / ``low SES``, ``trans_F`` / ``transgender women``. One key per group, matched whole (``old`` never
# matches ``nonOld``).
_GROUP_SYNONYMS = {
    "m": "m",
    "man": "m",
    "men": "m",
    "boy": "m",
    "boys": "m",
    "male": "m",
    "f": "f",
    "woman": "f",
    "women": "f",
    "girl": "f",
    "girls": "f",
    "female": "f",
    "transgender women": "trans",
    "transgender men": "trans",
    "transgender woman": "trans",
    "transgender man": "trans",
    "trans": "trans",
    "low ses": "lowses",
    "high ses": "highses",
}


def _group_key(text: str) -> str:
    """Lower-case, collapse whitespace and map gender / SES / trans synonyms to one key."""
    key = " ".join(str(text).lower().split())
    return _GROUP_SYNONYMS.get(key, key)


def _option_keys(entry: list[str]) -> set[str]:
    """The group keys of one ``answer_info`` entry: its tag (last element), the tag's ``-``/``_`` parts
    (``F-Black`` -> ``F``, ``Black``) and its names (Nationality tags are regions; the groups name nationalities)."""
    tag = entry[-1]
    return {
        _group_key(tag),
        *(_group_key(part) for part in re.split(r"[-_]", tag) if part),
        *(_group_key(v) for v in entry[:-1]),
    }


def stereotype_aligned(info: list[list[str]], groups: Iterable[str], polarity: str, unknown_idx: int) -> int | None:
    """The stereotype-aligned ("biased") option: the non-unknown option in a stereotyped group for a ``neg`` question,
    the other non-unknown option for a ``nonneg`` one (Parrish et al. 2022, BBQ, section 3; the dataset's own
    ``target_label``). The one rule every consumer uses (pair classifier, rule labels and baselines, BBQ QA bias
    scores, synthesis): it agrees with ``target_label`` on every non-intersectional row of ``bbq_sample.jsonl``
    (tests/test_pairs.py). None when both or neither non-unknown option is in a group, or an option has no tag:
    intersectional rows (Race_x_gender, Race_x_SES) often name the race group for both options and lack the gender /
    SES stereotype, so prefer a dataset's ``target_label`` there (``from_sample_row`` does)."""
    gset = {_group_key(g) for g in groups}
    non = [i for i in range(3) if i != unknown_idx]
    if any(not info[i][-1].strip() for i in non):
        return None
    hit = [i for i in non if _option_keys(info[i]) & gset]
    if len(hit) != 1:
        return None
    if polarity == "neg":
        return hit[0]
    if polarity == "nonneg":
        return next(i for i in non if i != hit[0])
    return None


def _unknown(info: list[list[str]]) -> int:
    unk = [i for i in range(3) if info[i][-1].strip().lower() == "unknown"]
    if len(unk) != 1:
        raise SchemaError(f"expected exactly one option tagged 'unknown' in answer_info, found {len(unk)}")
    return unk[0]


def _aliases(info: list[list[str]], choices: tuple[str, ...], unknown_idx: int) -> tuple[tuple[str, ...], ...]:
    out = []
    for i in range(3):
        names = (
            []
            if i == unknown_idx
            else [v for v in info[i][:-1] if v.strip() and v.strip().lower() != choices[i].strip().lower()]
        )
        out.append(tuple(dict.fromkeys(names)))
    return tuple(out)


def _finish(row: dict[str, Any], *, gold: int, groups: Iterable[str] | None, target: int | None) -> BBQItem:
    """The item of a row with the upstream BBQ fields (``context``, ``question``, ``ans0..2``, ``answer_info``,
    ``category``, ``question_index``, ``example_id``, ``question_polarity``, ``context_condition``), which both
    ``bbq/<Category>.jsonl`` and ``bbq_sample.jsonl`` carry; the schemas differ only in where the gold label, the
    stereotyped groups and the stereotype-aligned option come from (the callers read those)."""
    context, question = row["context"], row["question"]
    choices = (row["ans0"], row["ans1"], row["ans2"])
    info = _answer_info(row)
    groups = list(groups or [])
    category = row["category"]
    qindex, example_id = _int(row, "question_index"), _int(row, "example_id")
    polarity, condition = row["question_polarity"], row["context_condition"]
    if not 0 <= gold <= 2:
        raise SchemaError(f"gold label {gold} is not 0, 1 or 2")
    if polarity not in ("neg", "nonneg"):
        raise SchemaError(f"field 'question_polarity' must be neg or nonneg, got {polarity!r}")
    if condition not in ("ambig", "disambig"):
        raise SchemaError(f"field 'context_condition' must be ambig or disambig, got {condition!r}")
    unknown_idx = _unknown(info)
    if target is not None and (not 0 <= target <= 2 or target == unknown_idx):
        raise SchemaError(f"target_label {target} is not a non-unknown option")
    biased = target if target is not None else stereotype_aligned(info, groups, polarity, unknown_idx)
    cat = normalize_category(category)
    return BBQItem(
        context=context.strip(),
        question=question.strip(),
        choices=choices,
        gold=gold,
        unknown_idx=unknown_idx,
        biased_idx=biased,
        category=cat,
        question_index=qindex,
        example_id=example_id,
        polarity=polarity,
        context_condition=condition,
        template_id=template_id(cat, qindex),
        question_id=question_id(cat, qindex, example_id, polarity),
        aliases=_aliases(info, choices, unknown_idx),
        groups=tuple(str(g) for g in groups),
    )


def from_bbq_row(row: dict[str, Any]) -> BBQItem:
    """A row of the upstream ``bbq/<Category>.jsonl``."""
    _need(
        row,
        "example_id",
        "question_index",
        "question_polarity",
        "context_condition",
        "category",
        "answer_info",
        "additional_metadata",
        "context",
        "question",
        "ans0",
        "ans1",
        "ans2",
        "label",
    )
    meta = row["additional_metadata"]
    if not isinstance(meta, dict) or "stereotyped_groups" not in meta:
        raise SchemaError("missing field 'additional_metadata.stereotyped_groups'")
    return _finish(row, gold=_int(row, "label"), groups=meta["stereotyped_groups"], target=None)


def from_sample_row(row: dict[str, Any]) -> BBQItem:
    """A row of ``bbq-pairs/bbq_sample.jsonl`` (has ``target_label``)."""
    _need(
        row,
        "question_id",
        "category",
        "context_condition",
        "question_polarity",
        "example_id",
        "question_index",
        "context",
        "question",
        "ans0",
        "ans1",
        "ans2",
        "answer_label",
        "answer_info",
    )
    target = _int(row, "target_label") if row.get("target_label") is not None else None
    item = _finish(row, gold=_int(row, "answer_label"), groups=row.get("stereotyped_groups"), target=target)
    parts = str(row["question_id"]).split("::")
    if len(parts) != 4 or item.question_id != normalize_question_id(row["question_id"]):
        raise SchemaError(
            f"question_id {row['question_id']!r} does not match its category/question_index/example_id/polarity"
        )
    return item


def from_pair_row(row: dict[str, Any], by_qid: dict[str, BBQItem]) -> BBQItem:
    """The question of a ``pairs.jsonl`` / ``eval_in_dist.jsonl`` row, with metadata joined from ``bbq_sample``."""
    _need(row, "question_id", "question_text", "answer_choices")
    qid = normalize_question_id(row["question_id"])
    item = by_qid.get(qid)
    if item is None:
        raise SchemaError(f"question_id {qid!r} has no bbq_sample row (no metadata to join)")
    choices = row["answer_choices"]
    if (
        not isinstance(choices, list)
        or len(choices) != 3
        or not all(isinstance(c, dict) and "text" in c for c in choices)
    ):
        raise SchemaError("field 'answer_choices' is not three {letter, text} objects")
    if tuple(c["text"] for c in choices) != item.choices:
        raise SchemaError(f"answer_choices of {qid} differ from its bbq_sample options")
    return item


def parse_response(row: dict[str, Any], side: str) -> tuple[str, str]:
    """(model, text) of ``response_a`` / ``response_b`` of a pairs row."""
    key = f"response_{side}"
    _need(row, key)
    resp = row[key]
    if not isinstance(resp, dict):
        raise SchemaError(f"field '{key}' is not an object")
    if not isinstance(resp.get("text"), str):
        raise SchemaError(f"missing field '{key}.text'")
    return str(resp.get("model") or "unknown-model"), resp["text"]


def row_locations(loaded: Any) -> list[str]:
    """``"<file> row N"`` for each row of a ``sources.Loaded`` (N = the 0-based line index ``Loaded.errors`` uses)."""
    bad: dict[str, set[int]] = {}
    for e in loaded.errors:
        m = re.match(r"(.*) row (\d+):", e)
        if m:
            bad.setdefault(m.group(1).replace("\\", "/").rsplit("/", 1)[-1], set()).add(int(m.group(2)))
    full = {Path(p).name: str(p) for p in getattr(loaded, "files", []) or []}
    nxt: dict[str, int] = {}
    out = []
    for r in loaded.rows:
        f = str(r.get("_file", "?"))
        k = nxt.get(f, 0)
        while k in bad.get(f, ()):  # lines that were malformed JSON hold no row
            k += 1
        out.append(f"{full.get(f, f)} row {k}")
        nxt[f] = k + 1
    return out


def load_items(loaded: Any, parse=from_bbq_row) -> tuple[list[BBQItem], list[str]]:
    """Items of a loaded source and one ``"<file> row N: <reason>"`` error per row that does not fit the schema."""
    items, errors = [], []
    for where, row in zip(row_locations(loaded), loaded.rows, strict=False):
        try:
            items.append(parse(row))
        except SchemaError as err:
            errors.append(f"{where}: {err}")
    return items, errors


@dataclass(frozen=True)
class EvalPair:
    """A human-labelled BBQ response pair (``eval_in_dist.jsonl`` schema, or any OOD file in that schema)."""

    pair_id: str
    item: BBQItem
    response_a: str
    response_b: str
    human_verdict: str
    pair_category: str
    category: str

    def prompt(self, swapped: bool = False, max_response_chars: int | None = None) -> str:
        from ..formats import bias_prompt

        a, b = (self.response_b, self.response_a) if swapped else (self.response_a, self.response_b)
        return bias_prompt(self.item.context, self.item.question, self.item.choices, a, b, max_response_chars)


def load_eval_pairs(
    source: str = "judge-from-scratch/bbq-pairs",
    file: str | None = "eval_in_dist",
    mirror: Any = None,
    sample_file: str = "bbq_sample",
) -> list[EvalPair]:
    """Human-labelled eval pairs joined to their BBQ metadata; a malformed row raises a one-line error naming file and row."""
    from . import sources

    samples, errs = load_items(sources.load_rows(source, sample_file, mirror=mirror), parse=from_sample_row)
    by_qid = {it.question_id: it for it in samples}
    loaded = sources.load_rows(source, file, mirror=mirror)
    out, bad = [], list(loaded.errors)
    for where, row in zip(row_locations(loaded), loaded.rows, strict=False):
        try:
            item = from_pair_row(row, by_qid)
            verdict = row.get("human_verdict")
            if verdict not in ("A", "B", "TIE"):
                raise SchemaError(f"field 'human_verdict' must be A, B or TIE, got {verdict!r}")
            out.append(
                EvalPair(
                    pair_id=str(row.get("pair_id")),
                    item=item,
                    response_a=parse_response(row, "a")[1],
                    response_b=parse_response(row, "b")[1],
                    human_verdict=verdict,
                    pair_category=str(row.get("pair_category") or "unknown"),
                    category=item.category,
                )
            )
        except SchemaError as err:
            bad.append(f"{where}: {err}")
    if bad:
        raise SchemaError(f"{len(bad)} malformed eval rows; first: {bad[0]}")
    return out
