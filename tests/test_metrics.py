"""Unit tests for judgefactory.bench.metrics (generic judge metrics). Expected values are by hand."""

from __future__ import annotations

import math

import pytest

from judgefactory.bench.metrics import (
    accuracy,
    bootstrap_ci,
    both_orders_correct,
    cohen_kappa,
    correlations,
    mirror,
    pairwise_accuracy,
    repetition_stability,
    swap_metrics,
)

# --------------------------------------------------------------------------- correlations


def test_correlations_hand_computed_with_a_parse_error() -> None:
    # parsed pairs (x, y): (1,2) (2,1) (3,4) (4,3); the None item is left out of the correlations.
    # Pearson: means 2.5/2.5; dx = [-1.5,-.5,.5,1.5], dy = [-.5,-1.5,1.5,.5]
    #   sum dx*dy = .75+.75+.75+.75 = 3; sum dx^2 = sum dy^2 = 5 -> r = 3/5 = 0.6
    # Spearman: the values are their own ranks -> 0.6
    # Kendall: 6 pairs; discordant (1,2) and (3,4), the other 4 concordant -> (4-2)/6 = 1/3
    pred = [1.0, None, 2.0, 3.0, 4.0]
    gold = [2.0, 5.0, 1.0, 4.0, 3.0]
    out = correlations(pred, gold)
    assert out["pearson"] == pytest.approx(0.6)
    assert out["spearman"] == pytest.approx(0.6)
    assert out["kendall"] == pytest.approx(1 / 3)
    assert out["n"] == 5
    assert out["n_errors"] == 1
    assert out["parse_rate"] == pytest.approx(4 / 5)
    # exact match over ALL 5 items: 1 vs 2, None, 2 vs 1, 3 vs 4, 4 vs 3 -> 0 / 5
    assert out["exact_match"] == 0.0


def test_exact_match_rounds_half_up_and_counts_errors_wrong() -> None:
    # 2.5 -> 3 == 3 (hit; banker's rounding would give 2), 3.4 -> 3 == 3 (hit),
    # None (miss, still in the denominator), 1.0 vs 2 (miss) -> 2 / 4 = 0.5
    out = correlations([2.5, 3.4, None, 1.0], [3.0, 3.0, 1.0, 2.0])
    assert out["exact_match"] == pytest.approx(0.5)
    assert out["n_errors"] == 1


def test_correlations_undefined_is_nan() -> None:
    out = correlations([3.0, 3.0, 3.0], [1.0, 2.0, 3.0])  # constant predictions
    assert math.isnan(out["pearson"]) and math.isnan(out["spearman"]) and math.isnan(out["kendall"])
    out = correlations([None, 2.0], [1.0, 2.0])  # one parsed item only
    assert math.isnan(out["pearson"])
    assert out["parse_rate"] == pytest.approx(0.5)


def test_correlations_length_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        correlations([1.0], [1.0, 2.0])


# --------------------------------------------------------------------------- accuracy


def test_accuracy_counts_parse_errors_wrong() -> None:
    # hits at 0 (A) and 3 (TIE); the None item is wrong -> 2/4
    assert accuracy(["A", "B", None, "TIE"], ["A", "A", "B", "TIE"]) == pytest.approx(0.5)
    assert math.isnan(accuracy([], []))


def test_pairwise_accuracy_with_and_without_ties() -> None:
    pred = ["A", "TIE", "B", None, "TIE", "A"]
    gold = ["A", "B", "TIE", "A", "TIE", "B"]
    out = pairwise_accuracy(pred, gold)
    # with tie: hits at 0 (A/A) and 4 (TIE/TIE) -> 2/6
    assert out["acc_with_tie"] == pytest.approx(2 / 6)
    # without tie: gold TIE at 2 and 4 dropped; items 0,1,3,5: A/A hit, TIE/B wrong,
    # None/A wrong, A/B wrong -> 1/4
    assert out["acc_without_tie"] == pytest.approx(0.25)
    assert out["n"] == 6
    assert out["n_without_tie"] == 4
    assert out["parse_rate"] == pytest.approx(5 / 6)


# --------------------------------------------------------------------------- kappa


def test_cohen_kappa_keeps_parse_errors_as_wrong_category() -> None:
    # pred A A B None (-> ERROR); gold A B B A
    # po = 2/4 (items 0, 2); gold marginals A:2 B:2; pred marginals A:2 B:1 ERROR:1
    # pe = (2*2 + 2*1) / 16 = 6/16 = 0.375; kappa = (0.5 - 0.375) / 0.625 = 0.2
    # (dropping the None item would give po = 2/3, pe = 4/9, kappa = 0.4)
    assert cohen_kappa(["A", "A", "B", None], ["A", "B", "B", "A"]) == pytest.approx(0.2)


def test_cohen_kappa_perfect_and_undefined() -> None:
    assert cohen_kappa(["A", "B", "TIE"], ["A", "B", "TIE"]) == pytest.approx(1.0)
    # both raters constant and equal: po = pe = 1 -> 0/0 -> nan
    assert math.isnan(cohen_kappa(["A", "A"], ["A", "A"]))


def test_cohen_kappa_rejects_unknown_gold() -> None:
    with pytest.raises(ValueError):
        cohen_kappa(["A"], ["C"])


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_degenerate_all_correct() -> None:
    gold = ["A", "B", "TIE", "A", "B", "A"]
    lo, hi = bootstrap_ci(accuracy, list(gold), gold, ["q1", "q1", "q2", "q2", "q3", "q3"], n_boot=200)
    assert (lo, hi) == (1.0, 1.0)


def _clustered_example() -> tuple[list[str], list[str], list[str]]:
    """20 clusters of 10 items; clusters 0-9 entirely right, 10-19 entirely wrong (accuracy 0.5)."""
    pred, gold, clusters = [], [], []
    for c in range(20):
        for _ in range(10):
            gold.append("A")
            pred.append("A" if c < 10 else "B")
            clusters.append(f"q{c}")
    return pred, gold, clusters


def test_bootstrap_seeded_contains_point_and_is_deterministic() -> None:
    pred, gold, clusters = _clustered_example()
    point = accuracy(pred, gold)  # 100 / 200 = 0.5
    assert point == 0.5
    ci1 = bootstrap_ci(accuracy, pred, gold, clusters, n_boot=300, seed=7)
    ci2 = bootstrap_ci(accuracy, pred, gold, clusters, n_boot=300, seed=7)
    assert ci1 == ci2
    assert ci1[0] <= point <= ci1[1]
    assert ci1[0] < ci1[1]


def test_cluster_bootstrap_is_wider_than_item_bootstrap() -> None:
    # Item bootstrap: sd ~ sqrt(.25/200) = .035 -> 95% width ~ .14.
    # Cluster bootstrap: 20 independent units, sd ~ sqrt(.25/20) = .11 -> width ~ .43.
    pred, gold, clusters = _clustered_example()
    c_lo, c_hi = bootstrap_ci(accuracy, pred, gold, clusters, n_boot=400, seed=0)
    i_lo, i_hi = bootstrap_ci(accuracy, pred, gold, [str(i) for i in range(200)], n_boot=400, seed=0)
    assert (c_hi - c_lo) > 2.0 * (i_hi - i_lo)
    assert 0.08 < (i_hi - i_lo) < 0.2
    assert 0.3 < (c_hi - c_lo) < 0.6


# --------------------------------------------------------------------------- swap / position


def test_mirror() -> None:
    assert [mirror(v) for v in ["A", "B", "TIE", None]] == ["B", "A", "TIE", None]
    with pytest.raises(ValueError):
        mirror("C")


def test_swap_metrics_hand_counted() -> None:
    v_ab = ["A", "B", "TIE", "A", "A", "A", "TIE", "B", "TIE", None]
    v_ba = ["B", "A", "TIE", "B", "A", "TIE", "A", "B", "B", "A"]
    # consistent (A,B) (B,A) (TIE,TIE) (A,B) = 4; primacy (A,A) (A,TIE) (TIE,A) = 3;
    # recency (B,B) (TIE,B) = 2; error (None,A) = 1; n = 10
    out = swap_metrics(v_ab, v_ba)
    assert out["position_consistency"] == pytest.approx(0.4)
    assert out["position_bias_rate"] == pytest.approx(0.6)
    assert out["primacy"] == pytest.approx(0.3)
    assert out["recency"] == pytest.approx(0.2)
    assert out["n"] == 10
    assert out["n_errors"] == 1


def test_swap_metrics_rejects_bad_verdict() -> None:
    with pytest.raises(ValueError):
        swap_metrics(["A"], ["X"])


def test_both_orders_correct() -> None:
    v_ab = ["A", "A", "B", "TIE", None]
    v_ba = ["B", "A", "A", "TIE", "B"]
    gold = ["A", "A", "B", "TIE", "B"]
    # 0: A ok, mirror(B)=A ok | 1: A ok, mirror(A)=B wrong | 2: B ok, mirror(A)=B ok
    # 3: TIE ok, TIE ok | 4: None wrong -> 3/5
    assert both_orders_correct(v_ab, v_ba, gold) == pytest.approx(0.6)


def test_repetition_stability() -> None:
    samples = [["A", "A", "B"], ["A", "B", "TIE", "TIE"], [None, None], ["B", None, "B", "B"]]
    # per item: 2/3, 2/4, 0 (all errors), 3/4 -> mean = (8/12 + 6/12 + 0 + 9/12) / 4 = 23/48
    assert repetition_stability(samples) == pytest.approx(23 / 48)
    assert math.isnan(repetition_stability([]))
