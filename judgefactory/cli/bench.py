"""``judgefactory bench`` / ``judgefactory bench-compare``: the command-line face of :mod:`judgefactory.bench`.

``bench MODEL SUITE``: SUITE is one suite (``vicuna``, ``bbq_pairs``, …) or a bench recipe in recipes/bench (``quick``).
``bench-compare MODEL [MODEL …]``: one table across the models' results, plus charts in bench/compare/.
``retention MODEL [MODEL …] --pairwise A --absolute B``: how much of each specialist's eval figure the models keep.
"""

from __future__ import annotations

import argparse

from . import common


def cmd_bench(args: argparse.Namespace) -> None:
    from ..bench import run as bench_run
    from ..bench import suites

    out = bench_run.run(args.model, args.suite, limit=args.limit, n_boot=args.n_boot, **common.engine_kwargs(args))
    folders = (
        [out] if args.suite in suites.SUITES else [out / s.name for s in bench_run.bench_recipe(args.suite).suites]
    )
    for f in folders:  # the table this run wrote (a narrower run than the folder's widest writes table-limit<N>.md)
        tables = sorted(f.glob("table*.md"), key=lambda p: p.stat().st_mtime)
        print((tables[-1] if tables else f / bench_run.TABLE).read_text())
    print(out)


def cmd_compare(args: argparse.Namespace) -> None:
    from ..bench import report

    out = report.compare(args.models, out=args.out, bench_root=args.bench_root, consistency_root=args.consistency_root)
    print(out / "compare.md")


def cmd_retention(args: argparse.Namespace) -> None:
    from ..bench import retention

    out = retention.run(args.models, pairwise=args.pairwise, absolute=args.absolute, out=args.out, n_boot=args.n_boot)
    print((out / "retention.md").read_text())
    print(out)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``bench MODEL SUITE`` and ``bench-compare MODEL [MODEL …]`` on ``sub``."""
    s = sub.add_parser("bench", help="benchmark a model on a suite or a bench recipe: bench/<model>/<suite>/")
    common.add_model(s)
    s.add_argument(
        "suite",
        metavar="SUITE",
        help="a suite (bench/suites.py SUITES: vicuna, bbq_pairs, …; an unknown name lists them all) "
        "or a bench recipe (quick, full)",
    )
    s.add_argument("--limit", type=int, default=None, help="items per suite (seeded, stratified subset)")
    common.add_engine(
        s, results="bench", batch_size=None, clip_help="clip judged responses (CPU budgets; part of the config hash)"
    )
    s.add_argument("--n-boot", type=int, default=1000, help="cluster-bootstrap replicates per CI (0: no CIs)")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("bench-compare", help="compare models' bench (and consistency) results: table + charts")
    s.add_argument("models", metavar="MODEL", nargs="+", help="model refs or result folder names under bench/")
    s.add_argument("--out", default=None, help="default: <bench root>/compare")
    s.add_argument("--bench-root", default=None, help="default: the workspace's bench/")
    s.add_argument("--consistency-root", default=None, help="default: the workspace's consistency/")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser(
        "retention", help="retention = model / specialist on the eval sets, paired bootstrap CIs: bench/retention/"
    )
    s.add_argument("models", metavar="MODEL", nargs="+", help="merged or joint judges (benched like the specialists)")
    s.add_argument("--pairwise", required=True, help="the pairwise specialist, e.g. adapter:pairwise-full")
    s.add_argument("--absolute", required=True, help="the absolute specialist, e.g. adapter:absolute-full")
    s.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates")
    s.add_argument(
        "--out", default=None, help="folder for retention.json/.md (default: the workspace's bench/retention)"
    )
    s.set_defaults(func=cmd_retention)
