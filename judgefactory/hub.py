"""Hub pushes: one commit of an artifact folder via ``HfApi``, after local safety checks.

``push`` checks the folder locally first (token present, safe file types only, hashes match the manifest,
no token inside any file, the artifact's gate: ``judgefactory.gate``), then creates the repo, checks that its visibility
on the Hub is the one asked for (a private push never lands in an existing public repo) and uploads every file in a
single commit. The model
card it uploads as README.md is built by ``judgefactory.card``, which reads artifacts through ``read_json`` and
``load_manifest`` here.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi, get_token

from .errors import JudgeFactoryError

MANIFEST = "manifest.json"
README = "README.md"

# File types a push may upload. Pickle-based formats are refused outright.
SAFE_SUFFIXES = frozenset(
    {
        ".safetensors",
        ".json",
        ".jsonl",
        ".yaml",
        ".yml",
        ".md",
        ".txt",
        ".jinja",
        ".model",
        ".csv",
        ".log",
        ".png",
        ".svg",
    }
)
BINARY_SUFFIXES = frozenset({".safetensors", ".model", ".png", ".gguf"})
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz"})
DEFAULT_EXCLUDE = (".*", "*/.*", "__pycache__/*", "*/__pycache__/*", "checkpoint-*/*", "*/checkpoint-*/*")
_HF_TOKEN_RE = re.compile(rb"hf_[A-Za-z0-9]{30,}")


class HubError(JudgeFactoryError):
    """A card or push problem; the message is one line and never contains the token."""


# --------------------------------------------------------------------------- reading artifacts


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when the file is absent."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise HubError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise HubError(f"{path} does not hold a JSON object")
    return data


def load_manifest(artifact_dir: Path) -> dict[str, Any]:
    """The artifact's manifest; HubError if it is missing or not an adapter/merge manifest."""
    manifest = read_json(Path(artifact_dir) / MANIFEST)
    if manifest is None:
        raise HubError(f"no {MANIFEST} in {artifact_dir}: build the artifact first")
    if manifest.get("kind") not in ("adapter", "merge"):
        raise HubError(f"{artifact_dir}/{MANIFEST}: kind must be 'adapter' or 'merge', got {manifest.get('kind')!r}")
    return manifest


# --------------------------------------------------------------------------- pushing


def resolve_token(token: str | None = None) -> str | None:
    """The token argument, else ``HF_TOKEN``, else the locally saved login; None if there is none."""
    return token or os.environ.get("HF_TOKEN") or get_token() or None


def mask(text: str, token: str | None) -> str:
    """``text`` on one line with the token (and anything shaped like a hub token) blanked out."""
    if token:
        text = text.replace(token, "hf_***")
    text = re.sub(r"hf_[A-Za-z0-9]{30,}", "hf_***", text)
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def collect_files(artifact_dir: Path, exclude: Sequence[str] = ()) -> list[tuple[str, Path]]:
    """(path in repo, local path) for every file to upload; HubError on pickles or unknown file types."""
    root = Path(artifact_dir).resolve()
    patterns = (*DEFAULT_EXCLUDE, *exclude)
    files, pickles, unknown = [], [], []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if any(fnmatch.fnmatch(rel, p) for p in patterns) or not path.is_file():
            continue
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise HubError(f"refusing to upload {rel}: symlink points outside {root}")
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            pickles.append(rel)
        elif suffix not in SAFE_SUFFIXES:
            unknown.append(rel)
        else:
            files.append((rel, path))
    if pickles:
        raise HubError(
            f"refusing to upload pickle-format file(s) {', '.join(pickles)}: save weights as safetensors "
            "(safe_serialization=True) or pass exclude=[...]"
        )
    if unknown:
        allowed = ", ".join(sorted(SAFE_SUFFIXES))
        raise HubError(f"refusing to upload file(s) of unsupported type {', '.join(unknown)}; allowed: {allowed}")
    return files


def _scan(path: Path, needle: bytes | None, chunk: int = 1 << 22) -> tuple[str, bool]:
    """(sha256 of the file, whether ``needle`` occurs in it), in one streaming pass."""
    digest, found, tail = hashlib.sha256(), False, b""
    keep = max(len(needle) - 1, 0) if needle else 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
            if needle and not found:
                window = tail + block
                found = needle in window
                tail = window[-keep:] if keep else b""
    return digest.hexdigest(), found


def check_files(files: list[tuple[str, Path]], manifest: dict[str, Any], token: str | None) -> None:
    """HubError if a manifest-listed file is missing or changed, or if any file holds a token."""
    present = {rel for rel, _ in files}
    missing = [rel for rel in manifest.get("files", {}) if rel not in present and rel != README]
    if missing:
        raise HubError(f"files listed in {MANIFEST} are missing or excluded: {', '.join(sorted(missing))}")
    needle = token.encode() if token else None
    for rel, path in files:
        digest, leaked = _scan(path, needle)
        if leaked:
            raise HubError(f"refusing to upload {rel}: it contains the access token")
        if path.suffix.lower() not in BINARY_SUFFIXES and _HF_TOKEN_RE.search(path.read_bytes()):
            raise HubError(f"refusing to upload {rel}: it contains something shaped like a hub token (hf_...)")
        expected = manifest.get("files", {}).get(rel)
        if expected and rel != README and expected != digest:
            raise HubError(f"{rel} no longer matches the sha256 in {MANIFEST}: rebuild the artifact or its manifest")


def _print_listing(repo_id: str, private: bool, files: list[tuple[str, Path]], card: bytes | None = None) -> None:
    sizes = [(rel, path.stat().st_size) for rel, path in files] + (
        [(README + " (generated card)", len(card))] if card is not None else []
    )
    visibility = "private" if private else "public"
    print(
        f"dry run: would upload {len(sizes)} files ({sum(s for _, s in sizes):,} bytes) to {repo_id} ({visibility}) in one commit"
    )
    for rel, size in sizes:
        print(f"  {size:>14,}  {rel}")


def push(
    artifact_dir: Path,
    repo_id: str,
    *,
    card: str | None = None,
    token: str | None = None,
    private: bool = True,
    dry_run: bool = False,
    endpoint: str | None = None,
    gate: Callable[[], None] | None = None,
    exclude: Sequence[str] = (),
    commit_message: str | None = None,
    extra: Sequence[tuple[str, Path]] = (),
) -> dict[str, Any]:
    """Upload an artifact folder to ``repo_id`` in one commit, after local safety checks.

    ``extra``: more (path in repo, local file) pairs for the same commit (the artifact's GGUF export under ``gguf/``),
    token-scanned like the rest.

    Order: token (HubError before any network call when missing, except in a dry run), file allow-list,
    README.md (the folder's, or ``card``) + manifest.json present, manifest hashes and token scan, ``gate()`` (None: the
    artifact's own recipe gate, ``gate.gate_for``); then, unless ``dry_run``, ``create_repo(private=private,
    exist_ok=True)``, ``repo_info`` (HubError when the repo's visibility is not the one asked for: an existing public
    repo stays public whatever ``private`` says) and a single ``create_commit`` holding every file.
    ``card``: the model card text to upload as README.md; it is written into the folder only after the commit
    succeeded, so a refused, dry or failed push leaves the artifact folder exactly as it was.
    """
    artifact_dir = Path(artifact_dir)
    token = resolve_token(token)
    if not token and not dry_run:
        raise HubError("no Hugging Face token: pass token=..., set HF_TOKEN, or run `hf auth login`")
    manifest = load_manifest(artifact_dir)
    files = collect_files(artifact_dir, exclude) + [(rel, Path(p)) for rel, p in extra]
    card_bytes = card.encode("utf-8") if card is not None else None
    if card_bytes is not None:
        files = [(rel, path) for rel, path in files if rel != README]
        if (token and token.encode() in card_bytes) or _HF_TOKEN_RE.search(card_bytes):
            raise HubError(f"refusing to upload {README}: the card contains something shaped like a hub token (hf_...)")
    elif README not in {rel for rel, _ in files}:
        raise HubError(f"no {README} in {artifact_dir}: write the model card first (judgefactory card)")
    check_files(files, manifest, token)
    if gate is None:
        from .gate import gate_for

        gate = gate_for(artifact_dir)
    gate()
    listing = [{"path": rel, "size": path.stat().st_size} for rel, path in files]
    if card_bytes is not None:
        listing.append({"path": README, "size": len(card_bytes)})
    if dry_run:
        _print_listing(repo_id, private, files, card_bytes)
        return {"repo_id": repo_id, "private": private, "dry_run": True, "files": listing}
    assert token, "a run that is not dry has a token (checked above)"
    result = _upload(artifact_dir, repo_id, files, manifest, token, private, endpoint, commit_message, card_bytes)
    if card_bytes is not None:  # the folder now matches what the Hub holds
        write_atomic(artifact_dir / README, card_bytes)
    return result | {"files": listing}


def write_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically through the package's one writer (``manifest.write_bytes``)."""
    from . import manifest

    manifest.write_bytes(target, data)


def _upload(
    artifact_dir: Path,
    repo_id: str,
    files: list[tuple[str, Path]],
    manifest: dict[str, Any],
    token: str,
    private: bool,
    endpoint: str | None,
    commit_message: str | None,
    card: bytes | None = None,
) -> dict[str, Any]:
    """create_repo + one create_commit; any failure becomes a masked one-line HubError."""
    api = HfApi(endpoint=endpoint, token=token)
    operations = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(path)) for rel, path in files]
    if card is not None:
        operations.append(CommitOperationAdd(path_in_repo=README, path_or_fileobj=card))
    message = commit_message or f"Upload {manifest.get('kind', 'artifact')} {manifest.get('name', artifact_dir.name)}"
    description = f"judgefactory artifact; recipe sha256 {manifest.get('recipe_sha256', 'n/a')}; {len(files)} files."
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        visible = api.repo_info(repo_id).private
    except Exception as exc:  # noqa: BLE001 - re-raised as HubError with the token masked
        raise HubError(mask(f"push to {repo_id} failed: {type(exc).__name__}: {exc}", token)) from None
    if visible is not private:
        now = "private" if visible else "public" if visible is False else "of unknown visibility"
        asked = "private" if private else "public"
        raise HubError(
            f"refusing to push to {repo_id}: the repo exists and is {now} on the Hub, the push asked for {asked} "
            f"(change its visibility in the repo settings, or push to another repo); nothing was uploaded"
        )
    try:
        info = api.create_commit(repo_id, operations, commit_message=message, commit_description=description)
    except Exception as exc:  # noqa: BLE001 - re-raised as HubError with the token masked
        raise HubError(mask(f"push to {repo_id} failed: {type(exc).__name__}: {exc}", token)) from None
    return {"repo_id": repo_id, "private": private, "dry_run": False, "commit_url": info.commit_url, "oid": info.oid}
