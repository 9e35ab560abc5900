"""``judgefactory validate [PATH ...]``: check recipes (every shipped one by default); prints one line per recipe."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import common


def cmd_validate(args: argparse.Namespace) -> None:
    from .. import recipes

    paths = [Path(p) for p in args.paths] or recipes.shipped()
    failed: list[str] = []
    for p in paths:
        try:
            r = recipes.load(p, args.set)
            print(f"ok   {p}  ({r.kind}: {r.name})")
        except recipes.RecipeError as err:
            failed.append(str(err))
            print(f"FAIL {err}")
    if len(failed) == 1:
        raise recipes.RecipeError(failed[0])
    if failed:
        raise recipes.RecipeError(f"{len(failed)} of {len(paths)} recipes failed validation; first: {failed[0]}")
    print(f"{len(paths)} recipes valid")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``validate [PATH ...] [--set KEY=VALUE ...]`` on ``sub``."""
    s = sub.add_parser("validate", help="validate recipes (all shipped recipes by default)")
    s.add_argument("paths", nargs="*")
    common.add_set(s, "overrides applied before validation")
    s.set_defaults(func=cmd_validate)
