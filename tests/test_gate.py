"""The push gate (judgefactory.gate): thresholds on the consistency summary, the share of the specialists' figures a
merge keeps, and every way a gate that cannot measure refuses (one line naming the figure, value, threshold, file)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from judgefactory import gate as G
from judgefactory import hub
from judgefactory import manifest as mf
from judgefactory.recipes import Gate


def _summary(**values) -> dict:
    return {"model": "m", "checks": {k.replace("__", "/"): {"value": v} for k, v in values.items()}}


def build_of(art: Path) -> str:
    return mf.sha256_file(art / mf.MANIFEST)


def write_summary(root: Path, label: str, build: str | None, items: str = "same", **values) -> Path:
    """consistency/<label>/ as the station writes it: summary.json, then the manifest naming the build and the file."""
    folder = root / "consistency" / label
    folder.mkdir(parents=True, exist_ok=True)
    doc = _summary(**values)
    for info in doc["checks"].values():
        info["items_sha256"] = items
    mf.write_json(folder / "summary.json", doc)
    mf.finalize(folder, {"kind": "consistency", "model": {"manifest_sha256": build, "label": label}})
    return folder


def write_metric(root: Path, label: str, suite: str, name: str, value: float, build: str, items: str = "same") -> Path:
    """bench/<label>/<suite>/ as the bench writes it: metrics.json (build, item hash), then the manifest."""
    folder = root / "bench" / label / suite
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"suite": suite, "n": 12, "items_sha256": items, "model_manifest_sha256": build}
    mf.write_json(folder / "metrics.json", {**doc, "metrics": {name: {"value": value, "ci": None}}})
    mf.finalize(folder, {"kind": "bench", "model": {"manifest_sha256": build, "label": label}})
    return folder / "metrics.json"


def merge_artifact(root: Path, gate: dict | None, parents: list[dict] | None = None) -> Path:
    art = root / "merges" / "judge-merge"
    art.mkdir(parents=True, exist_ok=True)
    (art / "config.json").write_text("{}")
    man = {"kind": "merge", "name": "judge-merge", "recipe": {"name": "judge-merge", "gate": gate}}
    mf.finalize(art, {**man, "parents": parents or []})
    return art


def specialist(root: Path, name: str, task: str) -> dict:
    folder = root / "adapters" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text("{}")
    mf.finalize(folder, {"kind": "adapter", "name": name, "recipe": {"name": name, "task": task}})
    return {"name": name, "kind": "adapter", "location": str(folder), "manifest": mf.read(folder)}


# --------------------------------------------------------------------------- thresholds on the summary
def test_check_gate_passes_and_fails_naming_the_check() -> None:
    G.check_gate(None, {})
    gate = Gate(max_conflict_ratio=0.30, min_position_consistency=0.5, max_ntr_3=0.2)
    G.check_gate(gate, _summary(conflict_ratio=0.3, position_consistency=0.5, ntr_3=0.0))  # limits are inclusive
    with pytest.raises(
        G.GateError, match=r"^consistency gate failed: conflict_ratio 0.42 > max 0.30 \(consistency/x/summary.json\)$"
    ):
        G.check_gate(
            gate,
            _summary(conflict_ratio=0.42, position_consistency=0.9, ntr_3=0.1),
            source="consistency/x/summary.json",
        )
    with pytest.raises(G.GateError, match=r"position_consistency 0.40 < min 0.50; ntr_3 0.25 > max 0.20"):
        G.check_gate(gate, _summary(conflict_ratio=0.1, position_consistency=0.4, ntr_3=0.25))
    with pytest.raises(G.GateError, match="ntr_3 not measured"):
        G.check_gate({"max_ntr_3": 0.2}, {"model": "m", "checks": {"ntr_3": {"value": None}}})


def test_gate_for_reads_recipe_gate_and_summary(tmp_path: Path) -> None:
    art = merge_artifact(tmp_path, {"max_conflict_ratio": 0.3})
    gate = G.gate_for(art, consistency_root=tmp_path / "consistency")
    with pytest.raises(G.GateError, match=r"summary.json is missing: run `make consistency model=merge:judge-merge`"):
        gate()
    write_summary(tmp_path, "merge-judge-merge", build_of(art), conflict_ratio=0.25)
    gate()  # passes
    write_summary(tmp_path, "merge-judge-merge", build_of(art), conflict_ratio=0.42)
    with pytest.raises(G.GateError, match=r"conflict_ratio 0.42 > max 0.30 \(.*merge-judge-merge/summary.json\)"):
        gate()
    write_summary(tmp_path, "merge-judge-merge", "0" * 64, conflict_ratio=0.1)
    with pytest.raises(G.GateError, match="older build of merge:judge-merge"):
        gate()


def test_gate_for_without_gate_passes(tmp_path: Path) -> None:
    art = merge_artifact(tmp_path, None)
    G.gate_for(art, consistency_root=tmp_path / "nothing")()  # no gate declared: no summary needed


def test_a_summary_naming_no_build_or_not_vouched_for_refuses(tmp_path: Path) -> None:
    """The staleness check is never skipped: a summary whose manifest names no build (or that is not the file its
    manifest names) cannot say it measured this build."""
    art = merge_artifact(tmp_path, {"max_conflict_ratio": 0.3})
    gate = G.gate_for(art, consistency_root=tmp_path / "consistency")
    folder = write_summary(tmp_path, "merge-judge-merge", None, conflict_ratio=0.1)
    with pytest.raises(G.GateError, match=r"max_conflict_ratio 0.30\) cannot measure: .*summary.json names no build"):
        gate()
    write_summary(tmp_path, "merge-judge-merge", build_of(art), conflict_ratio=0.9)
    (folder / "summary.json").write_text(json.dumps(_summary(conflict_ratio=0.1)))  # edited after the manifest
    with pytest.raises(G.GateError, match="summary.json is not the file its manifest names"):
        gate()


def test_push_runs_the_artifacts_gate_by_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """hub.push with no gate argument still runs the recipe's gate (the workspace's consistency/)."""
    monkeypatch.setenv("JUDGEFACTORY_HOME", str(tmp_path))
    art = merge_artifact(tmp_path, {"max_conflict_ratio": 0.3})
    (art / "README.md").write_text("# card\n")
    write_summary(tmp_path, "merge-judge-merge", build_of(art), conflict_ratio=0.9)
    with pytest.raises(G.GateError, match="conflict_ratio 0.90 > max 0.30"):
        hub.push(art, "me/judge", dry_run=True)
    explicit = G.gate_for(art, consistency_root=tmp_path / "consistency")
    with pytest.raises(G.GateError, match="conflict_ratio 0.90 > max 0.30"):
        hub.push(art, "me/judge", dry_run=True, gate=explicit)


# --------------------------------------------------------------------------- relative to the specialists
@pytest.fixture()
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A merge of a pairwise specialist with keep_of_specialists 0.9, every figure measured on the current builds and
    the same items (the workspace's bench/ and consistency/): the gate passes."""
    monkeypatch.setenv("JUDGEFACTORY_HOME", str(tmp_path))
    pw = specialist(tmp_path, "pw", "pairwise")
    art = merge_artifact(tmp_path, {"keep_of_specialists": 0.9}, [pw])
    spec_build, merge_build = build_of(Path(pw["location"])), build_of(art)
    files = {
        "spec_kappa": write_metric(tmp_path, "adapter-pw", "bbq_pairs", "kappa", 0.60, spec_build),
        "merge_kappa": write_metric(tmp_path, "merge-judge-merge", "bbq_pairs", "kappa", 0.55, merge_build),
    }
    write_summary(tmp_path, "adapter-pw", spec_build, position_consistency__bbq_pairs=0.80)
    write_summary(tmp_path, "merge-judge-merge", merge_build, position_consistency__bbq_pairs=0.75)
    gate = G.gate_for(art)
    gate()
    return {"root": tmp_path, "art": art, "pw": pw, "gate": gate, "spec_build": spec_build, **files}


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert message.splitlines() == [message]
    return message


def test_specialist_share_fails_naming_figure_value_threshold_and_file(world: dict) -> None:
    write_summary(world["root"], "merge-judge-merge", build_of(world["art"]), position_consistency__bbq_pairs=0.70)
    with pytest.raises(G.GateError) as err:
        world["gate"]()
    assert re.search(
        r"position_consistency/bbq_pairs 0.70 < 0.90 x 0.80 of specialist pw \(.*merge-judge-merge/summary.json\)",
        _one_line(err),
    )


def test_a_corrupt_specialist_metrics_file_refuses(world: dict) -> None:
    world["spec_kappa"].write_text('{"metrics": {"kappa": {"value": 0.6')  # cut short
    with pytest.raises(G.GateError) as err:
        world["gate"]()
    message = _one_line(err)
    assert "gate keep_of_specialists=0.90: bbq_pairs/kappa of specialist pw cannot be read" in message
    assert "adapter-pw/bbq_pairs/metrics.json" in message


def test_a_missing_or_non_positive_specialist_figure_refuses(world: dict) -> None:
    write_metric(world["root"], "adapter-pw", "bbq_pairs", "kappa", -0.1, world["spec_build"])
    with pytest.raises(G.GateError, match=r"bbq_pairs/kappa of specialist pw is -0.10 \(.*metrics.json\)"):
        world["gate"]()
    write_metric(world["root"], "adapter-pw", "bbq_pairs", "accuracy", 0.7, world["spec_build"])  # no kappa
    with pytest.raises(G.GateError, match="bbq_pairs/kappa of specialist pw is not measured"):
        world["gate"]()
    (world["root"] / "consistency" / "adapter-pw" / "summary.json").unlink()
    write_metric(world["root"], "adapter-pw", "bbq_pairs", "kappa", 0.6, world["spec_build"])
    with pytest.raises(G.GateError, match=r"position_consistency/bbq_pairs of specialist pw cannot be read: .*missing"):
        world["gate"]()


def test_figures_on_other_items_refuse(world: dict) -> None:
    write_metric(world["root"], "merge-judge-merge", "bbq_pairs", "kappa", 0.59, build_of(world["art"]), items="other")
    with pytest.raises(G.GateError, match="bbq_pairs/kappa of the merge .* were not measured on the same items"):
        world["gate"]()


def test_a_stale_specialist_file_refuses(world: dict) -> None:
    """The specialist's figure must be of the adapter build that was merged, the merge's of its current build."""
    write_metric(world["root"], "adapter-pw", "bbq_pairs", "kappa", 0.6, "1" * 64)
    with pytest.raises(G.GateError) as err:
        world["gate"]()
    assert re.search(
        r"bbq_pairs/kappa of specialist pw cannot be read: .*adapter-pw/bbq_pairs/metrics.json was measured on "
        r"another build of specialist pw",
        _one_line(err),
    )
    write_metric(world["root"], "adapter-pw", "bbq_pairs", "kappa", 0.6, world["spec_build"])
    world["gate"]()
    folder = Path(world["pw"]["location"])  # the specialist is rebuilt after the merge
    mf.finalize(folder, {**mf.read(folder), "created": "later"})
    with pytest.raises(G.GateError, match="specialist pw was rebuilt after this merge"):
        world["gate"]()
