"""``judgefactory`` command line: a thin layer over the package's functions, one module per command group.

``main.main()`` (the ``judgefactory`` console script) builds the parser (each group's ``add_parser(sub)``), sets up logging (the package's progress and warnings:
plain lines on stderr) and holds the one error path: an expected failure (a :class:`~judgefactory.errors.
JudgeFactoryError` raised by a command, or a usage error) prints one line ``error: ...`` on stderr and exits 2;
anything else is a bug and keeps its traceback. stdout carries only what a command returns (its table, its path).

Heavy libraries (torch, transformers, trl, mergekit) are imported inside the commands so that
``judgefactory --help`` stays fast.
"""
