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
