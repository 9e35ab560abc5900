"""Public data written out in the user formats (``data.user``), to train a specialist through the user path on the
same rows the built-in paths train on: a built BBQ pair set as pairwise JSONL, a Prometheus absolute source (the
MT-Bench grading rows) as a CSV. The outputs are derived from upstream data: keep them out of version control
(``data/generated/`` is ignored)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from .. import formats
from .. import manifest as mf
from .user import UserDataError


def pairs_to_user(pair_set: Path, out: Path, split: str = "train") -> int:
    """One user row per pair of a built pair set's ``split``: the A-first order's fields, its label and reasoning,
    the B-first reasoning beside it, and the BBQ template as the group (the pair set's own split key)."""
    path = pair_set / f"{split}.jsonl"
    if not path.is_file():
        raise UserDataError(f"{path}: no such file (build the pair set first: judgefactory pairs build <recipe>)")
    by_pair: dict[str, dict[str, dict[str, Any]]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        by_pair.setdefault(r["pair_id"], {})[r["order"]] = r
    rows = []
    for pid, o in by_pair.items():
        ab, ba = o["ab"], o["ba"]
        rows.append(
            {
                "id": pid,
                "group": ab["template_id"],
                "context": ab["context"],
                "question": ab["question"],
                "choices": ab["choices"],
                "response_a": ab["response_a"],
                "response_b": ab["response_b"],
                "label": ab["label"],
                "reasoning": ab["reasoning"],
                "reasoning_b_first": ba["reasoning"],
            }
        )
    mf.write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)


def absolute_to_user(source: str, out: Path, config: str | None = None, mirror: Any = None) -> int:
    """One CSV row per graded response of a Prometheus absolute source: instruction, response, rubric and reference
    answer cut back out of its prompt (``formats.sections``), the median GPT-4 score with a feedback that gave it,
    and the instruction's group."""
    from .prometheus import load_absolute, targets

    items, errors = load_absolute(source, config, mirror=mirror)
    if errors:
        raise UserDataError(f"{source}: {len(errors)} malformed rows; first: {errors[0]}")
    buf = io.StringIO()
    w = csv.DictWriter(
        buf, fieldnames=["id", "group", "instruction", "response", "rubric", "reference_answer", "score", "feedback"]
    )
    w.writeheader()
    for it in items:
        parts = formats.sections(it.prompt.strip().rstrip('",').rstrip())
        feedback, score = targets(it, "median")[0]
        w.writerow(
            {
                "id": it.id,
                "group": it.group,
                "instruction": parts.get("instruction", ""),
                "response": parts.get("response", ""),
                "rubric": parts.get("rubric", ""),
                "reference_answer": parts.get("reference", ""),
                "score": score,
                "feedback": feedback,
            }
        )
    mf.write_text(out, buf.getvalue())
    return len(items)
