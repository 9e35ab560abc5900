"""Compare benchmark results across models: one Markdown table (rows = suite / metric, columns = models, values with
95% CIs), printed with rich and written to ``<out>/compare.md``, plus PNG charts:

* ``kappa.png``: Cohen's kappa per BBQ slice (each bucket + overall, in-distribution; the OOD overall), bars = models
  and the metadata-rule baseline, CI whiskers;
* ``correlations.png``: Pearson / Spearman / Kendall per absolute suite, bars = models;
* ``sweep_<recipe>.png``: headline metric per suite against the merge weight, when sweep merges named
  ``<recipe>-w0.10`` … have bench results.

``consistency/<model>/summary.json`` (``{"model", "checks": {name: {"value", ...}}}``) adds ``consistency / <check>`` rows.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import manifest as mf
from ..tables import fmt_metric, md_table


def _absolute() -> list[str]:
    from .suites import SUITES

    return [name for name, s in SUITES.items() if s.kind == "absolute"]


def _headline() -> dict[str, str]:
    from .suites import SUITES

    return {name: s.info.headline[0] for name, s in SUITES.items()}


_SWEEP = re.compile(r"^merge-(?P<recipe>.+)-w(?P<w>\d+(?:\.\d+)?)$")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def resolve_label(name: str, bench_root: Path) -> str:
    """A result folder name as given, else the label of a model reference."""
    if (Path(bench_root) / name).is_dir():
        return name
    from .. import models

    try:
        return models.label(name)
    except models.ModelRefError:
        return name


def load_results(label: str, bench_root: Path) -> dict[str, dict[str, Any]]:
    """suite -> metrics.json of one model."""
    out = {}
    for p in sorted((Path(bench_root) / label).glob("*/metrics.json")):
        doc = _read(p)
        if doc and isinstance(doc.get("metrics"), dict):
            out[str(doc.get("suite") or p.parent.name)] = doc
    return out


def load_consistency(label: str, root: Path) -> dict[str, dict[str, Any]]:
    """check -> {"value", ...} from consistency/<label>/summary.json (empty when absent)."""
    doc = _read(Path(root) / label / "summary.json") or {}
    checks = doc.get("checks") or {}
    return {k: (v if isinstance(v, dict) else {"value": v}) for k, v in checks.items()}


def rows(labels: Sequence[str], results: dict[str, dict], consistency: dict[str, dict]) -> list[tuple[str, list[str]]]:
    """(row name, one cell per model): every suite's metrics, then consistency checks."""
    out = []
    suites_ = sorted({s for lab in labels for s in results[lab]})
    for s in suites_:
        names: dict[str, None] = {}
        for lab in labels:
            names.update(dict.fromkeys((results[lab].get(s) or {}).get("metrics", {})))
        for n in names:
            out.append(
                (
                    f"{s} / {n}",
                    [fmt_metric(((results[lab].get(s) or {}).get("metrics") or {}).get(n)) for lab in labels],
                )
            )
    checks: dict[str, None] = {}
    for lab in labels:
        checks.update(dict.fromkeys(consistency[lab]))
    for c in checks:
        out.append((f"consistency / {c}", [fmt_metric(consistency[lab].get(c)) for lab in labels]))
    return out


def markdown(labels: Sequence[str], table: list[tuple[str, list[str]]]) -> str:
    """``rows`` as a Markdown table: the metric column, then one right-aligned column per model."""
    return (
        md_table(["suite / metric", *labels], [(name, *cells) for name, cells in table], align="l" + "r" * len(labels))
        + "\n"
    )


def _value_err(m: dict[str, Any] | None) -> tuple[float, tuple[float, float]]:
    if not m or m.get("value") is None:
        return float("nan"), (0.0, 0.0)
    v = float(m["value"])
    ci = m.get("ci")
    if ci and all(isinstance(x, (int, float)) for x in ci):
        return v, (max(0.0, v - ci[0]), max(0.0, ci[1] - v))
    return v, (0.0, 0.0)


def _bars(
    path: Path, groups: list[str], series: dict[str, list[dict[str, Any] | None]], title: str, ylabel: str
) -> Path:
    """Grouped bar chart: one group per x label, one bar per series, CI whiskers where known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(groups) * max(1, len(series)) / 2 + 2), 4.2))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for k, (name, ms) in enumerate(series.items()):
        vals, errs = zip(*[_value_err(m) for m in ms], strict=False) if ms else ((), ())
        ax.bar(
            x + (k - (len(series) - 1) / 2) * width,
            vals,
            width,
            label=name,
            yerr=np.array(errs).T if errs else None,
            capsize=2,
        )
    ax.set_xticks(x, groups, rotation=25, ha="right", fontsize=8)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def kappa_chart(labels: Sequence[str], results: dict[str, dict], out: Path) -> Path | None:
    """Kappa per BBQ slice (buckets + overall, OOD overall), bars = models + the metadata-rule baseline."""
    slices: list[tuple[str, str, str]] = []  # (group label, suite, metric name without prefix)
    buckets: dict[str, None] = {}
    for lab in labels:
        for n in (results[lab].get("bbq_pairs") or {}).get("metrics") or {}:
            if n.startswith("kappa/"):
                buckets[n.split("/", 1)[1]] = None
    if any("bbq_pairs" in results[lab] for lab in labels):
        slices += [(b, "bbq_pairs", f"kappa/{b}") for b in buckets] + [("overall (in-dist)", "bbq_pairs", "kappa")]
    if any("bbq_pairs_ood" in results[lab] for lab in labels):
        slices.append(("OOD religion (vs rule)", "bbq_pairs_ood", "kappa_vs_rule"))
    if not slices:
        return None
    groups = [s[0] for s in slices]
    series = {lab: [((results[lab].get(s) or {}).get("metrics") or {}).get(n) for _, s, n in slices] for lab in labels}
    base = next(
        (
            lab
            for lab in labels
            if any("rule_baseline_" + n in ((results[lab].get(s) or {}).get("metrics") or {}) for _, s, n in slices)
        ),
        None,
    )
    if base is not None:
        series["rule baseline"] = [
            ((results[base].get(s) or {}).get("metrics") or {}).get("rule_baseline_" + n) for _, s, n in slices
        ]
    return _bars(
        out / "kappa.png", groups, series, "BBQ pair judge: Cohen's kappa per slice (both A/B orders)", "kappa"
    )


def correlation_chart(labels: Sequence[str], results: dict[str, dict], out: Path) -> Path | None:
    """Pearson / Spearman / Kendall per absolute suite, bars = models."""
    present = [s for s in _absolute() if any(s in results[lab] for lab in labels)]
    if not present:
        return None
    keys = [(s, k) for s in present for k in ("pearson", "spearman", "kendall")]
    series = {lab: [((results[lab].get(s) or {}).get("metrics") or {}).get(k) for s, k in keys] for lab in labels}
    return _bars(
        out / "correlations.png",
        [f"{s} {k}" for s, k in keys],
        series,
        "Absolute grading: correlation with the reference scores",
        "correlation",
    )


def sweep_charts(bench_root: Path, out: Path) -> list[Path]:
    """One line chart per merge recipe with sweep points ``merge-<recipe>-w<weight>`` in bench results."""
    points: dict[str, list[tuple[float, str]]] = {}
    for d in sorted(Path(bench_root).iterdir()) if Path(bench_root).is_dir() else []:
        m = _SWEEP.match(d.name)
        if m and d.is_dir():
            points.setdefault(m["recipe"], []).append((float(m["w"]), d.name))
    if not points:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for recipe, pts in points.items():
        pts.sort()
        res = {lab: load_results(lab, bench_root) for _, lab in pts}
        fig, ax = plt.subplots(figsize=(6, 4))
        for suite, metric in _headline().items():
            ys = [_value_err(((res[lab].get(suite) or {}).get("metrics") or {}).get(metric))[0] for _, lab in pts]
            if any(math.isfinite(y) for y in ys):
                ax.plot([w for w, _ in pts], ys, marker="o", label=f"{suite} {metric}")
        ax.set_xlabel("weight of the first model")
        ax.set_ylabel("metric")
        ax.set_title(f"merge weight sweep: {recipe}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"sweep_{recipe}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def compare(
    models: Sequence[str],
    out: Path | None = None,
    bench_root: Path | None = None,
    consistency_root: Path | None = None,
    show: bool = True,
) -> Path:
    """Write ``<out>/compare.md`` and the PNG charts for the given model refs or result labels; returns ``out``
    (defaults: the workspace's ``bench/compare``, ``bench`` and ``consistency``, judgefactory.paths)."""
    from .. import paths

    bench_root = Path(bench_root) if bench_root is not None else paths.bench()
    consistency_root = Path(consistency_root) if consistency_root is not None else paths.consistency()
    out = Path(out) if out is not None else bench_root / "compare"
    labels = list(dict.fromkeys(resolve_label(m, bench_root) for m in models))
    results = {lab: load_results(lab, bench_root) for lab in labels}
    consistency = {lab: load_consistency(lab, consistency_root) for lab in labels}
    table = rows(labels, results, consistency)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    missing = [lab for lab in labels if not results[lab] and not consistency[lab]]
    text = "# Benchmark comparison\n\n" + markdown(labels, table)
    if missing:
        text += "\nNo results for: " + ", ".join(missing) + "\n"
    charts = [p for p in (kappa_chart(labels, results, out), correlation_chart(labels, results, out)) if p]
    charts += sweep_charts(bench_root, out)
    text += "".join(f"\n![{p.stem}]({p.name})\n" for p in charts)
    mf.write_text(out / "compare.md", text)
    if show:
        _print(labels, table)
    return out


def _print(labels: Sequence[str], table: list[tuple[str, list[str]]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="benchmark comparison (value [95% CI])")
    t.add_column("suite / metric")
    for lab in labels:
        t.add_column(lab, justify="right")
    for name, cells in table:
        t.add_row(name, *cells)
    Console().print(t)
