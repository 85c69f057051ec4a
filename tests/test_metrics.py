"""Diagnostic-accuracy metrics, checked against scikit-learn, known answers and brute-force oracles.

The oracles count cases at every candidate threshold by hand; hypothesis feeds them small inputs drawn
from a handful of score values, so ties (between and within classes) are the rule, not the exception.
"""

import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from sklearn.metrics import confusion_matrix, precision_score, recall_score, roc_auc_score

from fracture_model import metrics


@pytest.fixture
def scored():
    rng = np.random.default_rng(3)
    labels = (rng.random(400) < 0.2).astype(int)
    probabilities = np.clip(rng.normal(0.3 + 0.35 * labels, 0.2), 0, 1)
    return labels, probabilities


# ------------------------------------------------------------------------------------------------
# Brute-force oracles: count cases at every distinct score, nothing clever
# ------------------------------------------------------------------------------------------------

def _rates(labels, probabilities, threshold):
    """(sensitivity, specificity) of calling p >= threshold fractured, counted case by case."""
    tp = sum(1 for y, p in zip(labels, probabilities, strict=True) if y == 1 and p >= threshold)
    tn = sum(1 for y, p in zip(labels, probabilities, strict=True) if y == 0 and p < threshold)
    return tp / sum(labels), tn / (len(labels) - sum(labels))


def _oracle_youden(labels, probabilities):
    best = None
    for threshold in sorted(set(probabilities), reverse=True):  # highest first: ties keep the highest
        sensitivity, specificity = _rates(labels, probabilities, threshold)
        if best is None or sensitivity + specificity > best[0] + 1e-9:  # exact ties: 1/3 + 1 against 2/3 + 2/3
            best = (sensitivity + specificity, threshold)
    return best[1]


def _oracle_sensitivity_rule(labels, probabilities, target):
    for threshold in sorted(set(probabilities), reverse=True):
        if _rates(labels, probabilities, threshold)[0] >= target - 1e-9:
            return threshold
    raise AssertionError("the lowest score always reaches sensitivity 1")


def _oracle_specificity_rule(labels, probabilities, target):
    """Highest sensitivity keeping the specificity; of equal sensitivities the highest threshold; None if none."""
    best = None
    for threshold in sorted(set(probabilities), reverse=True):
        sensitivity, specificity = _rates(labels, probabilities, threshold)
        if specificity >= target - 1e-9 and sensitivity > 0 and (best is None or sensitivity > best[0]):
            best = (sensitivity, threshold)
    return None if best is None else best[1]


def _oracle_sensitivity_at_specificity(labels, probabilities, target):
    candidates = [*set(probabilities), math.inf]  # inf: nobody called fractured, specificity 1
    return max(s for s, sp in (_rates(labels, probabilities, t) for t in candidates) if sp >= target - 1e-9)


ORACLE = settings(max_examples=int(os.environ.get("ORACLE_EXAMPLES", "150")), deadline=None)
"""Examples per oracle test; mutation testing (README) runs fewer."""

SCORES = [0.0, 0.1, 0.2, 0.25, 0.3, 0.5, 0.7, 0.75, 0.9, 1.0]
TARGETS = [0.0, 0.5, 0.6, 2 / 3, 0.7, 0.75, 0.8, 0.9, 0.95, 1.0]


@st.composite
def tied_cases(draw):
    """(labels, probabilities): 2 to 14 cases, both classes, scores from 2 to 10 values (many ties)."""
    size = draw(st.integers(2, 14))
    labels = draw(st.lists(st.sampled_from([0, 1]), min_size=size, max_size=size).filter(lambda y: 0 < sum(y) < size))
    values = SCORES[-draw(st.integers(2, len(SCORES))):]
    probabilities = draw(st.lists(st.sampled_from(values), min_size=size, max_size=size))
    return np.array(labels), np.array(probabilities)


@ORACLE
@given(tied_cases())
def test_youden_matches_brute_force(cases):
    assert metrics.choose_threshold(*cases, "youden") == _oracle_youden(*map(list, cases))


@ORACLE
@given(tied_cases(), st.sampled_from(TARGETS))
def test_sensitivity_rule_matches_brute_force(cases, target):
    chosen = metrics.choose_threshold(*cases, f"sensitivity={target}")
    assert chosen == _oracle_sensitivity_rule(*map(list, cases), target)


@ORACLE
@given(tied_cases(), st.sampled_from(TARGETS))
def test_specificity_rule_matches_brute_force(cases, target):
    expected = _oracle_specificity_rule(*map(list, cases), target)
    if expected is None:
        with pytest.raises(ValueError, match="no threshold"):
            metrics.choose_threshold(*cases, f"specificity={target}")
    else:
        assert metrics.choose_threshold(*cases, f"specificity={target}") == expected


@ORACLE
@given(tied_cases(), st.sampled_from(TARGETS))
def test_sensitivity_at_specificity_matches_brute_force(cases, target):
    expected = _oracle_sensitivity_at_specificity(*map(list, cases), target)
    assert metrics.sensitivity_at_specificity(*cases, target) == pytest.approx(expected, abs=1e-12)


@ORACLE
@given(tied_cases(), st.sampled_from(SCORES))
def test_operating_point_matches_brute_force(cases, threshold):
    labels, probabilities = cases
    point = metrics.at_threshold(labels, probabilities, threshold)
    sensitivity, specificity = _rates(list(labels), list(probabilities), threshold)
    assert (point.sensitivity, point.specificity) == pytest.approx((sensitivity, specificity))
    called = probabilities >= threshold
    assert point.true_positives == int((called & (labels == 1)).sum())
    assert point.false_positives == int((called & (labels == 0)).sum())
    assert point.true_positives + point.false_negatives == labels.sum()
    assert point.true_negatives + point.false_positives == len(labels) - labels.sum()
    if called.any():
        assert point.ppv == pytest.approx(point.true_positives / called.sum())
    if (~called).any():
        assert point.npv == pytest.approx(point.true_negatives / (~called).sum())
    assert point.accuracy == pytest.approx((point.true_positives + point.true_negatives) / len(labels))


def _oracle_ece(labels, probabilities, bins=10):
    """Bins [k/bins, (k+1)/bins), the last one closed, by exact rational comparison."""
    from fractions import Fraction

    members: dict[int, list[int]] = {}
    for i, p in enumerate(probabilities):
        members.setdefault(min(int(Fraction(p) * bins), bins - 1), []).append(i)
    return sum(
        len(rows) / len(labels) * abs(np.mean([labels[i] for i in rows]) - np.mean([probabilities[i] for i in rows]))
        for rows in members.values()
    )


@ORACLE
@given(tied_cases())
def test_calibration_table_and_error_match_brute_force(cases):
    labels, probabilities = cases
    table = metrics.calibration_table(labels, probabilities)
    assert table["images"].sum() == len(labels)
    assert table["mean_predicted"].is_monotonic_increasing
    assert metrics.expected_calibration_error(labels, probabilities) == pytest.approx(
        _oracle_ece(list(labels), list(probabilities)), abs=1e-12)


@st.composite
def cases_across_bins(draw):
    """(labels, probabilities): 2 to 20 cases with scores on every bin edge and inside every bin."""
    size = draw(st.integers(2, 20))
    labels = draw(st.lists(st.sampled_from([0, 1]), min_size=size, max_size=size))
    grid = [k / 20 for k in range(21)]  # 0, 0.05, 0.1, ..., 1: edges of the 10 bins and their middles
    probabilities = draw(st.lists(st.sampled_from(grid), min_size=size, max_size=size))
    return np.array(labels), np.array(probabilities)


@ORACLE
@given(cases_across_bins())
def test_calibration_error_matches_brute_force_in_every_bin(cases):
    labels, probabilities = cases
    assert metrics.expected_calibration_error(labels, probabilities) == pytest.approx(
        _oracle_ece(list(labels), list(probabilities)), abs=1e-12)
    table = metrics.calibration_table(labels, probabilities)
    assert table["images"].sum() == len(labels)


# ------------------------------------------------------------------------------------------------
# Known answers: the cases that were wrong before
# ------------------------------------------------------------------------------------------------

def test_operating_point_matches_scikit_learn(scored):
    labels, probabilities = scored
    point = metrics.at_threshold(labels, probabilities, 0.5)
    decisions = (probabilities >= 0.5).astype(int)
    tn, fp, fn, tp = confusion_matrix(labels, decisions).ravel()
    counts = (point.true_positives, point.false_positives, point.true_negatives, point.false_negatives)
    assert counts == (tp, fp, tn, fn)
    assert point.sensitivity == pytest.approx(recall_score(labels, decisions))
    assert point.specificity == pytest.approx(recall_score(1 - labels, 1 - decisions))
    assert point.ppv == pytest.approx(precision_score(labels, decisions))
    assert point.npv == pytest.approx(precision_score(1 - labels, 1 - decisions))


# 10 negatives, one of them scored 0.8; fractures at 0.9, 0.7, 0.3 and 0.05.
TEN_NEGATIVES = (np.array([0] * 10 + [1] * 4), np.array([0.1] * 9 + [0.8] + [0.9, 0.7, 0.3, 0.05]))


def test_operating_point_reports_its_threshold_f1_and_kappa_and_counts_one_class_inputs(scored):
    from sklearn.metrics import cohen_kappa_score, f1_score

    labels, probabilities = scored
    point = metrics.at_threshold(labels, probabilities, 0.42)
    called = (probabilities >= 0.42).astype(int)
    assert point.threshold == 0.42
    assert point.f1 == pytest.approx(f1_score(labels, called))
    assert point.cohen_kappa == pytest.approx(cohen_kappa_score(labels, called))
    # only normal radiographs, none called: every case is a true negative (a 1 x 1 confusion matrix otherwise)
    normal = metrics.at_threshold(np.zeros(5, int), np.full(5, 0.1), 0.5)
    counts = (normal.true_negatives, normal.false_positives, normal.false_negatives, normal.true_positives)
    assert counts == (5, 0, 0, 0)


def test_sensitivity_at_specificity_known_answer():
    # 90% specificity allows one false positive (the negative at 0.8); lowering the threshold to 0.3 adds no
    # further negative, so 3 of the 4 fractures are caught; 0.1 would call all nine other negatives.
    assert metrics.sensitivity_at_specificity(*TEN_NEGATIVES, 0.9) == pytest.approx(0.75)
    assert metrics.sensitivity_at_specificity(*TEN_NEGATIVES, 1.0) == pytest.approx(0.25)


def test_specificity_rule_allows_exactly_the_target_share_of_false_positives():
    # 1 - 0.1 is not 0.9 in floating point: without a tolerance the rule refused the one allowed false
    # positive and returned 0.9 (sensitivity 0.25).
    threshold = metrics.choose_threshold(*TEN_NEGATIVES, "specificity=0.9")
    assert threshold == 0.3
    point = metrics.at_threshold(*TEN_NEGATIVES, threshold)
    assert (point.sensitivity, point.specificity) == (0.75, 0.9)
    assert metrics.choose_threshold(*TEN_NEGATIVES, "specificity=1.0") == 0.9


def test_sensitivity_rule_takes_the_highest_threshold_that_reaches_it():
    assert metrics.choose_threshold(*TEN_NEGATIVES, "sensitivity=0.75") == 0.3
    assert metrics.choose_threshold(*TEN_NEGATIVES, "sensitivity=0.5") == 0.7
    assert metrics.choose_threshold(*TEN_NEGATIVES, "sensitivity=1.0") == 0.05


def test_youden_known_answer():
    # J at 0.9: 0.25 + 1 - 1 = 0.25; at 0.7: 0.5 + 0.9 - 1 = 0.4; at 0.3: 0.75 + 0.9 - 1 = 0.65; at 0.1: 0.75 + 0 - 1
    assert metrics.choose_threshold(*TEN_NEGATIVES, "youden") == 0.3


def test_specificity_rule_says_so_when_no_threshold_keeps_it():
    # two negatives tied at the top score: no threshold that calls anyone fractured has specificity 1
    labels, probabilities = np.array([0, 0, 1, 0]), np.array([0.9, 0.9, 0.5, 0.1])
    with pytest.raises(ValueError, match="no threshold"):
        metrics.choose_threshold(labels, probabilities, "specificity=1.0")
    assert metrics.choose_threshold(labels, probabilities, "specificity=0.3") == 0.5  # 1 of 3 negatives below


def test_sensitivity_at_specificity_counts_points_inside_tied_runs():
    # a fracture and a negative tied at 0.8, another pair tied at 0.7: roc_curve(drop_intermediate=True) drops
    # the collinear point at 0.8 (2 of 11 fractures, 1 of 10 negatives), and 90% specificity gave 0.091.
    labels = np.array([1, 0, 1, 0, 1] + [0] * 8 + [1] * 8)
    probabilities = np.array([0.9, 0.8, 0.8, 0.7, 0.7] + [0.1] * 16)
    assert metrics.sensitivity_at_specificity(labels, probabilities, 0.9) == pytest.approx(2 / 11)


@pytest.mark.parametrize("rule", ["accuracy", "sensitivity=", "specificity=high", "sensitivity=1.5", "youden=1"])
def test_unknown_threshold_rule_is_refused(scored, rule):
    with pytest.raises(ValueError, match="operating-point rule"):
        metrics.choose_threshold(*scored, rule)


def test_one_class_is_refused():
    with pytest.raises(ValueError, match="both"):
        metrics.choose_threshold(np.zeros(5), np.linspace(0, 1, 5), "youden")


def test_wilson_interval_known_answers_at_two_levels():
    # 8 of 10: Wilson 95% interval 0.490 to 0.943 (Newcombe 1998, table I method 3)
    assert metrics.wilson_interval(8, 10) == pytest.approx((0.490, 0.943), abs=1e-3)
    # the closed form at 80% and 99%: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    for level in (0.80, 0.99):
        z, p, n = norm.ppf(0.5 + level / 2), 0.8, 10
        centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        expected = ((centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n))
        assert metrics.wilson_interval(8, 10, level=level) == pytest.approx(expected, abs=1e-9)
    assert metrics.wilson_interval(0, 10)[0] == 0.0
    assert all(math.isnan(v) for v in metrics.wilson_interval(0, 0))


def test_operating_point_intervals_are_the_wilson_intervals(scored):
    point = metrics.at_threshold(*scored, 0.5)
    tp, fn, tn, fp = point.true_positives, point.false_negatives, point.true_negatives, point.false_positives
    assert point.sensitivity_ci95 == metrics.wilson_interval(tp, tp + fn, 0.95)
    assert point.specificity_ci95 == metrics.wilson_interval(tn, tn + fp, 0.95)


def _delong_standard_error(labels, probabilities):
    """DeLong et al. (1988): the standard error of the empirical ROC AUC from placement values."""
    positives, negatives = probabilities[labels == 1], probabilities[labels == 0]
    wins = (positives[:, None] > negatives[None, :]) + 0.5 * (positives[:, None] == negatives[None, :])
    return math.sqrt(wins.mean(axis=1).var(ddof=1) / len(positives) + wins.mean(axis=0).var(ddof=1) / len(negatives))


@pytest.mark.parametrize("level", [0.95, 0.80])
def test_bootstrap_interval_matches_the_delong_interval(scored, level):
    labels, probabilities = scored
    auc, low, high = metrics.bootstrap_roc_auc(labels, probabilities, resamples=1000, level=level)
    assert auc == roc_auc_score(labels, probabilities)
    half = norm.ppf(0.5 + level / 2) * _delong_standard_error(labels, probabilities)
    # A percentile bootstrap of 400 cases matches the normal interval's width to a few percent; its ends sit a
    # little lower (the AUC's sampling distribution is skewed below 1). Ignoring `level` is off by half.
    assert (high - low) / (2 * half) == pytest.approx(1.0, abs=0.08)
    assert low == pytest.approx(auc - half, abs=0.15 * half)
    assert high == pytest.approx(auc + half, abs=0.15 * half)


def test_the_bootstraps_auc_is_sklearns_with_ties_and_both_orders():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, (50, 60))
    labels[:, :2] = [0, 1]
    probabilities = np.round(rng.random((50, 60)), 1)  # many ties, within and across the classes
    expected = [roc_auc_score(row_labels, row) for row_labels, row in zip(labels, probabilities, strict=True)]
    np.testing.assert_allclose(metrics.mann_whitney_aucs(labels, probabilities), expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(metrics.mann_whitney_aucs([[0, 0, 1], [1, 0, 0]], [[0.1, 0.2, 0.9]] * 2), [1.0, 0.0])


def test_bootstrap_is_reproducible_by_seed(scored):
    assert metrics.bootstrap_roc_auc(*scored, resamples=50, seed=1) == metrics.bootstrap_roc_auc(
        *scored, resamples=50, seed=1)
    assert metrics.bootstrap_roc_auc(*scored, resamples=50, seed=1) != metrics.bootstrap_roc_auc(
        *scored, resamples=50, seed=2)


def test_bootstrap_of_a_very_rare_class_ends_with_a_sentence_not_a_hang():
    labels, probabilities = np.array([0] * 999 + [1]), np.linspace(0, 1, 1000)
    auc, low, high = metrics.bootstrap_roc_auc(labels, probabilities, resamples=20)  # 63% of draws hold the one
    assert auc == 1.0 and low == high == 1.0
    with pytest.raises(ValueError, match="of 20 bootstrap resamples held both classes"):
        metrics.bootstrap_roc_auc(labels, probabilities, resamples=20, max_draws=10)


def test_expected_calibration_error_known_answers():
    labels = np.array([0, 0, 1, 1])
    assert metrics.expected_calibration_error(labels, np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(0.0)
    # everything predicted 0.5 in one bin where half are positive: perfectly calibrated on average
    assert metrics.expected_calibration_error(labels, np.full(4, 0.5)) == pytest.approx(0.0)
    assert metrics.expected_calibration_error(labels, np.full(4, 0.95)) == pytest.approx(0.45)
    # 0.15 and 0.25 in different bins: |0 - 0.15| and |1 - 0.25|, half the cases each
    assert metrics.expected_calibration_error(np.array([0, 1]), np.array([0.15, 0.25])) == pytest.approx(0.45)


def test_calibration_table_has_ten_equal_bins_by_default():
    probabilities = np.arange(10) / 10 + 0.05  # one case in the middle of each bin
    table = metrics.calibration_table(np.arange(10) % 2, probabilities)
    assert len(table) == 10 and (table["images"] == 1).all()
    assert table["mean_predicted"].to_numpy() == pytest.approx(probabilities)


def test_calibration_table_with_probabilities_on_bin_edges():
    # scikit-learn's calibration_curve puts 0.1 and 0.7 in the bin below, the counts put them above:
    # the table's columns had different lengths and the evaluation page crashed.
    labels, probabilities = np.array([0, 0, 1, 1]), np.array([0.1, 0.15, 0.7, 0.95])
    table = metrics.calibration_table(labels, probabilities)
    assert table.to_dict("list") == {
        "mean_predicted": pytest.approx([0.125, 0.7, 0.95]),
        "observed_fraction": [0.0, 1.0, 1.0],
        "images": [2, 1, 1],
    }


def test_curve_tables(scored):
    labels, probabilities = scored
    roc = metrics.roc_points(labels, probabilities)
    assert list(roc.columns) == ["false_positive_rate", "sensitivity", "threshold"]
    assert roc["false_positive_rate"].is_monotonic_increasing and roc["sensitivity"].iloc[-1] == 1.0
    assert roc["threshold"].iloc[1] == probabilities.max() and roc["threshold"].is_monotonic_decreasing
    pr = metrics.precision_recall_points(labels, probabilities)
    assert pr["recall"].between(0, 1).all() and pr["precision"].between(0, 1).all()
    table = metrics.calibration_table(labels, probabilities)
    assert table["images"].sum() == len(labels)
    assert table["mean_predicted"].between(0, 1).all()
