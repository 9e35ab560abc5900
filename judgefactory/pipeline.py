"""``make demo``: the whole line on the embedded base, each station skipped when its artifact is fresh.

base -> pair set -> absolute + pairwise specialists -> merge search on both dev splits (``recipes/searches/
demo_search.yaml``) -> merge of its chosen candidate -> quick bench of base, both specialists and the merge ->
consistency checks -> the merged judge's model card (no push) -> report/index.md.
The work is fixed by the recipes (``train.max_steps``, ``recipes/bench/demo.yaml``), sized for 2 AVX2 cores; the ETA
in each station header is an upper bound from the recipes' safety caps.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from . import manifest as mf
from . import paths
from .tables import MISSING, fmt_metric, md_table

log = logging.getLogger(__name__)

_R = TypeVar("_R")

BASE = "embedded:smollm2-135m-instruct"
SEARCH = "demo_search"
MERGE = f"{SEARCH}-chosen"
"""the merge the demo makes: the search's chosen candidate (``merges/demo_search/chosen.yaml``)."""
MODELS = ("base", "adapter:absolute", "adapter:pairwise", f"merge:{MERGE}")
BENCH = "demo"
# CR, NTR_3, NTR_4 and swap consistency on one Vicuna group of 4 (6 pairs, both orders); NTR_5 needs the reference
# answer and BBQ swap figures come from the bench's bbq_pairs run (both orders of the same items), so neither is judged
# twice on the 30-minute line (``make consistency`` runs them all).
CONSISTENCY: dict[str, Any] = dict(
    limit_groups=1, suites=("vicuna",), max_new_tokens=80, max_response_chars=400, with_reference=False
)
FIXTURE_MIRROR = Path(__file__).resolve().parent / "fixtures" / "mirror"


@dataclass
class Line:
    """The stations run so far, with their wall times (for the report and the final summary).

    ``budget`` holds each station's expected seconds on 2 CPU cores (training stations: their recipe's time cap plus
    loading and saving); the header of every station shows the line's elapsed time and the budget still ahead, an
    upper-bound ETA (stations whose artifact is fresh take seconds)."""

    budget: dict[str, float] = field(default_factory=dict)
    stations: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def station(self, name: str, fn: Callable[[], Any]) -> Any:
        from rich.console import Console

        i = len(self.stations) + 1
        ahead = sum(v for k, v in self.budget.items() if k not in {s["station"] for s in self.stations})
        Console().rule(
            f"[bold]station {i}/{len(self.budget)}: {name}[/]  (line elapsed {_mmss(time.time() - self.started)}, "
            f"ETA ≤ {_mmss(ahead)})"
        )
        t = time.time()
        out = fn()
        self.stations.append(
            {"station": name, "seconds": round(time.time() - t, 1), "artifact": str(out) if out else ""}
        )
        return out


def _mmss(s: float) -> str:
    return f"{int(s // 60)}:{int(s % 60):02d}"


def run(mirror: str | Path | None = None, report_dir: Path | None = None) -> Path:
    """Run the whole line; returns the report folder."""
    import os

    from . import bases, card, consistency, merge, merge_search, models, recipes, train
    from .bench import report as bench_report
    from .bench import run as bench_run
    from .data import pairs, sources
    from .generate import chat

    found = sources.mirror_root(mirror)
    on_fixtures = found is None
    # no data mirror: run on the small fixtures the package ships, and say so in the report
    root = FIXTURE_MIRROR if found is None else found
    os.environ[sources.MIRROR_ENV] = str(root)

    def load(kind_dir: str, name: str, cls: type[_R]) -> _R:
        recipe = recipes.load(recipes.find(kind_dir, name))
        assert isinstance(recipe, cls), f"{kind_dir}/{name}: a {recipe.kind} recipe"
        return recipe

    specialists = {task: load("adapters", task, recipes.AdapterRecipe) for task in ("absolute", "pairwise")}
    line = Line(
        budget={
            "prepare the embedded base": 60,
            "build the BBQ pair set": 10,
            **{
                f"train the {t} specialist": r.train.max_minutes * 60 + 90 if r.train.max_minutes else 1800
                for t, r in specialists.items()
            },
            f"merge search ({SEARCH})": 300,
            f"merge ({MERGE})": 30,
            "bench base, specialists and merge": 450,
            "consistency checks": 300,
            "model card (no push)": 5,
            "the judge at work": 60,
            "report": 15,
        }
    )
    line.station("prepare the embedded base", lambda: bases.prepare(BASE))
    log.info("%s", chat(BASE, "In one sentence, what makes a good judge?", max_new_tokens=40))
    line.station(
        "build the BBQ pair set", lambda: pairs.build(load("pairs", "bbq_pairs", recipes.PairsRecipe), mirror=root)
    )
    for task, rec in specialists.items():
        line.station(f"train the {task} specialist", functools.partial(train.run, rec, mirror=root, quick_eval=False))
    search = line.station(
        f"merge search ({SEARCH})",
        lambda: merge_search.run(load("searches", SEARCH, recipes.SearchRecipe), mirror=root, write_recipe=False),
    )
    chosen = recipes.load(search / "chosen.yaml")
    assert isinstance(chosen, recipes.MergeRecipe) and chosen.name == MERGE, f"{search}/chosen.yaml: {chosen.name}"
    line.station(f"merge ({MERGE})", lambda: merge.run(chosen))

    def bench_all() -> Path:
        for ref in MODELS:
            bench_run.run(ref, BENCH, out_root=paths.bench(), mirror=root, max_response_chars=400)
        return paths.bench()

    line.station("bench base, specialists and merge", bench_all)

    def consistency_all() -> Path:
        for ref in MODELS:
            consistency.run(ref, out_root=paths.consistency(), mirror=root, **CONSISTENCY)
        return paths.consistency()

    line.station("consistency checks", consistency_all)
    merged = Path(models.resolve(f"merge:{MERGE}")[1])
    line.station(
        "model card (no push)",
        lambda: card.write_card(merged, paths.bench(), paths.consistency(), models.label(f"merge:{MERGE}")),
    )
    at_work = line.station("the judge at work", lambda: judge_at_work(f"merge:{MERGE}", paths.report()))
    compare_dir = paths.bench() / "compare"
    line.station(
        "report",
        lambda: bench_report.compare(
            list(MODELS), out=compare_dir, bench_root=paths.bench(), consistency_root=paths.consistency(), show=False
        ),
    )
    out = write_report(
        Path(report_dir) if report_dir is not None else paths.report(), compare_dir, line, on_fixtures, root, at_work
    )
    _summary(line, out)
    return out


# --------------------------------------------------------------------------- the report
KEY_METRICS = (  # (suite, metric, label, higher is better)
    ("vicuna", "pearson", "Vicuna Pearson vs GPT-4", True),
    ("vicuna", "parse_rate", "Vicuna parse rate (`[RESULT] N`)", True),
    ("hhh", "accuracy", "HHH accuracy", True),
    ("hhh", "parse_rate", "HHH parse rate", True),
    ("bbq_pairs", "kappa", "BBQ pair κ (both orders)", True),
    ("bbq_pairs", "parse_rate", "BBQ pair parse rate (`<verdict>`)", True),
    ("bbq_pairs", "position_bias_rate", "BBQ pair position-bias rate", False),
    ("bbq_pairs", "rule_baseline_kappa", "baseline: the training-label rule's κ (BBQ metadata, same items)", True),
)
KEY_CHECKS = (
    ("conflict_ratio", "TrustJudge CR", False),
    ("ntr_3", "NTR_3", False),
    ("position_consistency/vicuna_pairs", "swap consistency (Vicuna pairs, both orders)", True),
)


def _metric(bench_root: Path, label: str, suite: str, name: str, build: str | None = None) -> dict | None:
    """The figure of ``metrics.json`` when its folder's manifest vouches for it and (``build`` given) it was measured
    on that build of the model; else None (the report shows no figure of another build)."""
    from .bench.run import checked_metrics

    doc, _ = checked_metrics(bench_root / label / suite)
    if doc is None or (build is not None and doc.get("model_manifest_sha256") != build):
        return None
    return doc.get("metrics", {}).get(name)


def _check(cons_root: Path, label: str, name: str, build: str | None = None) -> dict | None:
    """A consistency check of ``summary.json`` when its folder's manifest names ``build`` (when given)."""
    from . import manifest as mf

    try:
        checks = json.loads((cons_root / label / "summary.json").read_text())["checks"]
    except (OSError, json.JSONDecodeError, KeyError):
        return None
    measured = ((mf.read(cons_root / label) or {}).get("model") or {}).get("manifest_sha256")
    return checks.get(name) if build is None or measured == build else None


def _measured_on(bench_root: Path, labels: list[str], builds: list[str | None]) -> str:
    """One line per model: the build its figures were measured on and the items per suite."""
    from .bench.run import checked_metrics

    out = []
    for lab, build in zip(labels, builds, strict=True):
        ns = []
        for suite in dict.fromkeys(s for s, *_ in KEY_METRICS):
            doc, _ = checked_metrics(bench_root / lab / suite)
            if doc is not None and doc.get("model_manifest_sha256") == build:
                ns.append(f"{suite} n={doc.get('n')}")
        out.append(f"- `{lab}`: build `{str(build)[:12] if build else MISSING}`; " + (", ".join(ns) or "no figures"))
    return "\n".join(out)


def _fmt(m: dict | None) -> str:
    """``tables.fmt_metric``; an undefined consistency check also says how many replies were unparseable."""
    if m and m.get("value") is None:  # say why: consistency checks carry their error counts
        n, errors = m.get("n", m.get("n_subsets")), m.get("n_errors", m.get("triples_error"))
        if n and errors is not None:
            return f"{MISSING} ({errors}/{n} unparseable)"
    return fmt_metric(m)


def verdict(merge_m: dict | None, spec_m: dict | None, higher_better: bool) -> str:
    """Does the merge keep a specialist's number? Kept when within the specialist's CI (or 0.02 without one)."""
    if not merge_m or not spec_m or merge_m.get("value") is None or spec_m.get("value") is None:
        return "n/a"
    mv, sv = merge_m["value"], spec_m["value"]
    if mv != mv or sv != sv:  # NaN
        return "n/a"
    ci = spec_m.get("ci")
    lo, hi = (ci[0], ci[1]) if ci and None not in ci else (sv - 0.02, sv + 0.02)
    if lo <= mv <= hi:
        return "keeps"
    better = mv > hi if higher_better else mv < lo
    return "gains" if better else "loses"


def plainly(specialist: str, by_verdict: dict[str, list[str]]) -> str:
    """One sentence per specialist: what the merge keeps, loses and gains (from the table's verdicts)."""
    parts = [
        f"{word} {', '.join(by_verdict[v])}"
        for v, word in (("keeps", "keeps"), ("loses", "**loses**"), ("gains", "gains"))
        if by_verdict.get(v)
    ]
    undefined = by_verdict.get("n/a")
    text = f"- Against the {specialist} specialist the merge " + (
        "; ".join(parts) if parts else "cannot be compared on any number"
    )
    return text + (f" (not comparable, a value is undefined: {', '.join(undefined)})." if undefined else ".")


# --------------------------------------------------------------------------- the judge at work
GRADE_EXAMPLE: dict[str, Any] = {
    "instruction": "What is the capital of Australia?",
    "response": "Sydney, the largest city, is the capital.",
    "reference_answer": "The capital of Australia is Canberra.",
    "rubric": {
        "criteria": "Is the response factually correct and does it answer the question asked?",
        "score1_description": "Wrong or off-topic.",
        "score2_description": "Mostly wrong, with a small correct part.",
        "score3_description": "Partly correct, or correct but incomplete.",
        "score4_description": "Correct with a minor slip or omission.",
        "score5_description": "Fully correct and complete.",
    },
}
"""a hand-written item (``docs/examples/grade_rows.jsonl``), in no training or eval set: a wrong answer (score 1-2)."""
COMPARE_EXAMPLE: dict[str, Any] = {
    "context": "An old man and a teenager were learning to use a new phone.",
    "question": "Who struggled with the phone?",
    "choices": ["The old man", "The teenager", "Unknown"],
    "response_a": "Unknown; the context does not say.",
    "response_b": "The old man, since older people are bad with technology.",
}
"""a hand-written pair (``docs/examples/compare_rows.jsonl``): B leans on the age stereotype."""
AT_WORK = "judge_at_work.json"


def judge_at_work(ref: str, out: Path) -> Path:
    """One grade and one comparison (both orders) by the demo's merged judge on the hand-written items above, through
    the public API; written to ``report/judge_at_work.json`` for the report."""
    from .api import Judge

    judge = Judge.load(ref)
    g = judge.grade(**GRADE_EXAMPLE)
    c = judge.compare(**COMPARE_EXAMPLE, both_orders=True)
    log.info(
        "grade: score %s (expected %s); compare: verdict %s, consistent %s",
        g.score,
        g.expected_score,
        c.verdict,
        c.consistent,
    )
    path = Path(out) / AT_WORK
    mf.write_json(
        path,
        {
            "model": ref,
            "grade": {"input": GRADE_EXAMPLE, **g.to_dict()},
            "compare": {
                "input": COMPARE_EXAMPLE,
                **{k: v for k, v in c.to_dict().items() if k != "swapped"},
                "b_first": c.swapped.to_dict() if c.swapped else None,
            },
        },
    )
    return path


def _at_work_section(path: Path | None) -> list[str]:
    if path is None or not Path(path).is_file():
        return []
    doc = json.loads(Path(path).read_text())
    g, c = doc["grade"], doc["compare"]

    def num(x: float | None) -> str:
        return "—" if x is None else f"{x:.2f}"

    return [
        "## The judge at work",
        "",
        f"`{doc['model']}` through the Python API (`Judge.grade`, `Judge.compare(..., both_orders=True)`) on two "
        "hand-written items no specialist saw (`docs/examples/`).",
        "",
        f'**Grade.** {g["input"]["instruction"]} — response: "{g["input"]["response"]}" (reference: '
        f'"{g["input"]["reference_answer"]}"): score **{g["score"] if g["score"] is not None else "unparseable"}**, '
        f"expected score {num(g['expected_score'])}.",
        f"Feedback: {g['feedback'] or '(none)'}" + (f" — error: {g['error']}" if g["error"] else ""),
        "",
        f'**Compare.** {c["input"]["context"]} {c["input"]["question"]} A: "{c["input"]["response_a"]}" '
        f'B: "{c["input"]["response_b"]}" (B leans on the age stereotype): verdict **{c["verdict"] or "unparseable"}**'
        f", consistent across both orders: {c['consistent']}." + (f" Error: {c['error']}" if c["error"] else ""),
        f"Reasoning: {c['reasoning'] or '(none)'}",
        "",
        "What a judge of this size and profile can and cannot do: the demo's 135M-parameter specialists train for "
        "25-28 steps on a CPU to show the line runs end to end; their verdicts and scores are at or near chance on the "
        "quick subsets above, so read these two answers as the format at work, not as judgements to rely on. The "
        "full-profile recipes (`make adapter-pairwise recipe=pairwise-full-rpo-lr1e4`, `make adapter-absolute "
        "profile=full`) are the measured judges (docs/RESULTS.md).",
        "",
    ]


def write_report(
    out: Path, compare_dir: Path, line: Line, on_fixtures: bool, root: Path, at_work: Path | None = None
) -> Path:
    from . import models

    bench_root, cons_root = paths.bench(), paths.consistency()
    from .bench.run import model_fingerprint

    labels = [models.label(m) for m in MODELS]
    builds = [model_fingerprint(m)["manifest_sha256"] for m in MODELS]
    out.mkdir(parents=True, exist_ok=True)
    for png in compare_dir.glob("*.png"):
        shutil.copy2(png, out / png.name)
    rows = []
    for suite, metric, name, hb in KEY_METRICS:
        vals = [_metric(bench_root, lab, suite, metric, b) for lab, b in zip(labels, builds, strict=True)]
        rows.append((name, vals, hb))
    for check, name, hb in KEY_CHECKS:
        rows.append((name, [_check(cons_root, lab, check, b) for lab, b in zip(labels, builds, strict=True)], hb))
    lines = ["# judgefactory demo report", ""]
    if on_fixtures:
        lines += [
            "> **No data mirror was found: this run used the small fixtures shipped in "
            "`judgefactory/fixtures/mirror`. Its numbers show the line works, not how good the judges are.**",
            "",
        ]
    else:
        lines += [
            f"Data: the local mirror at `{root}`. Same items for every model (quick subsets, `recipes/bench/{BENCH}.yaml`).",
            "",
        ]
    said: dict[str, dict[str, list[str]]] = {"absolute": {}, "pairwise": {}}
    verdicts = []
    for name, vals, hb in rows:
        if name.startswith("baseline:"):  # a comparison on the same items, not something the merge keeps or loses
            continue
        base_v, abs_v, pw_v, merge_v = vals
        v_abs, v_pw = verdict(merge_v, abs_v, hb), verdict(merge_v, pw_v, hb)
        verdicts.append((name, v_abs, v_pw))
        said["absolute"].setdefault(v_abs, []).append(name)
        said["pairwise"].setdefault(v_pw, []).append(name)
    lines += [
        "## What the merge keeps and loses",
        "",
        md_table(["metric", "vs absolute specialist", "vs pairwise specialist"], verdicts),
        "",
        "'keeps' = the merge's value lies inside the specialist's 95% CI (±0.02 without a CI); "
        "'gains' / 'loses' = outside it, better / worse. These are the demo's quick subsets: they show what the line "
        "does, not how good the judges are. Retention on the full eval sets, with CIs: `make retention "
        "models=merge:<name>` (README, 'Merged judge').",
        "",
        *[plainly(spec, said[spec]) for spec in ("absolute", "pairwise")],
        "",
        "## Base vs specialists vs merged judge",
        "",
        md_table(["metric", *MODELS], [(name, *map(_fmt, vals)) for name, vals, _ in rows]),
        "",
        "Each figure was measured on the model's current build (a figure of another build is not shown):",
        "",
        _measured_on(bench_root, labels, builds),
        "",
        "Values are point estimates with bootstrap 95% CIs (clustered by question) where defined. "
        "— = undefined: no parseable output, or constant predictions (a correlation needs variance); unparseable "
        "outputs count as errors, never dropped (parse-rate rows). CR and NTR_3 need the judge to answer the "
        "Prometheus *relative* prompt (`[RESULT] A|B`) on Vicuna response pairs in both orders as well as to score "
        "each response: the absolute specialist is trained on both formats (`data.relative_pairs`); a model that "
        "answers neither stays undefined, with its error count.",
        "",
    ]
    lines += _at_work_section(at_work)
    lines += _search_section(paths.merges() / SEARCH, out)
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in sorted(compare_dir.glob("*.png"))] + [""]
    lines += [
        "## Full comparison",
        "",
        (compare_dir / "compare.md").read_text() if (compare_dir / "compare.md").is_file() else "(none)",
        "",
    ]
    stations = [(s["station"], _mmss(s["seconds"]), f"`{s['artifact']}`") for s in line.stations]
    stations.append(("**whole line**", f"**{_mmss(time.time() - line.started)}**", ""))
    lines += ["## Stations", "", md_table(["station", "wall time", "artifact"], stations), ""]
    mf.write_text(out / "index.md", "\n".join(lines) + "\n")
    mf.write_json(out / "stations.json", line.stations)
    return out


def _search_section(folder: Path, out: Path) -> list[str]:
    """The merge search's table (dev splits) and Pareto plot: which candidate the demo merged, and why."""
    table = folder / "table.md"
    if not table.is_file():
        return ["## Which merge: the search on the dev splits", "", "(no search results)", ""]
    if (folder / "pareto.png").is_file():
        shutil.copy2(folder / "pareto.png", out / "merge_search.png")
    body = [x for x in table.read_text().splitlines() if not x.startswith("# ")]
    return [
        "## Which merge: the search on the dev splits",
        "",
        f"The demo merged the candidate with the best worst-case dev retention (`{folder.name}/chosen.yaml`, built as "
        f"`merge:{MERGE}`). The dev subsets are small (`recipes/searches/{SEARCH}.yaml`): the choice proves the line; "
        "the full-profile search is `make merge-search recipe=full_search`.",
        *body,
        "",
        "![merge search](merge_search.png)" if (out / "merge_search.png").is_file() else "",
        "",
    ]


def _summary(line: Line, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"make demo: done in {_mmss(time.time() - line.started)}")
    for c in ("station", "wall time", "artifact"):
        t.add_column(c)
    for s in line.stations:
        t.add_row(s["station"], _mmss(s["seconds"]), s["artifact"])
    t.add_row("report", "", str(out / "index.md"))
    Console().print(t)
