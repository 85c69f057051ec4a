"""Diagnostic-accuracy metrics on stored predictions (scikit-learn does the arithmetic)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)


@dataclass(frozen=True)
class OperatingPointMetrics:
    threshold: float
    sensitivity: float
    specificity: float
    ppv: float
    npv: float
    f1: float
    accuracy: float
    cohen_kappa: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int
    sensitivity_ci95: tuple[float, float]
    specificity_ci95: tuple[float, float]

    def as_dict(self) -> dict:
        return asdict(self)


def _ratio(numerator: int, denominator: int) -> float:
    return float(numerator / denominator) if denominator else float("nan")


def wilson_interval(successes: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score confidence interval of a proportion (NaNs when ``total`` is 0)."""
    if total == 0:
        return float("nan"), float("nan")
    interval = binomtest(successes, total).proportion_ci(confidence_level=level, method="wilson")
    return float(interval.low), float(interval.high)


def at_threshold(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> OperatingPointMetrics:
    """Metrics of the decision ``probability >= threshold`` (fractured) against ``labels`` (1 = fractured)."""
    labels = np.asarray(labels).astype(int)
    decisions = (np.asarray(probabilities) >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(labels, decisions, labels=[0, 1]).ravel())
    return OperatingPointMetrics(
        threshold=float(threshold),
        sensitivity=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        ppv=_ratio(tp, tp + fp),
        npv=_ratio(tn, tn + fn),
        f1=float(f1_score(labels, decisions, zero_division=0.0)),
        accuracy=float(accuracy_score(labels, decisions)),
        cohen_kappa=float(cohen_kappa_score(labels, decisions)),
        true_positives=tp,
        false_positives=fp,
        true_negatives=tn,
        false_negatives=fn,
        sensitivity_ci95=wilson_interval(tp, tp + fn),
        specificity_ci95=wilson_interval(tn, tn + fp),
    )


def bootstrap_roc_auc(
    labels: np.ndarray, probabilities: np.ndarray, *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """ROC AUC and its percentile bootstrap confidence interval: (auc, low, high).

    Resamples cases with replacement, keeping resamples that hold both classes.
    """
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    auc = float(roc_auc_score(labels, probabilities))
    rng = np.random.default_rng(seed)
    estimates = []
    n = len(labels)
    while len(estimates) < resamples:
        rows = rng.integers(0, n, n)
        if labels[rows].min() == labels[rows].max():
            continue
        estimates.append(roc_auc_score(labels[rows], probabilities[rows]))
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(estimates, [tail, 1.0 - tail])
    return auc, float(low), float(high)


def sensitivity_at_specificity(labels: np.ndarray, probabilities: np.ndarray, specificity: float) -> float:
    """Highest sensitivity on the ROC curve whose specificity is at least ``specificity``."""
    false_positive_rate, true_positive_rate, _ = roc_curve(labels, probabilities)
    allowed = false_positive_rate <= 1.0 - specificity + 1e-12
    return float(true_positive_rate[allowed].max())


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width probability bins: sum over bins of |observed rate - mean probability| x share."""
    labels = np.asarray(labels, dtype=float)
    probabilities = np.asarray(probabilities, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1], right=False), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(labels[members].mean() - probabilities[members].mean())
    return float(error)


def choose_threshold(labels: np.ndarray, probabilities: np.ndarray, rule: str) -> float:
    """The operating threshold on *validation* predictions.

    ``rule``: ``"youden"`` (maximise sensitivity + specificity - 1), ``"sensitivity=0.90"`` (the highest
    threshold that reaches that sensitivity) or ``"specificity=0.90"`` (the lowest threshold that keeps
    that specificity).
    """
    false_positive_rate, true_positive_rate, thresholds = roc_curve(labels, probabilities)
    finite = np.isfinite(thresholds)
    fpr, tpr, thresholds = false_positive_rate[finite], true_positive_rate[finite], thresholds[finite]
    if rule == "youden":
        return float(thresholds[np.argmax(tpr - fpr)])
    name, _, value = rule.partition("=")
    target = float(value)
    if name == "sensitivity":
        return float(thresholds[np.argmax(tpr >= target)])
    if name == "specificity":
        allowed = np.flatnonzero(fpr <= 1.0 - target)
        return float(thresholds[allowed[-1]])
    raise ValueError(f"unknown operating-point rule {rule!r}: use youden, sensitivity=X or specificity=X")


def roc_points(labels: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    """The ROC curve as a table: false_positive_rate, sensitivity, threshold."""
    false_positive_rate, true_positive_rate, thresholds = roc_curve(labels, probabilities)
    return pd.DataFrame(
        {"false_positive_rate": false_positive_rate, "sensitivity": true_positive_rate, "threshold": thresholds}
    )


def precision_recall_points(labels: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    """The precision-recall curve as a table: recall (sensitivity), precision (PPV)."""
    precision, recall, _ = precision_recall_curve(labels, probabilities)
    return pd.DataFrame({"recall": recall, "precision": precision})


def calibration_table(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Reliability diagram data: per non-empty equal-width bin, mean predicted probability, observed
    fraction fractured, and the number of images."""
    observed, predicted = calibration_curve(labels, probabilities, n_bins=bins, strategy="uniform")
    which = np.clip(np.digitize(probabilities, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    return pd.DataFrame({"mean_predicted": predicted, "observed_fraction": observed, "images": counts[counts > 0]})
