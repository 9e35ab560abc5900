"""``judgefactory demo``: the whole line on the embedded base (each station skipped when its artifact is fresh);
prints the report folder."""

from __future__ import annotations

import argparse


def cmd_demo(args: argparse.Namespace) -> None:
    from .. import pipeline

    print(pipeline.run(mirror=args.data_mirror))


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``demo`` on ``sub``."""
    s = sub.add_parser("demo", help="the whole line on the embedded base (skips fresh artifacts), with a report")
    s.set_defaults(func=cmd_demo)
