"""``judgefactory user-data export pairs|absolute``: public data written out in the user formats (for training a
specialist through the user path on the rows the built-in paths use; :mod:`judgefactory.data.user_export`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_export(args: argparse.Namespace) -> None:
    from .. import paths
    from ..data import user_export

    out = Path(args.out)
    if args.what == "pairs":
        n = user_export.pairs_to_user(paths.pair_sets() / args.source, out, args.split)
    else:
        n = user_export.absolute_to_user(args.source, out, args.config, mirror=args.data_mirror)
    print(f"{n} rows -> {out}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``user-data export {pairs,absolute} SOURCE --out FILE`` on ``sub``."""
    s = sub.add_parser("user-data", help="write public data out in the user formats (data.source: file:...)")
    ss = s.add_subparsers(dest="user_data_command", required=True)
    e = ss.add_parser("export", help="a built pair set as pairwise JSONL, or a Prometheus absolute source as CSV")
    e.add_argument("what", choices=["pairs", "absolute"])
    e.add_argument(
        "source", help="pairs: a built pair set's name (bbq_pairs); absolute: a hub id (prometheus-eval/mt-bench)"
    )
    e.add_argument("--out", required=True, help="output file (e.g. data/generated/bbq_pairs.user.jsonl)")
    e.add_argument("--split", default="train", help="pairs: the pair set's split (default: train)")
    e.add_argument("--config", default=None, help="absolute: one file of a multi-file source")
    e.set_defaults(func=cmd_export)
