import pytest

from judgefactory import manifest as mf


def test_atomic_dir_commits_or_leaves_nothing(tmp_path):
    final = tmp_path / "art"
    with pytest.raises(RuntimeError):
        with mf.atomic_dir(final) as tmp:
            (tmp / "x").write_text("half")
            raise RuntimeError("crash")
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with mf.atomic_dir(final) as tmp:
        (tmp / "x").write_text("whole")
        mf.finalize(tmp, {"kind": "t", "inputs_sha256": "abc"})
    assert (final / "x").read_text() == "whole" and mf.is_fresh(final, "abc")


def test_freshness_detects_changed_inputs_and_corrupt_files(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"1234")
    m = mf.finalize(tmp_path, {"inputs_sha256": "i1"})
    assert m["files"] == {"w.bin": mf.sha256_file(tmp_path / "w.bin")} and "torch" in m["versions"]
    assert mf.is_fresh(tmp_path, "i1") and not mf.is_fresh(tmp_path, "i2")
    (tmp_path / "w.bin").write_bytes(b"1235")
    assert not mf.is_fresh(tmp_path, "i1")
    (tmp_path / "w.bin").unlink()
    assert not mf.is_fresh(tmp_path, "i1")


def test_git_commit_names_the_checkout_and_is_empty_outside_one(tmp_path):
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path / "r")], check=True)
    assert mf.git_commit(tmp_path / "r") == ""  # a repository without a commit
    git = ["git", "-C", str(tmp_path / "r"), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert len(mf.git_commit(tmp_path / "r")) >= 7 and head.startswith(mf.git_commit(tmp_path / "r"))
    (tmp_path / "plain").mkdir()
    assert mf.git_commit(tmp_path / "plain") == ""


def _killed_child(code: str) -> None:
    """Run ``code`` in a child Python that dies (os._exit, no cleanup) where the code says so: a killed earlier run."""
    import subprocess
    import sys
    import textwrap

    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr


def _as_if_before_this_process(folder):
    """Date everything in ``folder`` back an hour: the killed run happened before this process started."""
    import os
    import time

    for p in folder.iterdir():
        os.utime(p, (time.time() - 3600,) * 2, follow_symlinks=False)


def test_a_writer_killed_between_the_two_renames_leaves_the_old_folder_recoverable(tmp_path):
    final = tmp_path / "art"
    with mf.atomic_dir(final) as tmp:
        (tmp / "x").write_text("old")
        mf.finalize(tmp, {"inputs_sha256": "v1"})
    _killed_child(
        f"""
        import os
        from pathlib import Path
        from judgefactory import manifest as mf
        real = os.replace
        def killed_before_the_new_folder_goes_in(src, dst):
            if ".tmp-" in Path(src).name and Path(dst).name == "art":
                os._exit(9)
            return real(src, dst)
        os.replace = os.rename = killed_before_the_new_folder_goes_in
        with mf.atomic_dir(Path({str(final)!r})) as tmp:
            (tmp / "x").write_text("new")
            mf.finalize(tmp, {{"inputs_sha256": "v2"}})
        """
    )
    assert not final.exists()  # the crash window: no folder under the final name
    # the next run finds the old artifact again, whole and fresh
    assert mf.read(final) is not None and (final / "x").read_text() == "old" and mf.is_fresh(final, "v1")
    _as_if_before_this_process(tmp_path)
    with mf.atomic_dir(final) as tmp:
        (tmp / "x").write_text("newer")
    assert (final / "x").read_text() == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]  # the killed run's temp folder is swept


def test_an_error_between_the_two_renames_puts_the_old_folder_back(tmp_path, monkeypatch):
    import os

    final = tmp_path / "art"
    with mf.atomic_dir(final) as tmp:
        (tmp / "x").write_text("old")
    real = os.replace

    def refuses_the_new_folder(src, dst):
        if ".tmp-" in str(src):
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", refuses_the_new_folder)
    with pytest.raises(OSError, match="disk full"):
        with mf.atomic_dir(final) as tmp:
            (tmp / "x").write_text("new")
    assert (final / "x").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_leftovers_of_a_killed_writer_are_swept_and_nothing_else(tmp_path):
    parent = tmp_path / "bench"
    parent.mkdir()
    _killed_child(
        f"""
        import os
        from pathlib import Path
        from judgefactory import manifest as mf
        parent = Path({str(parent)!r})
        real = os.replace
        def dies(src, dst):
            os._exit(9)
        os.replace = dies
        with mf.atomic_dir(parent / "run") as tmp:
            (tmp / "half").write_text("half")
            mf.write_json(parent / "summary.json", {{"n": 1}})
        """
    )
    left = sorted(p.name for p in parent.iterdir())
    assert any(n.startswith(".run.tmp-") for n in left) and any(n.startswith(".summary.json.") for n in left), left
    keep = {
        ".cache": "dir",
        ".hidden.tmp": "file",
        "notes.tmp": "file",
        ".run.tmp-notmine-x": "dir",
        "run.tmp-1": "dir",
    }
    for name, what in keep.items():
        (parent / name).mkdir() if what == "dir" else (parent / name).write_text("mine")
    _as_if_before_this_process(parent)
    mf.write_json(parent / "other.json", {"n": 2})
    assert sorted(p.name for p in parent.iterdir()) == sorted([*keep, "other.json"])


def test_a_live_writers_temp_folder_is_left_alone(tmp_path):
    import subprocess
    import sys

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        parent = tmp_path / "merges"
        (parent / f".m.tmp-{live.pid}-abcdefgh").mkdir(parents=True)
        _as_if_before_this_process(parent)
        with mf.atomic_dir(parent / "other") as tmp:
            (tmp / "x").write_text("x")
        assert (parent / f".m.tmp-{live.pid}-abcdefgh").is_dir()
    finally:
        live.kill()
        live.wait()


def test_a_failed_write_leaves_no_temp_file(tmp_path):
    class Loop(dict):
        pass

    loop = Loop()
    loop["self"] = loop
    with pytest.raises(ValueError):
        mf.write_json(tmp_path / "x.json", loop)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UnicodeEncodeError):
        mf.write_text(tmp_path / "y.txt", "a lone surrogate \ud800")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "taken").mkdir()  # the rename itself fails: a folder holds the name
    with pytest.raises(OSError):
        mf.write_text(tmp_path / "taken", "text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"] and not any((tmp_path / "taken").iterdir())


def test_hub_writes_through_the_same_writer(tmp_path, monkeypatch):
    from judgefactory import hub

    seen = []
    monkeypatch.setattr(mf, "write_bytes", lambda path, data: seen.append((path, data)))
    hub.write_atomic(tmp_path / "README.md", b"card")
    assert seen == [(tmp_path / "README.md", b"card")]
