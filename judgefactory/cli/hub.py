"""``judgefactory card`` and ``judgefactory push``: the model card and the (explicit) Hub upload."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import paths


def _artifact(args: argparse.Namespace) -> tuple[str, Path]:
    from .. import models
    from ..hub import HubError

    given = [args.model] if args.model else []
    given += [f"merge:{args.merge}"] if args.merge else []
    given += [f"adapter:{args.adapter}"] if args.adapter else []
    if len(given) != 1:
        raise HubError(
            "give exactly one model: MODEL (merge:NAME, adapter:NAME or a folder), or --merge/--adapter NAME"
        )
    ref = given[0]
    return ref, Path(models.resolve(ref)[1])


def cmd_card(args: argparse.Namespace) -> None:
    from .. import models
    from ..card import write_card

    ref, folder = _artifact(args)
    out = write_card(
        folder,
        paths.bench(),
        paths.consistency(),
        models.label(ref),
        repo_id=args.repo,
        out=Path(args.out) if args.out else None,
    )
    print(out)


def cmd_push(args: argparse.Namespace) -> None:
    from .. import export, hub, models
    from ..card import build_card
    from ..consistency import gate_for

    ref, folder = _artifact(args)
    card = str(build_card(folder, paths.bench(), paths.consistency(), models.label(ref), repo_id=args.repo))
    gguf = export.for_artifact(folder, models.label(ref))  # the card lists it; the same commit carries it
    extra = gguf["uploads"] if gguf else []
    result = hub.push(
        folder,
        args.repo,
        card=card,
        private=not args.public,
        dry_run=args.dry_run,
        endpoint=args.endpoint,
        gate=gate_for(folder),
        extra=extra,
    )  # the card reaches the folder only if the push goes ahead
    if not args.dry_run:
        print(f"pushed {len(result['files'])} files to {result['repo_id']} in one commit: {result.get('commit_url')}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``card [MODEL]`` and ``push [MODEL]`` on ``sub`` (MODEL: ``merge:NAME``, ``adapter:NAME`` or a folder;
    ``--merge NAME`` / ``--adapter NAME`` say the same)."""
    for name, fn, help_ in (
        ("card", cmd_card, "write the model card (README.md) of a merge or adapter; no upload"),
        ("push", cmd_push, "upload a merge or adapter to the Hugging Face Hub (needs HF_TOKEN)"),
    ):
        s = sub.add_parser(name, help=help_)
        s.add_argument(
            "model", metavar="MODEL", nargs="?", default=None, help="merge:<name>, adapter:<name> or a folder"
        )
        s.add_argument("--merge", default=None, help="merge name (the same as MODEL merge:<name>)")
        s.add_argument("--adapter", default=None, help="adapter name (the same as MODEL adapter:<name>)")
        s.add_argument("--repo", default=None, required=name == "push", help="hub repo id <user>/<name>")
        if name == "card":
            s.add_argument("--out", default=None, help="write the card here instead of <artifact>/README.md")
        else:
            s.add_argument("--public", action="store_true", help="publish (default: private)")
            s.add_argument("--dry-run", action="store_true", help="list what would be uploaded; upload nothing")
            s.add_argument("--endpoint", default=None, help="hub endpoint (default: huggingface.co or $HF_ENDPOINT)")
        s.set_defaults(func=fn)
