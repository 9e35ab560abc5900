"""Per-item look at an absolute judge on its recipe's dev split (the held-out MT-Bench instructions).

    python dev/absolute_probe.py absolute-full [CHECKPOINT_DIR ...] [--out probe.json]

Scores the base (no checkpoint given: the recipe's base) and each PEFT checkpoint folder on ``quick_eval.dev_data``,
prints the expected-score Pearson overall, within instruction (each instruction's 4 responses centred), by category,
and beside it the response-length baseline; writes every item's prediction to --out. Developer diagnostics only:
nothing here chooses a recipe.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _resp_len(prompt: str) -> int:
    from judgefactory import formats

    return len(formats.sections(prompt).get("response", ""))


def _within(pred: list[float], gold: list[float], group: list[str]) -> float:
    p, g = np.array(pred, float), np.array(gold, float)
    for key in set(group):
        idx = [i for i, k in enumerate(group) if k == key]
        p[idx] -= p[idx].mean()
        g[idx] -= g[idx].mean()
    return float(pearsonr(p, g)[0]) if p.std() > 0 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("recipe")
    ap.add_argument("checkpoints", nargs="*")
    ap.add_argument("--out", default="absolute_probe.json")
    ap.add_argument("--no-base", action="store_true", help="score only the checkpoints")
    a = ap.parse_args()
    import torch

    from judgefactory import models, quick_eval, recipes
    from judgefactory.bench import suites
    from judgefactory.data.sources import mirror_root

    rec = recipes.load(recipes.find("adapters", a.recipe))
    data = quick_eval.dev_data(rec, mirror_root())
    lens = [_resp_len(it.requests["main"][-1]["content"]) for it in data.items]
    gold = [it.gold for it in data.items]
    groups = [it.cluster for it in data.items]
    print(
        f"dev items {len(gold)}; length baseline r {pearsonr(lens, gold)[0]:.3f}, within-instruction {_within(lens, gold, groups):.3f}"
    )
    out = {}
    for ck in ([] if a.no_base else [None]) + a.checkpoints:
        model, tok = models.load(rec.base, dtype="float32")
        if ck:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, ck).merge_and_unload()
        model = model.to(torch.float32).eval()
        rows, metrics, _ = quick_eval._predict(model, tok, data, rec.dev.max_new_tokens, rec.dev.batch_size)
        exp = [suites.expected_score(rows[(it.id, "main", "greedy")].get("probs")) for it in data.items]
        arg = [rows[(it.id, "main", "greedy")]["parsed"][0] for it in data.items]
        name = ck or "base"
        ok = [i for i, e in enumerate(exp) if e is not None]
        line = {k: (metrics.get(k) or {}).get("value") for k in ("pearson_expected", "pearson", "parse_rate")}
        if ok:
            line["within_expected"] = _within([exp[i] for i in ok], [gold[i] for i in ok], [groups[i] for i in ok])
            line["r_expected_vs_length"] = float(pearsonr([exp[i] for i in ok], [lens[i] for i in ok])[0])
        print(name, json.dumps(line))
        out[name] = {
            "summary": line,
            "items": [
                {
                    "id": it.id,
                    "gold": g,
                    "expected": e,
                    "argmax": s,
                    "len": n,
                    "raw": rows[(it.id, "main", "greedy")]["raw"][0][:300],
                }
                for it, g, e, s, n in zip(data.items, gold, exp, arg, lens, strict=True)
            ],
        }
        Path(a.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
