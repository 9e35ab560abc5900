"""Provenance: content hashes, library versions, atomic artifact folders, freshness checks.

Every artifact folder (base cache, pair set, adapter, merge, bench run) carries ``manifest.json``.
Folders are built in a sibling temp folder and renamed into place, so a crash never leaves a
half-written artifact under the final name.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import tempfile
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


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (temp file in the same folder, then os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def read(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None if absent or unreadable."""
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
    """Yield a fresh temp folder beside ``final``; on success replace ``final`` with it, on error delete it."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    tmp.chmod(0o755)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
