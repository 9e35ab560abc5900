"""``judgefactory export`` (a judge -> GGUF + Ollama Modelfiles) and ``judgefactory serve`` (llama-server on one)."""

from __future__ import annotations

import argparse
import time

from . import common


def cmd_export(args: argparse.Namespace) -> None:
    from .. import export

    print(export.run(args.model, tuple(args.outtype or export.OUTTYPES)))


def cmd_serve(args: argparse.Namespace) -> None:
    from .. import export

    folder = export.run(args.model, (args.outtype,))
    gguf = folder / export.file_names(args.outtype)[0]
    with export.serve(gguf, parallel=args.parallel, port=args.port) as server:
        print(f"serving {args.model} ({args.outtype}) at {server['base_url']} (log: {server['log']}); Ctrl-C stops it")
        print(f"judge through it: judgefactory bench judge bbq_pairs --backend openai --base-url {server['base_url']}")
        while True:
            time.sleep(3600)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``export MODEL`` and ``serve MODEL`` on ``sub``."""
    s = sub.add_parser("export", help="a merge or adapter -> GGUF (f16, q8_0) + Ollama Modelfiles in exports/<label>/")
    s.add_argument("model", metavar="MODEL", help="adapter:<name>, merge:<name> or a checkpoint folder")
    s.add_argument("--outtype", action="append", choices=["f32", "f16", "bf16", "q8_0"], help="repeatable")
    s.set_defaults(func=cmd_export)
    s = sub.add_parser("serve", help="export if needed, then run llama-server on the GGUF (OpenAI-compatible API)")
    s.add_argument("model", metavar="MODEL", help=common.MODEL_HELP)
    s.add_argument("--outtype", default="f16", choices=["f32", "f16", "bf16", "q8_0"])
    s.add_argument("--parallel", type=int, default=8, help="server slots (requests decoded together)")
    s.add_argument("--port", type=int, default=8080)
    s.set_defaults(func=cmd_serve)
