"""The trainers' quick held-out check: the same items judged by the untrained base and the adapter.

Both run the benchmark suites' own code (``bench.suites`` + ``bench.run.predict`` on the judging engine), in memory:
Absolute: parse rate and Pearson/Spearman/Kendall vs the GPT-4 mean score on a seeded, stratified subset.
Pairwise: parse rate and Cohen's kappa vs the human verdicts of the in-distribution BBQ eval pairs,
in both A/B orders. Unparseable outputs count as errors (never dropped).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import formats
from .recipes import AdapterRecipe


def _engine(model: Any, tok: Any, batch_size: int) -> Any:
    from .engine import Engine

    return Engine.from_model(model, tok, batch_size=batch_size, bf16=True, label="quick-eval")


def _value(metrics: dict, name: str) -> float:
    v = (metrics.get(name) or {}).get("value")
    return float("nan") if v is None else v


def suite_data(recipe: AdapterRecipe, mirror: Any = None) -> Any:
    """The items the quick check judges: a seeded stratified subset of the absolute source, or the BBQ eval pairs."""
    from .bench import suites

    qe = recipe.quick_eval
    if recipe.task == "absolute":
        return suites.absolute_suite("quick_eval", qe.source, qe.file, mirror, qe.limit, 0, recipe.data.max_response_chars)
    return suites.load_bbq_pairs(mirror, qe.limit, 0, recipe.data.max_response_chars, file=qe.file or "eval_in_dist", source=qe.source)


def _predict(model: Any, tok: Any, recipe: AdapterRecipe, data: Any) -> tuple[dict, dict, dict]:
    from .bench import run as bench_run
    from .bench import suites

    qe = recipe.quick_eval
    modes = [bench_run.Mode("greedy", 1, 0.0)]
    rows = bench_run.predict(_engine(model, tok, qe.batch_size), data, modes, max_new_tokens=qe.max_new_tokens, batch_size=qe.batch_size)
    metrics, counts = suites.score(data, rows, ["greedy"], suites.Boot(0))
    return rows, metrics, counts


def absolute(model: Any, tok: Any, recipe: AdapterRecipe, mirror: Any = None, data: Any = None) -> dict:
    """The bench's absolute suite code on the quick-eval source (seeded stratified ``limit`` subset, greedy, no CIs)."""
    data = data if data is not None else suite_data(recipe, mirror)
    rows, metrics, counts = _predict(model, tok, recipe, data)
    out = {k: _value(metrics, k) for k in ("pearson", "spearman", "kendall", "parse_rate", "exact_match")}
    out.update(n=len(data.items), n_errors=counts["n_parse_errors"])
    if "pearson_expected" in metrics:
        out["pearson_expected"] = _value(metrics, "pearson_expected")
    out["examples"] = [{"id": it.id, "raw": rows[(it.id, "main", "greedy")]["raw"][0], "score": rows[(it.id, "main", "greedy")]["parsed"][0],
                        "gold": it.gold} for it in data.items[:3]]
    return out


def pairwise(model: Any, tok: Any, recipe: AdapterRecipe, mirror: Any = None, data: Any = None) -> dict:
    """The bench's BBQ pair suite code on the quick-eval pairs: both A/B orders, kappa vs the human verdicts."""
    data = data if data is not None else suite_data(recipe, mirror)
    rows, metrics, _ = _predict(model, tok, recipe, data)
    verdicts = [rows[(it.id, "ab", "greedy")]["parsed"][0] for it in data.items]
    back = [formats.swap_verdict(rows[(it.id, "ba", "greedy")]["parsed"][0]) for it in data.items]
    n = len(data.items)
    return {
        "n": n,
        "parse_rate": _value(metrics, "parse_rate"),
        "kappa_ab": _value(metrics, "kappa_ab"),
        "kappa_ba": _value(metrics, "kappa_ba"),
        "kappa_both_orders": _value(metrics, "kappa"),
        "both_orders_correct": _value(metrics, "both_orders_correct"),
        "position_consistency": 1.0 - _value(metrics, "position_bias_rate"),
        "primacy": _value(metrics, "primacy"),
        "recency": _value(metrics, "recency"),
        "rule_baseline_kappa": _value(metrics, "rule_baseline_kappa"),
        "verdict_share": {v: (verdicts + back).count(v) / (2 * n) if n else float("nan") for v in ("A", "B", "TIE", None)},
        "examples": [{"pair_id": it.id, "raw": rows[(it.id, "ab", "greedy")]["raw"][0], "verdict": v, "gold": it.gold}
                     for it, v in zip(data.items[:3], verdicts)],
    }


def _base_cache(recipe: AdapterRecipe, data: Any) -> Path:
    """Where the untrained base's quick-check result is kept: its answers on fixed requests never change, so they are
    computed once per machine, keyed on the base's files and the rendered requests themselves (prompt templates,
    clipping and items included: an edited template is a new key) plus the decoding settings."""
    from . import bases
    from . import manifest as mf

    base_path = bases.prepare(recipe.base) if recipe.base.startswith("embedded:") else recipe.base
    base_m = mf.read(Path(base_path)) if isinstance(base_path, Path) else None
    key = mf.sha256_json({"base": (base_m or {}).get("files", recipe.base), "task": recipe.task,
                          "quick_eval": recipe.quick_eval.model_dump(mode="json"),
                          "requests": [(it.id, it.requests, it.gold) for it in data.items], "version": 3})
    return bases.cache_root().parent / "quick_eval" / f"{recipe.task}-{key[:16]}.json"


def compare(peft_model: Any, tok: Any, recipe: AdapterRecipe, mirror: Any = None) -> dict:
    """Quick check of the untrained base and the trained adapter on the same items.

    The base is loaded plain and the adapter folded into its weights (``merge_and_unload``; the adapter files are
    saved already), both in bf16 where this machine runs it natively (else float32): unmerged LoRA wrappers cost
    ~2x per decoding step on a CPU. The base's result is cached per machine (``_base_cache``): it depends only on the
    base and the rendered requests."""
    import json

    import torch

    from . import bases
    from . import manifest as mf
    from .precision import native_dtype

    dtype = native_dtype()
    fn = absolute if recipe.task == "absolute" else pairwise
    data = suite_data(recipe, mirror)
    out: dict[str, Any] = {"dtype": dtype, "task": recipe.task, "source": recipe.quick_eval.source, "file": recipe.quick_eval.file}
    cache = _base_cache(recipe, data)
    if cache.is_file():
        out["base"] = {**json.loads(cache.read_text()), "cached": str(cache)}
    else:
        base_model, _ = bases.load(recipe.base, dtype)
        t = time.time()
        out["base"] = fn(base_model.eval(), tok, recipe, data=data)
        out["base"]["seconds"] = round(time.time() - t, 1)
        mf.write_json(cache, out["base"])
        del base_model
    folded = peft_model.merge_and_unload().to(getattr(torch, dtype)).eval()
    t = time.time()
    out["adapter"] = fn(folded, tok, recipe, data=data)
    out["adapter"]["seconds"] = round(time.time() - t, 1)
    _print_table(out)
    return out


def _print_table(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    keys = ["parse_rate", "pearson", "spearman", "kendall"] if res["task"] == "absolute" else \
        ["parse_rate", "kappa_ab", "kappa_ba", "kappa_both_orders", "position_consistency"]
    table = Table(title=f"quick held-out check ({res['task']}: {res['source']} {res['file'] or ''})")
    table.add_column("model")
    for k in keys + ["n"]:
        table.add_column(k, justify="right")
    for label in ("base", "adapter"):
        r = res[label]
        table.add_row(label, *[f"{r.get(k, float('nan')):.3f}" for k in keys], str(r.get("n")))
    Console().print(table)
