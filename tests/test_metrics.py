"""Diagnostic-accuracy metrics, checked against scikit-learn and known answers."""

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_score, recall_score, roc_auc_score

from fracture_model import metrics


@pytest.fixture
def scored():
    rng = np.random.default_rng(3)
    labels = (rng.random(400) < 0.2).astype(int)
    probabilities = np.clip(rng.normal(0.3 + 0.35 * labels, 0.2), 0, 1)
    return labels, probabilities


def test_operating_point_matches_scikit_learn(scored):
    labels, probabilities = scored
    point = metrics.at_threshold(labels, probabilities, 0.5)
    decisions = (probabilities >= 0.5).astype(int)
    tn, fp, fn, tp = confusion_matrix(labels, decisions).ravel()
    assert (point.true_positives, point.false_positives, point.true_negatives, point.false_negatives) == (tp, fp, tn, fn)
    assert point.sensitivity == pytest.approx(recall_score(labels, decisions))
    assert point.specificity == pytest.approx(recall_score(1 - labels, 1 - decisions))
    assert point.ppv == pytest.approx(precision_score(labels, decisions))
    assert point.npv == pytest.approx(precision_score(1 - labels, 1 - decisions))


def test_wilson_interval_known_answer_and_operating_point_intervals(scored):
    # 8 of 10: Wilson 95% interval 0.490 to 0.943 (Newcombe 1998, table I method 3)
    low, high = metrics.wilson_interval(8, 10)
    assert (low, high) == pytest.approx((0.490, 0.943), abs=1e-3)
    point = metrics.at_threshold(*scored, 0.5)
    assert point.sensitivity_ci95[0] < point.sensitivity < point.sensitivity_ci95[1]
    assert point.specificity_ci95[0] < point.specificity < point.specificity_ci95[1]


def test_bootstrap_interval_brackets_the_auc(scored):
    labels, probabilities = scored
    auc, low, high = metrics.bootstrap_roc_auc(labels, probabilities, resamples=300)
    assert auc == pytest.approx(roc_auc_score(labels, probabilities))
    assert low < auc < high
    assert high - low < 0.2


def test_sensitivity_at_specificity_known_answer():
    labels = np.array([0] * 10 + [1] * 4)
    probabilities = np.array([0.1] * 9 + [0.8] + [0.9, 0.7, 0.3, 0.05])
    # 90% specificity allows one false positive (the negative at 0.8); lowering the threshold to 0.3 adds no
    # further negative, so 3 of the 4 fractures are caught; 0.1 would call all nine other negatives.
    assert metrics.sensitivity_at_specificity(labels, probabilities, 0.9) == pytest.approx(0.75)
    assert metrics.sensitivity_at_specificity(labels, probabilities, 1.0) == pytest.approx(0.25)


def test_expected_calibration_error_known_answers():
    labels = np.array([0, 0, 1, 1])
    assert metrics.expected_calibration_error(labels, np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(0.0)
    # everything predicted 0.5 in one bin where half are positive: perfectly calibrated on average
    assert metrics.expected_calibration_error(labels, np.full(4, 0.5)) == pytest.approx(0.0)
    assert metrics.expected_calibration_error(labels, np.full(4, 0.95)) == pytest.approx(0.45)


@pytest.mark.parametrize("rule", ["youden", "sensitivity=0.9", "specificity=0.9"])
def test_threshold_rules_meet_their_targets(scored, rule):
    labels, probabilities = scored
    threshold = metrics.choose_threshold(labels, probabilities, rule)
    point = metrics.at_threshold(labels, probabilities, threshold)
    if rule.startswith("sensitivity"):
        assert point.sensitivity >= 0.9
    elif rule.startswith("specificity"):
        assert point.specificity >= 0.9
    else:
        others = [metrics.at_threshold(labels, probabilities, t) for t in np.linspace(0.05, 0.95, 19)]
        best = max(o.sensitivity + o.specificity for o in others)
        assert point.sensitivity + point.specificity >= best - 1e-9


def test_unknown_threshold_rule_is_refused(scored):
    with pytest.raises(ValueError):
        metrics.choose_threshold(*scored, "accuracy")


def test_curve_tables(scored):
    labels, probabilities = scored
    roc = metrics.roc_points(labels, probabilities)
    assert roc["false_positive_rate"].is_monotonic_increasing and roc["sensitivity"].iloc[-1] == 1.0
    table = metrics.calibration_table(labels, probabilities)
    assert table["images"].sum() == len(labels)
    assert table["mean_predicted"].between(0, 1).all()
