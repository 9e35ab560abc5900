"""``judgefactory grade MODEL FILE`` / ``judgefactory compare MODEL FILE``: judge a user's own rows
(:mod:`judgefactory.judge_file` over :class:`judgefactory.api.Judge`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from . import common

log = logging.getLogger(__name__)


def _columns(pairs: list[str]) -> dict[str, str]:
    from ..data.user import UserDataError

    out = {}
    for p in pairs:
        field, sep, column = p.partition("=")
        if not sep or not field or not column:
            raise UserDataError(f"--column {p!r}: expected FIELD=COLUMN, e.g. instruction=prompt")
        out[field] = column
    return out


def cmd_judge(args: argparse.Namespace) -> None:
    from .. import judge_file

    out = Path(args.out) if args.out else Path(_default_out(args.file, args.command))
    meta = judge_file.run(
        args.command,
        args.model,
        args.file,
        out,
        columns=_columns(args.column),
        both_orders=getattr(args, "both_orders", False),
        backend=args.backend,
        base_url=args.base_url,
        batch_size=args.batch_size,
        max_response_chars=args.max_response_chars,
        force=args.force,
    )
    line = f"{meta['rows']} rows judged, {meta['unparseable']} unparseable replies (judge_error set)"
    if meta.get("position_consistency") is not None:
        line += f", position consistency {meta['position_consistency']:.3f}"
    print(line)
    print(out)


def _default_out(source: str, command: str) -> str:
    name = Path(source.removeprefix("file:").removeprefix("hub:").split("@")[0]).stem or "rows"
    return f"{name}.{'graded' if command == 'grade' else 'compared'}.jsonl"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``grade MODEL FILE`` and ``compare MODEL FILE`` on ``sub``."""
    for name, what, fields in (
        (
            "grade",
            "score each row's response 1-5 on its rubric",
            "instruction, response, rubric (or criteria + score1_description..score5_description), "
            "optional reference_answer",
        ),
        (
            "compare",
            "say which of two responses the judge's criterion picks (A, B or TIE)",
            "question (or context), response_a, response_b, optional context and choices",
        ),
    ):
        s = sub.add_parser(name, help=f"{what}: FILE (JSONL, JSON, CSV or hub:ORG/NAME) -> OUT.jsonl")
        common.add_model(s)
        s.add_argument("file", metavar="FILE", help=f"rows with the fields {fields}")
        s.add_argument(
            "--out", default=None, help="output .jsonl or .csv (default: FILE's name + .graded/.compared.jsonl)"
        )
        s.add_argument(
            "--column",
            nargs="*",
            default=[],
            metavar="FIELD=COLUMN",
            help="read a field from another column, e.g. instruction=prompt",
        )
        if name == "compare":
            s.add_argument(
                "--both-orders", action="store_true", help="judge B-first too; flag verdicts that follow the position"
            )
        s.add_argument("--batch-size", type=int, default=8, help="rows judged together (default: 8)")
        s.add_argument("--max-response-chars", type=int, default=None, help="clip judged responses (CPU budgets)")
        s.add_argument("--backend", choices=["transformers", "vllm", "openai"], default="transformers")
        s.add_argument("--base-url", default=None, help="openai backend: the server, e.g. http://127.0.0.1:8080/v1")
        s.add_argument("--force", action="store_true", help="replace an existing output made by another job")
        s.set_defaults(func=cmd_judge)
