"""A user's own rows: reading a file or a hub dataset, mapping its columns, validating each row strictly.

Used by ``judgefactory grade`` / ``compare`` (rows to judge) and by adapter recipes whose ``data.source`` is a user
source (rows to train on). A source is

* ``file:PATH`` or a plain path: ``.jsonl``, ``.json`` (a list of objects) or ``.csv`` (UTF-8, a header row);
* ``hub:ORG/NAME`` (optionally ``@REVISION``): a Hugging Face dataset through ``datasets.load_dataset``, split
  ``train`` unless the source says ``hub:ORG/NAME@REV#SPLIT``.

``columns`` maps the factory's field names to the file's (``{"instruction": "prompt"}``: the column ``prompt`` is
read as ``instruction``). Every bad row is found before anything is judged or trained: the error is one line naming
the file, the row (0-based, as ``row N``) and the field, with the count of further bad rows.

The schemas (``ABSOLUTE`` / ``PAIRWISE``; README "Making your own judge"):

* absolute: ``instruction``, ``response``, ``rubric`` (text) or ``criteria`` + ``score1_description`` …
  ``score5_description``, optional ``reference_answer``; to train: ``score`` 1-5, optional ``feedback``. The
  Prometheus Feedback-Collection keys (``orig_instruction``, ``orig_response``, ``orig_criteria``, ``orig_score`` …)
  are accepted as they are.
* pairwise: ``question`` (or ``context``), ``response_a``, ``response_b``, optional ``context`` and ``choices``
  (a list, or a ``|``-separated string); to train: ``label`` A / B / TIE, optional ``reasoning`` (written for the
  row's order) and ``reasoning_b_first`` (for the swapped order; default: ``reasoning`` with "Response A" and
  "Response B" exchanged).
* both: optional ``id`` (unique) and ``group`` (rows of one group stay on one side of every split; default: the
  instruction or question text).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import JudgeFactoryError

PROMETHEUS_KEYS = {
    "orig_instruction": "instruction",
    "orig_response": "response",
    "orig_reference_answer": "reference_answer",
    "orig_criteria": "criteria",
    **{f"orig_score{i}_description": f"score{i}_description" for i in range(1, 6)},
    "orig_score": "score",
    "orig_feedback": "feedback",
}
"""Feedback-Collection / Feedback-Bench column names -> the factory's absolute fields."""
FIELDS = {
    "absolute": (
        "id",
        "group",
        "instruction",
        "response",
        "rubric",
        "criteria",
        *(f"score{i}_description" for i in range(1, 6)),
        "reference_answer",
        "score",
        "feedback",
    ),
    "pairwise": (
        "id",
        "group",
        "question",
        "context",
        "choices",
        "response_a",
        "response_b",
        "label",
        "reasoning",
        "reasoning_b_first",
    ),
}
LABELS = ("A", "B", "TIE")


class UserDataError(JudgeFactoryError):
    """A user file cannot be read or one of its rows is invalid; one line naming the file, the row and the field."""


@dataclass
class Table:
    """The rows of a user source as read (original column names, input order), and where they came from."""

    rows: list[dict[str, Any]]
    where: str
    """the file path or hub id, for error lines."""
    sha256: str


def _parse_source(source: str) -> tuple[str, str]:
    if source.startswith("hub:"):
        return "hub", source[4:]
    return "file", source.removeprefix("file:")


def read_table(source: str, base_dir: Path | None = None) -> Table:
    """Every row of a user source (see the module docstring); a file that cannot be read is one line."""
    kind, loc = _parse_source(source)
    if kind == "hub":
        return _read_hub(loc)
    path = Path(loc).expanduser()
    if not path.is_absolute() and base_dir is not None and not path.exists():
        path = base_dir / path
    if not path.is_file():
        raise UserDataError(f"{path}: no such file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UserDataError(
            f"{path}: not UTF-8 text (byte {err.start}, line {line}); save it as UTF-8 and run again"
        ) from None
    from ..manifest import sha256_text

    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(text, path)
    elif suffix == ".jsonl":
        rows = _jsonl_rows(text, path)
    elif suffix == ".json":
        try:
            got = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserDataError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None
        if not isinstance(got, list):
            raise UserDataError(f"{path}: a .json file must hold a list of objects")
        rows = got
        for i, r in enumerate(rows):
            if not isinstance(r, dict):
                raise UserDataError(f"{path} row {i}: expected an object, got {type(r).__name__}")
    else:
        raise UserDataError(f"{path}: unknown file type {suffix or '(none)'}: use .jsonl, .json or .csv")
    if not rows:
        raise UserDataError(f"{path}: no rows")
    return Table(rows, str(path), sha256_text(text))


def _jsonl_rows(text: str, path: Path) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserDataError(f"{path} line {i + 1}: invalid JSON ({err.msg})") from None
        if not isinstance(r, dict):
            raise UserDataError(f"{path} line {i + 1}: expected a JSON object, got {type(r).__name__}")
        rows.append(r)
    return rows


def _csv_rows(text: str, path: Path) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise UserDataError(f"{path}: no header row")
    rows = []
    for i, r in enumerate(reader):
        if None in r:  # more cells than header columns
            raise UserDataError(
                f"{path} row {i}: {len(r[None]) + len(reader.fieldnames)} cells for a header of "
                f"{len(reader.fieldnames)} columns"
            )
        rows.append({k: v for k, v in r.items()})
    return rows


def _read_hub(loc: str) -> Table:
    """A hub dataset (``ORG/NAME[@REVISION][#SPLIT]``) through 🤗 datasets."""
    from ..manifest import sha256_json

    loc, _, split = loc.partition("#")
    name, _, revision = loc.partition("@")
    try:
        import datasets

        ds = datasets.load_dataset(name, split=split or "train", revision=revision or None)
    except Exception as err:  # noqa: BLE001 - datasets raises many types; one line with its own message
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserDataError(f"hub:{loc}: could not load ({type(err).__name__}: {msg})") from None
    rows = [dict(r) for r in ds]
    if not rows:
        raise UserDataError(f"hub:{loc}: no rows")
    return Table(rows, f"hub:{loc}", sha256_json(rows))


# --------------------------------------------------------------------------- mapping and validation
def mapped(table: Table, columns: Mapping[str, str], task: str) -> list[dict[str, Any]]:
    """The rows under the factory's field names: ``columns`` (field -> file column) applied, the Prometheus ``orig_*``
    keys accepted for absolute rows. A mapped column that is in no row is an error."""
    known = set(FIELDS[task])
    bad = sorted(set(columns) - known)
    if bad:
        raise UserDataError(f"columns: {bad[0]!r} is not a field of {task} rows (fields: {', '.join(FIELDS[task])})")
    present = set().union(*(r.keys() for r in table.rows))
    missing = [c for c in columns.values() if c not in present]
    if missing:
        raise UserDataError(f"{table.where}: column {missing[0]!r} (named in columns) is in no row")
    rename = {v: k for k, v in columns.items()}
    out = []
    for r in table.rows:
        row = {rename.get(k, k): v for k, v in r.items()}
        if task == "absolute":
            for orig, field in PROMETHEUS_KEYS.items():
                if field not in row and orig in row:
                    row[field] = row[orig]
        out.append(row)
    return out


def _empty(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v) or (isinstance(v, str) and not v.strip())


def score_of(v: Any, where: str) -> int:
    """A 1-5 integer score from a cell (``4``, ``"4"``, ``4.0``); anything else is an error naming the row."""
    try:
        f = float(str(v).strip())
    except ValueError:
        raise UserDataError(f"{where}: field 'score' must be an integer 1-5, got {v!r}") from None
    if f != int(f) or not 1 <= f <= 5:
        raise UserDataError(f"{where}: field 'score' must be an integer 1-5, got {v!r}")
    return int(f)


def label_of(v: Any, where: str) -> str:
    lab = str(v).strip().upper() if not _empty(v) else ""
    if lab not in LABELS:
        raise UserDataError(f"{where}: field 'label' must be A, B or TIE, got {v!r}")
    return lab


def check_rows(rows: list[dict[str, Any]], task: str, where: str, *, training: bool) -> None:
    """Every row against the task's schema (``training``: labels too); all rows are checked, and the first bad one
    is raised with the count of the others. Ids, when given, must be unique."""
    from ..rows import InputError, compare_prompts, grade_prompt

    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, r in enumerate(rows):
        at = f"{where} row {i}"
        try:
            if task == "absolute":
                grade_prompt(r, at)
                if training:
                    if _empty(r.get("score")):
                        raise UserDataError(f"{at}: field 'score' is missing or empty")
                    score_of(r["score"], at)
            else:
                compare_prompts(r, at)
                if training:
                    label_of(r.get("label"), at)
            if not _empty(r.get("id")):
                rid = str(r["id"])
                if rid in seen:
                    raise UserDataError(f"{at}: field 'id' {rid!r} repeats row {seen[rid]}")
                seen[rid] = i
        except (InputError, UserDataError) as err:
            problems.append(str(err))
    if problems:
        more = f" ({len(problems) - 1} more bad rows)" if len(problems) > 1 else ""
        raise UserDataError(problems[0] + more)


def group_of(row: Mapping[str, Any], task: str) -> str:
    """The split key of a row: its ``group``, else the instruction (absolute) or the context + question (pairwise)."""
    if not _empty(row.get("group")):
        return str(row["group"])
    if task == "absolute":
        return str(row.get("instruction") or "")
    return f"{row.get('context') or ''}\n{row.get('question') or ''}"


def load(source: str, columns: Mapping[str, str], task: str, *, training: bool) -> tuple[list[dict[str, Any]], Table]:
    """Read, map and check a user source: (rows under the factory's names, the table as read)."""
    from .. import paths

    table = read_table(source, base_dir=paths.workspace())
    rows = mapped(table, columns, task)
    check_rows(rows, task, table.where, training=training)
    return rows, table


# --------------------------------------------------------------------------- training rows from a user source
def is_user_source(source: str) -> bool:
    """Whether an adapter's ``data.source`` names a user's file or hub dataset (``file:`` / ``hub:``)."""
    return source.startswith(("file:", "hub:"))


def split_groups(
    rows: list[dict[str, Any]], task: str, dev_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Row indices of the ``train`` / ``dev`` / ``test`` splits, disjoint by group (``group_of``): the groups are
    shuffled with ``seed``; the first ``test_fraction`` of them are the test split, the next ``dev_fraction`` the dev
    split, the rest train. Input order is kept inside each split."""
    import random

    groups = sorted({group_of(r, task) for r in rows})
    random.Random(seed).shuffle(groups)
    n_test, n_dev = round(test_fraction * len(groups)), round(dev_fraction * len(groups))
    if test_fraction and not n_test or dev_fraction and not n_dev:
        raise UserDataError(
            f"{len(groups)} groups are too few for dev_fraction {dev_fraction} and test_fraction {test_fraction}"
        )
    which = {g: "test" for g in groups[:n_test]} | {g: "dev" for g in groups[n_test : n_test + n_dev]}
    out: dict[str, list[int]] = {"train": [], "dev": [], "test": []}
    for i, r in enumerate(rows):
        out[which.get(group_of(r, task), "train")].append(i)
    if not out["train"]:
        raise UserDataError("no training rows left after the dev and test splits")
    return out


_SLOT = re.compile(r"\b([Rr]esponse) ([AB])\b")


def swap_slots(text: str) -> str:
    """``Response A`` <-> ``Response B`` in a reasoning text (the same judgement read with the responses swapped)."""
    return _SLOT.sub(lambda m: f"{m.group(1)} {'B' if m.group(2) == 'A' else 'A'}", text)


def default_reasoning(label: str) -> str:
    """The reasoning of a training target when the user's row has none: a short sentence that names the verdict."""
    if label == "TIE":
        return "Neither response is picked over the other by the criterion."
    other = "B" if label == "A" else "A"
    return f"Response {label} is the one the criterion picks; Response {other} is not."


def pair_rows(rows: list[dict[str, Any]], indices: list[int], criterion: str | None) -> list[dict[str, Any]]:
    """Pair-set rows (the layout ``train.examples``, ``quick_eval.dev_data`` and the preference stage read) for the
    chosen user rows, each in both A/B orders: the label and the reasoning mirrored for the swapped order."""
    from .. import formats

    task = formats.pairwise_task(criterion)
    out = []
    for i in indices:
        r = rows[i]
        label = label_of(r["label"], f"row {i}")
        reasoning = str(r["reasoning"]).strip() if not _empty(r.get("reasoning")) else default_reasoning(label)
        swapped = formats.swap_verdict(label) or label
        if not _empty(r.get("reasoning_b_first")):
            reasoning_b = str(r["reasoning_b_first"]).strip()
        elif not _empty(r.get("reasoning")):
            reasoning_b = swap_slots(reasoning)
        else:
            reasoning_b = default_reasoning(swapped)
        pid = str(r["id"]) if not _empty(r.get("id")) else f"row{i}"
        common = {
            "pair_id": pid,
            "question_id": group_of(r, "pairwise"),
            "bucket": label,
            "context": r.get("context") or "",
            "question": str(r.get("question") or ""),
            "choices": _choice_list(r.get("choices")),
            "task": task,
        }
        for order, a, b, lab, why in (
            ("ab", r["response_a"], r["response_b"], label, reasoning),
            ("ba", r["response_b"], r["response_a"], swapped, reasoning_b),
        ):
            out.append(
                {
                    **common,
                    "order": order,
                    "response_a": str(a),
                    "response_b": str(b),
                    "label": lab,
                    "target": formats.bias_target(why, lab),
                }
            )
    return out


def _choice_list(value: Any) -> list[str]:
    if _empty(value):
        return []
    if isinstance(value, str):
        return [c.strip() for c in value.split("|") if c.strip()]
    return [str(c) for c in value]


def absolute_items(rows: list[dict[str, Any]], indices: list[int], source: str) -> list[Any]:
    """``prometheus.AbsoluteItem``s for the chosen user rows: the Prometheus prompt from the row's fields, its score,
    its feedback (or a short sentence naming the score when it has none), grouped by ``group_of``."""
    from ..rows import grade_prompt
    from .prometheus import AbsoluteItem

    out = []
    for i in indices:
        r = rows[i]
        score = score_of(r["score"], f"{source} row {i}")
        feedback = (
            str(r["feedback"]).strip()
            if not _empty(r.get("feedback"))
            else f"The response best fits the rubric's description of score {score}."
        )
        out.append(
            AbsoluteItem(
                id=str(r["id"]) if not _empty(r.get("id")) else f"row{i}",
                prompt=grade_prompt(r, f"{source} row {i}"),
                scores=[score],
                feedbacks=[feedback],
                group=group_of(r, "absolute"),
                source=source,
            )
        )
    return out


@dataclass
class Splits:
    """A user source read for an adapter recipe: its rows under the factory's names, the split indices, the table."""

    task: str
    rows: list[dict[str, Any]]
    index: dict[str, list[int]]
    table: Table

    def info(self) -> dict[str, Any]:
        return {
            "sha256": self.table.sha256,
            "file": self.table.where,
            "split_rows": {k: len(v) for k, v in self.index.items()},
            "split_groups": {k: len({group_of(self.rows[i], self.task) for i in v}) for k, v in self.index.items()},
        }


def recipe_splits(recipe: Any) -> Splits:
    """The user source of an adapter recipe, read, checked and split (``data.dev_fraction``, ``data.test_fraction``,
    ``train.seed``)."""
    d = recipe.data
    rows, table = load(d.source, d.columns, recipe.task, training=True)
    index = split_groups(rows, recipe.task, d.dev_fraction, d.test_fraction, recipe.train.seed)
    return Splits(recipe.task, rows, index, table)
