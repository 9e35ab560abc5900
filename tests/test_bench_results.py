"""Bench result folders: predictions accumulate per (item, request, mode, settings + build), a narrower run never
replaces the widest run's metrics, metrics name their items and build, and a kill never leaves new predictions beside
an old build's metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_bench import FIXTURE_MIRROR, Scripted

from judgefactory import manifest as mf
from judgefactory.bench import run as bench_run


def _recipe(limit: int | None = None, max_new_tokens: int = 4) -> bench_run.BenchRecipe:
    return bench_run.BenchRecipe(
        kind="bench",
        name="t",
        batch_size=1,
        suites=[bench_run.SuiteSpec(name="feedback_bench", limit=limit, max_new_tokens=max_new_tokens)],
    )


def _model(root: Path, created: str = "first") -> Path:
    """A model folder with a manifest: its sha256 is the build the bench keys on."""
    folder = root / "models" / "judge"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    mf.finalize(folder, {"kind": "checkpoint", "name": "judge", "created": created})
    return folder


def _engine() -> Scripted:
    return Scripted(lambda prompt, k: "Feedback: fine [RESULT] 3", label="judge")


def _bench(model: Path, out: Path, engine, limit: int | None = None, **kw) -> Path:
    return (
        bench_run.run(
            str(model), _recipe(**kw), limit=limit, out_root=out, engine=engine, mirror=FIXTURE_MIRROR, n_boot=5
        )
        / "feedback_bench"
    )


def _rows(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "predictions.jsonl").read_text().splitlines()]


def test_a_limited_run_keeps_the_full_runs_predictions_and_metrics(tmp_path: Path) -> None:
    model = _model(tmp_path)
    folder = _bench(model, tmp_path / "bench", _engine())
    full = (folder / "metrics.json").read_bytes()
    doc = json.loads(full)
    assert doc["n"] == 4 and doc["items_sha256"] == bench_run.items_sha256(r["id"] for r in _rows(folder))
    assert doc["model_manifest_sha256"] == mf.sha256_file(model / mf.MANIFEST)

    again = _engine()
    _bench(model, tmp_path / "bench", again, limit=2)
    assert again.judged == 0  # the two items were judged by the full run: reused
    assert len(_rows(folder)) == 4  # nothing removed
    assert (folder / "metrics.json").read_bytes() == full  # the widest run keeps metrics.json
    small, why = bench_run.checked_metrics(folder, "metrics-limit2.json")
    assert why is None and small is not None and small["n"] == 2 and small["limit"] == 2
    assert small["items_sha256"] != doc["items_sha256"]
    assert (folder / "table-limit2.md").is_file() and "n = 4" in (folder / "table.md").read_text()
    kept, why = bench_run.checked_metrics(folder)
    assert why is None and kept is not None and kept["n"] == 4
    results = mf.read(folder)["results"]
    assert {k: v["n"] for k, v in results.items()} == {"metrics.json": 4, "metrics-limit2.json": 2}

    # a wider run replaces the narrower one in metrics.json; the narrower keeps its figures under its limit
    fresh = tmp_path / "fresh"
    small_first = _bench(model, fresh, _engine(), limit=2)
    _bench(model, fresh, _engine())
    assert json.loads((small_first / "metrics.json").read_text())["n"] == 4
    assert json.loads((small_first / "metrics-limit2.json").read_text())["n"] == 2


def test_rows_are_keyed_by_settings_and_build_and_accumulate(tmp_path: Path) -> None:
    model = _model(tmp_path)
    folder = _bench(model, tmp_path / "bench", _engine())
    build = mf.sha256_file(model / mf.MANIFEST)
    assert {r["model_sha256"] for r in _rows(folder)} == {build}
    longer = _engine()
    _bench(model, tmp_path / "bench", longer, max_new_tokens=8)  # other settings: judged anew, old rows kept
    assert longer.judged == 4 and len(_rows(folder)) == 8
    settings = json.loads((folder / "metrics.json").read_text())["settings"]
    assert len(bench_run.read_predictions(folder / "predictions.jsonl", settings)) == 4
    same = _engine()
    _bench(model, tmp_path / "bench", same)  # the first settings again: every row reused
    assert same.judged == 0 and len(_rows(folder)) == 8


class Killed(Exception):
    pass


def test_a_kill_after_a_rebuild_leaves_no_old_metrics_beside_new_predictions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_run, "CHUNK_BATCHES", 1)  # one judgement per chunk
    model = _model(tmp_path)
    folder = _bench(model, tmp_path / "bench", _engine())
    _model(tmp_path, created="rebuilt")  # a new build of the same model
    build = mf.sha256_file(model / mf.MANIFEST)

    class DiesAfterOneChunk(Scripted):
        def judge(self, messages_list, **kw):
            if self.judged:
                raise Killed
            return super().judge(messages_list, **kw)

    with pytest.raises(Killed):
        _bench(model, tmp_path / "bench", DiesAfterOneChunk(lambda p, k: "x [RESULT] 2", label="judge"))
    rows = _rows(folder)
    assert rows and {r["model_sha256"] for r in rows} == {build}  # only the new build's rows
    assert not list(folder.glob("metrics*.json")) and not list(folder.glob("table*.md"))
    assert mf.read(folder) is None
    resumed = _engine()
    _bench(model, tmp_path / "bench", resumed)
    assert resumed.judged == 4 - len(rows)
    doc, why = bench_run.checked_metrics(folder)
    assert why is None and doc is not None and doc["model_manifest_sha256"] == build


def test_metrics_written_after_the_manifest_are_not_trusted(tmp_path: Path) -> None:
    model = _model(tmp_path)
    folder = _bench(model, tmp_path / "bench", _engine())
    path = folder / "metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "n": 99}))  # a run killed before its manifest
    doc, why = bench_run.checked_metrics(folder)
    assert doc is None and why is not None and "is not the file" in why and "manifest.json names" in why
