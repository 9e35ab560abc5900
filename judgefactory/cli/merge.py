"""``judgefactory merge`` / ``sweep`` / ``merge-search``: the command-line face of :mod:`judgefactory.merge` and
:mod:`judgefactory.merge_search`.

RECIPE is a name in ``recipes/merges`` (``nuslerp_50_50``; ``recipes/searches`` for merge-search) or a path to a YAML
file. Progress goes to stderr (the log's stage lines and mergekit's bars); the output path(s) and the elapsed time go
to stdout.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import common

if TYPE_CHECKING:
    from ..recipes import MergeRecipe

log = logging.getLogger(__name__)

_SET_HELP = "recipe overrides (dotted keys, YAML values)"


def _load(args: argparse.Namespace) -> MergeRecipe:
    from ..recipes import MergeRecipe

    return common.load_recipe("merges", args.recipe, args.set, MergeRecipe)


def _kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = {"cuda": args.cuda, "force": args.force, "quiet": args.quiet}
    for key in ("adapters_dir", "merges_dir", "cache_dir"):
        if getattr(args, key):
            kw[key] = Path(getattr(args, key))
    return kw


def cmd_merge(args: argparse.Namespace) -> None:
    from .. import merge

    t0 = time.perf_counter()
    recipe = _load(args)
    if recipe.sweep is not None:
        log.info(
            "note: %s has a sweep; this merges its own weights only (run `judgefactory sweep %s` for all points)",
            recipe.name,
            args.recipe,
        )
    out = merge.run(recipe, **_kwargs(args))
    print(f"{out}  ({time.perf_counter() - t0:.1f}s)")


def cmd_sweep(args: argparse.Namespace) -> None:
    from .. import merge

    t0 = time.perf_counter()
    recipe = _load(args)
    if recipe.sweep is None:
        raise merge.MergeError(
            f"{recipe.name}: recipe has no 'sweep: {{weights: [...]}}' (use `judgefactory merge {args.recipe}`)"
        )
    points = recipe.sweep.weights
    outs = []
    for k, w in enumerate(points, 1):
        log.info("[sweep %d/%d] %s weight %.2f", k, len(points), recipe.models[0].adapter or recipe.models[0].model, w)
        t1 = time.perf_counter()
        outs.append(merge.run(recipe, weights=[w, round(1.0 - w, 10)], **_kwargs(args)))
        print(f"{outs[-1]}  ({time.perf_counter() - t1:.1f}s)")
    print(f"{len(outs)} merges in {time.perf_counter() - t0:.1f}s")


def cmd_search(args: argparse.Namespace) -> None:
    from .. import merge_search
    from ..recipes import SearchRecipe

    recipe = common.load_recipe("searches", args.recipe, args.set, SearchRecipe)
    t0 = time.perf_counter()
    out = merge_search.run(recipe, force=args.force)
    print((out / "table.md").read_text())
    print(
        f"{out}  ({time.perf_counter() - t0:.1f}s); chosen: {out / 'chosen.yaml'} (judgefactory merge {out / 'chosen.yaml'})"
    )


def _merge_args(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "recipe", metavar="RECIPE", help="a name in recipes/merges (e.g. nuslerp_50_50) or a recipe .yaml path"
    )
    common.add_set(s, _SET_HELP)
    s.add_argument("--cuda", action="store_true", help="do mergekit's arithmetic on the GPU")
    s.add_argument("--force", action="store_true", help="merge again even if the output is fresh")
    s.add_argument("--quiet", action="store_true", help="no progress output")
    s.add_argument("--adapters-dir", default=None, help="where adapters/<name>/ live (default: ./adapters)")
    s.add_argument("--merges-dir", default=None, help="where merges/<name>/ are written (default: ./merges)")
    s.add_argument("--cache-dir", default=None, help="staged inputs + LoRA folds (default: $JUDGEFACTORY_CACHE/merge)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``merge RECIPE``, ``sweep RECIPE`` and ``merge-search RECIPE`` on ``sub``."""
    s = sub.add_parser("merge", help="merge adapters/checkpoints with mergekit into merges/<name>/")
    _merge_args(s)
    s.set_defaults(func=cmd_merge)
    s = sub.add_parser("sweep", help="one merge per weight in the recipe's sweep: merges/<name>-w<w>/")
    _merge_args(s)
    s.set_defaults(func=cmd_sweep)
    s = sub.add_parser(
        "merge-search", help="merge candidates scored on both skills' dev splits: merges/<search>/ + a chosen recipe"
    )
    s.add_argument("recipe", metavar="RECIPE", help="a name in recipes/searches or a recipe .yaml path")
    common.add_set(s, _SET_HELP)
    s.add_argument("--force", action="store_true", help="score every candidate again")
    s.set_defaults(func=cmd_search)
