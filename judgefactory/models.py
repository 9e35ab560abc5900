"""Model references: a base name, an adapter, a merge, or a checkpoint folder -> (model, tokenizer).

``base`` / ``embedded:…`` / hub id      -> the base checkpoint
``adapter:<name>`` or ``adapters/<name>`` -> base + PEFT adapter (base read from the adapter's manifest)
``merge:<name>`` or ``merges/<name>``     -> the merged checkpoint folder
any folder with config.json               -> that checkpoint
``route:<absolute>,<pairwise>``           -> two models, each request judged by its own (``route.py``; an engine only)
"""

from __future__ import annotations

import re
from pathlib import Path

from . import manifest as mf
from . import paths
from .errors import JudgeFactoryError
from .route import is_route, parts

DEFAULT_BASE = "embedded:smollm2-135m-instruct"


class ModelRefError(JudgeFactoryError):
    """A model reference names nothing loadable."""


def resolve(ref: str) -> tuple[str, Path | str]:
    """``ref`` -> (kind, location) with kind in base | adapter | merge | checkpoint."""
    if is_route(ref):
        raise ModelRefError(f"{ref!r} routes between two models ({', '.join(parts(ref))}): resolve each part")
    if ref == "base":
        ref = DEFAULT_BASE
    for prefix, folder, kind in (("adapter:", paths.adapters(), "adapter"), ("merge:", paths.merges(), "merge")):
        if ref.startswith(prefix):
            path = folder / ref[len(prefix) :]
            if not (path / mf.MANIFEST).is_file():
                raise ModelRefError(
                    f"{kind} {ref[len(prefix) :]!r} not found at {path} (build it first: {_build_hint(kind, path.name)})"
                )
            return kind, path
    p = Path(ref)
    if p.is_dir():
        if (p / "adapter_config.json").is_file():
            return "adapter", p.resolve()
        if (p / "config.json").is_file():
            m = mf.read(p)
            return ("merge" if m and m.get("kind") == "merge" else "checkpoint"), p.resolve()
        raise ModelRefError(f"{p} holds neither adapter_config.json nor config.json")
    if ref.startswith("embedded:") or "/" in ref:
        return "base", ref
    raise ModelRefError(
        f"cannot resolve model {ref!r}: use base, embedded:<name>, a hub id, adapter:<name>, merge:<name> or a folder"
    )


def _build_hint(kind: str, name: str) -> str:
    """The command that builds adapters/<name> or merges/<name> (the demo's chosen merge comes from ``make demo``)."""
    if kind == "adapter":
        return f"judgefactory train {name}, e.g. make adapter-pairwise"
    if name == "demo_search-chosen":
        return "make demo"
    return f"judgefactory merge {name}"


def label(ref: str) -> str:
    """A short filesystem-safe name for result folders (bench/<label>/…); a route's joins its parts' labels."""
    if is_route(ref):
        return "route-" + "__".join(label(p) for p in parts(ref))
    kind, loc = resolve(ref)
    if kind == "base":
        return str(loc).replace("embedded:", "").replace("/", "__")
    return f"{kind}-{Path(loc).name}" if kind != "checkpoint" else Path(loc).name


def served_label(name: str) -> str:
    """The label of a model an OpenAI-compatible server serves as ``name``: ``openai__`` + ``name`` with every run of
    characters outside ``A-Za-z0-9_.-`` as one ``_`` (``Qwen/Qwen2.5:7b`` -> ``openai__Qwen_Qwen2.5_7b``). The one
    spelling, used by ``Engine.from_ref``, the bench's and the consistency run's result folders."""
    return "openai__" + re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def base_of_adapter(adapter_dir: Path) -> str:
    m = mf.read(adapter_dir) or {}
    base = (m.get("base") or {}).get("name")
    if base:
        return base
    import json

    return json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]


def load(ref: str, dtype: str | None = None):
    """(model, tokenizer) in eval mode. An adapter is folded into its base in float32 (PEFT ``merge_and_unload``)
    and the result cast to ``dtype``: unmerged LoRA layers cost ~2x per decoding step on a CPU. ``dtype`` None:
    the precision policy's judging dtype (``precision.judge_dtype``: float32 on CPUs)."""
    from . import bases

    if dtype is None:
        from .precision import judge_dtype

        dtype = judge_dtype()

    kind, loc = resolve(ref)
    if kind == "base":
        model, tok = bases.load(str(loc), dtype)
    elif kind == "adapter":
        import torch
        from peft import PeftModel

        model, tok = bases.load(base_of_adapter(Path(loc)), "float32")
        model = PeftModel.from_pretrained(model, str(loc)).merge_and_unload().to(getattr(torch, dtype))
    else:
        model, tok = bases.load(Path(loc), dtype)
    model.eval()
    return model, tok
