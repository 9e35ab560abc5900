"""``docs/RESULTS.md``: every measured figure of ``docs/results/*.json`` in one generated page.

``render(results_dir)`` is a pure function of the json files (sorted by name, numbers rounded the same way every
time), so writing it twice gives the same bytes and ``tests/test_house_rules.py`` checks that the committed page
is the regenerated one. Each file becomes one section: what it measures, the command and commit that produced it, and
a table of its figures (every ``{"value": number, ...}`` object, with its CI, n and split where given; a file without
such objects lists its numbers instead, capped). Where each figure was measured is the json's ``cpu`` / ``machine``
field; the page links the file rather than repeat it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import paths

HEADER = (
    "# Results\n\n"
    "Generated from [`docs/results/*.json`](results/) by `judgefactory results-doc` (or `make results-doc`); "
    "do not edit by hand: change a json file and regenerate (a test checks this page equals the regenerated one).\n"
    "Each section is one file: what it measures, the command and commit that produced it, and its figures "
    "(value, 95% CI where given, n, split). Where a figure was measured (CPU, threads, precision) is the json's "
    "`cpu` / `machine` field; the decisions that use them are in [DECISIONS.md](DECISIONS.md).\n"
)
MAX_ROWS = 40
"""numbers listed per file when it has no figure objects (the rest: in the json)."""
SKIP = {"recipe", "precision", "machine", "cpu", "committed_cpu", "commit", "committed_commit", "manifest"}
"""keys whose subtrees are provenance, not figures."""


def default_paths() -> tuple[Path, Path]:
    """(results folder, page) of the source checkout: ``docs/results``, ``docs/RESULTS.md``."""
    docs = paths.CHECKOUT / "docs"
    return docs / "results", docs / "RESULTS.md"


def _num(v: float | int) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if v != v:  # NaN
        return "nan"
    a = abs(v)
    if a >= 1000:
        return f"{v:.0f}"
    if a >= 1 or a == 0:
        return f"{v:.4g}"
    return f"{v:.3f}"


def _cell(text: Any) -> str:
    s = " ".join(str(text).split())
    return s.replace("|", "\\|")


def _code(text: str) -> str:
    s = " ".join(text.split())
    fence = "``" if "`" in s else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def _is_figure(x: Any) -> bool:
    return isinstance(x, dict) and isinstance(x.get("value"), (int, float)) and not isinstance(x.get("value"), bool)


def _figures(x: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if _is_figure(x):
        yield path, x
    elif isinstance(x, dict):
        for k, v in x.items():
            if k not in SKIP:
                yield from _figures(v, f"{path}.{k}" if path else str(k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _figures(v, f"{path}[{i}]")


def _numbers(x: Any, path: str = "") -> Iterator[tuple[str, float | int]]:
    if isinstance(x, dict):
        for k, v in x.items():
            if k not in SKIP:
                yield from _numbers(v, f"{path}.{k}" if path else str(k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield path, x


def _ci(ci: Any) -> str:
    if isinstance(ci, list) and len(ci) == 2 and all(isinstance(c, (int, float)) for c in ci):
        return f"[{_num(ci[0])}, {_num(ci[1])}]"
    return ""


def _what(d: dict[str, Any]) -> str:
    if isinstance(d.get("what"), str):
        return d["what"]
    if isinstance(d.get("adapter"), str):
        return f"adapter `{d['adapter']}` ({d.get('task', '?')} specialist): quick check of base and adapter, training"
    if isinstance(d.get("how"), str):
        return d["how"]
    return "(no description field: see the json)"


def section(name: str, d: dict[str, Any]) -> str:
    """One file's section (``name``: the file name in docs/results)."""
    out = [f"## {Path(name).stem}", ""]
    meta = [f"[{name}](results/{name})"]
    if isinstance(d.get("commit"), str):
        meta.append(f"commit `{d['commit']}`")
    out += [" · ".join(meta), ""]
    what = _what(d)
    if what:
        out += [_cell(what), ""]
    if isinstance(d.get("decision"), str):
        out += [f"Decision: {_cell(d['decision'])}", ""]
    if isinstance(d.get("command"), str):
        out += [f"Command: {_code(d['command'])}", ""]
    figures = list(_figures(d))
    if figures:
        out += ["| figure | value | 95% CI | n | split |", "|---|---|---|---|---|"]
        for path, f in figures:
            path = path.removeprefix("figures.")
            n = f.get("n")
            out.append(
                f"| {_cell(path)} | {_num(f['value'])} | {_ci(f.get('ci'))} | "
                f"{_num(n) if isinstance(n, (int, float)) else ''} | {_cell(f.get('split') or '')} |"
            )
    else:
        numbers = list(_numbers(d))
        if numbers:
            out += ["| number | value |", "|---|---|"]
            out += [f"| {_cell(path)} | {_num(v)} |" for path, v in numbers[:MAX_ROWS]]
            if len(numbers) > MAX_ROWS:
                out += ["", f"{len(numbers) - MAX_ROWS} more numbers in the json."]
    return "\n".join(out) + "\n"


def render(results_dir: Path) -> str:
    """The whole page for the json files in ``results_dir``."""
    files = sorted(Path(results_dir).glob("*.json"))
    index = ["| file | what | commit |", "|---|---|---|"]
    sections = []
    for f in files:
        d = json.loads(f.read_text())
        if not isinstance(d, dict):
            continue
        stem = f.stem
        what = _what(d)
        index.append(f"| [{stem}](#{stem.lower()}) | {_cell(what)} | `{d.get('commit', '')}` |")
        sections.append(section(f.name, d))
    return HEADER + "\n" + "\n".join(index) + "\n\n" + "\n".join(sections)


def write(results_dir: Path | None = None, out: Path | None = None) -> tuple[Path, bool]:
    """Write the page; returns (path, whether its content changed)."""
    d_results, d_out = default_paths()
    results_dir, out = results_dir or d_results, out or d_out
    text = render(results_dir)
    changed = not out.is_file() or out.read_text() != text
    if changed:
        out.write_text(text)
    return out, changed
