"""Resolve the GPU environment (the factory's pins + the ``gpu`` extra: unsloth) with pip's resolver from the registry,
without installing anything, and pin what resolves in ``requirements-gpu.lock`` (``make venv-gpu`` installs from it).

    .venv/bin/python dev/lock_gpu.py        # ~1-2 min, network only

torch is pinned without a local version tag (``2.13.0``, not ``2.13.0+cpu``): a GPU machine takes its CUDA build.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        cmd += ["--report", str(report), "torch==2.13.0", "-e", f"{ROOT}[dev,gpu]"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        installs = json.loads(report.read_text())["install"]
    pins = sorted(
        f"{i['metadata']['name'].lower()}=={i['metadata']['version'].split('+')[0]}"
        for i in installs
        if i["metadata"]["name"].lower() != "judgefactory"
    )
    header = (
        "# pip's resolution of the factory's pins + the gpu extra (dev/lock_gpu.py); make venv-gpu installs from it\n"
    )
    (ROOT / "requirements-gpu.lock").write_text(header + "\n".join(pins) + "\n")
    print(f"{len(pins)} pins -> requirements-gpu.lock")
    return 0


if __name__ == "__main__":
    sys.exit(main())
