"""Station 2b: search merge recipes on judgment, not format.

``run(search) -> merges/<search>/`` reads top to bottom:

1. the dev splits of both skills, from the specialists' own recipes: the pairwise specialist's pair-set test split
   (template-disjoint, rule labels) and the absolute specialist's held-out instructions (``data.dev_fraction``).
   Never an eval set (the 240 human-labelled pairs, the religion pairs, Vicuna): a test checks the files read;
2. the reference points, scored on both dev splits: each specialist and the joint-training baseline;
3. every candidate (method x weight x density) merged through mergekit (``merge.run``: the LoRA fold cache is reused
   across candidates), scored on both dev splits, its checkpoint deleted; one JSON line per candidate in
   ``results.jsonl``, so a rerun skips what is scored and an interrupted search resumes;
4. retention per skill = candidate / specialist on the dev headline (pairwise kappa; absolute expected-score Pearson);
   the chosen candidate maximises the worse of the two (ties: the better sum);
5. ``table.md``, ``pareto.png`` (x: absolute dev, y: pairwise dev; specialists, joint baseline and the chosen
   candidate marked), ``chosen.yaml`` (a merge recipe named ``<search>-chosen``) and ``manifest.json``, all in the
   search's own folder: the search never writes into the tracked ``recipes/`` tree. ``make merge
   recipe=merges/<search>/chosen.yaml`` builds the choice; a choice worth keeping is copied into ``recipes/merges/``
   by hand and committed (``recipes/merges/full_search-chosen.yaml`` is one).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, cast

import yaml

from . import manifest as mf
from . import paths
from .errors import JudgeFactoryError
from .recipes import AdapterRecipe, DevSpec, MergeRecipe, SearchRecipe
from .tables import fmt, md_table

log = logging.getLogger(__name__)

HEADLINE = {"absolute": "pearson_expected", "pairwise": "kappa"}
RESULTS = "results.jsonl"
KEEP = 0.9
"""the chosen recipe's push gate: the merge keeps this share of each specialist's measured figures."""


class SearchError(JudgeFactoryError):
    """A merge search cannot run (missing specialist, a specialist without a dev split)."""


def _specialist(name: str, task: str) -> tuple[AdapterRecipe, dict[str, Any]]:
    folder = paths.adapters() / name
    m = mf.read(folder)
    if m is None:
        raise SearchError(f"adapter {name!r} not found at {folder}: train it first (make adapter-{task} ...)")
    recipe = AdapterRecipe.model_validate(m["recipe"])
    if recipe.task != task:
        raise SearchError(f"adapter {name!r} is a {recipe.task} adapter, the search needs it as the {task} specialist")
    if task == "absolute" and not recipe.data.dev_fraction:
        raise SearchError(
            f"adapter {name!r} has no dev split (data.dev_fraction): the search scores on dev splits only"
        )
    return recipe, m


def candidates(search: SearchRecipe) -> list[tuple[str, MergeRecipe]]:
    """(id, merge recipe) for every method x weight x density of the search, named ``<search>-<id>``."""
    out = []
    for fam in search.candidates:
        for w in fam.weights:
            pw = fam.pairwise_weight if fam.pairwise_weight is not None else round(1.0 - w, 10)
            for d in fam.densities if fam.method in ("ties", "dare_linear") else [None]:
                cid = f"{fam.method}-a{w:.2f}-p{pw:.2f}" + (f"-d{d:.2f}" if d is not None else "")
                models = [{"adapter": search.absolute, "weight": w}, {"adapter": search.pairwise, "weight": pw}]
                if d is not None:
                    for m in models:
                        m["density"] = d
                spec: dict[str, Any] = {
                    "kind": "merge",
                    "name": f"{search.name}-{cid}",
                    "method": fam.method,
                    "base": search.base,
                    "models": models,
                    "parameters": dict(fam.parameters),
                    "dtype": search.dtype,
                }
                if fam.method == "nuslerp":
                    spec["use_base"] = fam.use_base
                out.append((cid, MergeRecipe.model_validate(spec)))
    return out


def dev_splits(search: SearchRecipe, mirror: Any = None) -> dict[str, tuple[AdapterRecipe, Any]]:
    """task -> (the specialist's recipe, its dev split as suite data)."""
    return {
        task: dev_split(search, _specialist(name, task)[0], mirror)
        for task, name in (("absolute", search.absolute), ("pairwise", search.pairwise))
    }


def dev_split(search: SearchRecipe, recipe: AdapterRecipe, mirror: Any = None) -> tuple[AdapterRecipe, Any]:
    """(the specialist's recipe sized by the search's ``dev`` limits, its dev split as suite data)."""
    from .quick_eval import dev_data

    limit = search.dev.absolute_limit if recipe.task == "absolute" else search.dev.pairwise_limit
    # a specialist without a learning curve (the demo's) is judged as its quick check judges: same answer length
    quick = {"max_new_tokens": recipe.quick_eval.max_new_tokens} if recipe.quick_eval else {}
    dev = recipe.dev or DevSpec(steps=[recipe.train.max_steps], **quick)
    dev = dev.model_copy(update={"limit": limit, "batch_size": search.dev.batch_size})
    recipe = recipe.model_copy(update={"dev": dev})
    return recipe, dev_data(recipe, mirror)


def score(model: Any, tok: Any, splits: dict[str, tuple[AdapterRecipe, Any]]) -> dict[str, dict[str, Any]]:
    """Both skills' dev figures of one loaded model."""
    from .quick_eval import dev_scores

    return {task: dev_scores(model, tok, recipe, data) for task, (recipe, data) in splits.items()}


def retention(scores: dict[str, dict], reference: dict[str, dict]) -> dict[str, float | None]:
    """Per skill: candidate / specialist on the dev headline, the absolute Pearson times the parse rate (an answer that
    does not parse carries no judgment: a Pearson over the third of the items that parse is not a kept skill). None where the
    specialist's value is not positive: a ratio to zero or a negative correlation says nothing."""
    out: dict[str, float | None] = {}
    for task, key in HEADLINE.items():
        v, ref = _covered(scores[task], task, key), _covered(reference[task], task, key)
        ok = v is not None and ref is not None and v == v and ref == ref and ref > 0
        out[task] = v / ref if ok and v is not None and ref is not None else None
    return out


def _covered(scores: dict[str, Any], task: str, key: str) -> float | None:
    """The headline over all items: the Pearson (over parsed items only) x the parse rate; kappa already counts an
    unparsed verdict as an error label (bench.metrics.cohen_kappa)."""
    v, parsed = scores.get(key), scores.get("parse_rate")
    if task != "absolute":
        return v
    return None if v is None or parsed is None else v * parsed


def worst(ret: dict[str, float | None]) -> float:
    vals = [v for v in ret.values() if v is not None]
    return min(vals) if vals and len(vals) == len(ret) else float("-inf")


def _read(path: Path) -> dict[str, dict[str, Any]]:
    out = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
                out[r["id"]] = r
            except (json.JSONDecodeError, KeyError):
                continue
    return out


def run(search: SearchRecipe, *, mirror: Any = None, force: bool = False, write_recipe: bool = False) -> Path:
    """Run (or resume) the search; returns ``merges/<search>/`` (its choice: ``chosen.yaml`` there).
    ``write_recipe`` is accepted for callers that still pass it and changes nothing: no search writes ``recipes/``."""
    from . import merge, models

    folder = paths.merges() / search.name
    folder.mkdir(parents=True, exist_ok=True)
    splits = dev_splits(search, mirror)
    dev_key = mf.sha256_json({t: [(it.id, it.requests) for it in d.items] for t, (_, d) in splits.items()})[:16]
    done = {} if force else _read(folder / RESULTS)

    def record(row: dict[str, Any]) -> None:
        done[row["id"]] = row
        with open(folder / RESULTS, "a") as f:
            f.write(json.dumps(row) + "\n")

    # 2. reference points
    refs = [("specialist:absolute", search.absolute), ("specialist:pairwise", search.pairwise)]
    if search.joint:
        refs.append(("joint", search.joint))
    for rid, name in refs:
        ref = f"adapter:{name}"
        fp = (
            mf.sha256_file(paths.adapters() / name / mf.MANIFEST)
            if (paths.adapters() / name / mf.MANIFEST).is_file()
            else None
        )
        if fp is None:
            raise SearchError(f"adapter {name!r} not found at {paths.adapters() / name}")
        key = mf.sha256_json({"model": fp, "dev": dev_key})[:16]
        if done.get(rid, {}).get("key") == key:
            continue
        t0 = time.time()
        model, tok = models.load(ref)
        record(
            {
                "id": rid,
                "key": key,
                "model": ref,
                "scores": score(model, tok, splits),
                "seconds": round(time.time() - t0, 1),
            }
        )
        del model
    reference = {
        "absolute": done["specialist:absolute"]["scores"]["absolute"],
        "pairwise": done["specialist:pairwise"]["scores"]["pairwise"],
    }

    # 3. candidates: merge, score, delete the checkpoint
    scratch = folder / ".candidates"
    for cid, recipe in candidates(search):
        parents = [mf.sha256_file(paths.adapters() / cast(str, m.adapter) / mf.MANIFEST) for m in recipe.models]
        key = mf.sha256_json({"recipe": recipe.model_dump(mode="json"), "parents": parents, "dev": dev_key})[:16]
        if done.get(cid, {}).get("key") == key:
            continue
        t0 = time.time()
        out = merge.run(recipe, merges_dir=scratch, quiet=True)
        merged_s = time.time() - t0
        model, tok = models.load(str(out))
        scores = score(model, tok, splits)
        del model
        shutil.rmtree(out, ignore_errors=True)
        record(
            {
                "id": cid,
                "key": key,
                "recipe": recipe.model_dump(mode="json"),
                "scores": scores,
                "retention": retention(scores, reference),
                "merge_seconds": round(merged_s, 1),
                "seconds": round(time.time() - t0, 1),
            }
        )
        log.info(
            "%s: %s: absolute dev %s (parse rate %s), pairwise dev %s",
            search.name,
            cid,
            fmt(scores["absolute"].get("pearson_expected")),
            fmt(scores["absolute"].get("parse_rate")),
            fmt(scores["pairwise"].get("kappa")),
        )
    shutil.rmtree(scratch, ignore_errors=True)

    # 4. the choice, 5. the files
    rows = [done[cid] for cid, _ in candidates(search)]
    for r in rows:
        r["retention"] = retention(r["scores"], reference)
    chosen = max(rows, key=lambda r: (worst(r["retention"]), sum(v or 0.0 for v in r["retention"].values())))
    # its push gate follows the specialists: keep >= 90% of each one's own measured figures (D22)
    chosen_recipe = {**chosen["recipe"], "name": f"{search.name}-chosen", "gate": {"keep_of_specialists": KEEP}}
    chosen_recipe = MergeRecipe.model_validate(chosen_recipe).model_dump(mode="json", exclude_none=True)
    header = (
        f"# Chosen by the merge search {search.name!r} (recipes/searches/{search.name}.yaml) on the dev splits of both\n"
        f"# skills: {chosen['id']}, retention absolute {fmt(chosen['retention']['absolute'])}, "
        f"pairwise {fmt(chosen['retention']['pairwise'])} (best worst-case). merges/{search.name}/table.md has every candidate.\n"
    )
    text = header + yaml.safe_dump(chosen_recipe, sort_keys=False)
    mf.write_text(folder / "chosen.yaml", text)
    refs_rows = [done[rid] for rid, _ in refs]
    mf.write_text(folder / "table.md", table(search, rows, refs_rows, chosen["id"], reference))
    pareto(folder / "pareto.png", rows, refs_rows, chosen["id"], search.name)
    mf.write_json(
        folder / "manifest.json",
        {
            "kind": "search",
            "name": search.name,
            "recipe": search.model_dump(mode="json"),
            "dev_key": dev_key,
            "dev_splits": {
                t: {"source": d.source, "items": len(d.items), "labels": d.labels} for t, (_, d) in splits.items()
            },
            "reference": reference,
            "references": refs_rows,
            "candidates": rows,
            "chosen": {
                "id": chosen["id"],
                "recipe": chosen_recipe,
                "scores": chosen["scores"],
                "retention": chosen["retention"],
            },
            "created": mf.now(),
            "versions": mf.versions(),
        },
    )
    return folder


def table(search: SearchRecipe, rows: list[dict], refs: list[dict], chosen: str, reference: dict) -> str:
    """The search as Markdown: reference points, then every candidate with both dev figures and retentions."""
    header = [
        "model",
        "absolute dev: expected-score Pearson",
        "argmax Pearson",
        "parse",
        "pairwise dev: kappa",
        "position consistency",
        "parse",
        "retention absolute",
        "retention pairwise",
    ]
    cells = []
    for r in refs + rows:
        a, p = r["scores"]["absolute"], r["scores"]["pairwise"]
        ret = r.get("retention") or retention(r["scores"], reference)
        figures = [a.get("pearson_expected"), a.get("pearson"), a.get("parse_rate"), p.get("kappa")]
        figures += [p.get("position_consistency"), p.get("parse_rate"), ret["absolute"], ret["pairwise"]]
        cells.append((f"**{r['id']}** (chosen)" if r["id"] == chosen else r["id"], *map(fmt, figures)))
    lines = [f"# Merge search `{search.name}` (dev splits only)", "", md_table(header, cells)]
    lines += [
        "",
        "Retention = candidate / specialist on the dev headline (absolute: expected-score Pearson with the GPT-4 mean "
        "x parse rate; pairwise: kappa against the rule labels, both A/B orders, unparsed = an error label). Chosen: the best worst-case "
        "retention.",
    ]
    return "\n".join(lines) + "\n"


def pareto(path: Path, rows: list[dict], refs: list[dict], chosen: str, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def xy(r: dict) -> tuple[float, float]:  # what the choice reads (``_covered``); a missing figure plots at 0
        a = _covered(r["scores"]["absolute"], "absolute", HEADLINE["absolute"])
        p = _covered(r["scores"]["pairwise"], "pairwise", HEADLINE["pairwise"])
        return (a if a is not None and a == a else 0.0), (p if p is not None and p == p else 0.0)

    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for r in rows:
        x, y = xy(r)
        ax.scatter(
            x, y, color="tab:red" if r["id"] == chosen else "tab:blue", s=60 if r["id"] == chosen else 25, zorder=3
        )
        ax.annotate(r["id"], (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    marks = {
        "specialist:absolute": ("*", "tab:green"),
        "specialist:pairwise": ("*", "tab:purple"),
        "joint": ("^", "tab:orange"),
    }
    for r in refs:
        x, y = xy(r)
        m, c = marks.get(r["id"], ("s", "black"))
        ax.scatter(x, y, marker=m, color=c, s=160, label=r["id"], zorder=4)
    ax.set(
        xlabel="absolute dev: expected-score Pearson x parse rate",
        ylabel="pairwise dev: kappa (both orders)",
        title=f"merge search {title} (red: chosen)",
    )
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
