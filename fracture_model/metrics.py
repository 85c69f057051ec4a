"""Diagnostic-accuracy metrics on stored predictions (scikit-learn does the arithmetic)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest, rankdata
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


def mann_whitney_aucs(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``labels`` and ``probabilities`` (2-D, one resample per row) as the Mann-Whitney U
    statistic of the positives over n1 x n0 (ties count half, through scipy's average ranks): the value
    ``roc_auc_score`` gives, for thousands of resamples in one call instead of one call each."""
    labels = np.asarray(labels) == 1
    positives = labels.sum(axis=1)
    negatives = labels.shape[1] - positives
    statistic = np.where(labels, rankdata(probabilities, axis=1), 0.0).sum(axis=1) - positives * (positives + 1) / 2
    return statistic / (positives * negatives)


def bootstrap_roc_auc(
    labels: np.ndarray, probabilities: np.ndarray, *, resamples: int = 2000, seed: int = 0, level: float = 0.95,
    max_draws: int | None = None,
) -> tuple[float, float, float]:
    """ROC AUC and its percentile bootstrap confidence interval: (auc, low, high).

    Resamples cases with replacement, keeping resamples that hold both classes. ``ValueError`` after
    ``max_draws`` draws (default 100 per resample) without enough of them: a rare class too rare to bootstrap.
    Each resample's ROC AUC is ``mann_whitney_aucs`` (the value ``roc_auc_score`` gives), all of a batch at once.
    """
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    auc = float(roc_auc_score(labels, probabilities))
    rng = np.random.default_rng(seed)
    estimates = []
    n = len(labels)
    kept, draws_left = 0, 100 * resamples if max_draws is None else max_draws
    while kept < resamples:
        if draws_left == 0:
            raise ValueError(f"only {kept} of {resamples} bootstrap resamples held both classes")
        # as many draws at once as resamples are still missing (the same stream as one draw at a time), at most
        # about 4 million cases per batch
        batch = min(resamples - kept, draws_left, max(1, 4_000_000 // n))
        draws_left -= batch
        rows = rng.integers(0, n, (batch, n))
        drawn = labels[rows]
        both = drawn.min(axis=1) != drawn.max(axis=1)
        estimates.append(mann_whitney_aucs(drawn[both], probabilities[rows[both]]))
        kept += int(both.sum())
    estimates = np.concatenate(estimates)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(estimates, [tail, 1.0 - tail])
    return auc, float(low), float(high)


def sensitivity_at_specificity(labels: np.ndarray, probabilities: np.ndarray, specificity: float) -> float:
    """Highest sensitivity of any threshold whose specificity is at least ``specificity``.

    Every distinct score is a candidate (ties in the scores included), and calling no case fractured
    (sensitivity 0, specificity 1) always qualifies.
    """
    _, sensitivities, specificities = _operating_points(labels, probabilities)
    return float(sensitivities[specificities >= specificity - _TOLERANCE].max())


def _calibration_bins(probabilities: np.ndarray, bins: int) -> np.ndarray:
    """Index of each probability's equal-width bin: [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0] for 10 bins.

    One rule for the error and the table: scikit-learn's ``calibration_curve`` closes its bins on the right,
    and mixing the two put a probability on a bin edge into two different bins.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.digitize(probabilities, edges[1:-1], right=False), 0, bins - 1)


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width probability bins: sum over bins of |observed rate - mean probability| x share."""
    table = calibration_table(labels, probabilities, bins)
    share = table["images"] / table["images"].sum()
    return float((share * (table["observed_fraction"] - table["mean_predicted"]).abs()).sum())


def _operating_points(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, sensitivities, specificities) of ``probability >= threshold``, highest threshold first.

    One row per distinct score, after a first row at +inf (no case called fractured). ``roc_curve``'s default
    ``drop_intermediate=True`` would drop achievable points, so every point is kept.
    """
    labels = np.asarray(labels).astype(int)
    if labels.min(initial=1) == labels.max(initial=0):
        raise ValueError("operating points need both fractured and not fractured cases")
    false_positive_rate, true_positive_rate, thresholds = roc_curve(labels, probabilities, drop_intermediate=False)
    return thresholds, true_positive_rate, 1.0 - false_positive_rate


_TOLERANCE = 1e-9
"""Rates are ratios of counts: 9 of 10 negatives must meet a target of 0.9 although 1 - 0.1 != 0.9 in floats."""


def choose_threshold(labels: np.ndarray, probabilities: np.ndarray, rule: str) -> float:
    """The operating threshold on *validation* predictions: a case is called fractured if ``p >= threshold``.

    The threshold is always one of the scores. ``rule``:

    * ``"youden"``: maximise sensitivity + specificity - 1 (of equal maxima, the highest threshold);
    * ``"sensitivity=0.90"``: the highest threshold whose sensitivity is at least 0.90 (so the best specificity
      that reaches it);
    * ``"specificity=0.90"``: the threshold with the highest sensitivity whose specificity is at least 0.90 (of
      equal sensitivities, the highest threshold). `ValueError` if only calling no case fractured keeps that
      specificity (negatives tied with or above every positive score).
    """
    thresholds, sensitivities, specificities = _operating_points(labels, probabilities)
    finite = np.isfinite(thresholds)
    thresholds, sensitivities, specificities = thresholds[finite], sensitivities[finite], specificities[finite]
    if rule == "youden":
        youden = sensitivities + specificities
        return float(thresholds[np.argmax(youden >= youden.max() - _TOLERANCE)])
    name, _, value = rule.partition("=")
    try:
        target = float(value)
    except ValueError:
        target = float("nan")
    if name not in ("sensitivity", "specificity") or not 0.0 <= target <= 1.0:
        raise ValueError(
            f"unknown operating-point rule {rule!r}: use youden, sensitivity=X or specificity=X with X in [0, 1]"
        )
    if name == "sensitivity":
        return float(thresholds[np.argmax(sensitivities >= target - _TOLERANCE)])
    allowed = specificities >= target - _TOLERANCE
    if not allowed.any() or sensitivities[allowed].max() == 0.0:
        raise ValueError(f"no threshold above zero sensitivity keeps a specificity of {target} on these predictions")
    return float(thresholds[np.argmax(allowed & (sensitivities == sensitivities[allowed].max()))])


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
    """Reliability diagram data: per non-empty equal-width bin (lowest first), mean predicted probability,
    observed fraction fractured, and the number of images."""
    probabilities = np.asarray(probabilities, dtype=float)
    cases = pd.DataFrame({"fractured": np.asarray(labels, dtype=float), "probability": probabilities,
                          "bin": _calibration_bins(probabilities, bins)})
    grouped = cases.groupby("bin", sort=True)
    return pd.DataFrame({
        "mean_predicted": grouped["probability"].mean().to_numpy(),
        "observed_fraction": grouped["fractured"].mean().to_numpy(),
        "images": grouped.size().to_numpy(),
    })
