"""``judgefactory consistency MODEL``: the command-line face of :mod:`judgefactory.consistency`.

It writes ``consistency/<model>/`` (swap.json, conflict.json, transitivity.json, summary.json, summary.md,
manifest.json) and prints one table: rows = checks, columns = plain vs remedied judging.
"""

from __future__ import annotations

import argparse
import time

from . import common


def _limit(value: int | None) -> int | None:
    return None if value is not None and value <= 0 else value


def cmd_consistency(args: argparse.Namespace) -> None:
    from .. import consistency

    t0 = time.perf_counter()
    out = consistency.run(
        args.model,
        limit_groups=_limit(args.limit),
        limit_pairs=_limit(args.limit_pairs),
        suites=args.suites,
        samples=args.samples,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        with_reference=not args.no_reference,
        score_tol=args.score_tol,
        verdict_tol=args.verdict_tol,
        progress=args.progress,
        **common.engine_kwargs(args),
    )
    print(f"{out}  ({time.perf_counter() - t0:.1f}s)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``consistency MODEL [--limit N] [--limit-pairs M] [--suites ...]`` on ``sub``."""
    from ..consistency import ABSOLUTE_SUITES, DEFAULT_SUITES, PAIRWISE_SUITES

    s = sub.add_parser(
        "consistency",
        help="position consistency, score-comparison conflicts (CR) and transitivity "
        "(NTR_k), plain vs remedied: consistency/<model>/",
    )
    common.add_model(s)
    s.add_argument(
        "--limit", type=int, default=8, help="instructions (4 responses each) per absolute suite (default 8; 0: all)"
    )
    s.add_argument("--limit-pairs", type=int, default=40, help="pairs per pairwise suite (default 40; 0: all)")
    s.add_argument(
        "--suites",
        nargs="+",
        default=list(DEFAULT_SUITES),
        choices=list(ABSOLUTE_SUITES + PAIRWISE_SUITES),
        metavar="SUITE",
        help=f"absolute: {', '.join(ABSOLUTE_SUITES)}; pairwise: {', '.join(PAIRWISE_SUITES)} "
        f"(default: {' '.join(DEFAULT_SUITES)}; suites absent from the data are skipped)",
    )
    s.add_argument("--samples", type=int, default=1, help="samples per pairwise item for repetition stability (1: off)")
    s.add_argument("--max-new-tokens", type=int, default=128)
    common.add_engine(s, results="consistency", batch_size=16, clip_help="clip judged responses (CPU budgets)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--no-reference",
        action="store_true",
        help="do not add the reference answer as a 5th response (NTR_5 is then undefined)",
    )
    s.add_argument("--score-tol", type=float, default=0.1, help="scores within this count as tied (default 0.1)")
    s.add_argument(
        "--verdict-tol", type=float, default=0.1, help="likelihood-aware totals within this are a TIE (default 0.1)"
    )
    s.add_argument("--progress", action="store_true", help="progress bars on stderr")
    s.set_defaults(func=cmd_consistency)
