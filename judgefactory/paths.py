"""Where things live: the shipped recipes, and the workspace that holds every station's outputs.

The workspace is ``$JUDGEFACTORY_HOME`` when set, else the source checkout this package runs from (``git clone`` or
``pip install -e``), else ``~/judgefactory`` (a ``pip install .``). Every station writes and reads under it
(``adapters/``, ``merges/``, ``data/pairs/``, ``bench/``, ``consistency/``, ``report/``), so bench results,
consistency results, cards and the push gate find each other from any working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent
HOME_ENV = "JUDGEFACTORY_HOME"


def in_checkout() -> bool:
    """Whether this package runs from a source checkout (its recipes/ and pyproject.toml beside it)."""
    return (CHECKOUT / "recipes").is_dir() and (CHECKOUT / "pyproject.toml").is_file()


def recipes_dir() -> Path:
    """The shipped recipes: the checkout's ``recipes/``, else the copy a wheel installs as ``judgefactory/_recipes``."""
    return CHECKOUT / "recipes" if in_checkout() else PACKAGE / "_recipes"


def workspace() -> Path:
    """The root of every artifact folder (see the module docstring)."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return CHECKOUT if in_checkout() else Path.home() / "judgefactory"


def adapters() -> Path:
    return workspace() / "adapters"


def merges() -> Path:
    return workspace() / "merges"


def pair_sets() -> Path:
    return workspace() / "data" / "pairs"


def bench() -> Path:
    return workspace() / "bench"


def consistency() -> Path:
    return workspace() / "consistency"


def report() -> Path:
    return workspace() / "report"
