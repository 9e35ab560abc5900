"""The ``judgefactory`` entry point: the parser of every command group, logging set-up and the one error path (see the
package docstring). The groups are imported inside ``build_parser``; nothing in the package imports this module, so the
import graph has no circle (dev/import_graph.py)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from ..errors import JudgeFactoryError


class UsageError(JudgeFactoryError):
    """A command line argparse rejects: the same one-line error and exit code as any other expected failure."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors take the one error path (``main``) instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every group's commands (each group a module of this package)."""
    from . import base, bench, consistency, data, demo, docs, export, hub, judge, merge, train, userdata, validate

    p = _Parser(prog="judgefactory", description="Build, merge, benchmark and publish small LLM judges.")
    p.add_argument("--data-mirror", default=None, help="local data mirror root (else $JUDGEFACTORY_DATA, else the hub)")
    sub = p.add_subparsers(dest="command", required=True)
    order = (judge, base, validate, data, userdata, train, merge, export, bench, consistency, hub, demo, docs)
    for group in order:  # the order of --help
        group.add_parser(sub)
    return p


class _Stderr(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record comes (a redirect or a test's capture set after ``main``)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _Plain(logging.Formatter):
    """The message as written; a warning (or worse) says so first: ``warning: <message>``."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def configure_logging(level: int = logging.INFO) -> None:
    """The package's log (``judgefactory.*``) as plain lines on stderr, once (calling it again changes nothing but
    the level). Other libraries' logs are left as they are."""
    root = logging.getLogger("judgefactory")
    root.setLevel(level)
    if not any(isinstance(h, _Stderr) for h in root.handlers):
        handler = _Stderr()
        handler.setFormatter(_Plain("%(message)s"))
        root.addHandler(handler)


def main(argv: list[str] | None = None) -> None:
    configure_logging()
    try:
        args = build_parser().parse_args(argv)
        if args.data_mirror:
            os.environ["JUDGEFACTORY_DATA"] = str(Path(args.data_mirror).resolve())
        args.func(args)
    except JudgeFactoryError as err:  # the user's to fix: one line, exit 2 (anything else is a bug: traceback)
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None
