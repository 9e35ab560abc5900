"""Provenance: content hashes, library versions, atomic artifact folders, freshness checks.

Every artifact folder (base cache, pair set, adapter, merge, bench run) carries ``manifest.json``.
Folders are built in a sibling temp folder and renamed into place, so a crash never leaves a
half-written artifact under the final name.

The one writer (``atomic_dir``, ``write_bytes`` / ``write_text`` / ``write_json``) names what it leaves beside a
target while it works after the target and its own process id:

    .<name>.tmp-<pid>-<random>/     a folder being built (atomic_dir)
    .<name>.old-<pid>-<random>/     the previous folder, moved aside while the new one is renamed in
    .<name>.<pid>-<random>.tmp      a file being written

Replacing a folder is two renames (the old one aside, the new one in), then the aside copy is deleted. A process
killed between the two leaves no folder under the final name but its aside copy: ``recover`` (run by ``read`` and
before every write to the same parent) renames it back. Leftovers of a writer that is gone (its process no longer
runs, and the leftover is older than the current process) are swept before every write to the same parent; nothing
else there is touched. Names without a process id (``.<name>.tmp-<random>/``, ``.<name>.<random>.tmp``: written by
earlier versions) are swept when older than the current process.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import importlib.metadata as md
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
_LIBS = (
    "judgefactory",
    "torch",
    "transformers",
    "trl",
    "peft",
    "mergekit",
    "datasets",
    "huggingface_hub",
    "gguf",
    "prometheus-eval",
)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_json(obj: Any) -> str:
    return sha256_text(json.dumps(obj, sort_keys=True, default=str))


def hash_workers() -> int:
    """Threads that hash files in parallel (hashlib releases the GIL on large blocks): one per core, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def hash_tree(folder: Path, exclude: tuple[str, ...] = (MANIFEST,)) -> dict[str, str]:
    """sha256 of every file below ``folder`` (relative posix path -> hash), manifest excluded."""
    paths = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if (
            p.is_file()
            and rel not in exclude
            and not any(part.startswith("checkpoint-") for part in p.relative_to(folder).parts)
        ):
            paths[rel] = p
    with ThreadPoolExecutor(max_workers=hash_workers()) as pool:
        return dict(zip(paths, pool.map(sha256_file, paths.values()), strict=False))


def versions() -> dict[str, str]:
    out = {}
    for lib in _LIBS:
        try:
            out[lib] = md.version(lib)
        except md.PackageNotFoundError:
            pass
    return out


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def git_commit(repo: Path) -> str:
    """The short commit of the checkout at `repo` ('' outside a git checkout): what every results file records."""
    try:
        done = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def write_bytes(path: Path, data: bytes) -> None:
    """Atomic write: a temp file beside ``path`` (``.<name>.<pid>-<random>.tmp``), then ``os.replace``; on any
    error the temp file is removed and the error raised. Stale temp files of a killed writer in the same folder are
    swept first (``sweep``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """``write_bytes`` of ``text`` in UTF-8."""
    write_bytes(path, text.encode())


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (``write_bytes``): indented, one trailing newline. An object that does not serialise leaves
    nothing behind."""
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


# --------------------------------------------------------------------------- leftovers of a killed writer
_TMP_DIR = re.compile(r"^\.(?P<name>.+)\.tmp-(?:(?P<pid>\d+)-)?[A-Za-z0-9_]+$")
_OLD_DIR = re.compile(r"^\.(?P<name>.+)\.old-(?P<pid>\d+)(?:-[A-Za-z0-9_]+)?$")
_TMP_FILE = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-[A-Za-z0-9_]+|[a-z0-9_]{8})\.tmp$")
_IMPORTED = time.time()


def _process_start() -> float:
    """When this process started (Linux: /proc), else when this module was imported (later, so never too early)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(x.split()[1]) for x in Path("/proc/stat").read_text().splitlines() if x.startswith("btime "))
        return min(_IMPORTED, boot + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


_STARTED = _process_start()


def _gone(pid: str | None) -> bool:
    """Whether the writer with this process id no longer runs (None: a name without one, decided by age alone)."""
    if pid is None:
        return True
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def _stale(entry: Path, pid: str | None) -> bool:
    try:
        return _gone(pid) and entry.lstat().st_mtime < _STARTED
    except OSError:
        return False


def recover(final: Path) -> bool:
    """If ``final`` is missing and a killed writer left its previous folder aside (``.<name>.old-<pid>-…``), rename
    the newest such copy back to ``final``. True when a folder was restored."""
    final = Path(final)
    if final.exists() or final.is_symlink() or not final.parent.is_dir():
        return False
    asides = []
    for entry in final.parent.iterdir():
        m = _OLD_DIR.match(entry.name)
        if m and m["name"] == final.name and entry.is_dir() and not entry.is_symlink() and _gone(m["pid"]):
            asides.append(entry)
    for entry in sorted(asides, key=lambda e: e.stat().st_mtime_ns, reverse=True):
        try:
            os.rename(entry, final)
        except OSError:
            continue
        return True
    return False


def sweep(parent: Path) -> list[Path]:
    """Restore and remove what killed writers left in ``parent`` (names above; nothing else is touched): an aside
    copy whose folder is missing is renamed back (``recover``), other leftovers of a writer that no longer runs and
    older than this process are deleted. Returns the paths removed."""
    removed: list[Path] = []
    try:
        entries = [e for e in Path(parent).iterdir() if e.name.startswith(".")]
    except OSError:
        return removed
    for entry in entries:
        old = _OLD_DIR.match(entry.name)
        if old and entry.is_dir() and not entry.is_symlink():
            if recover(entry.parent / old["name"]):
                continue
            if _stale(entry, old["pid"]):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
            continue
        tmp_dir = _TMP_DIR.match(entry.name)
        if tmp_dir and entry.is_dir() and not entry.is_symlink():
            if _stale(entry, tmp_dir["pid"]):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
            continue
        tmp_file = _TMP_FILE.match(entry.name)
        if tmp_file and entry.is_file() and not entry.is_symlink() and _stale(entry, tmp_file["pid"]):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def read(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None if absent or unreadable (a folder a killed writer left aside is restored
    first: ``recover``)."""
    if not Path(folder).exists():
        recover(Path(folder))
    try:
        return json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def finalize(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Hash the folder's files into the manifest and write it (last, so its presence marks completeness)."""
    files = hash_tree(folder)
    manifest = {
        **manifest,
        "created": manifest.get("created", now()),
        "versions": versions(),
        "files": files,
        "stat": {rel: _stat(Path(folder) / rel) for rel in files},
    }
    write_json(folder / MANIFEST, manifest)
    return manifest


def _stat(p: Path) -> list[int]:
    st = p.stat()
    return [st.st_size, st.st_mtime_ns]


def is_fresh(folder: Path, inputs_sha256: str | None = None, check: str = "hash") -> bool:
    """True if ``folder`` has a manifest, was built from the same inputs, and its files are unchanged.

    ``check="hash"`` re-hashes every file; ``"stat"`` compares size and modification time recorded at
    finalize (any write changes them; ~1000x cheaper for a 540 MB checkpoint); ``"none"`` skips files.
    """
    m = read(folder)
    if m is None:
        return False
    if inputs_sha256 is not None and m.get("inputs_sha256") != inputs_sha256:
        return False
    if check == "none":
        return True
    files = m.get("files", {})
    stats = m.get("stat", {})
    if not files:
        return False
    for rel, digest in files.items():
        p = Path(folder) / rel
        if not p.is_file():
            return False
        if check == "stat" and rel in stats:
            if _stat(p) != stats[rel]:
                return False
        elif sha256_file(p) != digest:
            return False
    return True


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh temp folder beside ``final``; on success replace ``final`` with it, on error delete it.

    The replacement moves the old ``final`` aside, renames the new folder in, then deletes the aside copy: an error
    between the two renames puts the old folder back, a killed process leaves the aside copy for ``recover``. What
    killed writers left beside ``final`` is swept first (``sweep``)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep(final.parent)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-{os.getpid()}-"))
    tmp.chmod(0o755)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old: Path | None = None
    try:
        if final.exists() or final.is_symlink():
            old = final.parent / f".{final.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(final, old)
        os.replace(tmp, final)
    except BaseException:
        if old is not None and not final.exists():
            with contextlib.suppress(OSError):
                os.replace(old, final)
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.is_dir() and final.exists():
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
