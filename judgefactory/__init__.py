"""judgefactory: small, trustworthy LLM judges."""

import logging

__version__ = "0.1.0"

# bitsandbytes (the QLoRA path) warns at import on CPUs with AVX512-BF16 that it could not fetch an optional kernel
# from the hub ("Failed to load CPU gemm_4bit_forward from kernels-community"): it falls back to its own kernel, and
# this project's machines cannot reach the hub anyway. Its errors still show.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
