"""``judgefactory validate [PATH ...]``: check recipes (every shipped one and every experiment by default, listed
apart); prints one line per recipe."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import common


def cmd_validate(args: argparse.Namespace) -> None:
    from .. import recipes

    if args.paths:
        groups = [("", [Path(p) for p in args.paths])]
    else:
        groups = [
            ("shipped recipes", recipes.shipped()),
            (
                f"experiments ({recipes.RECIPES_DIR / recipes.EXPERIMENTS}: kept so a decision reproduces)",
                recipes.experiments(),
            ),
        ]
    failed: list[str] = []
    total = 0
    for title, paths in groups:
        if title:
            print(f"{title}:")
        for p in paths:
            total += 1
            try:
                r = recipes.load(p, args.set)
                raw = recipes._read_yaml(p)
                parent = recipes.parent_path(p, raw) if isinstance(raw, dict) else None
                extends = f", extends {parent.stem}" if parent is not None else ""
                print(f"ok   {p}  ({r.kind}: {r.name}{extends})")
            except recipes.RecipeError as err:
                failed.append(str(err))
                print(f"FAIL {err}")
    if len(failed) == 1:
        raise recipes.RecipeError(failed[0])
    if failed:
        raise recipes.RecipeError(f"{len(failed)} of {total} recipes failed validation; first: {failed[0]}")
    counts = " + ".join(f"{len(paths)} {title.split(' ')[0]}" for title, paths in groups if title)
    print(f"{total} recipes valid" + (f" ({counts})" if counts else ""))


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``validate [PATH ...] [--set KEY=VALUE ...]`` on ``sub``."""
    s = sub.add_parser("validate", help="validate recipes (default: every shipped recipe, then the experiments)")
    s.add_argument("paths", nargs="*")
    common.add_set(s, "overrides applied before validation")
    s.set_defaults(func=cmd_validate)
