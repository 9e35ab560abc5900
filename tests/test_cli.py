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
        (["card", "--merge", "a", "--adapter", "b"], "give exactly one model: MODEL (merge:NAME, adapter:NAME"),
        (["card", "merge:a", "--merge", "a"], "give exactly one model"),
        (["push", "merge:no_such_merge", "--repo", "me/x"], "(build it first: judgefactory merge no_such_merge)"),
        (["train", "no_such_recipe"], "no adapters recipe named 'no_such_recipe'"),
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
    assert (target / "judgefactory" / "_recipes" / "experiments" / "adapters" / "pairwise-full-dpo.yaml").is_file()
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
    shipped = sorted((repo / "recipes").glob("*/*.yaml"))
    experiments = sorted((repo / "recipes" / "experiments").glob("*/*.yaml"))
    assert shipped and experiments  # every recipe the checkout has, validated from the installed copy
    n = len(shipped) + len(experiments)
    assert out.splitlines()[-1] == f"{n} recipes valid ({len(shipped)} shipped + {len(experiments)} experiments)"
    assert sum(line.startswith("ok ") for line in out.splitlines()) == n
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


def test_validate_lists_shipped_recipes_and_experiments_apart(capsys):
    """Experiments live in recipes/experiments/<kind>/: found by name like any recipe, validated, listed after the
    shipped ones under their own heading, and the default of no Make target."""
    from judgefactory import recipes

    cli.main(["validate"])
    out = capsys.readouterr().out.splitlines()
    heads = [i for i, line in enumerate(out) if line.endswith(":") or line.startswith("experiments (")]
    assert out[heads[0]] == "shipped recipes:" and out[heads[1]].startswith("experiments (")
    shipped, experiments = out[heads[0] + 1 : heads[1]], out[heads[1] + 1 : -1]
    assert shipped and experiments and all(line.startswith("ok ") for line in shipped + experiments)
    assert all("/experiments/" not in line for line in shipped) and all("/experiments/" in line for line in experiments)
    assert len(shipped) + len(experiments) == len(recipes.shipped()) + len(recipes.experiments())
    assert (
        recipes.find("adapters", "pairwise-full-dpo")
        == recipes.RECIPES_DIR / "experiments/adapters/pairwise-full-dpo.yaml"
    )
    assert recipes.find("adapters", "pairwise-full-rpo-lr1e4").parent.name == "adapters"  # the recommended one ships
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    assert not [p.stem for p in recipes.experiments() if p.stem in makefile]


def test_make_refuses_the_old_model_spellings():
    """Every Make target names its model as model=merge:NAME / model=adapter:NAME; merge= / adapter= are refused."""
    repo = Path(__file__).resolve().parent.parent
    for old in ("merge=x", "adapter=x"):
        run = subprocess.run(["make", "-n", "card", old], cwd=repo, capture_output=True, text=True)
        assert run.returncode != 0 and "model=merge:NAME or model=adapter:NAME" in run.stderr, run.stderr


def test_a_missing_model_names_the_command_that_builds_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JUDGEFACTORY_HOME", str(tmp_path))
    for ref, hint in (
        ("merge:demo_search-chosen", "make demo"),
        ("merge:nuslerp_50_50", "judgefactory merge nuslerp_50_50"),
        ("adapter:pairwise-full", "judgefactory train pairwise-full"),
    ):
        with pytest.raises(SystemExit):
            cli.main(["card", ref])
        assert f"(build it first: {hint}" in capsys.readouterr().err
