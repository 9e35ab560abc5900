"""Run benchmark suites for one model: ``bench/<model label>/<suite>/``.

Per suite folder: ``predictions.jsonl`` (one row per item x request key x mode: raw replies, parsed values, parse
status, answer-option probabilities), ``metrics.json`` (``{"model", "suite", "n", "metrics": {name: {"value", "ci"}}}``
plus counts and label provenance), ``table.md`` and ``manifest.json`` (model ref + manifest hash, suite spec, data
fingerprint, library versions, file hashes).

Resuming: predictions are appended as each chunk of judgements finishes; a rerun judges only the (item, key, mode)
rows whose config hash (model fingerprint, suite, mode, sampling, prompt) is not already in ``predictions.jsonl``.
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


def read_predictions(path: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Rows already written, keyed (id, key, mode); a line cut short by a kill is skipped."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    if not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
            rows[(r["id"], r["key"], r["mode"])] = r
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return rows


@dataclass
class Task:
    item: suites.Item
    key: str
    mode: Mode
    messages: list[dict[str, str]]
    config: str


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
) -> None:
    """Judge ``tasks`` (longest prompts first, per mode) in chunks; each chunk's rows go into ``rows`` and, when ``out``
    is given, are appended to that predictions file at once (what a killed run resumes from)."""
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
                    "gold": t.item.gold,
                    "raw": j.texts,
                    "parsed": parsed,
                    "status": _status(parsed),
                    "probs": j.probs,
                    "probs_mass": j.probs_mass,
                }
                rows[(t.item.id, t.key, mode.name)] = row
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
    """One suite for one model: judge what is missing, then write metrics.json, table.md and manifest.json."""
    t0 = time.time()
    data = suites.load(
        spec.name, mirror=mirror, limit=limit or spec.limit, seed=recipe.seed, max_response_chars=max_response_chars
    )
    excluded = leakage.screen_suite(
        leakage.for_model(ref),
        data,
        label,
        mirror=mirror,
        limit=limit or spec.limit,
        seed=recipe.seed,
        max_response_chars=max_response_chars,
    )
    folder = Path(out_root) / label / spec.name
    modes = plan(spec, data.kind)
    model_fp = model_fingerprint(ref)
    common = {
        "suite": spec.name,
        "model": model_fp,
        "max_new_tokens": spec.max_new_tokens,
        "seed": recipe.seed,
        "answer": data.answer,
        "backend": backend,
        "top_p": SAMPLING_TOP_P,
    }
    existing = read_predictions(folder / PREDICTIONS)
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    tasks = []
    for mode in modes:
        for it in data.items:
            for key, msgs in it.requests.items():
                cfg = mf.sha256_json({**common, "mode": asdict(mode), "messages": msgs})[:16]
                old = existing.get((it.id, key, mode.name))
                if old is not None and old.get("config") == cfg:
                    rows[(it.id, key, mode.name)] = old
                else:
                    tasks.append(Task(it, key, mode, msgs, cfg))
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
    ordered = [rows[(it.id, k, m.name)] for m in modes for it in data.items for k in it.requests]
    mf.write_text(folder / PREDICTIONS, "".join(json.dumps(r, default=str) + "\n" for r in ordered))
    metrics, counts = suites.score(
        data, rows, [m.name for m in modes], suites.Boot(n_boot, recipe.seed, recipes.training_rule())
    )
    baselines = counts.pop("baselines", {})
    doc = {
        "model": label,
        "suite": spec.name,
        "n": len(data.items),
        "limit": limit or spec.limit,
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
    mf.write_json(folder / METRICS, doc)
    mf.write_text(folder / TABLE, table_md(doc))
    mf.finalize(
        folder,
        {
            "kind": "bench",
            "model": {**model_fp, "label": label},
            "suite": spec.model_dump(mode="json"),
            "recipe": recipe.name,
            "limit": limit or spec.limit,
            "seed": recipe.seed,
            "batch_size": batch_size,
            "max_response_chars": max_response_chars,
            "modes": [asdict(m) for m in modes],
            "backend": backend,
            "data": {
                "source": data.source,
                "fingerprint": data.fingerprint,
                "n_items": len(data.items),
                "errors": len(data.errors),
            },
            "excluded_trained_on": excluded,
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
        else ("openai__" + model_ref.replace("/", "_") if backend == "openai" else models.label(model_ref))
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
