"""The consistency station: does a judge agree with itself?

``run(model_ref)`` writes ``consistency/<models.label(ref)>/``:

* ``swap.json``: position (swap) consistency on every pairwise suite (hhh, autoj, preference_bench: Prometheus
  relative prompt, ``answer="relative"``; bbq_pairs: the bias prompt, ``answer="verdict"``). Each pair is judged in
  both A/B orders; position consistency = share of (A,B), (B,A), (TIE,TIE); primacy = (A,A), (A,TIE), (TIE,A);
  recency = (B,B), (B,TIE), (TIE,B) (``bench.metrics.swap_metrics``: parse errors stay in the denominator and belong
  to neither). With ``samples > 1`` a second, sampled pass (temperature 1.0, top_p 0.9) gives repetition stability
  (``bench.metrics.repetition_stability``, per item and order).
* ``conflict.json``: TrustJudge score-comparison conflicts on Vicuna / MT-Bench, whose prompts come in groups of four
  responses to the same instruction. Every response is scored with its own absolute prompt, every pair of a group is
  judged with ``formats.relative_prompt`` (instruction, reference answer and the rubric's criterion line cut out of the
  absolute prompt by ``formats.sections``) in BOTH orders, and C = ``pair_outcome(v_ab, v_ba)``. A pair conflicts
  as ``consistency_metrics.is_conflict`` defines it; scores within ``score_tol`` count as tied.
* ``transitivity.json``: NTR_k (k = 3, 4, 5) over a group's k-subsets (``consistency_metrics.ntr_k``), pooled over
  groups (violating subsets / scored subsets), with the triple statuses (valid / cycle / equivalence).
* ``summary.json`` (``{"model": label, "checks": {check: {"value": float | None, ...}}}``, read by the bench report
  and the model card), ``summary.md`` (written by ``consistency_report``), ``manifest.json``.

Remedies, measured on the same judgements (no second generation):

* distribution-sensitive scoring: E[s] under the score-token probabilities read at the ``[RESULT]`` position
  (``Judgement.probs``; ``consistency_metrics.expected_score``) instead of the parsed (argmax) score;
* likelihood-aware aggregation: the verdict probabilities of both orders added (B<->A mapped back) and the argmax
  taken (``consistency_metrics.likelihood_aware_verdict``; totals within ``verdict_tol`` -> TIE).

Decisions (also written into summary.md):

* Errors. An unparseable reply is an error, never dropped: the plain CR uses the valid pairs and reports
  ``n_errors`` and ``cr_errors_as_conflicts``; a k-subset touching an error pair is not scored (``ntr_k``) and the
  counts say how many were left out.
* Fallback when ``probs`` is missing (no ``[RESULT]`` marker or nothing after it): the remedy uses the parsed value
  as a one-point distribution (the argmax score; a one-hot verdict). With both orders one-hot, likelihood-aware
  aggregation reduces exactly to ``pair_outcome``, so a fallback can never make a pair look better than plain
  judging does. Fallbacks are counted (``n_score_fallbacks``, ``n_verdict_fallbacks``). A reply with neither probs
  nor a parse is an error for the remedy too.
* NTR_5. The groups have four responses. With ``with_reference=True`` (default) the prompt's reference answer is
  added as a fifth response (scored and compared like the others, with itself as the reference answer) so NTR_5 is
  defined; CR, NTR_3 and NTR_4 stay on the four real responses (k <= the real responses: real only; otherwise real +
  reference). With ``with_reference=False`` NTR_5 is reported as undefined (value None) with the reason.
* Gate. ``judgefactory.gate`` (run by ``hub.push``) compares the PLAIN figures (how the judge is used by default)
  against a merge recipe's ``gate:`` thresholds; its names are re-exported here.
* Resuming. Every judged reply is appended to ``judged.jsonl`` in the model's folder as each chunk finishes, keyed by
  the model fingerprint, the generation settings and the conversation; a rerun (after a kill, or on the same build
  with the same settings) judges only what is missing. A folder whose manifest names another build is retired (its
  manifest removed) before anything is judged, and rows of another build are never reused.
* Items. Every swap check names the items it covers (``n`` and ``items_sha256``, the hash of the item ids; for the
  score-comparison pairs, the pair ids), so figures can be compared only on the same items.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import formats, leakage
from . import manifest as mf
from .bench.run import items_sha256
from .bench.suites import SUITES
from .consistency_checks import KS, SAMPLING_TEMPERATURE, build_checks, conflict_summary
from .consistency_metrics import (
    expected_score,
    is_conflict,
    likelihood_aware_verdict,
    ntr_k,
    pair_outcome,
    triple_status,
)
from .consistency_report import print_table, summary_md
from .errors import JudgeFactoryError
from .gate import GateError, check_against_specialists, check_gate, gate_for
from .tables import number

__all__ = [
    "ABSOLUTE_SUITES",
    "PAIRWISE_SUITES",
    "DEFAULT_SUITES",
    "ConsistencyError",
    "GateError",
    "Group",
    "load_groups",
    "run",
    "check_gate",
    "check_against_specialists",
    "gate_for",
]

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]
ABSOLUTE_SUITES = tuple(n for n, s in SUITES.items() if s.consistency and s.kind == "absolute")
"""suites with several responses per instruction: scores vs pairwise verdicts (CR) and transitivity (NTR_k)."""
PAIRWISE_SUITES = tuple(n for n, s in SUITES.items() if s.consistency and s.kind != "absolute")
"""suites of A/B pairs: position consistency, primacy, recency (and repetition stability)."""
DEFAULT_SUITES = tuple(n for n, s in SUITES.items() if s.consistency == "default")
REFERENCE = "reference"
SAMPLING_TOP_P = 0.9
SUMMARY = "summary.json"
JOURNAL = "judged.jsonl"
CHUNK = 32
"""conversations per engine call: each chunk's replies reach ``judged.jsonl`` before the next starts."""
_C = {"A": 1, "B": -1, "TIE": 0}


class ConsistencyError(JudgeFactoryError):
    """A consistency run cannot start (unknown suite, bad setting); one line."""


# --------------------------------------------------------------------------- groups (score-comparison data)
@dataclass
class Group:
    """Responses to one instruction: the real ones first (``n_real``), then optionally the reference answer."""

    suite: str
    id: str
    instruction: str
    rubric: str
    reference: str | None
    responses: list[str]
    names: list[str]
    absolute: list[Messages]
    """the absolute-grading conversation of each response (the bench's own prompt for the real ones)."""
    n_real: int

    @property
    def criterion(self) -> str:
        """The rubric's criterion line (prometheus-eval's relative mode keeps only it)."""
        return formats.criterion(self.rubric)

    def relative(self, i: int, j: int) -> Messages:
        """Relative-grading conversation with response ``i`` in slot A and ``j`` in slot B."""
        prompt = formats.relative_prompt(
            self.instruction, self.responses[i], self.responses[j], self.criterion, self.reference
        )
        return formats.relative_messages(prompt)

    def pairs(self) -> list[tuple[int, int]]:
        return list(itertools.combinations(range(len(self.responses)), 2))


def load_groups(
    suite: str,
    limit_groups: int | None = None,
    *,
    mirror: Any = None,
    seed: int = 0,
    max_response_chars: int | None = None,
    with_reference: bool = True,
    data: Any = None,
) -> tuple[list[Group], list[str], str]:
    """(groups, data errors, data fingerprint) of an absolute suite: a seeded choice of ``limit_groups`` groups
    (all when None), in the data's order. Groups with fewer than three responses or a prompt that does not split into
    instruction / response / rubric are reported as errors, not judged. ``data``: the suite already loaded (and
    screened for trained-on items)."""
    from .bench import suites

    if data is None:
        data = suites.load(suite, mirror=mirror, limit=None, seed=seed, max_response_chars=max_response_chars)
    by_group: dict[str, list[Any]] = {}
    for it in data.items:
        by_group.setdefault(it.cluster, []).append(it)
    groups, errors = [], list(data.errors)
    for gid, items in by_group.items():
        secs = [formats.sections(it.requests["main"][-1]["content"]) for it in items]
        bad = [
            it.id
            for it, s in zip(items, secs, strict=False)
            if not all(s.get(k) for k in ("instruction", "response", "rubric"))
        ]
        if bad:
            errors.append(f"{suite} group {gid}: prompt of {bad[0]} lacks an instruction, response or rubric section")
            continue
        if len(items) < 3:
            errors.append(f"{suite} group {gid}: {len(items)} responses (a triple needs 3)")
            continue
        s0 = secs[0]
        reference = s0.get("reference") or None
        responses = [s["response"] for s in secs]
        names = [it.id for it in items]
        absolute = [it.requests["main"] for it in items]
        if with_reference and reference:
            responses.append(reference)
            names.append(REFERENCE)
            absolute.append(
                formats.absolute_messages(
                    formats.absolute_prompt(s0["instruction"], reference, s0["rubric"], reference)
                )
            )
        groups.append(
            Group(suite, str(gid), s0["instruction"], s0["rubric"], reference, responses, names, absolute, len(items))
        )
    if limit_groups is not None and limit_groups < len(groups):
        keep = sorted(random.Random(seed).sample(range(len(groups)), limit_groups))
        groups = [groups[i] for i in keep]
    return groups, errors, data.fingerprint


# --------------------------------------------------------------------------- remedies
def score_probs(probs: Mapping[str, float] | None) -> dict[int, float] | None:
    """The engine's score distribution (keys ``"1"``..``"5"``) keyed by int; None when absent or empty."""
    if not probs:
        return None
    out = {int(k): float(v) for k, v in probs.items() if str(k).strip().isdigit()}
    return out if sum(out.values()) > 0 else None


def remedied_score(probs: Mapping[str, float] | None, value: Any) -> tuple[float | None, str]:
    """(distribution-sensitive score, source): E[s] from the probabilities (``"probs"``); else the parsed score
    (``"fallback"``); else (None, ``"error"``)."""
    p = score_probs(probs)
    if p is not None:
        return expected_score(p), "probs"
    if value is not None:
        return float(value), "fallback"
    return None, "error"


def verdict_distribution(probs: Mapping[str, float] | None, value: Any) -> tuple[dict[str, float] | None, str]:
    """(verdict distribution, source): the read-out probabilities; else the parsed verdict one-hot; else None."""
    if probs and sum(float(v) for v in probs.values()) > 0:
        return {str(k): float(v) for k, v in probs.items()}, "probs"
    if value is not None:
        return {str(value): 1.0}, "fallback"
    return None, "error"


def remedied_outcome(
    p_ab: Mapping[str, float] | None, v_ab: Any, p_ba: Mapping[str, float] | None, v_ba: Any, tol: float = 0.0
) -> tuple[int | None, str]:
    """Likelihood-aware pair outcome C (1 / 0 / -1) and its source (``probs`` when both orders had probabilities,
    ``fallback`` when one-hot parsed verdicts stood in, ``error``)."""
    d_ab, s_ab = verdict_distribution(p_ab, v_ab)
    d_ba, s_ba = verdict_distribution(p_ba, v_ba)
    if d_ab is None or d_ba is None:
        return None, "error"
    return _C[likelihood_aware_verdict(d_ab, d_ba, tol=tol)], ("probs" if s_ab == s_ba == "probs" else "fallback")


# --------------------------------------------------------------------------- small helpers
def _clean(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _scored_subsets(outcomes: Mapping[tuple[int, int], int | None], n: int, k: int) -> int:
    """How many k-subsets of 0..n-1 have an outcome for every pair (``ntr_k``'s denominator)."""
    return sum(
        all(outcomes.get(p) is not None for p in itertools.combinations(s, 2))
        for s in itertools.combinations(range(n), k)
    )


class _Judge:
    """The engine with the run's generation settings; counts every reply and parse error per answer kind (the
    ``parse_rate`` check). With ``journal`` each chunk of replies is appended there as it finishes, and replies already
    in it (same model build, settings and conversation) are reused instead of judged again."""

    def __init__(
        self,
        engine: Any,
        *,
        max_new_tokens: int,
        seed: int,
        progress: bool = False,
        journal: Path | None = None,
        fingerprint: Mapping[str, Any] | None = None,
        chunk: int = CHUNK,
    ) -> None:
        self.engine, self.max_new_tokens, self.seed, self.progress = engine, max_new_tokens, seed, progress
        self.journal, self.chunk = journal, max(1, chunk)
        self.fingerprint = dict(fingerprint or {})
        self.replies: Counter = Counter()
        self.errors: Counter = Counter()
        self.done: dict[str, dict[str, Any]] = read_journal(journal) if journal is not None else {}
        self.judged_now = 0
        self.reused = 0

    def _key(self, messages: Messages, answer: str, samples: int) -> str:
        return mf.sha256_json(
            {
                "model": self.fingerprint,
                "answer": answer,
                "samples": samples,
                "max_new_tokens": self.max_new_tokens,
                "seed": self.seed,
                "messages": messages,
            }
        )[:20]

    def __call__(self, msgs: Sequence[Messages], answer: str, what: str, *, samples: int = 1) -> list[Any]:
        """One greedy reply per conversation; ``samples`` > 1: that many sampled replies each (temperature 1.0, top_p
        0.9, seed + 1). ``what`` names the pass on the progress bar."""
        from .engine import Judgement

        if not msgs:
            return []
        sampled = samples > 1
        keys = [self._key(m, answer, samples) for m in msgs]
        todo = [k for k in range(len(msgs)) if keys[k] not in self.done]
        self.reused += len(msgs) - len(todo)
        for s in range(0, len(todo), self.chunk):
            part = todo[s : s + self.chunk]
            got = self.engine.judge(
                [msgs[k] for k in part],
                max_new_tokens=self.max_new_tokens,
                temperature=SAMPLING_TEMPERATURE if sampled else 0.0,
                n=samples,
                answer=answer,
                top_p=SAMPLING_TOP_P if sampled else None,
                seed=self.seed + 1 if sampled else self.seed,
                progress=what if self.progress else None,
            )
            lines = []
            for k, j in zip(part, got, strict=True):
                row = {"key": keys[k], "model_sha256": self.fingerprint.get("manifest_sha256"), **_judgement_json(j)}
                self.done[keys[k]] = row
                lines.append(json.dumps(row, default=str) + "\n")
            self.judged_now += len(part)
            if self.journal is not None:
                self.journal.parent.mkdir(parents=True, exist_ok=True)
                with open(self.journal, "a") as f:
                    f.write("".join(lines))
        out = []
        for key in keys:
            r = self.done[key]
            j = Judgement(list(r["texts"]), list(r["values"]), r.get("probs"), r.get("probs_mass"))
            self.replies[answer] += len(j.values)
            self.errors[answer] += sum(v is None for v in j.values)
            out.append(j)
        return out


def _judgement_json(j: Any) -> dict[str, Any]:
    return {"texts": list(j.texts), "values": list(j.values), "probs": j.probs, "probs_mass": j.probs_mass}


def read_journal(path: Path | None) -> dict[str, dict[str, Any]]:
    """The replies of ``judged.jsonl`` keyed by their conversation key; a line cut short by a kill is skipped."""
    rows: dict[str, dict[str, Any]] = {}
    if path is None or not Path(path).is_file():
        return rows
    for line in Path(path).read_text().splitlines():
        try:
            r = json.loads(line)
            rows[str(r["key"])] = {**r, "texts": list(r["texts"]), "values": list(r["values"])}
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return rows


def _retire_other_build(folder: Path, build: str | None) -> None:
    """A folder measured on another build of the model vouches for nothing from now on: its manifest goes first."""
    man = mf.read(folder)
    if man is not None and (man.get("model") or {}).get("manifest_sha256") != build:
        log.warning("%s: results of another build of the model are retired (rejudged on this build)", folder)
        (folder / mf.MANIFEST).unlink(missing_ok=True)


# --------------------------------------------------------------------------- swap consistency
def swap_suite(
    judge: _Judge,
    name: str,
    *,
    limit: int | None,
    mirror: Any,
    max_response_chars: int | None,
    samples: int,
    trained: leakage.TrainedOn = leakage.NONE,
    model: str = "",
) -> dict[str, Any]:
    """Position consistency (and repetition stability with ``samples`` > 1) of one pairwise suite, on the items
    ``trained`` (the model's training fingerprints) does not cover."""
    from .bench import metrics as M
    from .bench import suites

    data = suites.load(name, mirror=mirror, limit=limit, seed=judge.seed, max_response_chars=max_response_chars)
    excluded = leakage.screen_suite(
        trained, data, model, mirror=mirror, limit=limit, seed=judge.seed, max_response_chars=max_response_chars
    )
    items = data.items
    msgs = [it.requests["ab"] for it in items] + [it.requests["ba"] for it in items]
    got = judge(msgs, data.answer, f"{name} both orders")
    n = len(items)
    v_ab, v_ba = [j.value for j in got[:n]], [j.value for j in got[n:]]
    out: dict[str, Any] = {
        "suite": name,
        "answer": data.answer,
        "source": data.source,
        "fingerprint": data.fingerprint,
        "data_errors": len(data.errors),
        "excluded_trained_on": excluded,
        "metrics": M.swap_metrics(v_ab, v_ba),
        "items_sha256": items_sha256(it.id for it in items),
    }
    rows = [
        {
            "id": it.id,
            "gold": it.gold,
            "v_ab": a.value,
            "v_ba": b.value,
            "p_ab": a.probs,
            "p_ba": b.probs,
            "text_ab": a.text,
            "text_ba": b.text,
        }
        for it, a, b in zip(items, got[:n], got[n:], strict=False)
    ]
    if samples > 1:
        sampled = judge(msgs, data.answer, f"{name} x{samples} samples", samples=samples)
        out["metrics"]["repetition_stability"] = M.repetition_stability([j.values for j in sampled])
        out["metrics"]["samples"] = samples
        for r, a, b in zip(rows, sampled[:n], sampled[n:], strict=False):
            r["samples_ab"], r["samples_ba"] = a.values, b.values
    out["items"] = rows
    return out


# --------------------------------------------------------------------------- score comparison + transitivity
def judge_groups(
    judge: _Judge, groups: Sequence[Group], *, score_tol: float, verdict_tol: float
) -> tuple[list[dict], list[dict]]:
    """(score rows, pair rows) for every response and every pair of every group, plain and remedied."""
    scored = judge([m for g in groups for m in g.absolute], "score", "absolute scores")
    pairs = [(g, i, j) for g in groups for i, j in g.pairs()]
    verdicts = judge(
        [m for g, i, j in pairs for m in (g.relative(i, j), g.relative(j, i))], "relative", "pairs, both orders"
    )

    scores, it = [], iter(scored)
    by_key: dict[tuple[str, str, int], dict] = {}
    for g in groups:
        for i, name in enumerate(g.names):
            j = next(it)
            e, src = remedied_score(j.probs, j.value)
            row = {
                "suite": g.suite,
                "group": g.id,
                "index": i,
                "name": name,
                "reference": i >= g.n_real,
                "score": j.value,
                "expected": e,
                "remedy_source": src,
                "probs": j.probs,
                "text": j.text,
            }
            scores.append(row)
            by_key[(g.suite, g.id, i)] = row
    rows = []
    for k, (g, i, j) in enumerate(pairs):
        ab, ba = verdicts[2 * k], verdicts[2 * k + 1]
        x, y = by_key[(g.suite, g.id, i)], by_key[(g.suite, g.id, j)]
        c = pair_outcome(ab.value, ba.value)
        c_rem, src = remedied_outcome(ab.probs, ab.value, ba.probs, ba.value, tol=verdict_tol)
        plain_ok = None not in (x["score"], y["score"], c)
        rem_ok = None not in (x["expected"], y["expected"], c_rem)
        rows.append(
            {
                "suite": g.suite,
                "group": g.id,
                "i": i,
                "j": j,
                "reference": j >= g.n_real,
                "v_ab": ab.value,
                "v_ba": ba.value,
                "p_ab": ab.probs,
                "p_ba": ba.probs,
                "s_x": x["score"],
                "s_y": y["score"],
                "c": c,
                "conflict": is_conflict(x["score"], y["score"], c, tol=score_tol)
                if plain_ok and c is not None
                else None,
                "e_x": x["expected"],
                "e_y": y["expected"],
                "c_remedied": c_rem,
                "verdict_source": src,
                "conflict_remedied": is_conflict(x["expected"], y["expected"], c_rem, tol=score_tol)
                if rem_ok and c_rem is not None
                else None,
                "text_ab": ab.text,
                "text_ba": ba.text,
            }
        )
    return scores, rows


def group_transitivity(g: Group, pair_rows: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any]:
    """NTR_k of one group for the outcomes in ``key`` (``c`` or ``c_remedied``), with scored/total subset counts and
    the status of every triple of real responses."""
    outcomes = {(r["i"], r["j"]): r[key] for r in pair_rows}
    out: dict[str, Any] = {}
    for k in KS:
        n = g.n_real if g.n_real >= k else len(g.responses)
        sub = {p: c for p, c in outcomes.items() if p[0] < n and p[1] < n}
        total = math.comb(n, k) if n >= k else 0
        scored = _scored_subsets(sub, n, k) if total else 0
        ratio = ntr_k(sub, n, k) if total else float("nan")
        out[f"ntr_{k}"] = {
            "value": number(ratio),
            "n_subsets": total,
            "n_scored": scored,
            "n_violating": round(ratio * scored) if scored else 0,
            "uses_reference": n > g.n_real,
        }
    triples: Counter[str] = Counter()
    for t in itertools.combinations(range(g.n_real), 3):
        rs = (outcomes.get((t[0], t[1])), outcomes.get((t[1], t[2])), outcomes.get((t[0], t[2])))
        triples["error" if None in rs else triple_status(*rs)] += 1  # type: ignore[arg-type]
    out["triples"] = dict(triples)
    return out


def pooled_transitivity(per_group: Sequence[Mapping[str, Any]], k: int) -> dict[str, Any]:
    """NTR_k pooled over groups: violating subsets / scored subsets."""
    cells = [g[f"ntr_{k}"] for g in per_group]
    scored = sum(c["n_scored"] for c in cells)
    violating = sum(c["n_violating"] for c in cells)
    total = sum(c["n_subsets"] for c in cells)
    return {
        "value": violating / scored if scored else None,
        "n_subsets": total,
        "n_scored": scored,
        "n_violating": violating,
        "n_unscored_errors": total - scored,
        "groups_with_reference": sum(bool(c["uses_reference"]) for c in cells if c["n_subsets"]),
    }


# --------------------------------------------------------------------------- the station
def _label(model_ref: str, engine: Any, backend: str = "transformers") -> str:
    """``models.label(ref)``; an OpenAI-compatible server's model: ``openai__<name>`` (as the bench names it)."""

    from . import models

    if backend == "openai" and engine is None:
        return models.served_label(model_ref)
    try:
        return models.label(model_ref)
    except models.ModelRefError:
        if engine is not None and getattr(engine, "label", None):
            return str(engine.label)
        raise


def run(
    model_ref: str,
    *,
    limit_groups: int | None = 8,
    limit_pairs: int | None = 40,
    suites: Sequence[str] = DEFAULT_SUITES,
    out_root: Path | None = None,
    mirror: Any = None,
    engine: Any = None,
    samples: int = 1,
    max_new_tokens: int = 128,
    max_response_chars: int | None = None,
    batch_size: int = 16,
    seed: int = 0,
    with_reference: bool = True,
    score_tol: float = 0.1,
    verdict_tol: float = 0.1,
    backend: str = "transformers",
    base_url: str | None = None,
    show: bool = True,
    progress: bool = False,
) -> Path:
    """Measure ``model_ref``'s consistency and write ``<out_root>/<label>/``; returns that folder.

    ``limit_groups``: instructions (4 responses each) per absolute suite; ``limit_pairs``: pairs per pairwise suite
    (None: all). A suite whose data is not available (e.g. Preference-Bench off the mirror) is skipped and named in
    the manifest and summary.md. ``engine``: an object with the ``Engine.judge`` interface (else ``Engine.from_ref``).
    """
    from .bench import suites as bench_suites
    from .bench.run import model_fingerprint
    from .data.sources import DataError

    unknown = [s for s in suites if s not in ABSOLUTE_SUITES + PAIRWISE_SUITES]
    if unknown:
        raise ConsistencyError(
            f"unknown consistency suite {unknown[0]!r}; absolute: {', '.join(ABSOLUTE_SUITES)}; "
            f"pairwise: {', '.join(PAIRWISE_SUITES)}"
        )
    if samples < 1:
        raise ConsistencyError(f"samples must be >= 1, got {samples}")
    t0 = time.time()
    label = _label(model_ref, engine, backend)
    skipped, data_errors, fingerprints = [], [], {}
    trained, excluded = leakage.for_model(model_ref), {}

    groups: list[Group] = []
    for name in [s for s in suites if s in ABSOLUTE_SUITES]:
        try:
            data = bench_suites.load(name, mirror=mirror, seed=seed, max_response_chars=max_response_chars)
            excluded[name] = leakage.screen_suite(
                trained, data, label, mirror=mirror, limit=None, seed=seed, max_response_chars=max_response_chars
            )
            got, errs, fp = load_groups(
                name,
                limit_groups,
                mirror=mirror,
                seed=seed,
                max_response_chars=max_response_chars,
                with_reference=with_reference,
                data=data,
            )
        except DataError as err:
            skipped.append(f"{name} ({err})")
            continue
        groups += got
        data_errors += errs
        fingerprints[name] = fp
    absolute_ran = sorted({g.suite for g in groups}, key=list(suites).index)
    if engine is None:  # loaded once the absolute data is known to be there (or pairwise suites are asked for)
        if not groups and not any(s in PAIRWISE_SUITES for s in suites):
            raise DataError("no consistency suite could be loaded: " + "; ".join(skipped))
        from .engine import Engine

        engine = Engine.from_ref(model_ref, backend=backend, batch_size=batch_size, base_url=base_url)
    from . import paths

    folder = Path(out_root if out_root is not None else paths.consistency()) / label
    model_fp = model_fingerprint(model_ref)
    _retire_other_build(folder, model_fp["manifest_sha256"])
    judge = _Judge(
        engine,
        max_new_tokens=max_new_tokens,
        seed=seed,
        progress=progress,
        journal=folder / JOURNAL,
        fingerprint={**model_fp, "engine": dict(getattr(engine, "info", {}) or {})},
        chunk=max(batch_size, 1) * 2,
    )
    scores, pair_rows = judge_groups(judge, groups, score_tol=score_tol, verdict_tol=verdict_tol)

    swaps: dict[str, Any] = {}
    for name in [s for s in suites if s in PAIRWISE_SUITES]:
        try:
            swaps[name] = swap_suite(
                judge,
                name,
                limit=limit_pairs,
                mirror=mirror,
                max_response_chars=max_response_chars,
                samples=samples,
                trained=trained,
                model=label,
            )
        except DataError as err:
            skipped.append(f"{name} ({err})")
            continue
        fingerprints[name] = swaps[name]["fingerprint"]
        excluded[name] = swaps[name]["excluded_trained_on"]
        if swaps[name]["data_errors"]:
            data_errors.append(f"{name}: {swaps[name]['data_errors']} malformed source rows")
    for s in skipped:
        log.warning("skipped %s", s)
    suites_ran = absolute_ran + list(swaps)
    if not suites_ran:
        raise DataError("no consistency suite could be loaded: " + "; ".join(skipped))

    from .bench import metrics as M

    pairs_swaps = {}
    for name in absolute_ran:
        rows = [r for r in pair_rows if r["suite"] == name and not r["reference"]]
        pairs_swaps[f"{name}_pairs"] = {
            "metrics": M.swap_metrics([r["v_ab"] for r in rows], [r["v_ba"] for r in rows]),
            "items_sha256": items_sha256(f"{r['group']}:{r['i']}:{r['j']}" for r in rows),
        }

    per_group: list[dict[str, Any]] = []
    for g in groups:
        rows = [r for r in pair_rows if r["suite"] == g.suite and r["group"] == g.id]
        per_group.append(
            {
                "suite": g.suite,
                "group": g.id,
                "names": g.names,
                "n_real": g.n_real,
                "outcomes": [[r["i"], r["j"], r["c"], r["c_remedied"]] for r in rows],
                "plain": group_transitivity(g, rows, "c"),
                "remedied": group_transitivity(g, rows, "c_remedied"),
            }
        )
    transitivity: dict[str, Any] = {
        "ks": list(KS),
        "with_reference": with_reference,
        "pooled": {},
        "per_suite": {},
        "groups": per_group,
    }
    for key in ("plain", "remedied"):
        cells = [g[key] for g in per_group]
        pooled = {f"ntr_{k}": pooled_transitivity(cells, k) for k in KS}
        pooled["triples"] = dict(sum((Counter(c["triples"]) for c in cells), Counter()))
        transitivity["pooled"][key] = pooled
        for name in absolute_ran:
            sel = [g[key] for g in per_group if g["suite"] == name]
            transitivity["per_suite"].setdefault(name, {})[key] = {f"ntr_{k}": pooled_transitivity(sel, k) for k in KS}

    checks = build_checks(
        swaps,
        pairs_swaps,
        scores,
        pair_rows,
        transitivity,
        judge,
        score_tol=score_tol,
        verdict_tol=verdict_tol,
        with_reference=with_reference,
        absolute_ran=bool(absolute_ran),
    )
    seconds = time.time() - t0
    info = {
        "suites_ran": suites_ran,
        "skipped": skipped,
        "n_groups": {s: sum(g.suite == s for g in groups) for s in absolute_ran},
        "limit_pairs": limit_pairs,
        "max_new_tokens": max_new_tokens,
        "max_response_chars": max_response_chars,
        "samples": samples,
        "seconds": seconds,
        "score_tol": score_tol,
        "verdict_tol": verdict_tol,
        "with_reference": with_reference,
        "data_errors": len(data_errors),
    }
    conflict = {
        "score_tol": score_tol,
        "verdict_tol": verdict_tol,
        "pooled": conflict_summary([r for r in pair_rows if not r["reference"]], score_tol),
        "per_suite": {
            s: conflict_summary([r for r in pair_rows if r["suite"] == s and not r["reference"]], score_tol)
            for s in absolute_ran
        },
        "with_reference": conflict_summary(pair_rows, score_tol) if with_reference else None,
        "scores": scores,
        "pairs": pair_rows,
    }
    swap_doc = {"suites": swaps, "score_comparison_pairs": pairs_swaps}
    summary = {"model": label, "checks": checks}

    with mf.atomic_dir(folder) as tmp:
        mf.write_text(
            tmp / JOURNAL,
            "".join(
                json.dumps(r, default=str) + "\n"
                for r in judge.done.values()
                if r.get("model_sha256") == model_fp["manifest_sha256"]
            ),
        )
        mf.write_json(tmp / "swap.json", _clean(swap_doc))
        mf.write_json(tmp / "conflict.json", _clean(conflict))
        mf.write_json(tmp / "transitivity.json", _clean(transitivity))
        mf.write_json(tmp / SUMMARY, _clean(summary))
        mf.write_text(tmp / "summary.md", summary_md(label, checks, info))
        mf.finalize(
            tmp,
            {
                "kind": "consistency",
                "model": {**model_fp, "label": label},
                "judged_now": judge.judged_now,
                "reused": judge.reused,
                "engine": dict(getattr(engine, "info", {}) or {}),
                "suites": list(suites),
                **info,
                "limit_groups": limit_groups,
                "seed": seed,
                "data": fingerprints,
                "excluded_trained_on": excluded,
                "data_error_examples": data_errors[:5],
                "seconds": round(seconds, 1),
            },
        )
    if show:
        print_table(label, checks)
    return folder
