"""Judging a user's file: ``judgefactory grade MODEL FILE`` / ``judgefactory compare MODEL FILE``.

``run(task, model, source, out)`` reads the rows (``data.user``: JSONL, JSON, CSV or a hub dataset, columns mapped),
checks every row before judging anything (a bad row is one line naming file, row and field; nothing is written),
then judges in batches through ``api.Judge``. Results come back in input order with every input field kept, plus
``judge_*`` fields (grade: score, expected score, probabilities, feedback; compare: verdict, probabilities,
reasoning, and with both orders the position-consistency flag). An unparseable reply is a row with ``judge_error``
set, counted in the manifest, never dropped.

Interrupted runs resume: each batch is appended to ``OUT.partial`` (its first line records what is being judged);
a rerun with the same model, input and settings judges only the rows not yet there, never one twice. The finished
output is written atomically (temp file + rename) beside ``OUT.manifest.json``; a rerun of a finished job says it
is up to date. An existing output made from anything else is never overwritten without ``force``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import manifest as mf
from .errors import JudgeFactoryError

log = logging.getLogger(__name__)
TASKS = {"grade": "absolute", "compare": "pairwise"}


class JudgeFileError(JudgeFactoryError):
    """The output cannot be written as asked (an earlier, different output in the way)."""


def _result(task: str, r: Any) -> dict[str, Any]:
    if task == "grade":
        return {
            "judge_score": r.score,
            "judge_expected_score": r.expected_score,
            "judge_probs": r.probs,
            "judge_feedback": r.feedback,
            "judge_error": r.error,
            "judge_raw": r.raw,
        }
    out = {
        "judge_verdict": r.verdict,
        "judge_probs": r.probs,
        "judge_reasoning": r.reasoning,
        "judge_error": r.error,
        "judge_raw": r.raw,
    }
    if r.swapped is not None:
        out["judge_consistent"] = r.consistent
        out["judge_verdict_b_first"] = r.swapped.verdict
        out["judge_raw_b_first"] = r.swapped.raw
    return out


def _key(task: str, model: dict[str, Any], table_sha: str, settings: Mapping[str, Any]) -> str:
    return mf.sha256_json({"task": task, "model": model, "input": table_sha, "settings": dict(settings)})


def _read_partial(path: Path, key: str) -> dict[int, dict[str, Any]]:
    """Rows already judged by an interrupted run of the same job (an unfinished last line is dropped: it is judged
    again); a partial file of another job is set aside, never deleted."""
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()
    try:
        head = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError:
        head = {}
    if head.get("key") != key:
        aside = path.with_name(path.name + f".{mf.now().replace(':', '')}.old")
        path.rename(aside)
        log.warning("%s: an interrupted run of another job; kept as %s", path, aside)
        return {}
    done: dict[int, dict[str, Any]] = {}
    for line in lines[1:]:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # cut off by the interruption
        done[int(rec["i"])] = rec["result"]
    return done


def _write_output(path: Path, rows: list[dict[str, Any]]) -> None:
    if path.suffix.lower() == ".csv":
        buf = io.StringIO()
        fields = list(dict.fromkeys(k for r in rows for k in r))
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in r.items()})
        mf.write_text(path, buf.getvalue())
    else:
        mf.write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


def run(
    task: str,
    model: str,
    source: str,
    out: Path,
    *,
    columns: Mapping[str, str] | None = None,
    both_orders: bool = False,
    backend: str = "transformers",
    base_url: str | None = None,
    batch_size: int = 8,
    max_response_chars: int | None = None,
    force: bool = False,
    judge: Any = None,
) -> dict[str, Any]:
    """Judge every row of ``source`` with ``model`` into ``out``; returns the manifest (counts, errors, where)."""
    from .api import Judge
    from .bench.run import model_fingerprint
    from .data import user

    kind = TASKS[task]
    rows, table = user.load(source, columns or {}, kind, training=False)
    model_fp = {"ref": model, "base_url": base_url} if backend == "openai" else model_fingerprint(model)
    settings = {"both_orders": both_orders, "max_response_chars": max_response_chars, "backend": backend}
    key = _key(task, model_fp, table.sha256, settings)
    meta_path = out.with_name(out.name + ".manifest.json")
    if out.exists():
        old = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        if old.get("key") == key and old.get("complete"):
            log.info("%s: up to date (same model, input and settings)", out)
            return old
        if not force:
            raise JudgeFileError(
                f"{out} exists and was not made by this job (model, input or settings differ): "
                "choose another --out, or pass --force to replace it"
            )
    partial = out.with_name(out.name + ".partial")
    done = _read_partial(partial, key)
    todo = [i for i in range(len(rows)) if i not in done]
    if done:
        log.info("%s: resuming, %d of %d rows already judged", out, len(done), len(rows))
    if todo:
        judge = judge or Judge.load(
            model, backend, base_url=base_url, batch_size=batch_size, max_response_chars=max_response_chars
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        if not partial.is_file():
            mf.write_text(partial, json.dumps({"key": key, "task": task, "source": table.where}) + "\n")

        def save(first: int, results: list[Any]) -> None:
            with open(partial, "a") as f:
                for k, r in enumerate(results):
                    i = todo[first + k]
                    done[i] = _result(task, r)
                    f.write(json.dumps({"i": i, "result": done[i]}, default=str) + "\n")
                f.flush()

        pending = [rows[i] for i in todo]
        if task == "grade":
            judge.grade_many(pending, on_batch=save)
        else:
            judge.compare_many(pending, both_orders=both_orders, on_batch=save)
    originals = table.rows
    merged = [{**originals[i], **done[i]} for i in range(len(rows))]
    errors = [i for i in range(len(rows)) if done[i]["judge_error"]]
    _write_output(out, merged)
    meta = {
        "kind": "judgements",
        "task": task,
        "key": key,
        "complete": True,
        "model": model_fp,
        "source": table.where,
        "input_sha256": table.sha256,
        "settings": settings,
        "rows": len(rows),
        "unparseable": len(errors),
        "unparseable_rows": errors[:50],
        "output": str(out),
        "output_sha256": mf.sha256_file(out),
        "created": mf.now(),
        "versions": mf.versions(),
    }
    if task == "compare" and both_orders:
        flags = [done[i].get("judge_consistent") for i in range(len(rows))]
        judged = [f for f in flags if f is not None]
        meta["position_consistency"] = sum(judged) / len(judged) if judged else None
    mf.write_json(meta_path, meta)
    partial.unlink(missing_ok=True)
    return meta
