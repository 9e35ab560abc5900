import subprocess
import sys
from pathlib import Path

import pytest

from judgefactory.cli import main as cli


def test_help_lists_commands_without_heavy_imports():
    """--help stays cheap because the CLI imports no torch / transformers / mergekit / trl (checked below), not by a
    wall-clock limit, which failed on a loaded 2-core machine."""
    out = subprocess.run(
        [sys.executable, "-m", "judgefactory.cli", "--help"], capture_output=True, text=True, check=True
    )
    for cmd in ("base", "validate", "chat", "data"):
        assert cmd in out.stdout
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, judgefactory.cli.main; print(sorted(m for m in ('torch', 'transformers', 'mergekit', 'trl') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert heavy.stdout.strip() == "[]"


def test_broken_recipe_fails_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: merge\nname: m\nmethod: nuslerp\nbase: embedded:smollm2-135m-instruct\nmodels: [{adapter: a, wieght: 1}, {adapter: b}]\n"
    )
    with pytest.raises(SystemExit) as e:
        cli.main(["validate", str(bad)])
    assert e.value.code == 2
    out = capsys.readouterr()
    line = [x for x in out.out.splitlines() if x.startswith("FAIL")]
    assert len(line) == 1 and str(bad) in line[0] and "models.0.wieght" in line[0]
    assert out.err.strip() == f"error: {line[0].removeprefix('FAIL ')}"


def test_data_errors_exit_2_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--data-mirror", str(tmp_path), "data", "prometheus-eval/Feedback-Bench"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: prometheus-eval/Feedback-Bench: not in the data mirror")


@pytest.mark.parametrize(
    "argv,message",
    [
        (["bench", "base", "no_such_suite"], "unknown suite 'no_such_suite'"),
        (["consistency", "adapter:no_such_adapter"], "adapter 'no_such_adapter' not found"),
        (["merge", "no_such_recipe"], "no merges recipe named 'no_such_recipe'"),
        (["merge", "nuslerp_50_50", "--set", "models.0.weight=-1"], "models.0.weight=-1.0: nuslerp interpolates"),
        (
            ["train", "pairwise", "--set", "train.max_steps=0"],
            "field 'train.max_steps': Input should be greater than 0",
        ),
        (["card", "--merge", "a", "--adapter", "b"], "give exactly one of --merge NAME or --adapter NAME"),
    ],
)
def test_every_subcommand_fails_the_same_way(argv, message, capsys):
    """One error path: an expected failure in any subcommand is one line on stderr naming what to fix, exit code 2."""
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Anything that is not a JudgeFactoryError is a bug: it propagates (with its traceback), not exit 2."""
    from judgefactory.bench import run as bench_run

    def boom(*a, **kw):
        raise KeyError("a bug")

    monkeypatch.setattr(bench_run, "run", boom)
    with pytest.raises(KeyError, match="a bug"):
        cli.main(["bench", "base", "vicuna"])


def test_pip_install_dot_gives_a_working_cli_with_its_recipes(tmp_path):
    """A non-editable install (`pip install .`) carries the shipped recipes inside the package and puts artifacts in
    ~/judgefactory (or $JUDGEFACTORY_HOME), whatever the working directory."""
    import os

    repo = Path(__file__).resolve().parent.parent
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--no-compile",
            "--target",
            str(target),
            str(repo),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert (target / "judgefactory" / "_recipes" / "adapters" / "pairwise.yaml").is_file()
    env = {**os.environ, "PYTHONPATH": str(target), "HOME": str(tmp_path / "home")}
    env.pop("JUDGEFACTORY_HOME", None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "judgefactory.cli", "validate"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "17 recipes valid" in out or "recipes valid" in out.splitlines()[-1]
    assert str(target / "judgefactory" / "_recipes") in out

    def installed_paths(*calls: str) -> list[str]:
        code = f"from judgefactory import paths; print({', '.join(f'paths.{c}()' for c in calls)})"
        run = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return run.stdout.split()

    where = installed_paths("workspace", "adapters")
    assert where == [str(tmp_path / "home" / "judgefactory"), str(tmp_path / "home" / "judgefactory" / "adapters")]
    env["JUDGEFACTORY_HOME"] = str(tmp_path / "ws")
    assert installed_paths("bench") == [str(tmp_path / "ws" / "bench")]
