"""``judgefactory base prepare|info NAME`` and ``judgefactory chat MODEL PROMPT``: a base model's checkpoint and facts,
and one reply from any model the package can load."""

from __future__ import annotations

import argparse

from . import common


def cmd_base(args: argparse.Namespace) -> None:
    from .. import bases

    if args.action == "prepare":
        path = bases.prepare(args.name, rebuild=args.rebuild, verify=args.verify)
        print(path)
    else:
        common.print_json(bases.info(args.name))


def cmd_chat(args: argparse.Namespace) -> None:
    from ..generate import chat

    print(chat(args.model, args.prompt, max_new_tokens=args.max_new_tokens))


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``base prepare|info NAME`` and ``chat MODEL PROMPT`` on ``sub``."""
    s = sub.add_parser("base", help="prepare or describe a base model")
    s.add_argument("action", choices=["prepare", "info"])
    s.add_argument("name", help="embedded:smollm2-135m-instruct, embedded:gemma3-270m, or a hub id")
    s.add_argument("--rebuild", action="store_true", help="rebuild the cached checkpoint")
    s.add_argument("--verify", action="store_true", help="re-hash every cached file (default: size + mtime)")
    s.set_defaults(func=cmd_base)

    s = sub.add_parser("chat", help="one chat reply from a base, adapter or merged model")
    s.add_argument("model", help=common.MODEL_HELP)
    s.add_argument("prompt")
    s.add_argument("--max-new-tokens", type=int, default=48)
    s.set_defaults(func=cmd_chat)
