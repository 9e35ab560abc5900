"""Data sources: every dataset is addressed by a hub id (+ optional config/file).

With a mirror root configured (``JUDGEFACTORY_DATA`` or ``--data-mirror``), ids resolve to files laid out
like ``../shared/data`` (see ``CATALOGUE``) or, for any other id, to ``<mirror>/<hub id>/`` holding
json/jsonl/parquet files. Without a mirror, ids load from the Hugging Face Hub (or the upstream URL for
files that live in a GitHub repository) through 🤗 ``datasets``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import JudgeFactoryError

MIRROR_ENV = "JUDGEFACTORY_DATA"
_PROM_RAW = "https://raw.githubusercontent.com/prometheus-eval/prometheus-eval/main/eval/benchmark/data/"


class DataError(JudgeFactoryError):
    """A dataset could not be found or read; the message says where it looked."""


@dataclass(frozen=True)
class Source:
    mirror: str
    """path below the mirror root; ``{config}`` is replaced by the config / file name."""
    hub: str | None = None
    """hub dataset id for ``datasets.load_dataset``."""
    url: str | None = None
    """upstream URL prefix for files that are not on the hub (``{config}`` appended)."""
    default: str | None = None


CATALOGUE: dict[str, Source] = {
    # BBQ items (one file per category). Hub mirror heegyu/bbq uses the category as config name.
    "heegyu/bbq": Source(mirror="bbq/{config}.jsonl", hub="heegyu/bbq"),
    "nyu-mll/BBQ": Source(
        mirror="bbq/{config}.jsonl", url="https://raw.githubusercontent.com/nyu-mll/BBQ/main/data/{config}.jsonl"
    ),
    "nyu-mll/BBQ-unifiedqa": Source(
        mirror="bbq/unifiedqa-predictions/preds_{config}.jsonl",
        url="https://raw.githubusercontent.com/nyu-mll/BBQ/main/results/UnifiedQA/{config}.jsonl",
    ),
    # judge-from-scratch BBQ response pairs: files pairs, eval_in_dist, bbq_sample, ... (no public hub copy).
    "judge-from-scratch/bbq-pairs": Source(mirror="bbq-pairs/{config}.jsonl", default="pairs"),
    # Prometheus evaluation sets, which live in the prometheus-eval GitHub repo rather than on the hub.
    "prometheus-eval/vicuna": Source(mirror="prometheus/vicuna_eval.json", url=_PROM_RAW + "vicuna_eval.json"),
    "prometheus-eval/mt-bench": Source(mirror="prometheus/mt_bench_eval.json", url=_PROM_RAW + "mt_bench_eval.json"),
    "prometheus-eval/hhh-alignment": Source(
        mirror="prometheus/hhh_alignment_eval.json", url=_PROM_RAW + "hhh_alignment_eval.json"
    ),
    "prometheus-eval/autoj-pairwise": Source(
        mirror="prometheus/autoj_pairwise.jsonl", url=_PROM_RAW + "autoj_pairwise.jsonl"
    ),
}
BBQ_CATEGORIES = (
    "Age",
    "Disability_status",
    "Gender_identity",
    "Nationality",
    "Physical_appearance",
    "Race_ethnicity",
    "Race_x_SES",
    "Race_x_gender",
    "Religion",
    "SES",
    "Sexual_orientation",
)
_EXTS = (".jsonl", ".json", ".parquet", ".csv")


def mirror_root(explicit: str | Path | None = None) -> Path | None:
    """The configured mirror folder (argument, else $JUDGEFACTORY_DATA), or None for the hub."""
    root = explicit or os.environ.get(MIRROR_ENV)
    if not root:
        return None
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data mirror {root} does not exist (set by {'--data-mirror' if explicit else MIRROR_ENV})")
    return root


def mirror_files(source_id: str, config: str | None, root: Path) -> list[Path]:
    """Files of ``source_id`` (config) in the mirror; a one-line error naming where it looked if absent."""
    entry = CATALOGUE.get(source_id)
    config = config or (entry.default if entry else None)
    if entry is not None:
        if "{config}" in entry.mirror and config is None:
            pattern = entry.mirror.replace("{config}", "*")
            files = sorted(root.glob(pattern))
        else:
            files = [root / entry.mirror.replace("{config}", config or "")]
        files = [f for f in files if f.is_file()]
        where = root / entry.mirror.replace("{config}", config or "*")
    else:  # generic hub-like layout: <root>/<org>/<name>/[<config>/]*.jsonl|json|parquet
        folder = root / source_id / config if config else root / source_id
        single = [folder.with_suffix(e) for e in _EXTS if folder.with_suffix(e).is_file()]
        files = single or sorted(p for p in folder.rglob("*") if p.suffix in _EXTS) if folder.parent.is_dir() else []
        where = folder
    if not files:
        raise DataError(f"{source_id}{':' + config if config else ''}: not in the data mirror (looked for {where})")
    return files


def _read_json_file(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of a .json (list) or .jsonl file, and one error line per malformed row (never silently dropped)."""
    rows, errors = [], []
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None
        if isinstance(data, dict):  # {"train": [...]} or a single mapping of lists
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        for i, r in enumerate(data):
            (
                rows.append(r)
                if isinstance(r, dict)
                else errors.append(f"{path} row {i}: expected an object, got {type(r).__name__}")
            )
        return rows, errors
    with open(path) as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as err:
                errors.append(f"{path} row {i}: invalid JSON ({err.msg})")
                continue
            (rows.append(r) if isinstance(r, dict) else errors.append(f"{path} row {i}: expected an object"))
    return rows, errors


@dataclass
class Loaded:
    rows: list[dict[str, Any]]
    errors: list[str]
    files: list[Path]
    origin: str  # "mirror:<paths>" or "hub:<id>" / "url:<url>"


def load_rows(
    source_id: str, config: str | None = None, split: str = "train", mirror: str | Path | None = None
) -> Loaded:
    """All rows of a source as plain dicts, plus per-row errors for malformed rows.

    Mirror json/jsonl files are read row by row (heterogeneous nested rows stay intact and every bad
    row is reported with file and row number); parquet/csv and the hub go through 🤗 ``datasets``.
    """
    root = mirror_root(mirror)
    if root is not None:
        files = mirror_files(source_id, config, root)
        rows, errors = [], []
        for f in files:
            if f.suffix in (".json", ".jsonl"):
                r, e = _read_json_file(f)
            else:
                r, e = _datasets_rows(f.suffix.lstrip("."), data_files=str(f)), []
            for row in r:
                row.setdefault("_file", f.name)
            rows += r
            errors += e
        return Loaded(rows, errors, files, "mirror:" + ",".join(str(f) for f in files))
    return _remote(source_id, config, split)


def _datasets_rows(builder: str, **kw: Any) -> list[dict[str, Any]]:
    import datasets

    ds = datasets.load_dataset(builder, split="train", **kw)
    return [dict(r) for r in ds]


def _remote(source_id: str, config: str | None, split: str) -> Loaded:
    import datasets

    entry = CATALOGUE.get(source_id)
    config = config or (entry.default if entry else None)
    try:
        if entry is not None and entry.url:
            url = entry.url.replace("{config}", config or "")
            builder = "json" if url.endswith((".json", ".jsonl")) else "parquet"
            ds = datasets.load_dataset(builder, data_files=url, split="train")
            origin = "url:" + url
        elif entry is not None and entry.hub is None:
            raise DataError(
                f"{source_id}: no public hub copy is known; point {MIRROR_ENV} (or --data-mirror) at a mirror"
            )
        else:
            hub = entry.hub if entry else source_id
            ds = datasets.load_dataset(hub, config, split=split)
            origin = f"hub:{hub}"
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - datasets raises many types; say where we looked, in one line
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            f"{source_id}{':' + config if config else ''}: could not load from the hub ({msg}); "
            f"offline? set {MIRROR_ENV} to a data mirror"
        ) from None
    return Loaded([dict(r) for r in ds], [], [], origin)


def fingerprint(loaded: Loaded) -> str:
    """sha256 over the files read (mirror) or the rows (hub) — for manifests."""
    from ..manifest import sha256_file, sha256_json

    if loaded.files:
        return sha256_json([sha256_file(f) for f in loaded.files])
    return sha256_json(loaded.rows)
