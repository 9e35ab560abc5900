"""The push gate: does an artifact meet its recipe's ``gate:`` before it goes to the Hub?

``gate_for(artifact_dir)`` returns the check ``hub.push`` runs before any upload. It reads the recipe's gate from the
artifact's manifest and refuses (``GateError``, one line naming the figure, its value, its threshold and the file)
unless every gated figure is measured, on the current build and, where figures are compared, on the same items:

* absolute thresholds (``min_<check>`` / ``max_<check>``) against ``consistency/<label>/summary.json``, the PLAIN
  figures (how the judge is used by default). The summary's folder manifest must name the sha256 of this artifact's
  manifest and vouch for the summary file: a summary with no build named, or of an older build, cannot measure this one.
* ``keep_of_specialists``: the merge keeps that share of each parent specialist's own figures (``SPECIALIST_FIGURES``),
  each read from a file its manifest vouches for, the specialist's measured on the adapter build that was merged and
  the merge's on the merge's current build, both on the same items (item hash). A specialist figure that is missing,
  unreadable or not positive cannot be kept a share of: the gate refuses instead of imposing nothing.

A gate that cannot measure refuses; no gate declared passes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import manifest as mf
from .errors import JudgeFactoryError
from .tables import number

SUMMARY = "summary.json"
SPECIALIST_FIGURES = {  # skill -> the figures the relative gate holds a merge to: (where, suite or check, metric)
    "pairwise": [("bench", "bbq_pairs", "kappa"), ("consistency", "position_consistency/bbq_pairs", None)],
    "absolute": [("bench", "vicuna", "pearson_expected"), ("consistency", "position_consistency/vicuna_pairs", None)],
}

__all__ = ["GateError", "SPECIALIST_FIGURES", "check_gate", "check_against_specialists", "gate_for"]


class GateError(JudgeFactoryError):
    """A model fails (or cannot be measured against) its recipe's gate; one line naming the figure, value, threshold
    and file."""


def _g(x: float) -> str:
    return f"{x:.2f}" if round(x, 2) == x else f"{x:.4g}"


def _shown(path: Path) -> str:
    """``path`` as the user sees it: relative to the working directory when below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_gate(gate: Any, summary: Mapping[str, Any], *, source: str | Path | None = None) -> None:
    """Raise ``GateError`` naming every failed check when ``summary`` (summary.json) misses a threshold of ``gate``
    (``recipes.Gate`` or its mapping; ``min_<check>`` / ``max_<check>``, e.g. max_conflict_ratio -> conflict_ratio).
    A gated check that is absent or undefined (value None) fails too. None: no gate, nothing to check."""
    from .recipes import Gate

    if gate is None:
        return
    if isinstance(gate, Mapping):
        gate = Gate.model_validate(dict(gate))
    checks = summary.get("checks") or {}
    failures = []
    for field, limit in gate.model_dump().items():
        if limit is None or field == "keep_of_specialists":  # relative to the specialists: check_against_specialists
            continue
        kind, check = field.split("_", 1)
        info = checks.get(check)
        value = number(info.get("value") if isinstance(info, Mapping) else info)
        if value is None:
            failures.append(f"{check} not measured ({field} {_g(limit)})")
        elif kind == "min" and value < limit:
            failures.append(f"{check} {_g(value)} < min {_g(limit)}")
        elif kind == "max" and value > limit:
            failures.append(f"{check} {_g(value)} > max {_g(limit)}")
    if failures:
        raise GateError("consistency gate failed: " + "; ".join(failures) + (f" ({source})" if source else ""))


# --------------------------------------------------------------------------- reading figures (vouched for, or refused)
def _consistency_summary(folder: Path, build: str | None, who: str) -> tuple[dict[str, Any], Path]:
    """(summary.json of a consistency folder, its path) when its manifest names ``build`` and vouches for it."""
    path = Path(folder) / SUMMARY
    shown = _shown(path)
    if not path.is_file():
        raise GateError(f"{shown} is missing: run `judgefactory consistency` on {who}")
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise GateError(f"cannot read {shown}: {err}") from None
    if not isinstance(summary, dict):
        raise GateError(f"{shown} does not hold a JSON object: rerun `judgefactory consistency` on {who}")
    man = mf.read(folder)
    measured = ((man or {}).get("model") or {}).get("manifest_sha256")
    if not measured:
        raise GateError(f"{shown} names no build it was measured on: rerun `judgefactory consistency` on {who}")
    if (man or {}).get("files", {}).get(SUMMARY) != _sha(path):
        raise GateError(f"{shown} is not the file its manifest names: rerun `judgefactory consistency` on {who}")
    if build is None or measured != build:
        raise GateError(f"{shown} was measured on an older build of {who}: rerun `judgefactory consistency` on it")
    return summary, path


def _figure(
    where: str, folder_root: Path, label: str, what: str, metric: str | None, build: str | None, who: str
) -> tuple[float | None, str | None, Path]:
    """(value, item hash, file) of one figure of ``label`` measured on ``build``; GateError when the file is missing,
    unreadable, not vouched for by its manifest or of another build."""
    from .bench.run import checked_metrics

    if where == "bench":
        folder = Path(folder_root) / label / what
        path = folder / "metrics.json"
        doc, problem = checked_metrics(folder)
        if doc is None:
            raise GateError(problem or f"{_shown(path)} is missing: run `judgefactory bench` on {who} ({what})")
        if build is None or doc.get("model_manifest_sha256") != build:
            raise GateError(f"{_shown(path)} was measured on another build of {who}: rerun `judgefactory bench` on it")
        m = (doc.get("metrics") or {}).get(metric)
        return number(m.get("value") if isinstance(m, Mapping) else m), doc.get("items_sha256"), path
    summary, path = _consistency_summary(Path(folder_root) / label, build, who)
    info = (summary.get("checks") or {}).get(what)
    value = number(info.get("value") if isinstance(info, Mapping) else info)
    return value, (info.get("items_sha256") if isinstance(info, Mapping) else None), path


def _adapter_build(parent: Mapping[str, Any]) -> tuple[str | None, str]:
    """(sha256 of the parent adapter's manifest on disk, its label) when it is still the build that was merged."""
    from . import models

    name = str(parent.get("name"))
    location = parent.get("location")
    folder = Path(location) if location else None
    if folder is None or not (folder / mf.MANIFEST).is_file():
        try:
            folder = Path(models.resolve(f"adapter:{name}")[1])
        except models.ModelRefError:
            raise GateError(f"specialist {name}: its adapter folder is gone; cannot tie its figures to it") from None
    path = folder / mf.MANIFEST
    if not path.is_file():
        raise GateError(f"specialist {name}: {_shown(path)} is missing; cannot tie its figures to it")
    if parent.get("manifest") and mf.read(folder) != parent.get("manifest"):
        raise GateError(
            f"specialist {name} was rebuilt after this merge ({_shown(path)}): its figures are not of the merged build"
        )
    return _sha(path), f"adapter-{name}"


def check_against_specialists(
    share: float,
    manifest: Mapping[str, Any],
    label: str,
    bench_root: Path,
    consistency_root: Path,
    *,
    build: str | None,
    specialist_build: Callable[[Mapping[str, Any]], tuple[str | None, str]] = _adapter_build,
) -> None:
    """``GateError`` unless the merge (label ``label``, manifest sha256 ``build``) keeps ``share`` of every figure of
    its parent specialists' own skill (``SPECIALIST_FIGURES``), each pair measured on the same items. Every such
    figure must be measured and positive for the specialist (on the adapter build that was merged) and measured for
    the merge: otherwise the gate refuses, naming the figure and the file."""
    roots = {"bench": Path(bench_root), "consistency": Path(consistency_root)}
    failures, used = [], 0
    for parent in manifest.get("parents") or []:
        task = ((parent.get("manifest") or {}).get("recipe") or {}).get("task")
        figures = SPECIALIST_FIGURES.get(task, []) if task else []
        if not figures:
            continue
        spec_build, spec_label = specialist_build(parent)
        who = f"specialist {parent.get('name')}"
        for where, what, metric in figures:
            name = f"{what}{'/' + metric if metric else ''}"
            head = f"gate keep_of_specialists={_g(share)}: {name}"
            try:
                ref, ref_items, ref_path = _figure(where, roots[where], spec_label, what, metric, spec_build, who)
            except GateError as err:
                raise GateError(f"{head} of {who} cannot be read: {err}") from None
            if ref is None or ref <= 0:
                shown = "not measured" if ref is None else _g(ref)
                raise GateError(f"{head} of {who} is {shown} ({_shown(ref_path)}): a share of it cannot be measured")
            try:
                got, items, path = _figure(where, roots[where], label, what, metric, build, "the merge")
            except GateError as err:
                raise GateError(
                    f"{head} of the merge (>= {_g(share)} x {_g(ref)} of {who}) cannot be read: {err}"
                ) from None
            used += 1
            if not ref_items or ref_items != items:
                raise GateError(
                    f"{head} of the merge ({_shown(path)}) and of {who} ({_shown(ref_path)}) were not measured on the "
                    "same items: rerun both on the same subset"
                )
            if got is None:
                failures.append(
                    f"{name} not measured for the merge (>= {_g(share)} x {_g(ref)} of {who}; {_shown(path)})"
                )
            elif got < share * ref:
                failures.append(f"{name} {_g(got)} < {_g(share)} x {_g(ref)} of {who} ({_shown(path)})")
    if not used:
        raise GateError(
            f"gate keep_of_specialists={_g(share)}: the merge names no specialist with a skill to compare "
            "(parents without a recipe task)"
        )
    if failures:
        raise GateError("consistency gate failed: " + "; ".join(failures))


def gate_for(
    artifact_dir: Path, consistency_root: Path | None = None, bench_root: Path | None = None
) -> Callable[[], None]:
    """The push gate of an artifact: reads ``manifest["recipe"]["gate"]`` when called and checks it against
    ``<consistency_root>/<label>/summary.json`` and (``keep_of_specialists``) ``<bench_root>`` (defaults: the repo's
    ``consistency/`` and ``bench/``). No gate declared: passes. Anything it cannot measure: ``GateError``."""
    artifact_dir = Path(artifact_dir)

    def gate() -> None:
        from pydantic import ValidationError

        from . import models, paths
        from .recipes import Gate

        manifest = mf.read(artifact_dir)
        if manifest is None:
            raise GateError(f"no {mf.MANIFEST} in {artifact_dir}: cannot read its recipe's consistency gate")
        raw = (manifest.get("recipe") or {}).get("gate") if isinstance(manifest.get("recipe"), dict) else None
        if not raw:
            return
        try:
            g = Gate.model_validate(raw)
        except ValidationError as err:
            raise GateError(f"{artifact_dir}/{mf.MANIFEST}: invalid recipe gate: {err.errors()[0]['msg']}") from None
        build = _sha(artifact_dir / mf.MANIFEST)
        kind = manifest.get("kind") or "merge"
        ref = f"{kind}:{manifest.get('name') or artifact_dir.name}"
        try:
            label = models.label(str(artifact_dir))
        except models.ModelRefError:
            label = f"{kind}-{artifact_dir.name}"
        cons_root = Path(consistency_root) if consistency_root is not None else paths.consistency()
        if g.keep_of_specialists:
            check_against_specialists(
                g.keep_of_specialists,
                manifest,
                label,
                Path(bench_root) if bench_root is not None else paths.bench(),
                cons_root,
                build=build,
            )
        declared = [f"{k} {_g(v)}" for k, v in g.model_dump().items() if v is not None and k != "keep_of_specialists"]
        if not declared:
            return
        path = cons_root / label / SUMMARY
        if not path.is_file():
            raise GateError(
                f"consistency gate declared ({', '.join(declared)}) but {_shown(path)} is missing: "
                f"run `make consistency model={ref}`"
            )
        try:
            summary, path = _consistency_summary(path.parent, build, ref)
        except GateError as err:
            raise GateError(f"consistency gate ({', '.join(declared)}) cannot measure: {err}") from None
        check_gate(g, summary, source=_shown(path))

    return gate
