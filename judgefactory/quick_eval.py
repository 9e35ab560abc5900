"""The trainers' checks: the quick held-out check (eval items, base vs adapter) and the learning curve's dev split.

Both run the benchmark suites' own code (``bench.suites`` + ``bench.run.predict`` on the judging engine), in memory.
Quick check (reported, never used to choose anything): absolute: parse rate, Pearson/Spearman/Kendall and the
expected-score Pearson vs the GPT-4 mean score; pairwise: parse rate and Cohen's kappa vs the human verdicts of the
in-distribution BBQ eval pairs, both A/B orders, with bootstrap CIs. Dev split (what recipes are chosen on): the pair
set's template-disjoint test split against its rule labels, or the absolute source's held-out instructions
(``data.dev_fraction``). Unparseable outputs count as errors (never dropped).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import formats, recipes
from .recipes import AdapterRecipe, QuickEval


def _engine(model: Any, tok: Any, batch_size: int) -> Any:
    from .engine import Engine
    from .precision import judge_dtype

    return Engine.from_model(model, tok, batch_size=batch_size, bf16=judge_dtype() == "bfloat16", label="quick-eval")


def _spec(recipe: AdapterRecipe) -> QuickEval:
    """The recipe's ``quick_eval`` block: the check runs only for a recipe that declares one (train.run checks)."""
    assert recipe.quick_eval is not None, f"{recipe.name}: the recipe has no quick_eval block"
    return recipe.quick_eval


def _value(metrics: dict, name: str) -> float:
    v = (metrics.get(name) or {}).get("value")
    return float("nan") if v is None else v


def suite_data(recipe: AdapterRecipe, mirror: Any = None) -> Any:
    """The items the quick check judges: a seeded stratified subset of the absolute source, or the BBQ eval pairs."""
    from .bench import suites

    qe = _spec(recipe)
    if qe.source == "split:test":  # the held-out test split of the recipe's own user source
        return user_split_data(recipe, "test", qe.limit)
    if recipe.task == "absolute":
        rows = suites.absolute_rows(qe.source, qe.file, mirror, recipe.data.max_response_chars)
        return suites.suite_data("quick_eval", "absolute", rows, qe.limit, 0)
    rows = suites.bbq_pair_rows(
        mirror, recipe.data.max_response_chars, file=qe.file or "eval_in_dist", source=qe.source
    )
    return suites.suite_data("bbq_pairs", "bbq_pairs", rows, qe.limit, 0)


def absolute_item(it: Any, clip: int | None) -> Any:
    """A held-out absolute item (``prometheus.AbsoluteItem``) as a suite item: its prompt clipped as in training,
    gold = its mean reference score, stratum = that score rounded."""
    import math

    from .bench import suites
    from .data.prometheus import shorten

    return suites.Item(
        id=it.id,
        cluster=it.group,
        gold=it.mean_score,
        requests={"main": formats.absolute_messages(shorten(it.prompt, clip) if clip else it.prompt)},
        stratum=str(int(math.floor(it.mean_score + 0.5))),
    )


def pair_items(rows: list[dict], clip: int | None) -> list[Any]:
    """Pair-set rows (both orders of each pair) as suite items, in the order their pairs first appear: requests in
    both orders, gold = the A-first label, clustered by question, stratified and bucketed by the row's bucket."""
    from .bench import suites

    by_pair: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_pair.setdefault(r["pair_id"], {})[r["order"]] = r
    return [
        suites.Item(
            id=pid,
            cluster=o["ab"]["question_id"],
            gold=o["ab"]["label"],
            requests={k: formats.bias_messages(formats.pair_prompt(o[k], clip)) for k in ("ab", "ba")},
            stratum=o["ab"]["bucket"],
            meta={"bucket": o["ab"]["bucket"]},
        )
        for pid, o in by_pair.items()
    ]


def user_split_data(recipe: AdapterRecipe, split: str, limit: int | None, clip: int | None = None) -> Any:
    """A split of a recipe's user source as suite data: absolute items scored against the user's scores; pairs in
    both A/B orders against the user's labels (bucketed by label)."""

    from .bench import suites
    from .data import user

    splits = user.recipe_splits(recipe)
    clip = clip or recipe.data.max_response_chars
    idx = splits.index[split]
    fp = mf_hash([splits.table.sha256, split, idx])
    if recipe.task == "absolute":
        items = [absolute_item(it, clip) for it in user.absolute_items(splits.rows, idx, recipe.data.source)]
        rows = suites.Rows(items, [], f"{recipe.data.source}:{split}", fp, labels=f"user scores ({split} split)")
        return suites.suite_data(split, "absolute", rows, limit, 0)
    items = pair_items(user.pair_rows(splits.rows, idx, recipe.data.criterion), clip)
    rows = suites.Rows(items, [], f"{recipe.data.source}:{split}", fp, labels=f"user labels ({split} split)")
    return suites.suite_data(split, "bbq_pairs", rows, limit, 0)


def _predict(
    model: Any, tok: Any, data: Any, max_new_tokens: int, batch_size: int, n_boot: int = 0
) -> tuple[dict, dict, dict]:
    from .bench import run as bench_run
    from .bench import suites

    modes = [bench_run.Mode("greedy", 1, 0.0)]
    rows = bench_run.predict(
        _engine(model, tok, batch_size), data, modes, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    # the BBQ metadata rule is a baseline only where the items are BBQ pairs (a user's pairs have no metadata)
    rule = recipes.training_rule() if all("pair" in it.meta for it in data.items) else None
    metrics, counts = suites.score(data, rows, ["greedy"], suites.Boot(n_boot, training_rule=rule))
    return rows, metrics, counts


def _ci(metrics: dict, name: str) -> list[float] | None:
    return (metrics.get(name) or {}).get("ci")


def absolute(model: Any, tok: Any, recipe: AdapterRecipe, mirror: Any = None, data: Any = None) -> dict:
    """The bench's absolute suite code on the quick-eval source (seeded stratified ``limit`` subset, greedy, no CIs)."""
    data = data if data is not None else suite_data(recipe, mirror)
    qe = _spec(recipe)
    rows, metrics, counts = _predict(model, tok, data, qe.max_new_tokens, qe.batch_size, qe.n_boot)
    out: dict[str, Any] = {
        k: _value(metrics, k) for k in ("pearson", "spearman", "kendall", "parse_rate", "exact_match")
    }
    out.update(n=len(data.items), n_errors=counts["n_parse_errors"], pearson_ci=_ci(metrics, "pearson"))
    if "pearson_expected" in metrics:
        out["pearson_expected"] = _value(metrics, "pearson_expected")
        out["pearson_expected_ci"] = _ci(metrics, "pearson_expected")
    out["values"] = [rows[(it.id, "main", "greedy")]["parsed"][0] for it in data.items]
    out["examples"] = [
        {
            "id": it.id,
            "raw": rows[(it.id, "main", "greedy")]["raw"][0],
            "score": rows[(it.id, "main", "greedy")]["parsed"][0],
            "gold": it.gold,
        }
        for it in data.items[:3]
    ]
    return out


def pairwise(model: Any, tok: Any, recipe: AdapterRecipe, mirror: Any = None, data: Any = None) -> dict:
    """The bench's BBQ pair suite code on the quick-eval pairs: both A/B orders, kappa vs the human verdicts."""
    data = data if data is not None else suite_data(recipe, mirror)
    qe = _spec(recipe)
    rows, metrics, _ = _predict(model, tok, data, qe.max_new_tokens, qe.batch_size, qe.n_boot)
    bias_ci = _ci(metrics, "position_bias_rate")
    verdicts = [rows[(it.id, "ab", "greedy")]["parsed"][0] for it in data.items]
    back = [formats.swap_verdict(rows[(it.id, "ba", "greedy")]["parsed"][0]) for it in data.items]
    n = len(data.items)
    return {
        "n": n,
        "parse_rate": _value(metrics, "parse_rate"),
        "kappa_ab": _value(metrics, "kappa_ab"),
        "kappa_ba": _value(metrics, "kappa_ba"),
        "kappa_both_orders": _value(metrics, "kappa"),
        "kappa_both_orders_ci": _ci(metrics, "kappa"),
        "both_orders_correct": _value(metrics, "both_orders_correct"),
        "position_consistency": 1.0 - _value(metrics, "position_bias_rate"),
        "position_consistency_ci": [1.0 - x for x in reversed(bias_ci)] if bias_ci else None,
        "primacy": _value(metrics, "primacy"),
        "recency": _value(metrics, "recency"),
        "rule_baseline_kappa": _value(metrics, "rule_baseline_kappa"),
        "values": verdicts + [rows[(it.id, "ba", "greedy")]["parsed"][0] for it in data.items],
        "verdict_share": {
            v: (verdicts + back).count(v) / (2 * n) if n else float("nan") for v in ("A", "B", "TIE", None)
        },
        "examples": [
            {"pair_id": it.id, "raw": rows[(it.id, "ab", "greedy")]["raw"][0], "verdict": v, "gold": it.gold}
            for it, v in zip(data.items[:3], verdicts, strict=False)
        ],
    }


def _base_cache(recipe: AdapterRecipe, data: Any) -> Path:
    """Where the untrained base's quick-check result is kept: its answers on fixed requests never change, so they are
    computed once per machine, keyed on the base's files and the rendered requests themselves (prompt templates,
    clipping and items included: an edited template is a new key) plus the decoding settings."""
    from . import bases
    from . import manifest as mf

    base_path = bases.prepare(recipe.base) if recipe.base.startswith("embedded:") else recipe.base
    base_m = mf.read(Path(base_path)) if isinstance(base_path, Path) else None
    from .precision import judge_dtype

    versions = mf.versions()
    key = mf.sha256_json(
        {
            "base": (base_m or {}).get("files", recipe.base),
            "task": recipe.task,
            "quick_eval": _spec(recipe).model_dump(mode="json"),
            "requests": [(it.id, it.requests, it.gold) for it in data.items],
            # what else decides the replies: the judging dtype and the libraries that decode
            "dtype": judge_dtype(),
            "libraries": {k: versions.get(k) for k in ("torch", "transformers", "peft", "tokenizers")},
            "version": 4,
        }
    )
    return bases.cache_root().parent / "quick_eval" / f"{recipe.task}-{key[:16]}.json"


def compare(
    peft_model: Any,
    tok: Any,
    recipe: AdapterRecipe,
    mirror: Any = None,
    training: dict | None = None,
    adapter_dir: Path | None = None,
) -> dict:
    """Quick check of the untrained base and the trained adapter on the same items.

    The base is loaded plain and the adapter folded into its weights (``merge_and_unload``; the adapter files are
    saved already), both in bf16 where this machine runs it natively (else float32): unmerged LoRA wrappers cost
    ~2x per decoding step on a CPU. The base's result is cached per machine (``_base_cache``): it depends only on the
    base and the rendered requests.

    A QLoRA adapter (``train.quantization: 4bit``) is judged as it was trained: unfolded on its 4-bit base, on the
    training device, and the base is that same model with the adapter disabled. Beside it, ``folded``: the adapter
    folded into the full-precision base, which is what a merge receives, judged on the same items, with the share of
    requests on which both give the same parsed answer (``folded_agreement``)."""
    import json

    import torch

    from . import bases
    from . import manifest as mf
    from .precision import judge_dtype

    dtype = judge_dtype()
    fn = absolute if recipe.task == "absolute" else pairwise
    data = suite_data(recipe, mirror)
    out: dict[str, Any] = {
        "dtype": dtype,
        "task": recipe.task,
        "source": _spec(recipe).source,
        "file": _spec(recipe).file,
    }
    if training is not None:
        out["adapter_steps"] = f"{training.get('steps')}/{training.get('max_steps')}"
        out["incomplete"] = not training.get("completed", True)
    if recipe.train.quantization == "4bit":
        return _compare_quantized(peft_model, tok, recipe, data, out, adapter_dir)
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


def _compare_quantized(
    peft_model: Any, tok: Any, recipe: AdapterRecipe, data: Any, out: dict, adapter_dir: Path | None
) -> dict:
    """``compare`` for a QLoRA adapter: base = adapter disabled, adapter = unfolded on the 4-bit base, folded = the
    adapter's files folded into the full-precision base (on the same device), with their agreement."""
    import torch
    from peft import PeftModel

    from . import bases
    from .precision import judge_dtype

    fn = absolute if recipe.task == "absolute" else pairwise
    peft_model.eval()
    with peft_model.disable_adapter():
        out["base"] = fn(peft_model, tok, recipe, data=data)
    out["adapter"] = fn(peft_model, tok, recipe, data=data)
    if adapter_dir is not None:
        device = next(peft_model.parameters()).device
        full, _ = bases.load(recipe.base, judge_dtype())
        folded = PeftModel.from_pretrained(full.to(device), str(adapter_dir)).merge_and_unload().eval()
        out["folded"] = fn(folded, tok, recipe, data=data)
        a, b = out["adapter"]["values"], out["folded"]["values"]
        out["folded_agreement"] = sum(x == y for x, y in zip(a, b, strict=True)) / len(a) if a else None
        del folded, full
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    _print_table(out)
    return out


def _print_table(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    keys = (
        ["parse_rate", "pearson", "spearman", "kendall"]
        if res["task"] == "absolute"
        else ["parse_rate", "kappa_ab", "kappa_ba", "kappa_both_orders", "position_consistency"]
    )
    title = f"quick held-out check ({res['task']}: {res['source']} {res['file'] or ''})"
    if res.get("incomplete"):
        title += f" -- INCOMPLETE adapter ({res['adapter_steps']} steps)"
    table = Table(title=title)
    table.add_column("model")
    for k in keys + ["n"]:
        table.add_column(k, justify="right")
    for label in ("base", "adapter", "folded"):
        if label not in res:
            continue
        r = res[label]
        table.add_row(label, *[f"{r.get(k, float('nan')):.3f}" for k in keys], str(r.get("n")))
    Console().print(table)


# --------------------------------------------------------------------------- the dev split (learning curves)
def dev_data(recipe: AdapterRecipe, mirror: Any = None) -> Any:
    """The dev split as suite data. Pairwise: the pair set's template-disjoint ``test.jsonl``, each pair in both A/B
    orders, gold = its rule label (the rule that labels the training rows). Absolute: the instructions
    ``data.dev_fraction`` holds out of training (``prometheus.dev_split`` with the training seed), gold = GPT-4 mean."""
    import json

    from . import paths
    from .bench import suites
    from .data.prometheus import dev_split, load_absolute

    dev = recipe.dev
    clip = (
        dev.max_response_chars if dev is not None and dev.max_response_chars else None
    ) or recipe.data.max_response_chars
    limit = dev.limit if dev is not None else None
    if recipe.data.source.startswith(("file:", "hub:")):
        return user_split_data(recipe, "dev", limit, clip)
    if recipe.task == "pairwise":
        folder = paths.pair_sets() / recipe.data.source.split(":", 1)[1]
        rows = [json.loads(line) for line in open(folder / "test.jsonl")]
        items = pair_items(sorted(rows, key=lambda r: r["pair_id"]), clip)  # in pair-id order
        return suites.SuiteData(
            "dev",
            "dev_pairs",
            "verdict",
            suites.stratified(items, limit, 0),
            str(folder / "test.jsonl"),
            str(mf_hash(rows)),
            labels="rule labels of the pair set's test split",
        )
    absolute_items, _ = load_absolute(recipe.data.source, recipe.data.file, mirror=mirror)
    _, held = dev_split(absolute_items, recipe.data.dev_fraction, recipe.train.seed)
    out = [absolute_item(it, clip) for it in held]
    return suites.SuiteData(
        "dev",
        "absolute",
        "score",
        suites.stratified(out, limit, 0),
        recipe.data.source,
        str(mf_hash([it.prompt for it in held])),
        labels="GPT-4 mean score of held-out instructions",
    )


def mf_hash(obj: Any) -> str:
    from . import manifest as mf

    return mf.sha256_json(obj)[:16]


DEV_HEADLINE = {"pairwise": "kappa", "absolute": "pearson_expected"}
"""the dev-split figure a learning curve is read on (pairwise: kappa pooled over both orders; absolute: Pearson of
the expected score Σ p(s)·s at ``[RESULT]`` with the GPT-4 mean, TrustJudge's distribution-sensitive score)."""


def dev_scores(model: Any, tok: Any, recipe: AdapterRecipe, data: Any) -> dict[str, Any]:
    """The dev-split figures of ``model`` (greedy, no CIs): pairwise kappa / accuracy / position consistency / parse
    rate against the rule labels; absolute expected-score and argmax Pearson, Spearman, parse rate."""
    from .bench import suites

    dev = recipe.dev
    max_new = dev.max_new_tokens if dev is not None else (recipe.quick_eval.max_new_tokens if recipe.quick_eval else 64)
    bs = dev.batch_size if dev is not None else 16
    if recipe.task == "pairwise":
        from .bench import run as bench_run

        rows = bench_run.predict(
            _engine(model, tok, bs), data, [bench_run.Mode("greedy", 1, 0.0)], max_new_tokens=max_new, batch_size=bs
        )
        v_ab = [rows[(it.id, "ab", "greedy")]["parsed"][0] for it in data.items]
        v_ba = [rows[(it.id, "ba", "greedy")]["parsed"][0] for it in data.items]
        m = suites.pair_metrics(
            v_ab,
            v_ba,
            [it.gold for it in data.items],
            [it.cluster for it in data.items],
            [it.meta["bucket"] for it in data.items],
            suites.Boot(0),
        )
        return {
            "kappa": _value(m, "kappa"),
            "accuracy": _value(m, "accuracy"),
            "position_consistency": 1.0 - _value(m, "position_bias_rate"),
            "parse_rate": _value(m, "parse_rate"),
            "n": len(data.items),
        }
    _, metrics, _ = _predict(model, tok, data, max_new, bs)
    out = {k: _value(metrics, k) for k in ("pearson_expected", "pearson", "spearman", "parse_rate")}
    out["n"] = len(data.items)
    return out
