"""judgefactory: small, trustworthy LLM judges.

The public API is :class:`judgefactory.Judge` (``judgefactory.api``): ``Judge.load(ref)``, ``grade``, ``compare`` and
their batch forms. It is imported on first use, so ``import judgefactory`` stays light (the CLI imports it too).
"""

import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Comparison", "Grade", "Judge", "__version__"]

# bitsandbytes (the QLoRA path) warns at import on CPUs with AVX512-BF16 that it could not fetch an optional kernel
# from the hub ("Failed to load CPU gemm_4bit_forward from kernels-community"): it falls back to its own kernel, and
# this project's machines cannot reach the hub anyway. Its errors still show.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

if TYPE_CHECKING:
    from .api import Comparison, Grade, Judge


def __getattr__(name: str) -> Any:
    if name in ("Judge", "Grade", "Comparison"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'judgefactory' has no attribute {name!r}")
