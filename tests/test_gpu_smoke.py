"""scripts/gpu_smoke.sh (D24) on a CPU stand-in: the script a GPU user runs for the 4B line, here with
tiny recipes (a random Llama built from a config, the fixture mirror, the transformers backend), so every station it
chains (pair set, both specialists with their quick checks, the merge recipe renamed to the smoke adapters, both bench
suites, the card, the summary table) runs on every commit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import FX_PAIRS, PKG_MIRROR, REPO, build_tiny_llama, tiny_pairwise_recipe

from judgefactory import recipes

PW_CHECK = {"source": "judge-from-scratch/bbq-pairs", "file": "eval_in_dist", "max_new_tokens": 8}


def _absolute_rows(tmp: Path) -> Path:
    """A small user CSV to train the tiny absolute specialist on: the fixture MT-Bench file asks the fixture Vicuna
    file's own instructions, so a specialist trained on it has every Vicuna item excluded from its bench (leakage)."""
    path = tmp / "abs_rows.csv"
    lines = ["instruction,response,rubric,score,feedback"]
    for i in range(8):
        lines.append(
            f"Name a prime number above {10 * i}.,{10 * i + 1},Is the number prime? Score 1-5.,{1 + i % 5},Checked."
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def _recipes(tmp: Path, base: Path) -> dict[str, Path]:
    specs = {
        "fx": FX_PAIRS,
        "pw": yaml.safe_load(recipes.dump(tiny_pairwise_recipe(base, quick_eval=PW_CHECK))),
        "abs": yaml.safe_load(
            recipes.dump(
                tiny_pairwise_recipe(
                    base,
                    name="tiny-abs",
                    task="absolute",
                    data={"source": f"file:{_absolute_rows(tmp)}", "max_response_chars": 200},
                    quick_eval={"source": "prometheus-eval/vicuna", "max_new_tokens": 8},
                )
            )
        ),
        "merge": {
            "kind": "merge",
            "name": "tiny-nuslerp",
            "method": "nuslerp",
            "base": str(base),
            "models": [{"adapter": "tiny-abs", "weight": 0.5}, {"adapter": "tiny-pw", "weight": 0.5}],
            "use_base": True,
            "dtype": "float32",
        },
    }
    out = {}
    for key, spec in specs.items():
        out[key] = tmp / f"{key}.yaml"
        out[key].write_text(yaml.safe_dump(spec))
    return out


def test_gpu_smoke_script_runs_the_line_on_a_cpu_stand_in(tmp_path):
    base = build_tiny_llama(tmp_path / "tiny-llama")
    r = _recipes(tmp_path, base)
    env = {
        **os.environ,
        "JUDGEFACTORY_HOME": str(tmp_path / "home"),
        "JUDGEFACTORY_CACHE": str(tmp_path / "cache"),
        "JUDGEFACTORY_DATA": str(PKG_MIRROR),
        "PY": sys.executable,
        "JF": str(Path(sys.executable).parent / "judgefactory"),
        "PAIR_SET": str(r["fx"]),
        "PAIRWISE": str(r["pw"]),
        "ABSOLUTE": str(r["abs"]),
        "MERGE": str(r["merge"]),
        "STEPS": "3",
        "LIMIT": "4",
        "BACKEND": "transformers",
        "LOG": str(tmp_path / "log"),
    }
    run = subprocess.run(["bash", str(REPO / "scripts" / "gpu_smoke.sh")], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    home = tmp_path / "home"
    for name in ("smoke-tiny-pw", "smoke-tiny-abs"):
        m = json.loads((home / "adapters" / name / "manifest.json").read_text())
        # the smoke run's steps, not the recipe's 6; the quick check ran on the adapter
        assert (m["training"]["steps"], m["training"]["completed"]) == (3, True), m["training"]
        assert m["quick_eval"]["adapter"]["n"] > 0 and "failed" not in m["quick_eval"]
    merged = json.loads((home / "merges" / "smoke-tiny-nuslerp" / "manifest.json").read_text())
    assert [m["adapter"] for m in merged["recipe"]["models"]] == ["smoke-tiny-abs", "smoke-tiny-pw"]
    assert (home / "merges" / "smoke-tiny-nuslerp" / "README.md").is_file()  # the card
    for suite in ("bbq_pairs", "vicuna"):
        doc = json.loads((home / "bench" / "merge-smoke-tiny-nuslerp" / suite / "metrics.json").read_text())
        assert 0 < doc["n"] <= 4, doc["n"]  # LIMIT items (fewer where the fixture suite has fewer)
    summary = (tmp_path / "log" / "summary.md").read_text()
    assert summary == run.stdout and "3/3 steps" in summary and "bench bbq_pairs (transformers)" in summary, summary
    stations = [line.split("\t")[0] for line in (tmp_path / "log" / "seconds.tsv").read_text().splitlines()]
    assert stations == [
        "pairs",
        "train-pairwise",
        "train-absolute",
        "merge",
        "bench-pairwise",
        "bench-absolute",
        "card",
    ]


def test_gpu_smoke_script_stops_at_the_failing_station_with_its_log(tmp_path):
    base = build_tiny_llama(tmp_path / "tiny-llama")
    r = _recipes(tmp_path, base)
    env = {
        **os.environ,
        "JUDGEFACTORY_HOME": str(tmp_path / "home"),
        "JUDGEFACTORY_DATA": str(PKG_MIRROR),
        "PY": sys.executable,
        "JF": str(Path(sys.executable).parent / "judgefactory"),
        "PAIR_SET": "",
        "PAIRWISE": str(r["pw"]),  # its pair set was never built (PAIR_SET empty): training cannot start
        "ABSOLUTE": str(r["abs"]),
        "MERGE": str(r["merge"]),
        "LOG": str(tmp_path / "log"),
    }
    run = subprocess.run(["bash", str(REPO / "scripts" / "gpu_smoke.sh")], env=env, capture_output=True, text=True)
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])
    assert f"error: train-pairwise failed (exit 2); log: {tmp_path / 'log'}/train-pairwise.log" in run.stderr
    assert not (tmp_path / "home" / "merges" / "smoke-tiny-nuslerp").exists()


def test_gpu_smoke_script_refuses_an_unknown_recipe_before_any_station(tmp_path):
    env = {**os.environ, "PY": sys.executable, "PAIRWISE": "no-such-recipe", "LOG": str(tmp_path / "log")}
    run = subprocess.run(["bash", str(REPO / "scripts" / "gpu_smoke.sh")], env=env, capture_output=True, text=True)
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])
    assert run.stderr.startswith("error: no adapters recipe named 'no-such-recipe'"), run.stderr
    assert (tmp_path / "log" / "seconds.tsv").read_text() == ""  # no station ran
