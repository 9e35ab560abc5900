"""``judgefactory train RECIPE``: train a judge specialist (LoRA) from an adapter recipe; prints the adapter folder."""

from __future__ import annotations

import argparse

from . import common


def cmd_train(args: argparse.Namespace) -> None:
    from .. import train
    from ..recipes import AdapterRecipe

    recipe = common.load_recipe("adapters", args.recipe, args.set, AdapterRecipe)
    print(train.run(recipe, force=args.force, quick_eval=not args.no_eval))


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``train RECIPE [--set KEY=VALUE ...] [--force] [--no-eval]`` on ``sub``."""
    s = sub.add_parser("train", help="train a judge specialist (LoRA) from an adapter recipe")
    s.add_argument("recipe", help="recipes/adapters/<name>.yaml or a name in recipes/adapters")
    common.add_set(s, "recipe overrides, e.g. train.max_steps=10")
    s.add_argument("--force", action="store_true", help="retrain even if the adapter is fresh")
    s.add_argument("--no-eval", action="store_true", help="skip the quick held-out check")
    s.set_defaults(func=cmd_train)
