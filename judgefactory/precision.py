"""Device and precision policy: one place decides whether this machine runs bf16 natively.

Where bf16 is emulated (AVX2-only CPUs) its matmuls ran 140x slower than float32 (0.9 vs 127 GFLOP/s,
docs/DECISIONS.md D15), so every bf16 use (training, judging, quick checks, ``judgefactory base info``) asks here.
"""

from __future__ import annotations

import functools


@functools.cache
def bf16_supported(device: str = "cpu") -> bool:
    """Whether bf16 matmuls run natively here (CPU: oneDNN bf16 support, e.g. AVX512-BF16/AMX; CUDA: Ampere+)."""
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX")


CPU_BF16_ENV = "JUDGEFACTORY_CPU_BF16"


def judge_dtype() -> str:
    """The dtype judging runs in: ``bfloat16`` on a CUDA GPU that runs it natively; ``float32`` on every CPU, so a
    benchmark figure does not depend on which CPU measured it (bf16 and float32 greedy decoding disagree on some
    verdicts). A bf16-native CPU may opt in for speed with ``JUDGEFACTORY_CPU_BF16=1``; the manifests record the dtype."""
    import os

    import torch

    if torch.cuda.is_available():
        return "bfloat16" if bf16_supported("cuda") else "float32"
    return "bfloat16" if os.environ.get(CPU_BF16_ENV) == "1" and bf16_supported("cpu") else "float32"


def machine() -> dict:
    """What a time or a speed was measured on: CPU model, cores, ATen's vector ISA, native bf16, and the GPU if any
    (recorded beside every duration in manifests and docs/results)."""
    import os
    import platform

    import torch

    model = platform.processor() or platform.machine()
    info: dict[str, str] = {}
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if info.get("model name"):  # "AMD EPYC" alone hides the generation: add family / model (26 / 2 = Zen 5)
        model = f"{info['model name']} (family {info.get('cpu family', '?')}, model {info.get('model', '?')})"
    out = {
        "cpu": model,
        "cores": os.cpu_count(),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": bf16_supported("cpu"),
    }
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out
