"""How far a radiograph lies from the training data: "outside what I know".

The score is the Mahalanobis distance of the network's pooled features (the 1280 values the output
layer reads, layer ``POOLED_FEATURES_LAYER``) from the training split's features, with a shrunk
(Ledoit-Wolf) covariance so that 1280 dimensions fitted on a few thousand images stay well conditioned.
The threshold is a quantile of the distances of the *validation* split (images the detector was not
fitted on), so by construction it fires on about ``1 - quantile`` of FracAtlas-like images.

It warns, it never refuses: a flagged image is still scored, with a sentence beside the probability.
The fitted statistics live beside the model (``OOD_FILE``) and the card names them, their threshold and
how it was chosen; a model without them simply has no out-of-distribution note (``None``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

POOLED_FEATURES_LAYER = "pool"
OOD_FILE = "out_of_distribution.npz"
DEFAULT_QUANTILE = 0.95

OUT_OF_DISTRIBUTION_NOTE = (
    "This image looks unlike the radiographs the model was trained on (other equipment, a close-up, "
    "a rotated or marked image, or not a limb radiograph): the probability may be less reliable, "
    "so read it with extra care."
)
"""The one sentence every surface shows beside a flagged image's probability."""


@dataclass(frozen=True)
class DistanceModel:
    """Mean and precision (inverse shrunk covariance) of the training features, and the flag threshold."""

    mean: np.ndarray
    precision: np.ndarray
    threshold: float

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``features`` (n, d) from the training mean."""
        centred = np.asarray(features, dtype=np.float64) - self.mean
        squared = np.einsum("nd,de,ne->n", centred, self.precision, centred)
        return np.sqrt(np.maximum(squared, 0.0))

    def in_distribution(self, features: np.ndarray) -> np.ndarray:
        """True where the distance is at most the threshold."""
        return self.distances(features) <= self.threshold

    def save(self, path: Path | str) -> None:
        np.savez_compressed(path, mean=self.mean.astype(np.float32), precision=self.precision.astype(np.float32),
                            threshold=np.float64(self.threshold))

    @classmethod
    def load(cls, path: Path | str) -> DistanceModel:
        with np.load(path) as saved:
            return cls(saved["mean"].astype(np.float64), saved["precision"].astype(np.float64),
                       float(saved["threshold"]))


def fit(training_features: np.ndarray, validation_features: np.ndarray,
        quantile: float = DEFAULT_QUANTILE) -> DistanceModel:
    """Fit on training features; set the threshold at ``quantile`` of the validation distances."""
    from sklearn.covariance import LedoitWolf

    estimate = LedoitWolf().fit(np.asarray(training_features, dtype=np.float64))
    unthresholded = DistanceModel(estimate.location_, estimate.precision_, threshold=np.inf)
    threshold = float(np.quantile(unthresholded.distances(validation_features), quantile))
    return DistanceModel(estimate.location_, estimate.precision_, threshold)
