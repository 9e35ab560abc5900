"""Model cards: the README.md of an adapter or merge, from its manifests and the model's results.

``build_card`` reads ``manifest.json`` (and, for a merge, the parent adapter manifests embedded in it),
``bench/<model>/<suite>/metrics.json`` and ``consistency/<model>/summary.json``, and renders
``templates/model_card.md`` with the YAML metadata (``card_data``: base model, tags, datasets, the model-index of the
model's own headline figures) and the body's text and tables (``card_context``). ``write_card`` writes it;
``hub.push`` uploads it.

Every figure is tied to its build: a bench result shows only when its folder's manifest vouches for the metrics file
(``bench.run.checked_metrics``) and names the sha256 of this artifact's manifest; consistency figures only when
``consistency/<model>/manifest.json`` names it and vouches for ``summary.json``. Each figure carries that build
(short hash) and its item count; a figure measured on another build is dropped and the card says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from . import leakage
from .card_examples import BIAS_EXAMPLE as BIAS_EXAMPLE  # re-exported: the example the card shows
from .card_examples import absolute_example, bias_example
from .hub import MANIFEST, README, load_manifest, read_json, write_atomic
from .tables import MISSING, fmt, fmt_ci, md_table, number

TEMPLATE_PATH = Path(__file__).parent / "templates" / "model_card.md"
MERGE_YAML = "mergekit_config.yaml"
MERGE_YAML_MERGEKIT = "mergekit_config.yml"  # the name mergekit itself writes
METRICS = "metrics.json"
SUMMARY = "summary.json"
NA = MISSING
"""The card's mark for an undefined figure or a missing hash: the one missing-value mark of every report."""

LIMITATIONS_COMMON = [
    "Small base model: a judge this size is noisy; read every figure with its confidence interval and use it "
    "to screen, not as the final arbiter.",
    "English only: trained and evaluated on English prompts and responses.",
    "Judgments inherit the biases of the reference labels (GPT-4 scores, human verdicts) they were trained on.",
]
LIMITATION_ABSOLUTE = (
    "Absolute scores follow the Prometheus 1-5 rubric format; prompts outside that format (no rubric, other scales) "
    "are out of distribution."
)
LIMITATION_PAIRWISE = (
    "Bias judge: the religion category was held out of training and is out of distribution; other BBQ categories "
    "and non-BBQ bias are untested. Judge both A/B orders: single-order verdicts carry position bias."
)
LIMITATION_MERGE = (
    "A merge trades the specialists off: the weight best for scoring is not necessarily best for pairwise judging."
)

# --------------------------------------------------------------------------- reading results


def adapter_manifests(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The adapter manifests behind an artifact: itself for an adapter, its adapter parents for a merge."""
    if manifest["kind"] == "adapter":
        return [manifest]
    return [
        p["manifest"]
        for p in manifest.get("parents", [])
        if p.get("kind", "adapter") == "adapter" and p.get("manifest")
    ]


def _tasks(adapters: list[dict[str, Any]]) -> set[str]:
    return {a.get("recipe", {}).get("task") for a in adapters} - {None}


def _unique(items: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(x for x in items if x))


def _base_models(manifest: dict[str, Any]) -> str | list[str] | None:
    """Hub ids the artifact derives from: the base for an adapter; parent bases (and pushed parents) for a merge."""
    own = manifest.get("base", {}).get("hub_id")
    if manifest["kind"] == "adapter":
        return own
    ids = []
    for parent in manifest.get("parents", []):
        ids.append(parent.get("hub_id") or parent.get("manifest", {}).get("hub_id"))
        ids.append(parent.get("manifest", {}).get("base", {}).get("hub_id"))
    return _unique([*ids, own]) or None


def _license(manifest: dict[str, Any], adapters: list[dict[str, Any]]) -> str | None:
    for m in [manifest, *adapters]:
        if m.get("base", {}).get("license"):
            return m["base"]["license"]
    return None


def _tags(manifest: dict[str, Any], tasks: set[str]) -> list[str]:
    tags = ["judge", "llm-as-a-judge", "judgefactory"]
    if "absolute" in tasks:
        tags += ["prometheus", "evaluation"]
    if "pairwise" in tasks:
        tags += ["bias", "bbq"]
    if manifest["kind"] == "merge":
        tags += ["merge", "mergekit", str(manifest.get("recipe", {}).get("method", ""))]
    else:
        tags += ["lora", "peft"]
    return _unique(tags)


def _fmt(value: Any) -> str:
    """A card figure: floats to 4 significant digits, ``NA`` when undefined, anything else as text."""
    return fmt(value, 4, sig=True, missing=NA)


def _fmt_ci(ci: Any) -> str:
    return fmt_ci(ci, 4, sig=True)


def load_results(bench_root: Path, model_name: str) -> list[dict[str, Any]]:
    """Every ``bench/<model>/<suite>/metrics.json`` of the model, sorted by suite, split into the model's own headline
    metrics (``bench.suites.SUITES``; the model-index and the card's results table) and the baselines scored on the
    same items (the card's labelled comparison rows; never the model's results)."""
    from .bench.run import checked_metrics
    from .bench.suites import SUITES, SuiteInfo, is_baseline

    folder = Path(bench_root) / model_name
    results: list[dict[str, Any]] = []
    for path in sorted(folder.glob(f"*/{METRICS}")) if folder.is_dir() else []:
        data, problem = checked_metrics(path.parent, METRICS)
        if data is None:
            results.append({"suite": path.parent.name, "problem": problem or f"{path} is missing"})
            continue
        suite = str(data.get("suite") or path.parent.name)
        metrics = {name: m for name, m in (data.get("metrics") or {}).items() if isinstance(m, dict)}
        own = {name: m for name, m in metrics.items() if not is_baseline(name)}
        info = (
            SUITES[suite].info
            if suite in SUITES
            else SuiteInfo(tuple(own), suite, suite, str(data.get("source") or "?"))
        )
        limit = data.get("limit")
        subset = f"seeded stratified subset, limit {limit}" if limit else "all items"
        described = data.get("baselines") or {}
        baselines = []
        for prefix, what in described.items():
            for name in (
                f"{prefix}_kappa",
                f"{prefix}_accuracy",
                f"{prefix}_kappa_vs_rule",
                f"{prefix}_accuracy_vs_rule",
            ):
                if name in metrics:
                    baselines.append(
                        {"name": name, "what": what, "value": metrics[name].get("value"), "ci": metrics[name].get("ci")}
                    )
        results.append(
            {
                "suite": suite,
                "n": data.get("n"),
                "split": info.split,
                "subset": subset,
                "dataset_type": info.dataset_type,
                "dataset_name": info.dataset_name,
                "metrics": [
                    {"name": n, "value": own[n].get("value"), "ci": own[n].get("ci")} for n in info.headline if n in own
                ],
                "baselines": baselines,
                "source": data.get("source"),
                "excluded_trained_on": data.get("excluded_trained_on"),
                "model_manifest_sha256": data.get("model_manifest_sha256"),
                "items_sha256": data.get("items_sha256"),
            }
        )
    return results


def artifact_build(artifact_dir: Path) -> str | None:
    """The sha256 of the artifact's ``manifest.json``: the build every figure on its card must name."""
    path = Path(artifact_dir) / MANIFEST
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _short(digest: Any) -> str:
    return f"{str(digest)[:12]}…" if digest else NA


def screen_builds(results: list[dict[str, Any]], build: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """(the results measured on ``build``, a note per result dropped): a bench result the folder's manifest does not
    vouch for, or measured on another build of the artifact (or on none named), never reaches the card."""
    kept, notes = [], []
    for r in results:
        if r.get("problem"):
            notes.append(f"`{r['suite']}` is left out of this card: {r['problem']}.")
        elif build is None or r.get("model_manifest_sha256") != build:
            notes.append(
                f"`{r['suite']}` is left out of this card: measured on build `{_short(r.get('model_manifest_sha256'))}`"
                f", not this artifact's build `{_short(build)}` (rerun `judgefactory bench` on it)."
            )
        else:
            kept.append(r)
    return kept, notes


def screen_results(results: list[dict[str, Any]], trained: leakage.TrainedOn) -> tuple[list[dict[str, Any]], str]:
    """(the results a card may show, the note saying what was left out or excluded and why): a suite not screened
    against the artifact's training fingerprints (``leakage.card_check``) never reaches the card."""
    kept, notes = [], []
    for r in results:
        why = leakage.card_check(trained, r)
        if why:
            notes.append(f"`{r['suite']}` is left out of this card: {why}.")
            continue
        n = (r.get("excluded_trained_on") or {}).get("n")
        if n:
            notes.append(
                f"`{r['suite']}`: {n} items the model trained on were excluded; its figures cover the other {r['n']}."
            )
        kept.append(r)
    return kept, "\n".join(f"- {n}" for n in notes)


def load_retention(bench_root: Path, model_name: str, artifact_dir: Path) -> dict[str, Any] | None:
    """The model's rows of ``bench/retention/retention.json`` (``judgefactory retention``: what it keeps of each
    specialist on the eval sets) as the card's words and table, or None when it was not measured. Only rows measured
    on this very artifact count (the sha256 of its manifest): a rebuilt merge's card never shows the old one's."""
    from . import manifest as mf
    from .bench import retention

    doc = read_json(Path(bench_root) / "retention" / "retention.json") or {}
    manifest = Path(artifact_dir) / MANIFEST
    digest = mf.sha256_file(manifest) if manifest.is_file() else None
    rows = [
        r
        for r in doc.get("rows") or []
        if r.get("model") == model_name and digest is not None and r.get("model_manifest_sha256") == digest
    ]
    if not rows:
        return None
    mine = {**doc, "rows": rows}
    return {
        "words": "\n".join(f"- {retention.sentence(r)}" for r in rows),
        "table": retention.markdown(mine).strip(),
        "specialists": ", ".join(f"{k}: `{v}`" for k, v in (doc.get("specialists") or {}).items()),
    }


def load_consistency(consistency_root: Path, model_name: str) -> dict[str, Any] | None:
    """``consistency/<model>/summary.json``, or None when not measured yet."""
    return read_json(Path(consistency_root) / model_name / SUMMARY)


def consistency_for_build(
    consistency_root: Path, model_name: str, build: str | None
) -> tuple[dict[str, Any] | None, str | None]:
    """(summary.json with ``model_manifest_sha256`` added, None) when it was measured on ``build`` and its folder's
    manifest vouches for it; (None, the reason it is left out) otherwise; (None, None) when not measured."""
    folder = Path(consistency_root) / model_name
    summary = load_consistency(consistency_root, model_name)
    if summary is None:
        return None, None
    man = read_json(folder / MANIFEST)
    if man is None:
        return None, f"consistency figures are left out of this card: {folder / MANIFEST} is missing"
    digest = hashlib.sha256((folder / SUMMARY).read_bytes()).hexdigest()
    if (man.get("files") or {}).get(SUMMARY) != digest:
        return (
            None,
            f"consistency figures are left out of this card: {folder / SUMMARY} is not the file its manifest names",
        )
    measured = (man.get("model") or {}).get("manifest_sha256")
    if build is None or measured != build:
        return None, (
            f"consistency figures are left out of this card: measured on build `{_short(measured)}`, not this "
            f"artifact's build `{_short(build)}` (rerun `judgefactory consistency` on it)"
        )
    return {**summary, "model_manifest_sha256": measured}, None


def eval_results(results: list[dict[str, Any]]) -> list[EvalResult]:
    """The model-index entries: the judged model's own headline metrics, one ``EvalResult`` per suite and finite
    value, with the split and the number of items judged. Baselines never enter (they are not this model's results).

    The model-index ``name`` comes from ``ModelCardData(model_name=...)``: ``EvalResult`` has no model name.
    """
    out = []
    for r in results:
        for m in r["metrics"]:
            if number(m["value"]) is None:
                continue
            out.append(
                EvalResult(
                    task_type="text-generation",
                    task_name=f"LLM-as-a-judge ({r['suite']})",
                    dataset_type=r["dataset_type"],
                    dataset_name=r["dataset_name"],
                    dataset_split=r["split"],
                    dataset_args={"items": r["n"], "subset": r["subset"], "build": r.get("model_manifest_sha256")},
                    metric_type=m["name"],
                    metric_name=m["name"],
                    metric_value=float(m["value"]),
                )
            )
    return out


# --------------------------------------------------------------------------- the card


def _yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True).rstrip()


def _merge_section(
    artifact_dir: Path, manifest: dict[str, Any], adapters: list[dict[str, Any]]
) -> dict[str, Any] | None:
    if manifest["kind"] != "merge":
        return None
    recipe = manifest.get("recipe", {})
    tasks = {a.get("name"): a.get("recipe", {}).get("task", "?") for a in adapters}
    paths = [Path(artifact_dir) / name for name in (MERGE_YAML, MERGE_YAML_MERGEKIT)]
    found = next((p for p in paths if p.is_file()), None)
    text = found.read_text().rstrip() if found else f"# {MERGE_YAML} missing from the artifact folder"
    text = _portable_paths(text, manifest)
    models = [
        (f"`{m.get('adapter')}`", tasks.get(m.get("adapter"), "?"), m.get("weight")) for m in recipe.get("models", [])
    ]
    return {
        "method": recipe.get("method", "?"),
        "table": md_table(["adapter", "task", "weight"], models),
        "yaml": text,
        "file": found.name if found else MERGE_YAML,
    }


def _portable_paths(text: str, manifest: dict[str, Any]) -> str:
    """The mergekit YAML as a reader can use it: this machine's cache folders (the staged base and each LoRA fold)
    become the base's hub id and ``<hub id>+<adapter name>`` (a card must not carry local paths)."""
    cfg = manifest.get("mergekit_config") or {}
    hub_id = (manifest.get("base") or {}).get("hub_id") or (manifest.get("base") or {}).get("name") or "base"
    names = [m.get("adapter") or m.get("model") for m in (manifest.get("recipe") or {}).get("models", [])]
    swaps = []
    for entry, name in zip(cfg.get("models") or [], names, strict=False):
        model = str(entry.get("model", ""))
        if model and name:
            swaps.append((model, f"{hub_id}+{name}" if "+" in model else str(name)))
    if cfg.get("base_model"):
        swaps.append((str(cfg["base_model"]), hub_id))
    for local, portable in swaps:  # whole model strings first, then the base path they contain
        text = text.replace(local, portable)
    return text


def _workspace_relative(path: str) -> str:
    from . import paths

    try:
        return Path(path).resolve().relative_to(paths.workspace()).as_posix()
    except (ValueError, OSError):
        return Path(path).name if "/" in str(path) else str(path)


def _overview_table(manifest: dict[str, Any], adapters: list[dict[str, Any]], base_hub_id: str | None) -> str:
    base_name = manifest.get("base", {}).get("name")
    base = f"[`{base_hub_id}`](https://huggingface.co/{base_hub_id})" if base_hub_id else f"`{base_name}`"
    if base_name and base_name != base_hub_id:
        base += f" (built from `{base_name}`)"
    rows = [
        ("Kind", manifest["kind"]),
        ("Base model", base),
        ("License", _license(manifest, adapters) or "see base model"),
        ("Built", manifest.get("created") or "unknown"),
        ("Recipe sha256", f"`{manifest.get('recipe_sha256') or NA}`"),
    ]
    return md_table(["", ""], rows)


def _data_table(adapters: list[dict[str, Any]]) -> str | None:
    rows = [
        (
            f"`{a.get('name', '?')}`",
            d.get("source", "?"),
            _workspace_relative(d.get("split") or d.get("file") or MISSING),
            d.get("rows", "?"),
            f"`{str(d.get('sha256', ''))[:16] or NA}`",
        )
        for a in adapters
        for d in a.get("data", [])
    ]
    return md_table(["adapter", "source", "file / split", "rows", "sha256"], rows) if rows else None


def _results_tables(results: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """(the model's own headline figures, the baselines scored on the same items); None where there is no row."""
    own = [
        (
            r["suite"],
            r["dataset_name"],
            f"{r['split']} ({r['subset']})",
            _fmt(r["n"]),
            m["name"],
            _fmt(m["value"]),
            _fmt_ci(m["ci"]),
            f"`{_short(r.get('model_manifest_sha256'))}`",
        )
        for r in results
        for m in r["metrics"]
    ]
    baselines = [
        (r["suite"], b["what"], b["name"], _fmt(b["value"]), _fmt_ci(b["ci"])) for r in results for b in r["baselines"]
    ]
    return (
        md_table(["suite", "dataset", "split", "n", "metric", "value", "95% CI", "build"], own) if results else None,
        md_table(["suite", "baseline", "metric", "value", "95% CI"], baselines) if baselines else None,
    )


def _consistency_table(summary: dict[str, Any] | None) -> str | None:
    rows = []
    for check, info in ((summary or {}).get("checks") or {}).items():
        info = info if isinstance(info, dict) else {"value": info}
        extra = {k: v for k, v in info.items() if k not in ("value", "ci")}
        details = ", ".join(f"{k}={_fmt(v)}" for k, v in extra.items())
        if info.get("ci") is not None:
            details = f"95% CI {_fmt_ci(info['ci'])}" + (f"; {details}" if details else "")
        rows.append((check, _fmt(info.get("value")), details or MISSING))
    if not rows:
        return None
    build = (summary or {}).get("model_manifest_sha256")
    return f"Measured on build `{_short(build)}` (`n`: items or pairs per check).\n\n" + md_table(
        ["check", "value", "details"], rows
    )


def _provenance_table(manifest: dict[str, Any], adapters: list[dict[str, Any]]) -> str:
    rows = [(f"recipe `{manifest.get('name', '?')}`", manifest.get("recipe_sha256", NA))]
    if manifest["kind"] == "merge":
        rows += [(f"parent recipe `{a.get('name', '?')}`", a.get("recipe_sha256", NA)) for a in adapters]
    for a in adapters:
        rows += [
            (
                f"data `{d.get('source', '?')}` {_workspace_relative(d['file']) if d.get('file') else ''}".rstrip(),
                d.get("sha256", NA),
            )
            for d in a.get("data", [])
        ]
    rows += [(f"file `{rel}`", digest) for rel, digest in sorted(manifest.get("files", {}).items())]
    return md_table(["item", "sha256"], [(item, f"`{digest}`") for item, digest in rows])


def _limitations(manifest: dict[str, Any], tasks: set[str]) -> list[str]:
    items = []
    if "pairwise" in tasks:
        items.append(LIMITATION_PAIRWISE)
    if "absolute" in tasks:
        items.append(LIMITATION_ABSOLUTE)
    items += LIMITATIONS_COMMON
    if manifest["kind"] == "merge":
        items.append(LIMITATION_MERGE)
    return items


def _summary(manifest: dict[str, Any], tasks: set[str], base: str) -> str:
    what = (
        " and ".join(
            t
            for t in (
                "absolute grading (Prometheus 1-5 rubric scores)" if "absolute" in tasks else "",
                "pairwise bias judging (BBQ response pairs)" if "pairwise" in tasks else "",
            )
            if t
        )
        or "judging"
    )
    if manifest["kind"] == "merge":
        method = manifest.get("recipe", {}).get("method", "?")
        return f"A small LLM judge for {what}: a {method} merge of LoRA specialists trained on `{base}`."
    return f"A LoRA adapter on `{base}` that turns it into a judge for {what}."


def card_context(
    artifact_dir: Path,
    manifest: dict[str, Any],
    results: list[dict[str, Any]],
    consistency: dict[str, Any] | None,
    model_name: str,
    repo_id: str | None = None,
    retention: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Template variables for ``templates/model_card.md``."""
    adapters = adapter_manifests(manifest)
    tasks = _tasks(adapters)
    base = manifest.get("base", {})
    base_hub_id = base.get("hub_id") or next((a.get("base", {}).get("hub_id") for a in adapters if a.get("base")), None)
    manifest_path = Path(artifact_dir) / MANIFEST
    results_table, baselines_table = _results_tables(results)
    return {
        "title": model_name,
        "model_name": model_name,
        "repo_id": repo_id or f"path/to/{model_name}",
        "summary": _summary(manifest, tasks, base_hub_id or base.get("name", "?")),
        "overview_table": _overview_table(manifest, adapters, base_hub_id),
        "retention": retention,
        "has_absolute": "absolute" in tasks or not tasks,
        "has_pairwise": "pairwise" in tasks or not tasks,
        "bias": bias_example(),
        "absolute": absolute_example(),
        "merge": _merge_section(artifact_dir, manifest, adapters),
        "adapter_recipes": [
            {
                "name": a.get("name", "?"),
                "task": a.get("recipe", {}).get("task", "?"),
                "base": a.get("base", {}).get("hub_id") or a.get("base", {}).get("name", "?"),
                "recipe_sha256": a.get("recipe_sha256"),
                "created": a.get("created"),
                "yaml": _yaml(a.get("recipe", {})),
            }
            for a in adapters
        ],
        "data_table": _data_table(adapters),
        "results_table": results_table,
        "baselines_table": baselines_table,
        "consistency_table": _consistency_table(consistency),
        "limitations": _limitations(manifest, tasks),
        "versions_table": md_table(["library", "version"], sorted((manifest.get("versions") or {}).items())),
        "provenance_table": _provenance_table(manifest, adapters),
        "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest() if manifest_path.is_file() else NA,
    }


def _gguf_section(artifact_dir: Path, model_name: str, repo_id: str) -> dict[str, Any] | None:
    """The artifact's own GGUF export (``judgefactory export``) for the card: a file table and the commands that run
    it; None when there is no export built from exactly this artifact."""
    from . import export

    got = export.for_artifact(artifact_dir, model_name)
    if got is None:
        return None
    rows = [[f"`gguf/{f['name']}`", f["outtype"], f["mb"], f"`{f['sha256'][:12]}…`"] for f in got["files"]]
    return {
        "table": md_table(["file", "type", "MB", "sha256"], rows),
        "f16": next((f["name"] for f in got["files"] if f["outtype"] == "f16"), got["files"][0]["name"]),
        "repo_id": repo_id,
    }


def _hub_dataset(source: str | None) -> str | None:
    """A manifest's data source as a hub dataset id: a built pair set (``pairs:<name>``) comes from BBQ."""
    if source and source.startswith("pairs:"):
        return "heegyu/bbq"
    return source


def card_data(manifest: dict[str, Any], results: list[dict[str, Any]], model_name: str) -> ModelCardData:
    """The card's YAML metadata: base model(s), relation, library, license, tags, datasets, model-index."""
    adapters = adapter_manifests(manifest)
    is_merge = manifest["kind"] == "merge"
    evals = eval_results(results)
    return ModelCardData(
        model_name=model_name,
        base_model=_base_models(manifest),
        base_model_relation="merge" if is_merge else "adapter",
        library_name="transformers" if is_merge else "peft",
        pipeline_tag="text-generation",
        license=_license(manifest, adapters),
        language=["en"],
        tags=_tags(manifest, _tasks(adapters)),
        datasets=_unique([_hub_dataset(d.get("source")) for a in adapters for d in a.get("data", [])]) or None,
        eval_results=evals or None,
    )


def build_card(
    artifact_dir: Path, bench_root: Path, consistency_root: Path, model_name: str, *, repo_id: str | None = None
) -> ModelCard:
    """A ``ModelCard`` for an adapter or merge folder from its manifest(s) and the model's results."""
    artifact_dir = Path(artifact_dir)
    manifest = load_manifest(artifact_dir)
    build = artifact_build(artifact_dir)
    results, stale = screen_builds(load_results(Path(bench_root), model_name), build)
    results, screened = screen_results(results, leakage.for_folder(artifact_dir))
    screened = "\n".join([*(f"- {n}" for n in stale), *([screened] if screened else [])])
    consistency, consistency_note = consistency_for_build(Path(consistency_root), model_name, build)
    data = card_data(manifest, results, model_name)
    retention = load_retention(Path(bench_root), model_name, artifact_dir)
    context = card_context(artifact_dir, manifest, results, consistency, model_name, repo_id, retention)
    if screened:
        context["results_table"] = ((context["results_table"] or "") + "\n\n" + screened).strip()
    if consistency_note:
        context["consistency_table"] = f"- {consistency_note}."
    context["gguf"] = _gguf_section(artifact_dir, model_name, repo_id or f"path/to/{model_name}")
    return ModelCard.from_template(data, template_path=str(TEMPLATE_PATH), **context)


def write_card(
    artifact_dir: Path,
    bench_root: Path,
    consistency_root: Path,
    model_name: str,
    *,
    repo_id: str | None = None,
    out: Path | None = None,
) -> Path:
    """Build the card and write it atomically to ``out`` (default ``<artifact_dir>/README.md``)."""
    card = build_card(artifact_dir, bench_root, consistency_root, model_name, repo_id=repo_id)
    target = Path(out) if out is not None else Path(artifact_dir) / README
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, str(card).encode("utf-8"))
    return target
