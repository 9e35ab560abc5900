"""Data sources: every dataset is addressed by a source id (+ optional config / file name).

With a mirror root configured (``JUDGEFACTORY_DATA`` or ``--data-mirror``), ids resolve to files laid out like
``../shared/data`` (see ``CATALOGUE``) or, for any other id, to ``<mirror>/<hub id>/`` holding json/jsonl/parquet
files. Without a mirror, catalogue ids resolve to upstream files pinned to a revision (``Remote``): Hugging Face Hub
dataset files through ``huggingface_hub.hf_hub_download`` and GitHub files through their raw URL, both downloaded
once into the cache (``$JUDGEFACTORY_CACHE/data``, default ``~/.cache/judgefactory/data``) and read by the same row
reader as the mirror (``_read_json_file``), so the mirror and the upstream give the same rows, file names and
fingerprints. A config that is only part of an upstream file (``View``) is written to the cache as its own file,
serialised as the mirror's files are. Ids outside the catalogue load as whole Hub datasets through 🤗 ``datasets``.

Upstream (the pins in ``CATALOGUE``):

* BBQ, https://github.com/nyu-mll/BBQ (``data/<Category>.jsonl``, ``results/UnifiedQA/preds_<Category>.jsonl``).
  The Hub copy ``heegyu/bbq`` (https://huggingface.co/datasets/heegyu/bbq) is a loading script over the same files,
  which 🤗 ``datasets`` no longer runs, so its id resolves to the GitHub files as the mirror's ``bbq/`` does.
* The BBQ response pairs of judge-from-scratch, https://github.com/krishnakartik1/judge-from-scratch (``data/raw``,
  ``data/pairs``, ``data/formatted``), published on the Hub as
  https://huggingface.co/datasets/krishnakartik/gemma4-social-bias-judge-pairs (``pairs.jsonl``,
  ``pairs_to_label.jsonl`` and ``eval_set_unlabeled.jsonl``: 300 human-labelled pairs, field ``eval_slice``
  ``in_dist`` (240) or ``ood_religion`` (60)). The mirror's ``pairs.jsonl`` is the upstream pool without the 60
  ``ood_religion`` eval pairs, and its ``eval_in_dist.jsonl`` the ``in_dist`` slice.
* Prometheus evaluation sets, https://github.com/prometheus-eval/prometheus-eval (``eval/benchmark/data/``).

Environment:

* ``JUDGEFACTORY_DATA``: the mirror root (see above).
* ``JUDGEFACTORY_DATA_REVISIONS``: ``repo=revision[,repo=revision...]`` replaces the pinned revision of an upstream
  repository, e.g. ``krishnakartik/gemma4-social-bias-judge-pairs=<commit>``.
* ``HF_ENDPOINT``: the Hub endpoint (default https://huggingface.co); ``HF_HUB_OFFLINE=1``: cached files only.
* ``JUDGEFACTORY_RAW_BASE``: the base URL of raw GitHub files (default https://raw.githubusercontent.com), followed
  by ``/<owner>/<repo>/<revision>/<path>``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import JudgeFactoryError

MIRROR_ENV = "JUDGEFACTORY_DATA"
REVISIONS_ENV = "JUDGEFACTORY_DATA_REVISIONS"
RAW_BASE_ENV = "JUDGEFACTORY_RAW_BASE"
CACHE_ENV = "JUDGEFACTORY_CACHE"
RAW_BASE = "https://raw.githubusercontent.com"

BBQ_REPO, BBQ_COMMIT = "nyu-mll/BBQ", "bea11bd97d79217245b5871acd247b9d6eb24598"
"""HEAD of main, 2022-07-06 ("saving file to the correct location")."""
PROM_REPO, PROM_COMMIT = "prometheus-eval/prometheus-eval", "dcfb44272d5d0414832f5dbb8c2a05ebc2614234"
"""HEAD of main, 2025-04-24 (merge of pull request 72); the mirror's four files match it byte for byte or row for row."""
JFS_REPO, JFS_COMMIT = "krishnakartik1/judge-from-scratch", "da2337eb37b288476a4fc851d85accb87b821de9"
"""HEAD of main, 2026-05-09; the pair files last changed on 2026-05-06, before the Hub upload of 2026-05-08."""
PAIRS_HUB = "krishnakartik/gemma4-social-bias-judge-pairs"
PAIRS_HUB_REVISION = "main"
"""no commit of the Hub dataset is known here (the same files are pinned in JFS_REPO at JFS_COMMIT); pin one with
``JUDGEFACTORY_DATA_REVISIONS``. ``Loaded.origin`` records the commit a load resolved to."""


class DataError(JudgeFactoryError):
    """A dataset could not be found or read; the message says where it looked."""


class _Unavailable(Exception):
    """An upstream server answered, but not with the file (an HTTP status other than 200)."""


@dataclass(frozen=True)
class Remote:
    """One upstream file at a revision: a Hub dataset file or a file of a GitHub repository."""

    host: Literal["hub", "github"]
    repo: str
    path: str
    """path inside the repository; ``{config}`` is replaced by the config name."""
    revision: str
    name: str | None = None
    """the file's name here (its suffix picks the reader), when it differs from the upstream name."""

    def at(self, config: str | None) -> Remote:
        path = self.path.replace("{config}", config or "")
        return Remote(self.host, self.repo, path, revisions().get(self.repo, self.revision), self.name)

    @property
    def filename(self) -> str:
        return self.name or self.path.rsplit("/", 1)[-1]

    def describe(self) -> str:
        return f"{self.host}:{self.repo}/{self.path}@{self.revision}"


@dataclass(frozen=True)
class View:
    """A config that is part of another file: its rows with ``field == value`` (``keep``), less the rows whose
    ``pair_id`` is in config ``drop_ids_of``. ``base`` is an upstream file or another config of the same source."""

    base: Remote | str
    keep: tuple[str, str] | None = None
    drop_ids_of: str | None = None


@dataclass(frozen=True)
class Source:
    mirror: str
    """path below the mirror root; ``{config}`` is replaced by the config / file name."""
    remote: Remote | None = None
    """the upstream file of every config (``{config}`` in its path)."""
    files: Mapping[str, Remote | View] = field(default_factory=dict)
    """the upstream file (or view) of each named config, where configs are different files."""
    configs: tuple[str, ...] = ()
    """every config, loaded in turn when none is named."""
    default: str | None = None


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
_BBQ_DATA = Remote("github", BBQ_REPO, "data/{config}.jsonl", BBQ_COMMIT)


def _prom(file: str, name: str | None = None) -> Source:
    return Source(
        mirror=f"prometheus/{name or file}",
        remote=Remote("github", PROM_REPO, f"eval/benchmark/data/{file}", PROM_COMMIT, name),
    )


_EVAL_300 = Remote("hub", PAIRS_HUB, "eval_set_unlabeled.jsonl", PAIRS_HUB_REVISION)
CATALOGUE: dict[str, Source] = {
    # BBQ items, one file per category (config = category).
    "heegyu/bbq": Source(mirror="bbq/{config}.jsonl", remote=_BBQ_DATA, configs=BBQ_CATEGORIES),
    "nyu-mll/BBQ": Source(mirror="bbq/{config}.jsonl", remote=_BBQ_DATA, configs=BBQ_CATEGORIES),
    "nyu-mll/BBQ-unifiedqa": Source(
        mirror="bbq/unifiedqa-predictions/preds_{config}.jsonl",
        remote=Remote("github", BBQ_REPO, "results/UnifiedQA/preds_{config}.jsonl", BBQ_COMMIT),
        configs=BBQ_CATEGORIES,
    ),
    # judge-from-scratch BBQ response pairs (config = the mirror's file name).
    "judge-from-scratch/bbq-pairs": Source(
        mirror="bbq-pairs/{config}.jsonl",
        files={
            "pairs": View(Remote("hub", PAIRS_HUB, "pairs.jsonl", PAIRS_HUB_REVISION), drop_ids_of="eval_ood"),
            "pairs_to_label": Remote("hub", PAIRS_HUB, "pairs_to_label.jsonl", PAIRS_HUB_REVISION),
            "eval_set_unlabeled": _EVAL_300,
            "eval_in_dist": View("eval_set_unlabeled", keep=("eval_slice", "in_dist")),
            "eval_ood": View("eval_set_unlabeled", keep=("eval_slice", "ood_religion")),
            "bbq_sample": Remote("github", JFS_REPO, "data/raw/bbq_sample.jsonl", JFS_COMMIT),
            "pairs_unused_religion": Remote("github", JFS_REPO, "data/pairs/pairs_unused_religion.jsonl", JFS_COMMIT),
            "synthesis_results": Remote("github", JFS_REPO, "data/formatted/synthesis_results.jsonl", JFS_COMMIT),
        },
        default="pairs",
    ),
    # Prometheus evaluation sets (upstream's autoj_pairwise.json holds JSON lines, hence the local .jsonl name).
    "prometheus-eval/vicuna": _prom("vicuna_eval.json"),
    "prometheus-eval/mt-bench": _prom("mt_bench_eval.json"),
    "prometheus-eval/hhh-alignment": _prom("hhh_alignment_eval.json"),
    "prometheus-eval/autoj-pairwise": _prom("autoj_pairwise.json", "autoj_pairwise.jsonl"),
}
_EXTS = (".jsonl", ".json", ".parquet", ".csv")


def revisions() -> dict[str, str]:
    """``$JUDGEFACTORY_DATA_REVISIONS`` as {repo: revision}; a malformed entry is a one-line error."""
    out = {}
    for part in filter(None, (p.strip() for p in os.environ.get(REVISIONS_ENV, "").split(","))):
        repo, sep, rev = part.partition("=")
        if not sep or not repo.strip() or not rev.strip():
            raise DataError(f"{REVISIONS_ENV}: {part!r} is not repo=revision")
        out[repo.strip()] = rev.strip()
    return out


def cache_root() -> Path:
    """Where downloaded upstream files and views are kept."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "judgefactory").expanduser() / "data"


def mirror_root(explicit: str | Path | None = None) -> Path | None:
    """The configured mirror folder (argument, else $JUDGEFACTORY_DATA), or None for the upstream sources."""
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
    origin: str  # "mirror:<paths>", "hub:<repo>/<file>@<commit>", "github:<repo>/<path>@<commit>" or "hub:<id>"


def load_rows(
    source_id: str, config: str | None = None, split: str = "train", mirror: str | Path | None = None
) -> Loaded:
    """All rows of a source as plain dicts, plus per-row errors for malformed rows.

    json/jsonl files (mirror or downloaded) are read row by row (heterogeneous nested rows stay intact and every bad
    row is reported with file and row number); parquet/csv and whole Hub datasets go through 🤗 ``datasets``.
    """
    root = mirror_root(mirror)
    entry = CATALOGUE.get(source_id)
    config = config or (entry.default if entry else None)
    if root is not None:
        try:
            files = mirror_files(source_id, config, root)
        except DataError:
            spec = entry.files.get(config) if entry and config else None
            if (
                not isinstance(spec, View)
                or not isinstance(spec.base, str)
                or not has_config(source_id, spec.base, root)
            ):
                raise
            base = load_rows(source_id, spec.base, split, root)
            view = _view(source_id, config or "", spec, lambda c: load_rows(source_id, c, split, root), base)
            return _read_files([view], f"{base.origin}[{config}]", base.errors)
        return _read_files(files, "mirror:" + ",".join(str(f) for f in files))
    if entry is None:
        return _hub_dataset(source_id, config, split)
    return _remote_rows(source_id, entry, config)


def has_config(source_id: str, config: str, mirror: str | Path | None = None) -> bool:
    """Whether ``load_rows(source_id, config)`` has somewhere to look: a mirror file (or the file a view is cut
    from), or, without a mirror, an upstream location in the catalogue."""
    root = mirror_root(mirror)
    entry = CATALOGUE.get(source_id)
    spec = entry.files.get(config) if entry else None
    if root is None:
        return entry is None or entry.remote is not None or spec is not None
    try:
        mirror_files(source_id, config, root)
        return True
    except DataError:
        return isinstance(spec, View) and isinstance(spec.base, str) and has_config(source_id, spec.base, root)


def _read_files(files: list[Path], origin: str, errors: list[str] | None = None) -> Loaded:
    rows, errors = [], list(errors or [])
    for f in files:
        if f.suffix in (".json", ".jsonl"):
            r, e = _read_json_file(f)
        else:
            r, e = _datasets_rows(f.suffix.lstrip("."), data_files=str(f)), []
        for row in r:
            row.setdefault("_file", f.name)
        rows += r
        errors += e
    return Loaded(rows, errors, files, origin)


def _datasets_rows(builder: str, **kw: Any) -> list[dict[str, Any]]:
    import datasets

    ds = datasets.load_dataset(builder, split="train", **kw)
    return [dict(r) for r in ds]


# --------------------------------------------------------------------------- upstream files
def _remote_rows(source_id: str, entry: Source, config: str | None, asked: str | None = None) -> Loaded:
    """Rows of a catalogue config from its upstream file(s); ``asked``: the config named in error messages (the one
    the caller asked for, when this loads the file a view is cut from)."""
    label = asked or config
    spec = entry.files.get(config) if config else None
    if spec is None and entry.remote is not None:
        if config is None and "{config}" in entry.remote.path:
            parts = [_remote_rows(source_id, entry, c) for c in entry.configs]
            return Loaded(
                [r for p in parts for r in p.rows],
                [e for p in parts for e in p.errors],
                [f for p in parts for f in p.files],
                ",".join(p.origin for p in parts),
            )
        spec = entry.remote
    if spec is None:
        known = ", ".join(sorted(entry.files))
        raise DataError(f"{source_id}:{config}: no upstream file for this config (configs: {known})")
    if isinstance(spec, Remote):
        return _read_files(*_one(fetch(spec.at(config), source_id, label)))
    if isinstance(spec.base, str):
        base = _remote_rows(source_id, entry, spec.base, label)
    else:
        base = _read_files(*_one(fetch(spec.base.at(config), source_id, label)))
    view = _view(source_id, config or "", spec, lambda c: _remote_rows(source_id, entry, c, label), base)
    return _read_files([view], f"{base.origin}[{config}]", base.errors)


def _one(got: tuple[Path, str]) -> tuple[list[Path], str]:
    return [got[0]], got[1]


def _view(source_id: str, config: str, spec: View, load: Any, base: Loaded | None = None) -> Path:
    """Write a view's rows to the cache as ``<config>.jsonl`` (one ``json.dumps`` line per row, as the mirror's files
    are written) and return its path; ``load(config)`` loads another config of the same source."""
    from ..manifest import sha256_json

    if base is None:
        assert isinstance(spec.base, str)
        base = load(spec.base)
    drop: set[str] = set()
    if spec.drop_ids_of:
        drop = {str(r.get("pair_id")) for r in load(spec.drop_ids_of).rows}
    rows = [
        {k: v for k, v in r.items() if k != "_file"}
        for r in base.rows
        if (spec.keep is None or r.get(spec.keep[0]) == spec.keep[1]) and str(r.get("pair_id")) not in drop
    ]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    key = sha256_json([source_id, config, text])[:16]
    out = cache_root() / "views" / source_id.replace("/", "--") / key / f"{config}.jsonl"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".part")
        tmp.write_text(text)
        tmp.replace(out)
    return out


def fetch(remote: Remote, source_id: str, config: str | None) -> tuple[Path, str]:
    """Download one upstream file into the cache (once per commit) and return (path, origin); an offline machine gets
    a one-line error pointing at the mirror, any other failure its own message naming source, file and revision."""
    import httpx
    from huggingface_hub import errors as hf_errors

    try:
        if remote.host == "hub":
            return _hub_file(remote)
        return _raw_file(remote)
    except (_Unavailable, OSError, httpx.HTTPError, hf_errors.EntryNotFoundError, hf_errors.HFValidationError) as err:
        what = f"{source_id}{':' + config if config else ''}"
        if _is_offline(err):
            raise DataError(
                f"{what}: offline, cannot download {remote.describe()} ({_first_line(err)}); "
                f"set {MIRROR_ENV} (or --data-mirror) to a data mirror folder"
            ) from None
        raise DataError(f"{what}: could not download {remote.describe()}: {_first_line(_cause(err))}") from None


def _hub_file(remote: Remote) -> tuple[Path, str]:
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(
        remote.repo,
        remote.path,
        repo_type="dataset",
        revision=remote.revision,
        cache_dir=cache_root() / "hub",
        endpoint=os.environ.get("HF_ENDPOINT") or None,
    )
    m = re.search(r"[/\\]snapshots[/\\]([0-9a-f]{40})[/\\]", path)
    return Path(path), f"hub:{remote.repo}/{remote.path}@{m.group(1) if m else remote.revision}"


def _raw_file(remote: Remote) -> tuple[Path, str]:
    """A GitHub file through its raw URL, kept at ``<cache>/github/<repo>/<revision>/<path>``; a file pinned to a
    commit is downloaded once, one at a branch or tag again on every online load."""
    import httpx

    base = (os.environ.get(RAW_BASE_ENV) or RAW_BASE).rstrip("/")
    url = f"{base}/{remote.repo}/{remote.revision}/{remote.path}"
    out = cache_root() / "github" / remote.repo / remote.revision / remote.path
    out = out.with_name(remote.filename)
    origin = f"github:{remote.repo}/{remote.path}@{remote.revision}"
    pinned = re.fullmatch(r"[0-9a-f]{40}", remote.revision) is not None
    if out.is_file() and (pinned or _offline()):
        return out, origin
    if _offline():
        raise ConnectionError("HF_HUB_OFFLINE is set and the file is not in the cache")
    with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(60.0, connect=15.0)) as client:
        resp = client.get(url)
    if resp.status_code != 200:
        raise _Unavailable(f"HTTP {resp.status_code} {resp.reason_phrase} for {url}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(resp.content)
    tmp.replace(out)
    return out, origin


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _chain(err: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = err
    while cur is not None and cur not in out:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _is_offline(err: BaseException) -> bool:
    """No connection: offline mode, a refused connection, a DNS failure, a connect timeout, or the Hub client's "not
    in the local cache" after any of these (or after ``local_files_only``)."""
    import httpx
    from huggingface_hub import errors as hf_errors

    chain = _chain(err)
    if any(isinstance(e, (hf_errors.OfflineModeIsEnabled, httpx.ConnectError, httpx.ConnectTimeout)) for e in chain):
        return True
    if any(isinstance(e, ConnectionError) and not isinstance(e, hf_errors.HfHubHTTPError) for e in chain):
        return True
    return isinstance(err, hf_errors.LocalEntryNotFoundError) and len(chain) == 1


def _cause(err: BaseException) -> BaseException:
    """The Hub client's "cannot find it in the local cache" wraps the real failure (an HTTP error): report that."""
    from huggingface_hub import errors as hf_errors

    if isinstance(err, hf_errors.LocalEntryNotFoundError) and err.__cause__ is not None:
        return err.__cause__
    return err


def _first_line(err: BaseException) -> str:
    """The error's message as one line (its lines joined), at most 300 characters."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return (text[:297] + "...") if len(text) > 300 else text or type(err).__name__


# --------------------------------------------------------------------------- whole Hub datasets
def _hub_dataset(source_id: str, config: str | None, split: str) -> Loaded:
    """A Hub dataset outside the catalogue, through 🤗 ``datasets`` (revision from ``$JUDGEFACTORY_DATA_REVISIONS``)."""
    import datasets
    import httpx

    revision = revisions().get(source_id)
    what = f"{source_id}{':' + config if config else ''}"
    try:
        ds = datasets.load_dataset(source_id, config, split=split, revision=revision)
    except (OSError, ValueError, httpx.HTTPError, datasets.exceptions.DatasetsError) as err:
        if _offline() or _is_offline(err):
            raise DataError(
                f"{what}: offline, cannot load the Hub dataset ({_first_line(err)}); "
                f"set {MIRROR_ENV} (or --data-mirror) to a data mirror folder"
            ) from None
        raise DataError(
            f"{what}: could not load the Hub dataset at revision {revision or 'main'}: {_first_line(err)}"
        ) from None
    return Loaded([dict(r) for r in ds], [], [], f"hub:{source_id}@{revision or 'main'}")


def fingerprint(loaded: Loaded) -> str:
    """sha256 over the files read (mirror or downloaded) or the rows (a whole Hub dataset) — for manifests."""
    from ..manifest import sha256_file, sha256_json

    if loaded.files:
        return sha256_json([sha256_file(f) for f in loaded.files])
    return sha256_json(loaded.rows)
