"""``judgefactory data`` and ``judgefactory pairs build|generate``: the command-line face of :mod:`judgefactory.data`
(a dataset's rows through the mirror; the BBQ pair-set builder)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from . import common

log = logging.getLogger(__name__)


def cmd_data(args: argparse.Namespace) -> None:
    from ..data import sources

    loaded = sources.load_rows(args.source, args.config, mirror=args.data_mirror)
    print(
        f"{args.source}: {len(loaded.rows)} rows, {len(loaded.errors)} not valid JSON, from {loaded.origin} "
        "(fields are checked by the station that reads them: bench, train, pairs build)"
    )
    for e in loaded.errors[:10]:
        print("  " + e)
    if loaded.rows and args.show:
        common.print_json({k: v for k, v in loaded.rows[0].items()})


def cmd_pairs(args: argparse.Namespace) -> None:
    from .. import manifest as mf
    from .. import paths
    from ..data import pairs
    from ..recipes import PairsRecipe

    mirror = getattr(args, "data_mirror", None)
    recipe = common.load_recipe("pairs", args.recipe, args.set, PairsRecipe)
    if args.pairs_command == "build":
        out_root = Path(args.out_root) if args.out_root else None
        before = mf.read(Path(out_root or paths.pair_sets()) / recipe.name) or {}
        folder = pairs.build(recipe, out_root=out_root, mirror=mirror, force=args.force)
        m = mf.read(folder) or {}
        if before.get("created") and before.get("created") == m.get("created"):
            log.info("%s: up to date (same recipe and inputs; --force rebuilds)", folder)
        from rich.console import Console

        console = Console()
        if console.width < 120:  # not a terminal (or a narrow one): keep the table readable
            console = Console(width=120)
        for table in pairs.summary_tables(m):
            console.print(table)
        print(folder)
    else:  # generate
        items = pairs.eligible_items(recipe, mirror)
        out = pairs.generate_responses(
            args.base, items, args.out, args.limit, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size
        )
        print(f"{min(len(items), args.limit)} responses -> {out} (use it with: --set generated_responses={out})")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``data SOURCE``, ``pairs build RECIPE [--set k=v ...] [--force]`` and
    ``pairs generate BASE --out FILE --limit N`` on ``sub``."""
    s = sub.add_parser("data", help="load a dataset by hub id (through the mirror when set) and report rows")
    s.add_argument("source", help="hub id, e.g. heegyu/bbq or prometheus-eval/vicuna")
    s.add_argument("--config", default=None, help="config / file name (e.g. Age, eval_in_dist)")
    s.add_argument("--show", action="store_true", help="print the first row")
    s.set_defaults(func=cmd_data)

    p = sub.add_parser("pairs", help="build the BBQ response-pair set for the pairwise bias judge")
    ps = p.add_subparsers(dest="pairs_command", required=True)

    b = ps.add_parser(
        "build", help="build data/pairs/<name>/ from a pairs recipe (skipped when its inputs are unchanged)"
    )
    b.add_argument("recipe", help="a pairs recipe name (recipes/pairs/<name>.yaml) or a path")
    common.add_set(b, "recipe overrides, e.g. buckets.tie=100")
    b.add_argument("--force", action="store_true", help="rebuild even if the existing pair set is fresh")
    b.add_argument("--out-root", default=None, help="folder holding pair sets (default: data/pairs)")
    b.set_defaults(func=cmd_pairs)

    g = ps.add_parser("generate", help="answer BBQ items (train/test templates only) with a local base, to JSONL")
    g.add_argument("base", help="base name, embedded:<name>, adapter:<name>, merge:<name> or a checkpoint folder")
    g.add_argument("--out", required=True, help="output JSONL (e.g. data/generated/smollm2.jsonl)")
    g.add_argument("--limit", type=int, default=200, help="number of BBQ items to answer")
    g.add_argument("--recipe", default="bbq_pairs", help="pairs recipe whose splits pick the items (default bbq_pairs)")
    common.add_set(g)
    g.add_argument("--max-new-tokens", type=int, default=160)
    g.add_argument("--batch-size", type=int, default=8)
    g.set_defaults(func=cmd_pairs)
