"""TrustJudge consistency metrics (Wang et al. 2025, arXiv 2509.21117) as pure functions.

* Score-comparison conflicts: a pairwise verdict that disagrees with the two absolute scores.
* Pairwise transitivity: cycles and broken equivalences among triples; NTR_k over k-subsets.
* Remedies: distribution-sensitive (expected) scores and likelihood-aware pair aggregation.

Pair outcomes use C in {1, 0, -1}: 1 = the first response (x) wins, -1 = y wins, 0 = tie.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

__all__ = [
    "pair_outcome",
    "is_conflict",
    "conflict_ratio",
    "triple_status",
    "ntr_k",
    "expected_score",
    "likelihood_aware_verdict",
]

_VERDICTS = ("A", "B", "TIE")


def _check_verdict(v: str | None) -> None:
    if v is not None and v not in _VERDICTS:
        raise ValueError(f"verdict must be 'A', 'B', 'TIE' or None, got {v!r}")


def pair_outcome(v_ab: str | None, v_ba: str | None) -> int | None:
    """Two-order pair outcome C: 1 if x wins in both orders, -1 if y does, else 0.

    ``v_ab`` is the verdict with x in slot A, ``v_ba`` the verdict on the swapped prompt (x in
    slot B), in that prompt's own letters. ("A", "B") -> 1; ("B", "A") -> -1; any other parsed
    combination (disagreement or a tie) -> 0; None if either verdict is unparseable.
    """
    _check_verdict(v_ab)
    _check_verdict(v_ba)
    if v_ab is None or v_ba is None:
        return None
    if v_ab == "A" and v_ba == "B":
        return 1
    if v_ab == "B" and v_ba == "A":
        return -1
    return 0


def is_conflict(s_x: float, s_y: float, c: int, tol: float = 0.0) -> bool:
    """TrustJudge score-comparison conflict.

    (S_x > S_y and C <= 0) or (S_x < S_y and C >= 0) or (S_x = S_y and C != 0), where scores with
    |S_x - S_y| <= ``tol`` count as equal (useful for continuous expected scores).
    """
    if c not in (1, 0, -1):
        raise ValueError(f"c must be 1, 0 or -1, got {c!r}")
    if tol < 0:
        raise ValueError("tol must be >= 0")
    diff = float(s_x) - float(s_y)
    if abs(diff) <= tol:
        return c != 0
    if diff > 0:
        return c <= 0
    return c >= 0


def conflict_ratio(items: Sequence[Mapping[str, Any]], tol: float = 0.0) -> dict[str, float]:
    """Conflict ratio over pairs, each a mapping with ``s_x``, ``s_y`` and ``c``.

    A pair whose score or outcome is None is an error. ``cr`` = conflicts / valid pairs (errors
    are NOT in this denominator); ``cr_errors_as_conflicts`` = (conflicts + errors) / all pairs,
    the pessimistic figure. Both nan when their denominator is 0.
    """
    n = len(items)
    n_errors = 0
    n_conflicts = 0
    for it in items:
        s_x, s_y, c = it.get("s_x"), it.get("s_y"), it.get("c")
        if s_x is None or s_y is None or c is None:
            n_errors += 1
            continue
        n_conflicts += int(is_conflict(s_x, s_y, c, tol=tol))
    n_valid = n - n_errors
    return {
        "cr": n_conflicts / n_valid if n_valid else float("nan"),
        "cr_errors_as_conflicts": (n_conflicts + n_errors) / n if n else float("nan"),
        "n": n,
        "n_valid": n_valid,
        "n_conflicts": n_conflicts,
        "n_errors": n_errors,
    }


TripleStatus = Literal["valid", "cycle", "equivalence"]


def triple_status(r_xy: int, r_yz: int, r_xz: int) -> TripleStatus:
    """Classify a triple of pair outcomes (1 = first wins, 0 = tie, -1 = second wins).

    A triple is "valid" when some weak order (ranking with ties) of x, y, z produces all three
    outcomes: 13 of the 27 triples. The 14 violations split as:

    * "equivalence": two ties and one strict outcome, e.g. x = y, y = z but x != z (6 triples);
    * "cycle": the strict preferences cannot be ordered, e.g. x > y > z > x, or x > y > z with
      x = z or x < z (8 triples: 2 strict cycles, 6 with one tie).

    (The TrustJudge reference script labels the one-tie chains "x > y, y > z, x = z" as "equal"
    in some orientations and "circle" in others; the set of 14 violations is the same.)
    """
    for r in (r_xy, r_yz, r_xz):
        if r not in (1, 0, -1):
            raise ValueError(f"outcomes must be 1, 0 or -1, got {(r_xy, r_yz, r_xz)}")
    # Consistent iff some assignment of ranks (0..2, ties allowed) reproduces all three outcomes.
    sign = lambda d: (d > 0) - (d < 0)  # noqa: E731
    for rx, ry, rz in itertools.product(range(3), repeat=3):
        if (sign(rx - ry), sign(ry - rz), sign(rx - rz)) == (r_xy, r_yz, r_xz):
            return "valid"
    ties = [r_xy, r_yz, r_xz].count(0)
    return "equivalence" if ties == 2 else "cycle"


def _outcome(outcomes: Mapping[tuple[int, int], int | None], i: int, j: int) -> int | None:
    """outcomes[(i, j)] for i < j; falls back to -outcomes[(j, i)]."""
    if (i, j) in outcomes:
        return outcomes[(i, j)]
    if (j, i) in outcomes:
        r = outcomes[(j, i)]
        return None if r is None else -r
    return None


def ntr_k(outcomes: Mapping[tuple[int, int], int | None], n: int, k: int) -> float:
    """Non-transitivity ratio NTR_k for one question with ``n`` responses (indices 0..n-1).

    Share of the k-subsets of responses that contain at least one violating triple
    (``triple_status`` != "valid"). ``outcomes[(i, j)]`` for i < j is 1 if i wins, -1 if j wins,
    0 for a tie. A subset with a missing or None outcome for any of its pairs is left out of the
    denominator (as in the TrustJudge script). nan when no subset can be scored.
    """
    if k < 3:
        raise ValueError("k must be >= 3 (a violation needs a triple)")
    if n < k:
        return float("nan")
    status: dict[tuple[int, int, int], bool | None] = {}
    for a, b, c in itertools.combinations(range(n), 3):
        rs = (_outcome(outcomes, a, b), _outcome(outcomes, b, c), _outcome(outcomes, a, c))
        status[(a, b, c)] = None if None in rs else triple_status(*rs) != "valid"  # type: ignore[arg-type]
    n_scored = 0
    n_violating = 0
    for subset in itertools.combinations(range(n), k):
        flags = [status[t] for t in itertools.combinations(subset, 3)]
        if None in flags:
            continue
        n_scored += 1
        n_violating += int(any(flags))
    return n_violating / n_scored if n_scored else float("nan")


def expected_score(probs: Mapping[int, float] | Sequence[float], scores: Sequence[int] = (1, 2, 3, 4, 5)) -> float:
    """Distribution-sensitive score: E[s] under the judge's probabilities of the score tokens.

    ``probs`` maps score -> probability (other keys are ignored), or is a list whose i-th entry
    is the probability of ``scores[i]`` (1..5 by default). The probabilities of the score tokens
    are renormalized to sum to 1 (the rest of the vocabulary is dropped) before the expectation.
    """
    if isinstance(probs, Mapping):
        pairs = [(int(s), float(probs.get(s, 0.0))) for s in scores]
    else:
        if len(probs) != len(scores):
            raise ValueError(f"expected {len(scores)} probabilities, got {len(probs)}")
        pairs = [(int(s), float(p)) for s, p in zip(scores, probs, strict=False)]
    if any(p < 0 or not math.isfinite(p) for _, p in pairs):
        raise ValueError("probabilities must be finite and >= 0")
    total = sum(p for _, p in pairs)
    if total <= 0:
        raise ValueError("no probability mass on the score tokens")
    return sum(s * p for s, p in pairs) / total


def likelihood_aware_verdict(p_ab: Mapping[str, float], p_ba: Mapping[str, float], tol: float = 0.0) -> str:
    """TrustJudge likelihood-aware aggregation of a pair judged in both orders.

    ``p_ab`` holds the verdict probabilities on the original order, ``p_ba`` those on the swapped
    prompt in its own letters; p_ba's A and B are swapped back and the two are added per verdict
    (keys "A", "B", "TIE"; "C" is read as "TIE"; other keys are ignored). Returns the argmax.
    Tie-breaking is deterministic: if the two best totals differ by at most ``tol`` (exactly equal
    when tol = 0), the answer is "TIE", mirroring the reference script's equality tolerance.
    """
    total = {"A": 0.0, "B": 0.0, "TIE": 0.0}
    swap = {"A": "B", "B": "A", "TIE": "TIE", "C": "TIE"}
    for d, swapped in ((p_ab, False), (p_ba, True)):
        for key, p in d.items():
            label = "TIE" if key == "C" else key
            if label not in total:
                continue
            total[swap[label] if swapped else label] += float(p)
    ranked = sorted(total.items(), key=lambda kv: kv[1], reverse=True)
    (best, p1), (_, p2) = ranked[0], ranked[1]
    if p1 - p2 <= tol:
        return "TIE"
    return best
