"""What several command groups share: the arguments they declare alike, and the recipe lookup with its kind check.

Light on purpose (argparse, json, pathlib): the parser is built on every ``judgefactory`` call, ``--help`` included.
"""

from __future__ import annotations

import argparse
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

if typing.TYPE_CHECKING:
    from pydantic import BaseModel

_R = TypeVar("_R", bound="BaseModel")

MODEL_HELP = "base, embedded:<name>, adapter:<name>, merge:<name>, a folder or hub id"


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, default=str))


def add_set(s: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--set KEY=VALUE ...``: recipe overrides (dotted keys, YAML values)."""
    s.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help=help)


def load_recipe(kind_dir: str, name: str, overrides: list[str], cls: type[_R]) -> _R:
    """The recipe ``name`` (a name in recipes/<kind_dir> or a .yaml path) with ``overrides``, which must be a ``cls``:
    a recipe of another kind is the user's to fix (``RecipeError``)."""
    from .. import recipes

    recipe = recipes.load(recipes.find(kind_dir, name), overrides)
    if not isinstance(recipe, cls):
        kind = typing.get_args(cls.model_fields["kind"].annotation)[0]
        raise recipes.RecipeError(f"{name}: a {recipe.kind} recipe, expected kind: {kind}")
    return recipe


def add_model(s: argparse.ArgumentParser) -> None:
    """The positional ``MODEL`` a judging command (bench, consistency) judges with."""
    s.add_argument("model", metavar="MODEL", help=MODEL_HELP)


def add_engine(s: argparse.ArgumentParser, *, results: str, batch_size: int | None, clip_help: str) -> None:
    """The engine and output options of a judging command: batch size, response clipping, backend, server, results
    root (``results``: the workspace folder it writes by default)."""
    default = "the recipe's" if batch_size is None else batch_size
    s.add_argument("--batch-size", type=int, default=batch_size, help=f"generation batch size (default: {default})")
    s.add_argument("--max-response-chars", type=int, default=None, help=clip_help)
    s.add_argument("--backend", choices=["transformers", "vllm", "openai"], default="transformers")
    s.add_argument("--base-url", default=None, help="openai backend: the server, e.g. http://localhost:8000/v1")
    s.add_argument("--out", default=None, help=f"results root (default: the workspace's {results}/, see README)")


def engine_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The options ``add_engine`` declared, as the keyword arguments ``bench.run.run`` and ``consistency.run`` take."""
    return {
        "out_root": Path(args.out) if args.out else None,
        "batch_size": args.batch_size,
        "max_response_chars": args.max_response_chars,
        "backend": args.backend,
        "base_url": args.base_url,
    }
