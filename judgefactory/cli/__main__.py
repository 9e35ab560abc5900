"""``python -m judgefactory.cli ...``: the same as the ``judgefactory`` console script."""

from .main import main

main()
