"""``judgefactory`` command line: a thin layer over the package's functions.

Heavy libraries (torch, transformers, trl, mergekit) are imported inside the commands so that
``judgefactory --help`` stays fast. Errors the user can fix print one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, default=str))


# --------------------------------------------------------------------------- commands
def cmd_base(args: argparse.Namespace) -> None:
    from . import bases

    if args.action == "prepare":
        path = bases.prepare(args.name, rebuild=args.rebuild, verify=args.verify)
        print(path)
    else:
        _print_json(bases.info(args.name))


def cmd_validate(args: argparse.Namespace) -> None:
    from . import recipes

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


def cmd_chat(args: argparse.Namespace) -> None:
    from .generate import chat

    print(chat(args.model, args.prompt, max_new_tokens=args.max_new_tokens))


def cmd_data(args: argparse.Namespace) -> None:
    from .data import sources

    loaded = sources.load_rows(args.source, args.config, mirror=args.data_mirror)
    print(
        f"{args.source}: {len(loaded.rows)} rows, {len(loaded.errors)} not valid JSON, from {loaded.origin} "
        "(fields are checked by the station that reads them: bench, train, pairs build)"
    )
    for e in loaded.errors[:10]:
        print("  " + e)
    if loaded.rows and args.show:
        _print_json({k: v for k, v in loaded.rows[0].items()})


def cmd_train(args: argparse.Namespace) -> None:
    from . import recipes, train

    recipe = recipes.load(recipes.find("adapters", args.recipe), args.set)
    if recipe.kind != "adapter":
        raise recipes.RecipeError(f"{args.recipe}: expected an adapter recipe, got kind {recipe.kind}")
    print(train.run(recipe, force=args.force, quick_eval=not args.no_eval))


def cmd_demo(args: argparse.Namespace) -> None:
    from . import pipeline

    print(pipeline.run(mirror=args.data_mirror))


# --------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse with the project's error policy: a usage error is one line naming the command, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="judgefactory", description="Build, merge, benchmark and publish small LLM judges.")
    p.add_argument("--data-mirror", default=None, help="local data mirror root (else $JUDGEFACTORY_DATA, else the hub)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("base", help="prepare or describe a base model")
    s.add_argument("action", choices=["prepare", "info"])
    s.add_argument("name", help="embedded:smollm2-135m-instruct, embedded:gemma3-270m, or a hub id")
    s.add_argument("--rebuild", action="store_true", help="rebuild the cached checkpoint")
    s.add_argument("--verify", action="store_true", help="re-hash every cached file (default: size + mtime)")
    s.set_defaults(func=cmd_base)

    s = sub.add_parser("validate", help="validate recipes (all shipped recipes by default)")
    s.add_argument("paths", nargs="*")
    s.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides applied before validation")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("chat", help="one chat reply from a base, adapter or merged model")
    s.add_argument("model", help="base name, adapters/<name>, merges/<name>, or a checkpoint folder")
    s.add_argument("prompt")
    s.add_argument("--max-new-tokens", type=int, default=48)
    s.set_defaults(func=cmd_chat)

    s = sub.add_parser("data", help="load a dataset by hub id (through the mirror when set) and report rows")
    s.add_argument("source", help="hub id, e.g. heegyu/bbq or prometheus-eval/vicuna")
    s.add_argument("--config", default=None, help="config / file name (e.g. Age, eval_in_dist)")
    s.add_argument("--show", action="store_true", help="print the first row")
    s.set_defaults(func=cmd_data)

    s = sub.add_parser("train", help="train a judge specialist (LoRA) from an adapter recipe")
    s.add_argument("recipe", help="recipes/adapters/<name>.yaml or a name in recipes/adapters")
    s.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="recipe overrides, e.g. train.max_steps=10"
    )
    s.add_argument("--force", action="store_true", help="retrain even if the adapter is fresh")
    s.add_argument("--no-eval", action="store_true", help="skip the quick held-out check")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("demo", help="the whole line on the embedded base (skips fresh artifacts), with a report")
    s.set_defaults(func=cmd_demo)

    from . import bench_cli, consistency_cli, hub_cli, merge_cli
    from .data import pairs_cli

    pairs_cli.add_parser(sub)
    merge_cli.add_parser(sub)
    bench_cli.add_parser(sub)
    consistency_cli.add_parser(sub)
    hub_cli.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.data_mirror:
        os.environ["JUDGEFACTORY_DATA"] = str(Path(args.data_mirror).resolve())
    from .errors import JudgeFactoryError

    try:
        args.func(args)
    except JudgeFactoryError as err:  # the user's to fix: one line, exit 2 (anything else is a bug: traceback)
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
