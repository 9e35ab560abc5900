"""Station 2: merge specialists (LoRA adapters or full fine-tunes) into one checkpoint with mergekit.

``run(recipe)`` reads top to bottom: resolve the base and every recipe model, refuse incompatible
inputs up front, skip when the output is fresh, stage content-keyed paths for mergekit, let mergekit
fold (up front, by its own code, each checkpoint then checked against the tensor names of mergekit's architecture
definition: ``_conform``) and merge (float32), check the output's chat template, and write the folder atomically with
its ``mergekit_config.yaml``, ``recipe.yaml`` and ``manifest.json``. No merge arithmetic lives here.

Why the staging: mergekit names a LoRA fold in ``lora_merge_cache`` after the *path strings* of the base and the
adapter (basename + crc32 of the path) and reuses it whenever that folder exists (mergekit 0.1.5 source,
https://github.com/arcee-ai/mergekit, ``mergekit/common.py``: ``ModelReference.merged``, ``ModelPath._unique_id``),
so a retrained adapter at ``adapters/<name>`` would silently reuse a stale fold. Every path mergekit sees is
therefore keyed by content:

    <cache>/bases/<sha of the base files>        -> symlink to the base checkpoint folder
    <cache>/lora/<sha of the adapter files>/      copies of adapter_config.json + adapter_model.*
    <cache>/models/<sha of the folder path>       -> symlink to a ``model:`` folder whose path has '+' or '@'
    <cache>/folds/float32/                        mergekit's ``lora_merge_cache``

Staged paths also never contain ``+`` or ``@`` (the validators of ``ModelReference`` and ``ModelPath`` in the same
file split on them as adapter / revision separators).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata as md
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from . import bases, leakage, paths
from . import manifest as mf
from .errors import JudgeFactoryError
from .recipes import MERGE_METHODS, MergeRecipe, dump

log = logging.getLogger(__name__)

TASK_VECTOR_METHODS = tuple(m for m, spec in MERGE_METHODS.items() if spec["signed_weights"])  # sums of task vectors
"""methods that merge task vectors around ``base_model``."""
FOLD_DTYPE = "float32"
"""LoRA folding and merging always run in float32: bf16 rounding of base + delta wipes out small deltas."""
_ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
_RANDOM_SEED = 0  # dare_linear drops at random: fixed seed, reproducible merges


class MergeError(JudgeFactoryError):
    """A merge cannot run as asked; the message is one line saying what to change."""


@dataclass
class _Input:
    """One recipe model, resolved."""

    name: str
    kind: str  # "adapter" | "checkpoint"
    location: str  # adapter folder, checkpoint folder (absolute) or hub id
    weight: float
    density: float | None
    manifest: dict[str, Any] | None
    files: dict[str, str] = field(default_factory=dict)  # relpath -> sha256 of what mergekit reads
    ref: str = ""  # the mergekit model reference, set when staged


def cache_root() -> Path:
    """Default cache for staged inputs and LoRA folds ($JUDGEFACTORY_CACHE/merge)."""
    return Path(os.environ.get("JUDGEFACTORY_CACHE", Path.home() / ".cache" / "judgefactory")) / "merge"


def point_name(name: str, weight: float) -> str:
    """Output folder name of one sweep point: ``nuslerp_sweep-w0.30`` (weight of the first model)."""
    return f"{name}-w{weight:.2f}"


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        log.info("%s", msg)


# --------------------------------------------------------------------------- the merge
def run(
    recipe: MergeRecipe,
    *,
    adapters_dir: Path | None = None,
    merges_dir: Path | None = None,
    cuda: bool = False,
    force: bool = False,
    weights: list[float] | None = None,
    cache_dir: Path | None = None,
    quiet: bool = False,
) -> Path:
    """Merge ``recipe`` into ``merges_dir/<name>/`` and return that folder.

    ``weights`` (one per model) makes a sweep point written to ``<name>-w<first weight, 2 decimals>/``.
    The merge is skipped when the folder's manifest has the same ``inputs_sha256`` (recipe, weights, base
    content, parents' file hashes) and its files still hash as recorded, unless ``force``. ``cuda`` runs
    mergekit's arithmetic on the GPU. Raises :class:`MergeError` (one line) for inputs that cannot merge.
    """
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    # 1. weights and output folder
    if weights is not None and len(weights) != len(recipe.models):
        raise MergeError(f"{recipe.name}: {len(weights)} weights given for {len(recipe.models)} models")
    name = recipe.name if weights is None else point_name(recipe.name, weights[0])
    weights = [float(w) for w in (weights if weights is not None else [m.weight for m in recipe.models])]
    adapters_dir = Path(adapters_dir) if adapters_dir is not None else paths.adapters()
    merges_dir = Path(merges_dir) if merges_dir is not None else paths.merges()
    out = Path(merges_dir).resolve() / name
    cache = Path(cache_dir or cache_root()).resolve()
    if "+" in str(cache) or "@" in str(cache):
        raise MergeError(
            f"merge cache {cache} contains '+' or '@' (mergekit splits paths there): set JUDGEFACTORY_CACHE elsewhere"
        )

    # 2. the base: a local folder (embedded bases are materialised once) or a hub id
    _say(f"[1/4] resolving base {recipe.base} and {len(recipe.models)} inputs", quiet)
    base_path = _prepare_base(recipe.base)
    base_key = _base_key(base_path)

    # 3. every recipe model, then refusals before any work
    inputs = [
        _resolve_adapter(m.adapter, Path(adapters_dir), w, m.density)
        if m.adapter
        else _resolve_checkpoint(cast(str, m.model), w, m.density)  # the recipe requires adapter or model
        for m, w in zip(recipe.models, weights, strict=False)
    ]
    _check_compatible(recipe, inputs, base_key)
    if MERGE_METHODS[recipe.method].get("factory"):  # the factory's own method (regmean.py), not mergekit's
        from . import regmean

        return regmean.run(
            recipe,
            inputs,
            out=out,
            base_path=base_path,
            base_key=base_key,
            weights=weights,
            cuda=cuda,
            force=force,
            quiet=quiet,
        )

    # 4. freshness: same recipe, same parent files, same base, same weights -> nothing to do
    inputs_sha256 = mf.sha256_json(
        {
            "recipe": dump(recipe),
            "weights": weights,
            "base": {"name": recipe.base, "key": base_key},
            "parents": [{"name": i.name, "kind": i.kind, "files": i.files} for i in inputs],
            "fold_dtype": FOLD_DTYPE,
            "seed": _RANDOM_SEED,
            "mergekit": md.version("mergekit"),
        }
    )
    if not force and mf.is_fresh(out, inputs_sha256):
        _say(f"fresh, skipped: {out}", quiet)
        return out

    chat_template = _chat_template(base_path)
    with _locked(cache):
        # 5. content-keyed, '+'/'@'-free paths for mergekit
        base_ref = _stage_base(base_path, base_key, cache)
        for i in inputs:
            i.ref = f"{base_ref}+{_stage_adapter(i, cache)}" if i.kind == "adapter" else _stage_checkpoint(i, cache)
        fold_cache = cache / "folds" / FOLD_DTYPE
        _prune_incomplete_folds(fold_cache)
        # 5b. folds made by mergekit's own code up front, so each checkpoint mergekit reads can be checked against the
        # tensor names of its architecture definition (and conformed where transformers saved another layout)
        base_ref = _conformed_base(base_ref, cache)
        for i in inputs:
            if i.kind == "adapter":
                i.ref = f"{base_ref}+{i.ref.split('+', 1)[1]}"
                _seal_fold(_conform(_fold(i.ref, fold_cache)))

        # 6. the exact configuration mergekit gets (the YAML text is what is parsed and stored)
        config_dict: dict[str, Any] = {"merge_method": recipe.method}
        if recipe.method in TASK_VECTOR_METHODS or (recipe.method == "nuslerp" and recipe.use_base):
            config_dict["base_model"] = base_ref
        config_dict["models"] = [
            {
                "model": i.ref,
                "parameters": {"weight": i.weight, **({"density": i.density} if i.density is not None else {})},
            }
            for i in inputs
        ]
        if recipe.parameters:
            config_dict["parameters"] = dict(recipe.parameters)
        config_dict["dtype"] = FOLD_DTYPE
        if recipe.dtype != FOLD_DTYPE:
            config_dict["out_dtype"] = recipe.dtype
        if chat_template:
            config_dict["chat_template"] = chat_template
        config_yaml = yaml.safe_dump(config_dict, sort_keys=False, width=1 << 20)
        config = MergeConfiguration.model_validate(yaml.safe_load(config_yaml))
        options = MergeOptions(
            lora_merge_cache=str(fold_cache),
            lora_merge_dtype=FOLD_DTYPE,
            cuda=cuda,
            copy_tokenizer=True,
            write_model_card=False,
            random_seed=_RANDOM_SEED,
            quiet=quiet,
            trust_remote_code=False,
            out_shard_size=_shard_size(base_path),
        )

        # 7. merge into a temp folder beside the output; rename into place only when complete
        _say(f"[2/4] mergekit {recipe.method} {weights} -> {out}", quiet)
        with mf.atomic_dir(out) as tmp:
            run_merge(config, str(tmp), options)
            _say("[3/4] checking tokenizer and chat template", quiet)
            _finish_tokenizer(tmp, base_path, chat_template)
            mf.write_text(tmp / "mergekit_config.yaml", config_yaml)
            mf.write_text(tmp / "recipe.yaml", dump(recipe))
            # copied, not looked up later: the merge stays bound to the parents it was built from, even moved alone
            parents = [Path(i.location) for i in inputs if Path(i.location).is_dir()]
            leakage.write(tmp, leakage.merged(parents, f"merge {name}"))
            _say("[4/4] hashing files into manifest.json", quiet)
            mf.finalize(
                tmp,
                {
                    "kind": "merge",
                    "name": name,
                    "recipe": recipe.model_dump(mode="json"),
                    "recipe_sha256": mf.sha256_text(dump(recipe)),
                    "inputs_sha256": inputs_sha256,
                    "base": bases.manifest_entry(recipe.base, key=base_key),
                    "weights": weights,
                    "method": recipe.method,
                    "parents": [
                        {
                            "name": i.name,
                            "kind": i.kind,
                            "location": i.location,
                            "files": i.files,
                            "manifest": i.manifest,
                        }
                        for i in inputs
                    ],
                    "mergekit_config": config_dict,
                    "mergekit_options": options.model_dump(mode="json"),
                },
            )
    return out


def run_sweep(recipe: MergeRecipe, **kwargs: Any) -> list[Path]:
    """One merge per ``recipe.sweep.weights`` point: first model weight w, second 1 - w."""
    if recipe.sweep is None:
        raise MergeError(f"{recipe.name}: recipe has no 'sweep: {{weights: [...]}}'")
    return [run(recipe, weights=[w, round(1.0 - w, 10)], **kwargs) for w in recipe.sweep.weights]


# --------------------------------------------------------------------------- resolving inputs
def _build_hint(name: str) -> str:
    return f"make adapter-{name}"


def _resolve_adapter(name: str, adapters_dir: Path, weight: float, density: float | None) -> _Input:
    folder = (adapters_dir / name).resolve()
    m = mf.read(folder)
    if m is None or m.get("kind") != "adapter":
        raise MergeError(
            f"adapter {name!r} not found at {folder} (no adapter manifest.json): build it first with `{_build_hint(name)}`"
        )
    if not (folder / "adapter_config.json").is_file() or not any((folder / f).is_file() for f in _ADAPTER_WEIGHT_FILES):
        raise MergeError(
            f"adapter {name!r} at {folder} lacks adapter_config.json / adapter_model.safetensors: rebuild it with `{_build_hint(name)}`"
        )
    files = {
        f: mf.sha256_file(folder / f) for f in ("adapter_config.json", *_ADAPTER_WEIGHT_FILES) if (folder / f).is_file()
    }
    recorded = m.get("files") or {}
    changed = [f for f, digest in files.items() if f in recorded and recorded[f] != digest]
    if changed:
        raise MergeError(
            f"adapter {name!r}: {', '.join(changed)} changed since its manifest was written: rebuild it with `{_build_hint(name)}`"
        )
    return _Input(
        name=name, kind="adapter", location=str(folder), weight=weight, density=density, manifest=m, files=files
    )


def _resolve_checkpoint(ref: str, weight: float, density: float | None) -> _Input:
    """A fully fine-tuned checkpoint: a local folder (made absolute) or a hub id (passed as-is)."""
    p = Path(ref)
    if p.is_dir():
        folder = p.resolve()
        if not (folder / "config.json").is_file():
            raise MergeError(f"model {ref!r}: {folder} has no config.json (not a checkpoint folder)")
        m = mf.read(folder)
        files = (m or {}).get("files") or mf.hash_tree(folder)
        files = {k: v for k, v in files.items() if k.endswith((".safetensors", ".bin", ".json")) and k != mf.MANIFEST}
        return _Input(
            name=ref, kind="checkpoint", location=str(folder), weight=weight, density=density, manifest=m, files=files
        )
    if "/" in ref and not ref.startswith(("/", ".")) and "+" not in ref:
        return _Input(
            name=ref,
            kind="checkpoint",
            location=ref,
            weight=weight,
            density=density,
            manifest=None,
            files={"hub_id": ref},
        )
    raise MergeError(f"model {ref!r} is neither an existing checkpoint folder nor a hub id org/name[@revision]")


def _same_base(a: str, b: str) -> bool:
    if a == b:
        return True
    pa, pb = Path(a), Path(b)
    return pa.is_dir() and pb.is_dir() and pa.resolve() == pb.resolve()


def _target_modules(i: _Input) -> list[str]:
    lora = ((i.manifest or {}).get("recipe") or {}).get("lora") or {}
    mods = lora.get("target_modules")
    if mods is None:
        mods = json.loads((Path(i.location) / "adapter_config.json").read_text()).get("target_modules") or []
    return sorted([mods] if isinstance(mods, str) else mods)


def _lora_layers(i: _Input) -> list[int] | None:
    """The decoder layers a LoRA adapts (PEFT ``layers_to_transform``; None: all)."""
    layers = json.loads((Path(i.location) / "adapter_config.json").read_text()).get("layers_to_transform")
    return sorted([layers] if isinstance(layers, int) else layers) if layers is not None else None


def _check_compatible(recipe: MergeRecipe, inputs: list[_Input], base_key: str) -> None:
    """Refuse adapters from another base (or another build of it) or with other target modules. NuSLERP of task
    vectors (mergekit ``merge_methods/nuslerp.py``) is base + slerp(t, A - base, B - base): on a tensor only one
    adapter touched the other vector is zero, the angle is pi/2, and t = 0.5 gives base + sin(pi/4) * delta = 0.707 *
    delta, not 0.5 * delta; deltas folded onto another base are not task vectors of this one at all."""
    seen: dict[str, str] = {}
    for i in inputs:
        key = mf.sha256_json(i.files)
        if key in seen:
            raise MergeError(
                f"{recipe.name}: {i.name!r} and {seen[key]!r} are the same {i.kind} (identical files): mergekit needs distinct inputs"
            )
        seen[key] = i.name
    adapters = [i for i in inputs if i.kind == "adapter"]
    for i in adapters:
        base = (i.manifest or {}).get("base") or {}
        if not base.get("name") or not _same_base(base["name"], recipe.base):
            others = ", ".join(
                f"{j.name}: {((j.manifest or {}).get('base') or {}).get('name')}" for j in adapters if j is not i
            )
            raise MergeError(
                f"adapter {i.name!r} was trained on base {base.get('name')!r}, the recipe {recipe.name!r} merges on {recipe.base!r}"
                + (f" (other adapters: {others})" if others else "")
                + ": retrain it on the recipe's base or change 'base'"
            )
        if base.get("files") and mf.sha256_json(base["files"]) != base_key:
            raise MergeError(
                f"adapter {i.name!r} was trained on another build of {recipe.base!r} (base files differ from the prepared base): "
                f"retrain it with `{_build_hint(i.name)}`"
            )
    for i in adapters[1:]:
        la, lb = _lora_layers(adapters[0]), _lora_layers(i)
        if la != lb:
            raise MergeError(
                f"adapters {adapters[0].name!r} (layers {la or 'all'}) and {i.name!r} (layers {lb or 'all'}) adapt different "
                "decoder layers: a layer only one of them touched would not merge as weighted; retrain with the same lora.top_layers"
            )
        a, b = _target_modules(adapters[0]), _target_modules(i)
        if a != b:
            raise MergeError(
                f"adapters {adapters[0].name!r} {a} and {i.name!r} {b} have different target_modules: a tensor only one "
                "of them touched would not merge as weighted (t=0.5 gives base + 0.707*delta); retrain with the same lora.target_modules"
            )


# --------------------------------------------------------------------------- staging
_PREPARED: dict[str, tuple[tuple, Path | str]] = {}


def _signature(path: Path | str) -> tuple:
    if not isinstance(path, Path):
        return ()
    return tuple(
        (p.name, st.st_size, st.st_mtime_ns, st.st_ino)
        for p in sorted(path.iterdir())
        if p.is_file()
        for st in [p.stat()]
    )


def _prepare_base(name: str) -> Path | str:
    """``bases.prepare`` (which re-hashes the whole base), remembered in this process while the folder's files
    keep their size, mtime and inode: a sweep verifies the base once, not once per point."""
    hit = _PREPARED.get(name)
    if hit is not None and hit[0] == _signature(hit[1]):
        return hit[1]
    path = bases.prepare(name)
    _PREPARED[name] = (_signature(path), path)
    return path


def _base_key(base_path: Path | str) -> str:
    """Content identity of the base: its manifest's file hashes (verified by bases.prepare), else hashed here."""
    if not isinstance(base_path, Path):
        return mf.sha256_text(f"hub:{base_path}")
    m = mf.read(base_path)
    files = (m or {}).get("files") or mf.hash_tree(base_path)
    return mf.sha256_json(files)


def _shard_size(base_path: Path | str) -> int:
    """Output shard size in bytes: the base's weights split over ``manifest.hash_workers()`` shards, so the manifest's
    sha256 of the shards runs in parallel (a single 540 MB shard took 0.37 s, the factory's whole overhead over bare
    mergekit); between 256 MB and mergekit's own 5 GB default (used for hub bases, whose size is not known here)."""
    if not isinstance(base_path, Path):
        return 5 * 10**9
    total = sum(p.stat().st_size for p in base_path.glob("*.safetensors"))
    return int(min(5e9, max(256e6, total // mf.hash_workers() + 16e6)))


def _template_file(folder: Path) -> str | None:
    """The chat template a saved tokenizer folder carries (the files AutoTokenizer reads), without loading it."""
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text()
    for name in ("chat_template.json", "tokenizer_config.json"):
        if (folder / name).is_file():
            template = json.loads((folder / name).read_text()).get("chat_template")
            if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
                template = next((t["template"] for t in template if t.get("name") == "default"), None)
            if template:
                return template
    return None


def _chat_template(base_path: Path | str) -> str | None:
    """The base's chat template, carried explicitly into the merge config."""
    if isinstance(base_path, Path) and (template := _template_file(base_path)):
        return template
    from transformers import AutoTokenizer

    template = AutoTokenizer.from_pretrained(str(base_path)).chat_template
    return template.get("default") if isinstance(template, dict) else template


def _symlink(target: Path, link: Path) -> str:
    """``link`` -> ``target`` (atomically replaced when it points elsewhere)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if not (link.is_symlink() and os.readlink(link) == str(target)):
        tmp = link.parent / f".{link.name}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp, target_is_directory=True)
        os.replace(tmp, link)
    return str(link)


def _stage_base(base_path: Path | str, base_key: str, cache: Path) -> str:
    if not isinstance(base_path, Path):
        if "+" in base_path:
            raise MergeError(f"base hub id {base_path!r} contains '+'")
        return base_path  # hub id, passed as-is
    return _symlink(base_path.resolve(), cache / "bases" / base_key[:32])


def _stage_adapter(i: _Input, cache: Path) -> str:
    """Copy the adapter's PEFT files to ``<cache>/lora/<content sha>/`` (the fold cache then keys by content)."""
    key = mf.sha256_json(i.files)[:32]
    final = cache / "lora" / key
    if mf.read(final) is not None:
        return str(final)
    with mf.atomic_dir(final) as tmp:
        for f in i.files:
            shutil.copy2(Path(i.location) / f, tmp / f)
        copied = {f: mf.sha256_file(tmp / f) for f in i.files}
        if copied != i.files:
            raise MergeError(f"adapter {i.name!r} changed while being staged: run the merge again")
        mf.finalize(tmp, {"kind": "staged-adapter", "name": i.name, "source": i.location})
    return str(final)


def _stage_checkpoint(i: _Input, cache: Path) -> str:
    if not Path(i.location).is_absolute() or ("+" not in i.location and "@" not in i.location):
        return i.location  # an absolute safe folder, or a hub id (mergekit reads '@' as its revision)
    return _symlink(Path(i.location), cache / "models" / mf.sha256_text(i.location)[:32])


class _Incomplete(Exception):
    """A fold folder a crashed run left unusable (the expected failure of ``_check_fold``)."""


REVERIFY = ".reverify"
"""Left in a fold folder whose check failed unexpectedly: the next run re-hashes it against its manifest."""


def _check_fold(folder: Path) -> None:
    """Raise ``_Incomplete`` when a fold is not whole: no config.json, an unreadable index, a missing or truncated
    shard, or an index whose tensor names are not the shards' (a rename by ``_conform`` cut short). Any other error
    (a permission, a bug) propagates."""
    from safetensors import SafetensorError

    if not (folder / "config.json").is_file():
        raise _Incomplete("no config.json")
    index = folder / "model.safetensors.index.json"
    try:
        weight_map = json.loads(index.read_text())["weight_map"] if index.is_file() else None
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise _Incomplete(f"unreadable index: {err}") from None
    shards = sorted(set(weight_map.values())) if weight_map is not None else ["model.safetensors"]
    try:
        names = _tensor_names(folder, shards)
    except FileNotFoundError as err:
        raise _Incomplete(f"missing shard: {err.filename or err}") from None
    except SafetensorError as err:  # a truncated file fails here
        raise _Incomplete(f"unreadable shard: {err}") from None
    if weight_map is not None and weight_map != names:
        raise _Incomplete("the index does not name the shards' tensors")


def _seal_fold(folder: Path) -> None:
    """Record a checked fold's file hashes (``manifest.json``), once: what ``_prune_incomplete_folds`` re-verifies."""
    if mf.read(folder) is None:
        mf.finalize(folder, {"kind": "fold"})


def _fold(ref: str, fold_cache: Path) -> Path:
    """The fold of ``<base>+<adapter>`` in mergekit's ``lora_merge_cache``, made by mergekit's own code
    (``ModelReference.merged``: PEFT ``merge_and_unload`` in float32, ``save_pretrained``) if not there yet; the merge
    then finds it and folds nothing again."""
    from mergekit.common import ModelReference

    folded = ModelReference.parse(ref).merged(cache_dir=str(fold_cache), lora_merge_dtype=FOLD_DTYPE)
    return Path(folded.model.path)


def _tensor_names(folder: Path, shards: list[str] | None = None) -> dict[str, str]:
    """Tensor name -> safetensors file of a checkpoint folder (names only; no tensor is read); ``shards``: only those
    files (default: every ``*.safetensors``)."""
    from safetensors import safe_open

    out = {}
    for name in shards if shards is not None else sorted(f.name for f in folder.glob("*.safetensors")):
        with safe_open(str(folder / name), "pt") as h:
            out.update(dict.fromkeys(h.keys(), name))
    return out


def _architecture(ref: str) -> tuple[Any, Any]:
    """(config, mergekit's architecture definition) of a checkpoint folder or hub id; one MergeError line when the
    config cannot be read or mergekit has no definition for it (before any fold)."""
    from mergekit.architecture import arch_info_for_config
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(ref)
    except (OSError, ValueError) as err:  # no config.json, or a hub id on an offline machine
        raise MergeError(f"cannot read the config of {ref!r}: {str(err).splitlines()[0][:300]}") from None
    arch = arch_info_for_config(config)
    if arch is None:
        archs = ", ".join(config.architectures or [config.model_type])
        raise MergeError(
            f"mergekit {md.version('mergekit')} has no architecture definition for {archs} "
            "(mergekit/_data/architectures): it cannot merge this base"
        )
    return config, arch


def _renames(folder: Path, files: dict[str, str]) -> dict[str, str]:
    """Renames that give a checkpoint (``files``: its tensor names, ``_tensor_names``) the names mergekit's
    architecture definition for its config reads ({}: it has them). transformers 5.17 saves
    ``Gemma3ForConditionalGeneration``'s vision tower as ``vision_tower.*``, mergekit 0.1.5's ``gemma3vl`` definition
    reads ``vision_tower.vision_model.*``: an expected name found in the checkpoint with one of its dotted parts left
    out is renamed; anything else missing is refused (MergeError)."""
    config, arch = _architecture(str(folder))
    expected = arch.all_weights(config)
    have = set(files)
    renames: dict[str, str] = {}
    missing = []
    for w in expected:
        names = (w.name, *(w.aliases or ()), *(w.tied_names or ()))
        if any(n in have for n in names) or w.optional:
            continue
        parts = w.name.split(".")
        found = [".".join(parts[:k] + parts[k + 1 :]) for k in range(1, len(parts) - 1)]
        found = [f for f in found if f in have]
        if len(found) == 1:
            renames[found[0]] = w.name
        else:
            missing.append(w.name)
    if missing:
        raise MergeError(
            f"{folder}: {len(missing)} tensors mergekit's {config.architectures[0]} definition reads are not in the "
            f"checkpoint (first: {missing[:3]}); it cannot merge this layout"
        )
    return renames


def _conform(folder: Path) -> Path:
    """Rename a checkpoint's tensors in place (file by file, atomically) to the names mergekit reads (``_renames``),
    then write the index from the tensors the shards now hold. A run cut short between the files leaves an index that
    does not name the shards' tensors: ``_check_fold`` refuses it and the fold is made again."""
    files = _tensor_names(folder)
    renames = _renames(folder, files)
    index = folder / "model.safetensors.index.json"
    if not renames:
        return folder
    from safetensors.torch import load_file, save_file

    for name in sorted({files[k] for k in renames}):
        tensors = load_file(str(folder / name))
        tmp = folder / f".{name}.tmp"
        save_file({renames.get(k, k): v for k, v in tensors.items()}, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, folder / name)
    if index.is_file():
        doc = json.loads(index.read_text())
        doc["weight_map"] = _tensor_names(folder, sorted(set(doc["weight_map"].values())))
        mf.write_text(index, json.dumps(doc, indent=2) + "\n")
    log.info("%s: %d tensors renamed to mergekit's layout (e.g. %s)", folder, len(renames), next(iter(renames.items())))
    return folder


def _conformed_base(base_ref: str, cache: Path) -> str:
    """The staged base as mergekit can read it: itself, or a conformed copy beside its link (a hub id is passed on,
    once mergekit is known to have a definition for its architecture: a refusal before any fold)."""
    folder = Path(base_ref)
    if not folder.is_dir():
        _architecture(base_ref)
        return base_ref
    if not _renames(folder, _tensor_names(folder)):
        return base_ref
    copy = cache / "bases" / f"{folder.name}-mergekit"
    if mf.read(copy) is None:
        with mf.atomic_dir(copy) as tmp:
            for f in folder.resolve().iterdir():
                if f.is_file() and f.name != mf.MANIFEST:
                    shutil.copy2(f, tmp / f.name)
            _conform(tmp)
            mf.finalize(tmp, {"kind": "staged-base", "source": str(folder.resolve())})
    return str(copy)


def _prune_incomplete_folds(fold_cache: Path) -> None:
    """mergekit reuses any fold folder that exists: drop the ones a crashed run left unusable (``_check_fold``'s
    expected failure) and only those. An unexpected error keeps its traceback and leaves the fold with a
    ``.reverify`` mark: the next run re-hashes it against its manifest (``_seal_fold``) and drops it if it changed."""
    if not fold_cache.is_dir():
        return
    for d in sorted(fold_cache.iterdir()):
        if not d.is_dir() or d.name.startswith("."):
            continue
        mark = d / REVERIFY
        if mark.exists() and mf.read(d) is not None:
            if not mf.is_fresh(d, check="hash"):
                log.warning("fold %s changed since it was checked: made again", d)
                shutil.rmtree(d, ignore_errors=True)
                continue
            mark.unlink()
        try:
            _check_fold(d)
        except _Incomplete as why:
            log.info("fold %s is incomplete (%s): made again", d, why)
            shutil.rmtree(d, ignore_errors=True)
            continue
        except Exception:
            with contextlib.suppress(OSError):
                mark.touch()
            raise
        mark.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """One merge at a time per cache (folds are written in place by mergekit)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _finish_tokenizer(out: Path, base_path: Path | str, chat_template: str | None) -> None:
    """The output must carry the base's chat template; also keep the base's generation_config (eos)."""
    if (
        isinstance(base_path, Path)
        and (base_path / "generation_config.json").is_file()
        and not (out / "generation_config.json").is_file()
    ):
        shutil.copy2(base_path / "generation_config.json", out / "generation_config.json")
    if not (out / "tokenizer_config.json").is_file():
        raise MergeError(f"mergekit wrote no tokenizer to {out} (copy_tokenizer): not written")
    if chat_template and _template_file(out) != chat_template:
        raise MergeError(
            f"merged tokenizer in {out} lost the base chat template (mergekit copy_tokenizer): not written"
        )


__all__ = ["MergeError", "run", "run_sweep", "point_name", "cache_root", "TASK_VECTOR_METHODS", "FOLD_DTYPE"]
