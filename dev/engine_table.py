"""The judging engine against the libraries it re-implements, on the same items in one run on this machine (D30).

Rows (each in its own process, so peak memory is its own):

* ``hf_generate``        transformers ``generate``: left-padded batches in input order, DynamicCache, greedy (the
                         reference every agreement column compares with);
* ``hf_static``          the same with ``cache_implementation="static"``;
* ``hf_generate_batch``  transformers continuous batching (``generate_batch``, paged attention);
* ``engine``             the project's engine (``Engine.from_ref``: prefix-shared pre-fill, reserved KV buffers,
                         row-dropping greedy loop; records the top-20 log-probabilities);
* ``engine_generate``    the engine with ``prefill=False``: padded batches through ``generate`` (no prefix-shared
                         pre-fill, reserved KV buffers or row-dropping loop): what those three pieces add together.
                         (Until D30 the engine also had its own one-token attention, ``decode_attention``; the row
                         ``engine_sdpa`` of docs/results/engine*.json measured the engine without it.)
* ``llama_f16`` / ``llama_q8_0``  ``llama-server`` (``-np 8``) on the exported GGUF, through the engine's OpenAI backend
                         (8 requests in flight, top-20 log-probabilities).

Items: the 240 human-labelled BBQ pairs x 2 orders (bias verdicts, 64 new tokens) and 40 Vicuna prompts (seeded
stratified, responses clipped at 2,000 chars, 80 new tokens), greedy, float32 weights for the torch rows.
Columns: judgements/s, pre-fill and decode tokens/s (tokens over the time spent in multi-token forwards and in
one-token steps; llama-server: its own ``/metrics`` totals, summed over slots; continuous batching mixes both in one
step, so only its total shows), peak resident memory, and agreement with ``hf_generate`` (BBQ verdicts, Vicuna scores).

    .venv/bin/python dev/engine_table.py --model merge:nuslerp_50_50 [--rows engine,llama_f16] [--bbq-limit N]
        [--out docs/results/engine.json]

Prints a Markdown table, writes it beside the JSON (``.md``). ``llama_*`` rows need ``make llama-cpp`` and
``judgefactory export`` of the model (done here when missing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ROWS = (
    "hf_generate",
    "hf_static",
    "hf_generate_batch",
    "engine",
    "engine_generate",
    "llama_f16",
    "llama_q8_0",
)
BBQ_TOKENS, VICUNA_TOKENS, BATCH, SLOTS = 64, 80, 16, 8


def items(mirror: str, bbq_limit: int | None, vicuna_n: int) -> dict[str, list]:
    """{"bbq": [messages …] (each pair's two orders), "vicuna": [messages …]}."""
    from judgefactory.bench import suites

    bbq = suites.load("bbq_pairs", mirror=mirror, limit=bbq_limit, seed=0)
    vic = suites.load("vicuna", mirror=mirror, limit=vicuna_n, seed=0, max_response_chars=2000)
    return {
        "bbq": [it.requests[k] for it in bbq.items for k in ("ab", "ba")],
        "vicuna": [it.requests["main"] for it in vic.items],
    }


class Timer:
    """Forward hooks on a model: wall time in multi-token forwards (pre-fill) and one-token steps (decode)."""

    def __init__(self, model: Any):
        self.prefill = self.decode = 0.0
        self._t = 0.0
        model.register_forward_pre_hook(self._pre, with_kwargs=True)
        model.register_forward_hook(self._post, with_kwargs=True)

    def _pre(self, mod: Any, args: Any, kwargs: Any) -> None:
        ids = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else (args[0] if args else None)
        self._one = ids is not None and ids.shape[-1] == 1
        self._t = time.perf_counter()

    def _post(self, mod: Any, args: Any, kwargs: Any, out: Any) -> None:
        dt = time.perf_counter() - self._t
        if self._one:
            self.decode += dt
        else:
            self.prefill += dt


def torch_row(row: str, model_ref: str, data: dict[str, list]) -> dict[str, Any]:
    """One torch row: per item set, replies, seconds and phase times."""
    import torch
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    from judgefactory import generate, models
    from judgefactory.engine import Engine

    model, tok = models.load(model_ref, "float32")
    timer = Timer(model)
    stop = sorted(generate._stop_ids(model, tok))
    out: dict[str, Any] = {}
    for name, msgs in data.items():
        max_new = BBQ_TOKENS if name == "bbq" else VICUNA_TOKENS
        prompts = [generate.render(tok, m) for m in msgs]
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        timer.prefill = timer.decode = 0.0
        t0 = time.perf_counter()
        if row.startswith("engine"):
            eng = Engine.from_model(model, tok, batch_size=BATCH, bf16=False)
            cm = contextlib.nullcontext()
            if row == "engine_generate":
                cm = _no_prefill()
            with cm:
                got = eng.judge(msgs, max_new_tokens=max_new, answer="verdict" if name == "bbq" else "score")
            texts = [j.text for j in got]
        elif row == "hf_generate_batch":
            gc = GenerationConfig(
                max_new_tokens=max_new, do_sample=False, eos_token_id=stop, pad_token_id=tok.pad_token_id
            )
            # sized like the others' batches (its default sizes the paged cache from free memory: 14 GB here)
            cb = ContinuousBatchingConfig(num_blocks=256, max_batch_tokens=4096, max_requests_per_batch=BATCH)
            res = model.generate_batch(
                inputs=ids, generation_config=gc, continuous_batching_config=cb, progress_bar=False
            )
            by_id = {r.request_id: r for r in res.values()}
            texts = [
                tok.decode(generate._trim(by_id[f"req_{i}"].generated_tokens, set(stop)), skip_special_tokens=True)
                for i in range(len(ids))
            ]
        else:
            texts = []
            extra = {"cache_implementation": "static"} if row == "hf_static" else {}
            for s in range(0, len(ids), BATCH):
                enc = tok.pad({"input_ids": ids[s : s + BATCH]}, return_tensors="pt", padding_side="left")
                with torch.inference_mode():
                    g = model.generate(
                        **enc,
                        max_new_tokens=max_new,
                        do_sample=False,
                        eos_token_id=stop,
                        pad_token_id=tok.pad_token_id,
                        **extra,
                    )
                for r in g[:, enc["input_ids"].shape[1] :].tolist():
                    texts.append(tok.decode(generate._trim(r, set(stop)), skip_special_tokens=True))
        secs = time.perf_counter() - t0
        out[name] = {
            "texts": texts,
            "seconds": secs,
            "prefill_seconds": timer.prefill if row != "hf_generate_batch" else None,
            "decode_seconds": timer.decode if row != "hf_generate_batch" else None,
            "prompt_tokens": sum(len(x) for x in ids),
            "generated_tokens": sum(len(tok(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts),
        }
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


@contextlib.contextmanager
def _no_prefill() -> Any:
    import functools

    from judgefactory import generate

    saved = generate.generate_sequences
    generate.generate_sequences = functools.partial(saved, prefill=False)
    try:
        yield
    finally:
        generate.generate_sequences = saved


def _metrics(base_url: str) -> dict[str, float]:
    text = urllib.request.urlopen(base_url.removesuffix("/v1") + "/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("llamacpp:") and " " in line:
            k, v = line.split(" ", 1)
            out[k.removeprefix("llamacpp:")] = float(v)
    return out


def llama_row(row: str, model_ref: str, data: dict[str, list]) -> dict[str, Any]:
    """One llama-server row on the exported GGUF of ``model_ref``."""
    from judgefactory import export
    from judgefactory.engine import Engine

    outtype = row.removeprefix("llama_")
    folder = export.run(model_ref, ("f16", "q8_0"))
    out: dict[str, Any] = {}
    gguf = folder / export.file_names(outtype)[0]
    with export.serve(gguf, parallel=SLOTS, threads=os.cpu_count()) as srv:
        eng = Engine.from_ref("judge", backend="openai", base_url=srv["base_url"], batch_size=SLOTS)
        eng.backend.workers = SLOTS
        for name, msgs in data.items():
            before = _metrics(srv["base_url"])
            t0 = time.perf_counter()
            got = eng.judge(
                msgs,
                max_new_tokens=BBQ_TOKENS if name == "bbq" else VICUNA_TOKENS,
                answer="verdict" if name == "bbq" else "score",
            )
            secs = time.perf_counter() - t0
            after = _metrics(srv["base_url"])
            d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
            out[name] = {
                "texts": [j.text for j in got],
                "seconds": secs,
                "prefill_seconds": d.get("prompt_seconds_total"),
                "decode_seconds": d.get("tokens_predicted_seconds_total"),
                "prompt_tokens": int(d.get("prompt_tokens_total", 0)),
                "generated_tokens": int(d.get("tokens_predicted_total", 0)),
            }
        status = Path(f"/proc/{srv['pid']}/status").read_text()
        hwm = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM")), 0)
    out["peak_rss_mb"] = hwm / 1024 + resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["gguf_mb"] = gguf.stat().st_size / 1e6
    return out


def summarise(rows: dict[str, dict], ref: str = "hf_generate") -> list[dict[str, Any]]:
    from judgefactory import formats

    table = []
    for row, r in rows.items():
        n = len(r["bbq"]["texts"]) + len(r["vicuna"]["texts"])
        secs = r["bbq"]["seconds"] + r["vicuna"]["seconds"]
        entry: dict[str, Any] = {"row": row, "judgements": n, "seconds": round(secs, 1)}
        entry["judgements_per_s"] = round(n / secs, 3)
        for name in ("bbq", "vicuna"):
            x = r[name]
            entry[f"{name}_per_s"] = round(len(x["texts"]) / x["seconds"], 3)
        pre = [r[k]["prefill_seconds"] for k in ("bbq", "vicuna")]
        dec = [r[k]["decode_seconds"] for k in ("bbq", "vicuna")]
        ptok = sum(r[k]["prompt_tokens"] for k in ("bbq", "vicuna"))
        gtok = sum(r[k]["generated_tokens"] for k in ("bbq", "vicuna"))
        entry["prefill_tok_per_s"] = round(ptok / sum(pre), 1) if None not in pre and sum(pre) else None
        entry["decode_tok_per_s"] = round(gtok / sum(dec), 1) if None not in dec and sum(dec) else None
        entry["peak_rss_mb"] = round(r["peak_rss_mb"])
        if ref in rows:
            a = [formats.parse_verdict(t) for t in rows[ref]["bbq"]["texts"]]
            b = [formats.parse_verdict(t) for t in r["bbq"]["texts"]]
            entry["bbq_verdict_agreement"] = round(sum(x == y for x, y in zip(a, b, strict=True)) / len(a), 4)
            entry["bbq_verdicts_parsed"] = round(sum(y is not None for y in b) / len(b), 4)
            a = [formats.parse_absolute(t) for t in rows[ref]["vicuna"]["texts"]]
            b = [formats.parse_absolute(t) for t in r["vicuna"]["texts"]]
            entry["vicuna_score_agreement"] = round(sum(x == y for x, y in zip(a, b, strict=True)) / len(a), 4)
            same = [
                x == y for k in ("bbq", "vicuna") for x, y in zip(rows[ref][k]["texts"], r[k]["texts"], strict=True)
            ]
            entry["identical_replies"] = round(sum(same) / len(same), 4)
        table.append(entry)
    return table


COLS = [
    ("row", "engine"),
    ("judgements_per_s", "judgements/s"),
    ("bbq_per_s", "BBQ/s"),
    ("vicuna_per_s", "Vicuna/s"),
    ("prefill_tok_per_s", "pre-fill tok/s"),
    ("decode_tok_per_s", "decode tok/s"),
    ("peak_rss_mb", "peak RSS MB"),
    ("bbq_verdict_agreement", "BBQ verdicts = hf_generate"),
    ("vicuna_score_agreement", "Vicuna scores = hf_generate"),
    ("identical_replies", "identical replies"),
    ("bbq_verdicts_parsed", "BBQ parsed"),
]


def markdown(table: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(h for _, h in COLS) + " |", "|" + "---|" * len(COLS)]
    for e in table:
        lines.append("| " + " | ".join("—" if e.get(k) is None else str(e[k]) for k, _ in COLS) + " |")
    return "\n".join(lines)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="merge:nuslerp_50_50")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--bbq-limit", type=int, default=None, help="pairs (default: all 240)")
    ap.add_argument("--vicuna", type=int, default=40)
    ap.add_argument("--mirror", default=os.environ.get("JUDGEFACTORY_DATA") or str(REPO.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(REPO / "dev" / "results" / "engine.json"))
    ap.add_argument("--label", default="", help="a note on the CPU mode (e.g. 'AVX2 only: ATEN_CPU_CAPABILITY=avx2')")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one row, print its JSON
    args = ap.parse_args()
    data = items(args.mirror, args.bbq_limit, args.vicuna)
    if args.one:
        fn = llama_row if args.one.startswith("llama_") else torch_row
        print("\n@@" + json.dumps(fn(args.one, args.model, data)))
        return
    rows: dict[str, dict] = {}
    for row in args.rows.split(","):
        if row not in ROWS:
            raise SystemExit(f"unknown row {row!r}: {', '.join(ROWS)}")
        cmd = [sys.executable, __file__, "--one", row, "--model", args.model, "--vicuna", str(args.vicuna)]
        cmd += ["--mirror", args.mirror] + (["--bbq-limit", str(args.bbq_limit)] if args.bbq_limit else [])
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or "\n@@" not in done.stdout:
            print(f"{row}: failed ({done.returncode}): {done.stderr.strip().splitlines()[-3:]}", file=sys.stderr)
            continue
        rows[row] = json.loads(done.stdout.rsplit("\n@@", 1)[1])
        print(f"{row}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    from judgefactory import manifest as mf

    table = summarise(rows)
    res = {
        "name": "engine",
        "what": "judging engines on the same items in one run (dev/engine_table.py docstring)",
        "model": args.model,
        "items": {"bbq_replies": len(data["bbq"]), "vicuna": len(data["vicuna"])},
        "max_new_tokens": {"bbq": BBQ_TOKENS, "vicuna": VICUNA_TOKENS},
        "batch_size": BATCH,
        "llama_server_slots": SLOTS,
        "cpu": f"{cpu_name()}, {os.cpu_count()} cores" + (f", {args.label}" if args.label else ""),
        "command": "dev/engine_table.py " + " ".join(sys.argv[1:]),
        "commit": mf.git_commit(REPO),
        "table": table,
    }
    out = Path(args.out)
    mf.write_json(out, res)
    md = markdown(table)
    out.with_suffix(".md").write_text(f"{res['cpu']}; {res['items']}; `{res['command']}` at {res['commit']}\n\n{md}\n")
    print(md)


if __name__ == "__main__":
    main()
