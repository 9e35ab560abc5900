"""Unit tests for judgefactory.consistency_metrics (TrustJudge). Expected values are by hand."""

from __future__ import annotations

import itertools
import math

import pytest

from judgefactory.consistency_metrics import (
    conflict_ratio,
    expected_score,
    is_conflict,
    likelihood_aware_verdict,
    ntr_k,
    pair_outcome,
    triple_status,
)


def test_pair_outcome_all_combinations() -> None:
    table = {
        ("A", "B"): 1,  # x wins in both orders
        ("B", "A"): -1,  # y wins in both orders
        ("A", "A"): 0,  # position flip -> tie
        ("B", "B"): 0,
        ("TIE", "TIE"): 0,
        ("A", "TIE"): 0,
        ("TIE", "B"): 0,
        ("B", "TIE"): 0,
        ("TIE", "A"): 0,
    }
    for (a, b), c in table.items():
        assert pair_outcome(a, b) == c, (a, b)
    assert pair_outcome(None, "A") is None
    assert pair_outcome("A", None) is None
    with pytest.raises(ValueError):
        pair_outcome("C", "A")


def test_is_conflict_definition() -> None:
    # S_x > S_y: only C = 1 is consistent
    assert is_conflict(5, 3, 1) is False
    assert is_conflict(5, 3, 0) is True
    assert is_conflict(5, 3, -1) is True
    # S_x < S_y: only C = -1 is consistent
    assert is_conflict(3, 5, -1) is False
    assert is_conflict(3, 5, 0) is True
    assert is_conflict(3, 5, 1) is True
    # S_x == S_y: only C = 0 is consistent
    assert is_conflict(4, 4, 0) is False
    assert is_conflict(4, 4, 1) is True
    assert is_conflict(4, 4, -1) is True


def test_is_conflict_tolerance() -> None:
    assert is_conflict(4.05, 4.0, 0) is True  # strict: 4.05 > 4.0 but a tie
    assert is_conflict(4.05, 4.0, 0, tol=0.1) is False  # within tol: equal
    assert is_conflict(4.5, 4.0, 0, tol=0.5) is False  # |diff| == tol counts as equal
    assert is_conflict(4.5, 4.0, 1, tol=0.5) is True


def test_conflict_ratio_hand_built_three_responses() -> None:
    # Responses x0, x1, x2 scored 5, 3, 3.
    # (x0, x1): verdicts A then B -> C = 1; 5 > 3 and C = 1 -> consistent
    # (x0, x2): verdicts A then A (position flip) -> C = 0; 5 > 3 and C <= 0 -> CONFLICT
    # (x1, x2): verdicts B then A -> C = -1; 3 == 3 and C != 0 -> CONFLICT
    # plus one pair whose second score failed to parse -> error
    scores = {0: 5.0, 1: 3.0, 2: 3.0}
    verdicts = {(0, 1): ("A", "B"), (0, 2): ("A", "A"), (1, 2): ("B", "A")}
    items = [{"s_x": scores[i], "s_y": scores[j], "c": pair_outcome(*verdicts[(i, j)])} for (i, j) in verdicts]
    items.append({"s_x": 4.0, "s_y": None, "c": 1})
    out = conflict_ratio(items)
    assert out["n_conflicts"] == 2
    assert out["n_errors"] == 1
    assert out["n_valid"] == 3
    assert out["n"] == 4
    assert out["cr"] == pytest.approx(2 / 3)  # errors not in the denominator
    assert out["cr_errors_as_conflicts"] == pytest.approx(3 / 4)  # (2 + 1) / 4


def test_conflict_ratio_empty_is_nan() -> None:
    out = conflict_ratio([])
    assert math.isnan(out["cr"]) and math.isnan(out["cr_errors_as_conflicts"])


# Literal table of all 27 triples (r_xy, r_yz, r_xz); 1 = first wins, 0 = tie, -1 = second wins.
# valid = realisable by a ranking with ties (13 weak orders on 3 items);
# equivalence = two ties + one strict (x=y, y=z, x!=z and rotations);
# cycle = strict outcomes that cannot be ordered (x>y>z>x, or x>y>z with x=z / x<z, rotated).
TRIPLE_TABLE: dict[tuple[int, int, int], str] = {
    (1, 1, 1): "valid",  # x>y>z
    (1, 1, 0): "cycle",  # x>y>z but x=z
    (1, 1, -1): "cycle",  # x>y>z>x
    (1, 0, 1): "valid",  # x>y=z
    (1, 0, 0): "equivalence",  # y=z, x=z but x>y
    (1, 0, -1): "cycle",  # x>y=z>x
    (1, -1, 1): "valid",  # x>z>y
    (1, -1, 0): "valid",  # x=z>y
    (1, -1, -1): "valid",  # z>x>y
    (0, 1, 1): "valid",  # x=y>z
    (0, 1, 0): "equivalence",  # x=y, x=z but y>z
    (0, 1, -1): "cycle",  # z>x=y>z
    (0, 0, 1): "equivalence",  # x=y=z but x>z
    (0, 0, 0): "valid",  # x=y=z
    (0, 0, -1): "equivalence",  # x=y=z but z>x
    (0, -1, 1): "cycle",  # x>z>y=x
    (0, -1, 0): "equivalence",  # x=y, x=z but z>y
    (0, -1, -1): "valid",  # z>x=y
    (-1, 1, 1): "valid",  # y>x>z
    (-1, 1, 0): "valid",  # y>x=z
    (-1, 1, -1): "valid",  # y>z>x
    (-1, 0, 1): "cycle",  # y>x>z=y
    (-1, 0, 0): "equivalence",  # y=z, x=z but y>x
    (-1, 0, -1): "valid",  # y=z>x
    (-1, -1, 1): "cycle",  # z>y>x>z
    (-1, -1, 0): "cycle",  # z>y>x but x=z
    (-1, -1, -1): "valid",  # z>y>x
}


def test_triple_status_exhaustive_table() -> None:
    assert len(TRIPLE_TABLE) == 27
    for triple in itertools.product((1, 0, -1), repeat=3):
        assert triple_status(*triple) == TRIPLE_TABLE[triple], triple
    counts = {s: list(TRIPLE_TABLE.values()).count(s) for s in ("valid", "cycle", "equivalence")}
    assert counts == {"valid": 13, "cycle": 8, "equivalence": 6}


def test_triple_status_rejects_bad_outcome() -> None:
    with pytest.raises(ValueError):
        triple_status(2, 0, 0)


def _cycle_outcomes() -> dict[tuple[int, int], int]:
    # 0>1, 1>2, 2>0 (a cycle on {0,1,2}, given once as the reversed key (2, 0) = 1);
    # 3 and 4 lose to 0, 1, 2; 3 ties 4.
    out = {(0, 1): 1, (1, 2): 1, (2, 0): 1, (3, 4): 0}
    for i in (0, 1, 2):
        for j in (3, 4):
            out[(i, j)] = 1
    return out


def test_ntr_k_hand_computed() -> None:
    outcomes = _cycle_outcomes()
    # n = 4 (responses 0..3): triples {012} cycle; {013} (1,1,1), {023} (-1,1,1) = 2>0>3,
    # {123} (1,1,1) valid -> NTR_3 = 1/4; the only 4-subset holds {012} -> NTR_4 = 1
    sub4 = {k: v for k, v in outcomes.items() if 4 not in k}
    assert ntr_k(sub4, n=4, k=3) == pytest.approx(1 / 4)
    assert ntr_k(sub4, n=4, k=4) == pytest.approx(1.0)
    # n = 5: only {0,1,2} violates ({i,3,4} = (1,0,1) valid) -> NTR_3 = 1/C(5,3) = 1/10;
    # 4-subsets containing {0,1,2}: {0123}, {0124} -> NTR_4 = 2/5; NTR_5 = 1/1
    assert ntr_k(outcomes, n=5, k=3) == pytest.approx(0.1)
    assert ntr_k(outcomes, n=5, k=4) == pytest.approx(0.4)
    assert ntr_k(outcomes, n=5, k=5) == pytest.approx(1.0)


def test_ntr_k_skips_subsets_with_missing_outcomes() -> None:
    outcomes = {k: v for k, v in _cycle_outcomes().items() if 4 not in k}
    del outcomes[(2, 3)]
    # {0,2,3} and {1,2,3} can't be scored; {012} violates, {013} valid -> 1/2
    assert ntr_k(outcomes, n=4, k=3) == pytest.approx(0.5)
    outcomes[(2, 3)] = None  # type: ignore[assignment]
    assert ntr_k(outcomes, n=4, k=3) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        ntr_k(outcomes, n=4, k=2)


def test_expected_score() -> None:
    # 1*.1 + 2*.2 + 3*.4 + 4*.2 + 5*.1 = .1 + .4 + 1.2 + .8 + .5 = 3.0
    assert expected_score([0.1, 0.2, 0.4, 0.2, 0.1]) == pytest.approx(3.0)
    # only 1 and 5 carry mass (0.4 in all; key 9 is not a score token):
    # renormalized (1*.1 + 5*.3) / .4 = 1.6 / .4 = 4.0 (unnormalized would be 1.6)
    assert expected_score({1: 0.1, 5: 0.3, 9: 0.6}) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        expected_score({9: 1.0})


def test_likelihood_aware_verdict() -> None:
    # swapped order p_ba maps A<->B: A .7 -> B, B .2 -> A
    # totals: A = .6 + .2 = .8, B = .3 + .7 = 1.0, TIE = .1 + .1 = .2 -> "B"
    # (the hard verdicts A then A would be an inconsistent pair -> tie)
    assert likelihood_aware_verdict({"A": 0.6, "B": 0.3, "TIE": 0.1}, {"A": 0.7, "B": 0.2, "TIE": 0.1}) == "B"
    # exact tie of the best two -> "TIE" (deterministic tie-break)
    assert likelihood_aware_verdict({"A": 0.5, "B": 0.5}, {"A": 0.5, "B": 0.5}) == "TIE"
    # "C" is read as TIE: TIE = .6 + .6 = 1.2 beats A = .3 + .1 = .4 and B = .1 + .3 = .4
    assert likelihood_aware_verdict({"A": 0.3, "B": 0.1, "C": 0.6}, {"A": 0.3, "B": 0.1, "C": 0.6}) == "TIE"
    # A = .52 + .52 = 1.04, B = .48 + .48 = .96 -> "A"; within tol 0.1 -> "TIE"
    p_ab, p_ba = {"A": 0.52, "B": 0.48}, {"A": 0.48, "B": 0.52}
    assert likelihood_aware_verdict(p_ab, p_ba) == "A"
    assert likelihood_aware_verdict(p_ab, p_ba, tol=0.1) == "TIE"
