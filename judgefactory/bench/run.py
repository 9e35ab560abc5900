"""Run benchmark suites for one model: ``bench/<model label>/<suite>/``.

Per suite folder: ``predictions.jsonl`` (one row per item x request key x mode x config: raw replies, parsed values,
parse status, answer-option probabilities, the model build ``model_sha256``), ``metrics.json`` (``{"model", "suite",
"n", "items_sha256", "model_manifest_sha256", "metrics": {name: {"value", "ci"}}}`` plus counts and label
provenance), ``table.md`` and ``manifest.json`` (model ref + manifest hash, suite spec, data fingerprint, library
versions, file hashes, and ``results``: each metrics file with its hash, item count and item hash).

Predictions accumulate: a row is keyed by (item, request key, mode, config), the config hashing the judging settings
and the model fingerprint, so a rerun reuses exactly the rows made with the same settings on the same build and never
removes the rows of other items. They are appended as each chunk of judgements finishes (what a killed run resumes
from). A folder whose rows or manifest name another build of the model is retired before anything new is written
(manifest first, then metrics and tables, then the other build's rows), so a kill never leaves new predictions beside
an old build's metrics.

Metrics: ``metrics.json`` always holds the widest run on the current build (the file every reader,
report, card and gate uses); a run on fewer items than it covers writes ``metrics-limit<N>.json`` / ``table-limit<N>.md``
instead, so a quick ``--limit 12`` check never replaces a full measurement. When a wider run replaces ``metrics.json``,
the narrower one it held moves to its own limit name. The files are written at the end, manifest last, and a reader
(``checked_metrics``) takes a metrics file only when the manifest names its current sha256.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import leakage, recipes
from .. import manifest as mf
from ..data.sources import DataError
from ..errors import JudgeFactoryError
from ..recipes import BenchRecipe, SuiteSpec
from ..tables import fmt, fmt_ci, md_table
from . import suites

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
TABLE = "table.md"
SAMPLING_TOP_P = 0.9
"""nucleus used with temperature > 0 (prometheus-eval's evaluation setting: temperature 1.0, top_p 0.9)."""
CHUNK_BATCHES = 4
"""judgements per chunk written to disk = CHUNK_BATCHES x batch size (length-sorted across the whole run)."""
RowKey = tuple[str, str, str, str]
"""(item id, request key, mode, config) of a prediction row."""


class BenchResultError(JudgeFactoryError):
    """A bench folder's result cannot be trusted (unreadable metrics, not the file its manifest names); one line."""


@dataclass(frozen=True)
class Mode:
    name: str  # greedy | sampled
    n: int
    temperature: float


def plan(spec: SuiteSpec, kind: str) -> list[Mode]:
    """The generation passes of a suite, headline first. Absolute suites with sampling add a greedy pass
    (the paper's mean-of-samples correlation plus greedy); other suites run the spec's single pass."""
    if spec.samples > 1 or spec.temperature > 0:
        temp = spec.temperature if spec.temperature > 0 else 1.0
        sampled = Mode("sampled", spec.samples, temp)
        return [sampled, Mode("greedy", 1, 0.0)] if kind == "absolute" else [sampled]
    return [Mode("greedy", 1, 0.0)]


def bench_recipe(suite_or_recipe: str | BenchRecipe) -> BenchRecipe:
    """A suite name (one default ``SuiteSpec``: greedy, 128 new tokens), a bench recipe name in recipes/bench, a path,
    or a ``BenchRecipe``."""
    from .. import recipes

    if isinstance(suite_or_recipe, BenchRecipe):
        return suite_or_recipe
    if suite_or_recipe in suites.SUITES:
        return BenchRecipe(kind="bench", name=suite_or_recipe, suites=[SuiteSpec(name=suite_or_recipe)])
    try:
        path = recipes.find("bench", suite_or_recipe)
    except recipes.RecipeError:
        known = sorted(p.stem for p in (recipes.RECIPES_DIR / "bench").glob("*.yaml"))
        raise suites.SuiteError(
            f"unknown suite {suite_or_recipe!r}: suites are {', '.join(suites.SUITES)}; "
            f"bench recipes are {', '.join(known)} (recipes/bench)"
        ) from None
    r = recipes.load(path)
    if r.kind != "bench":
        raise recipes.RecipeError(
            f"{suite_or_recipe}: a {r.kind} recipe, expected a suite ({', '.join(suites.SUITES)}) or kind: bench"
        )
    return r


def model_fingerprint(ref: str) -> dict[str, Any]:
    """The model reference, its kind and the sha256 of its manifest (what a config hash keys on; no model load)."""
    from .. import bases, models

    if models.is_route(ref):  # the routed judge's build: its parts' builds
        fps = [model_fingerprint(p) for p in models.parts(ref)]
        digest = mf.sha256_json(fps) if all(f["manifest_sha256"] for f in fps) else None
        return {"ref": ref, "kind": "route", "manifest_sha256": digest}
    try:
        kind, loc = models.resolve(ref)
    except models.ModelRefError:
        return {"ref": ref, "kind": "external", "manifest_sha256": None}
    folder: Path | None = None
    if kind == "base" and str(loc).startswith("embedded:"):
        folder = bases.cache_root() / str(loc).split(":", 1)[1]
    elif kind != "base":
        folder = Path(loc)
    digest = None
    if folder is not None and (folder / mf.MANIFEST).is_file():
        digest = mf.sha256_file(folder / mf.MANIFEST)
    elif folder is not None and folder.is_dir():
        digest = mf.sha256_json(mf.hash_tree(folder))
    return {"ref": ref, "kind": kind, "manifest_sha256": digest}


def read_rows(path: Path) -> dict[RowKey, dict[str, Any]]:
    """Every row written, keyed (id, key, mode, config), in file order; a line cut short by a kill is skipped."""
    rows: dict[RowKey, dict[str, Any]] = {}
    if not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
            rows[(r["id"], r["key"], r["mode"], str(r.get("config", "")))] = r
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return rows


def read_predictions(path: Path, settings: dict[str, str] | None = None) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Rows keyed (id, key, mode): with ``settings`` (mode -> settings hash, a metrics file's ``settings``) only the
    rows made with them; otherwise the last row written per (id, key, mode)."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for (i, k, m, _), r in read_rows(path).items():
        if settings is None or r.get("settings") == settings.get(m):
            rows[(i, k, m)] = r
    return rows


def items_sha256(ids: Any) -> str:
    """The hash of a run's item ids (order-free): what says two runs judged the same items."""
    return mf.sha256_json(sorted(str(i) for i in ids))


def limit_names(tag: str | None) -> tuple[str, str]:
    """(metrics file, table file) of a run: ``metrics.json`` / ``table.md``, or ``metrics-<tag>.json`` /
    ``table-<tag>.md`` for a run narrower than the folder's widest (tag ``limit12``)."""
    return (METRICS, TABLE) if tag is None else (f"metrics-{tag}.json", f"table-{tag}.md")


def checked_metrics(folder: Path, name: str = METRICS) -> tuple[dict[str, Any] | None, str | None]:
    """(metrics doc, None) when ``folder/name`` is the file its ``manifest.json`` names (same sha256); (None, None)
    when there is no such file; (None, why) when it cannot be trusted (no manifest, changed or cut short since, a
    different build named by the manifest). The doc gains ``model_manifest_sha256`` (the build it was measured on,
    from the manifest when the doc predates the field) and ``file`` (its path)."""
    path = Path(folder) / name
    if not path.is_file():
        return None, None
    man = mf.read(folder)
    if man is None:
        return None, f"{path} has no {mf.MANIFEST} beside it (a run cut short?): rerun the bench"
    if (man.get("files") or {}).get(name) != mf.sha256_file(path):
        return None, f"{path} is not the file {Path(folder) / mf.MANIFEST} names (written after it?): rerun the bench"
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        return None, f"cannot read {path}: {err}"
    if not isinstance(doc, dict):
        return None, f"{path} does not hold a JSON object"
    built = (man.get("model") or {}).get("manifest_sha256")
    if doc.get("model_manifest_sha256", built) != built:
        return None, f"{path} names another build than {Path(folder) / mf.MANIFEST}: rerun the bench"
    return {**doc, "model_manifest_sha256": built, "file": str(path)}, None


def _retire_other_builds(folder: Path, build: str | None, existing: dict[RowKey, dict[str, Any]]) -> None:
    """Drop what another build of the model left in ``folder``: its manifest first (the folder then vouches for
    nothing), its metrics and tables, then its prediction rows (kept: this build's). Nothing happens when every row
    and the manifest name ``build``."""
    man = mf.read(folder)
    stale_man = man is not None and (man.get("model") or {}).get("manifest_sha256") != build
    stale_rows = [k for k, r in existing.items() if r.get("model_sha256", "?") != build]
    if not stale_man and not stale_rows:
        return
    log.warning("%s: results of another build of the model are retired (rejudged on this build)", folder)
    (folder / mf.MANIFEST).unlink(missing_ok=True)
    for p in [*folder.glob("metrics*.json"), *folder.glob("table*.md")]:
        p.unlink(missing_ok=True)
    for k in stale_rows:
        existing.pop(k)
    if (folder / PREDICTIONS).exists():
        mf.write_text(folder / PREDICTIONS, "".join(json.dumps(r, default=str) + "\n" for r in existing.values()))


@dataclass
class Task:
    item: suites.Item
    key: str
    mode: Mode
    messages: list[dict[str, str]]
    config: str
    settings: str = ""
    model_sha256: str | None = None


def _status(values: list[Any]) -> str:
    ok = sum(v is not None for v in values)
    return "ok" if ok == len(values) else "parse_error" if ok == 0 else "partial"


def judge_tasks(
    tasks: list[Task],
    data: suites.SuiteData,
    get_engine: Callable[[], Any],
    *,
    max_new_tokens: int,
    seed: int,
    batch_size: int,
    rows: dict,
    out: Path | None = None,
    desc: str | None = None,
    keyed: bool = False,
) -> None:
    """Judge ``tasks`` (longest prompts first, per mode) in chunks; each chunk's rows go into ``rows`` (keyed
    (id, key, mode), or with ``keyed`` (id, key, mode, config)) and, when ``out`` is given, are appended to that
    predictions file at once (what a killed run resumes from)."""
    from tqdm.auto import tqdm

    if not tasks:
        return
    engine = get_engine()
    size = max(1, batch_size * CHUNK_BATCHES)
    bar = tqdm(total=len(tasks), desc=desc, unit="reply", file=sys.stderr, disable=desc is None)
    chunk_no = 0
    for mode in dict.fromkeys(t.mode for t in tasks):
        todo = sorted((t for t in tasks if t.mode == mode), key=lambda t: -sum(len(m["content"]) for m in t.messages))
        for s in range(0, len(todo), size):
            chunk = todo[s : s + size]
            got = engine.judge(
                [t.messages for t in chunk],
                max_new_tokens=max_new_tokens,
                temperature=mode.temperature,
                n=mode.n,
                answer=data.answer,
                top_p=SAMPLING_TOP_P if mode.temperature > 0 else None,
                seed=seed + chunk_no,
            )
            chunk_no += 1
            new = []
            for t, j in zip(chunk, got, strict=False):
                parsed = [data.reparse(t.item, x) for x in j.texts] if data.reparse else list(j.values)
                row = {
                    "id": t.item.id,
                    "key": t.key,
                    "mode": mode.name,
                    "config": t.config,
                    "settings": t.settings,
                    "model_sha256": t.model_sha256,
                    "gold": t.item.gold,
                    "raw": j.texts,
                    "parsed": parsed,
                    "status": _status(parsed),
                    "probs": j.probs,
                    "probs_mass": j.probs_mass,
                }
                rows[(t.item.id, t.key, mode.name, t.config) if keyed else (t.item.id, t.key, mode.name)] = row
                new.append(json.dumps(row, default=str) + "\n")
            if out is not None:
                with open(out, "a") as f:
                    f.write("".join(new))
            bar.update(len(chunk))
    bar.close()


def predict(
    engine: Any, data: suites.SuiteData, modes: list[Mode], *, max_new_tokens: int, batch_size: int, seed: int = 0
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every prediction row of a suite, in memory (no files): the trainers' quick checks."""
    tasks = [Task(it, key, mode, msgs, "") for mode in modes for it in data.items for key, msgs in it.requests.items()]
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    judge_tasks(tasks, data, lambda: engine, max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size, rows=rows)
    return rows


def table_md(doc: dict[str, Any]) -> str:
    """The suite's metrics as a Markdown table."""
    lines = [
        f"# {doc['suite']} — {doc['model']}",
        "",
        f"n = {doc['n']} items · source `{doc['source']}` · gold: {doc['labels']} · passes: {', '.join(doc['modes'])}",
        "",
        md_table(
            ["metric", "value", "95% CI"],
            [(name, fmt(m["value"]), fmt_ci(m.get("ci"))) for name, m in doc["metrics"].items()],
            align="lrl",
        ),
    ]
    lines += ["", "Counts: " + ", ".join(f"{k} {v}" for k, v in doc["counts"].items())]
    for prefix, what in (doc.get("baselines") or {}).items():
        lines.append(f"Baseline `{prefix}_*` (a comparison, not this model's result): {what}")
    if doc.get("data_errors"):
        lines.append(f"Malformed source rows (reported, not judged): {doc['data_errors']}")
    if (doc.get("excluded_trained_on") or {}).get("n"):
        lines.append(f"Excluded, trained on (not judged): {doc['excluded_trained_on']['reason']}")
    return "\n".join(lines) + "\n"


def _widest(folder: Path) -> dict[str, Any] | None:
    """The trusted ``metrics.json`` of ``folder`` (None when absent or not vouched for by its manifest)."""
    return checked_metrics(folder, METRICS)[0]


def _results_index(folder: Path) -> dict[str, Any]:
    """Each metrics file in ``folder`` -> its table, item count, item hash, limit and build (the manifest's
    ``results``)."""
    out = {}
    for p in sorted(folder.glob("metrics*.json")):
        try:
            doc = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        tag = p.stem[len("metrics-") :] if p.stem != "metrics" else None
        out[p.name] = {
            "table": limit_names(tag)[1],
            "n": doc.get("n"),
            "items_sha256": doc.get("items_sha256"),
            "limit": doc.get("limit"),
            "model_manifest_sha256": doc.get("model_manifest_sha256"),
        }
    return out


def run_suite(
    ref: str,
    label: str,
    spec: SuiteSpec,
    recipe: BenchRecipe,
    get_engine: Callable[[], Any],
    out_root: Path,
    *,
    limit: int | None,
    batch_size: int,
    mirror: Any,
    max_response_chars: int | None,
    n_boot: int,
    backend: str,
) -> Path:
    """One suite for one model: judge what is missing, then write the run's metrics, table and the manifest."""
    t0 = time.time()
    limit = limit or spec.limit
    data = suites.load(spec.name, mirror=mirror, limit=limit, seed=recipe.seed, max_response_chars=max_response_chars)
    excluded = leakage.screen_suite(
        leakage.for_model(ref),
        data,
        label,
        mirror=mirror,
        limit=limit,
        seed=recipe.seed,
        max_response_chars=max_response_chars,
    )
    folder = Path(out_root) / label / spec.name
    modes = plan(spec, data.kind)
    model_fp = model_fingerprint(ref)
    build = model_fp["manifest_sha256"]
    common = {
        "suite": spec.name,
        "model": model_fp,
        "max_new_tokens": spec.max_new_tokens,
        "seed": recipe.seed,
        "answer": data.answer,
        "backend": backend,
        "top_p": SAMPLING_TOP_P,
    }
    settings = {m.name: mf.sha256_json({**common, "mode": asdict(m)})[:16] for m in modes}
    existing = read_rows(folder / PREDICTIONS)
    if folder.is_dir():
        _retire_other_builds(folder, build, existing)
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    tasks = []
    for mode in modes:
        for it in data.items:
            for key, msgs in it.requests.items():
                cfg = mf.sha256_json({**common, "mode": asdict(mode), "messages": msgs})[:16]
                old = existing.get((it.id, key, mode.name, cfg))
                if old is not None:
                    rows[(it.id, key, mode.name)] = old
                else:
                    tasks.append(Task(it, key, mode, msgs, cfg, settings[mode.name], build))
    if tasks:
        get_engine()  # a model that cannot load fails here, before any result folder exists
    folder.mkdir(parents=True, exist_ok=True)
    judge_tasks(
        tasks,
        data,
        get_engine,
        max_new_tokens=spec.max_new_tokens,
        seed=recipe.seed,
        batch_size=batch_size,
        rows=rows,
        out=folder / PREDICTIONS,
        desc=f"{label} {spec.name}",
    )
    # every row kept: the other items' (and other settings') rows first, this run's in suite order after them
    ordered = [rows[(it.id, k, m.name)] for m in modes for it in data.items for k in it.requests]
    mine = {(r["id"], r["key"], r["mode"], str(r["config"])) for r in ordered}
    others = [r for k, r in existing.items() if k not in mine]
    mf.write_text(folder / PREDICTIONS, "".join(json.dumps(r, default=str) + "\n" for r in [*others, *ordered]))
    metrics, counts = suites.score(
        data, rows, [m.name for m in modes], suites.Boot(n_boot, recipe.seed, recipes.training_rule())
    )
    baselines = counts.pop("baselines", {})
    ids_sha = items_sha256(it.id for it in data.items)
    doc = {
        "model": label,
        "suite": spec.name,
        "n": len(data.items),
        "items_sha256": ids_sha,
        "model_manifest_sha256": build,
        "limit": limit,
        "settings": settings,
        "excluded_trained_on": excluded,
        "metrics": metrics,
        "counts": counts,
        "baselines": baselines,
        "labels": data.labels,
        "source": data.source,
        "modes": [m.name for m in modes],
        "data_errors": len(data.errors),
        "data_error_examples": data.errors[:5],
    }
    # the widest run on this build keeps metrics.json; a narrower one goes under its own limit name
    widest = _widest(folder)
    tag = None
    if widest is not None and (widest.get("n") or 0) > doc["n"] and widest.get("items_sha256") != ids_sha:
        tag = f"limit{limit}" if limit else f"n{doc['n']}"
    elif widest is not None and widest.get("items_sha256") != ids_sha and widest.get("limit"):
        moved_m, moved_t = limit_names(f"limit{widest['limit']}")  # the narrower run it held keeps its figures
        mf.write_json(folder / moved_m, {k: v for k, v in widest.items() if k != "file"})
        mf.write_text(folder / moved_t, table_md(widest))
    metrics_name, table_name = limit_names(tag)
    mf.write_json(folder / metrics_name, doc)
    mf.write_text(folder / table_name, table_md(doc))
    mf.finalize(  # last: it names the sha256 of every file above; a reader trusts only files it names
        folder,
        {
            "kind": "bench",
            "model": {**model_fp, "label": label},
            "suite": spec.model_dump(mode="json"),
            "recipe": recipe.name,
            "limit": limit,
            "seed": recipe.seed,
            "batch_size": batch_size,
            "max_response_chars": max_response_chars,
            "modes": [asdict(m) for m in modes],
            "backend": backend,
            "data": {
                "source": data.source,
                "fingerprint": data.fingerprint,
                "n_items": len(data.items),
                "items_sha256": ids_sha,
                "errors": len(data.errors),
            },
            "excluded_trained_on": excluded,
            "written": metrics_name,
            "results": _results_index(folder),
            "judged_now": len(tasks),
            "reused": len(ordered) - len(tasks),
            "seconds": round(time.time() - t0, 1),
        },
    )
    return folder


def run(
    model_ref: str,
    suite_name_or_bench_recipe: str | BenchRecipe,
    limit: int | None = None,
    out_root: Path | None = None,
    *,
    batch_size: int | None = None,
    engine: Any = None,
    backend: str = "transformers",
    base_url: str | None = None,
    mirror: Any = None,
    max_response_chars: int | None = None,
    n_boot: int = 1000,
) -> Path:
    """Benchmark ``model_ref`` on one suite or a bench recipe's suites; returns ``bench/<label>/<suite>`` for a single
    suite, ``bench/<label>`` for a recipe. The model loads only if something is left to judge (or ``engine`` is given)."""
    from .. import models, paths
    from ..engine import Engine

    out_root = Path(out_root) if out_root is not None else paths.bench()
    recipe = bench_recipe(suite_name_or_bench_recipe)
    bs = batch_size or recipe.batch_size
    label = (
        engine.label
        if engine is not None
        else (models.served_label(model_ref) if backend == "openai" else models.label(model_ref))
    )
    cache: dict[str, Any] = {"engine": engine}

    def get_engine() -> Any:
        if cache["engine"] is None:
            cache["engine"] = Engine.from_ref(model_ref, backend=backend, batch_size=bs, base_url=base_url)
        return cache["engine"]

    if engine is not None:
        engine.batch_size = bs
    single = isinstance(suite_name_or_bench_recipe, str) and suite_name_or_bench_recipe in suites.SUITES
    folders, refused = [], []
    for spec in recipe.suites:
        try:
            folders.append(
                run_suite(
                    model_ref,
                    label,
                    spec,
                    recipe,
                    get_engine,
                    Path(out_root),
                    limit=limit,
                    batch_size=bs,
                    mirror=mirror,
                    max_response_chars=max_response_chars,
                    n_boot=n_boot,
                    backend=backend,
                )
            )
        except DataError as err:
            if single:
                raise
            log.warning("skipped %s: %s", spec.name, err)  # e.g. Feedback-Bench: not in the data mirror
        except leakage.LeakageError as err:
            if single:
                raise
            refused.append(err)  # the other suites still run; the refusal is raised once they are written
    if refused:
        raise leakage.LeakageError("; ".join(str(e) for e in refused))
    return folders[0] if single else Path(out_root) / label
