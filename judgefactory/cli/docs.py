"""``judgefactory results-doc``: docs/RESULTS.md regenerated from docs/results/*.json (``--check``: only compare)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import JudgeFactoryError


class StaleDocError(JudgeFactoryError):
    """The committed page is not what the json files give."""


def cmd_results_doc(args: argparse.Namespace) -> None:
    from .. import results_doc

    d_results, d_out = results_doc.default_paths()
    results_dir = Path(args.results) if args.results else d_results
    out = Path(args.out) if args.out else d_out
    if not results_dir.is_dir():
        raise JudgeFactoryError(f"{results_dir}: no results folder (run from a source checkout or give --results)")
    if args.check:
        if not out.is_file() or out.read_text() != results_doc.render(results_dir):
            raise StaleDocError(f"{out} is not the page {results_dir} gives: run judgefactory results-doc")
        print(f"{out}: up to date")
        return
    path, changed = results_doc.write(results_dir, out)
    print(f"{path}{'' if changed else ' (unchanged)'}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``results-doc [--check] [--results DIR] [--out FILE]`` on ``sub``."""
    s = sub.add_parser("results-doc", help="write docs/RESULTS.md from docs/results/*.json (one generated page)")
    s.add_argument("--check", action="store_true", help="write nothing; exit 2 if the page differs from the json")
    s.add_argument("--results", default=None, help="the json folder (default: the checkout's docs/results)")
    s.add_argument("--out", default=None, help="the page (default: the checkout's docs/RESULTS.md)")
    s.set_defaults(func=cmd_results_doc)
