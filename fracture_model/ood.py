"""How far a radiograph lies from the training data: "outside what I know".

The score is the Mahalanobis distance of the network's pooled features (the 1280 values the output
layer reads, layer ``POOLED_FEATURES_LAYER``) from the training split's features, with a shrunk
(Ledoit-Wolf) covariance so that 1280 dimensions fitted on a few thousand images stay well conditioned.
The threshold is a quantile of the distances of the *validation* split (images the detector was not
fitted on), so by construction it fires on about ``1 - quantile`` of FracAtlas-like images.

It warns, it never refuses: a flagged image is still scored, with a sentence beside the probability.
The fitted statistics live beside the model (``OOD_FILE``) and the card names them, their threshold and
how it was chosen; a model without them simply has no out-of-distribution note (``None``).

A second check needs no model: ``image_content`` finds images with nothing of a radiograph in them
(a flat field, a smooth shade, noise), which the pooled features do not tell apart from radiographs
(``bench/ood_examples.py``). It looks at the network input itself, inside the letterbox's black bars:
how far shapes larger than a sixteenth of the side stand out from the best smooth shade (a polynomial
of degree 4: gradients, vignetting), and how alike neighbouring pixels are. Its two limits are fixed, not
fitted to a model; they were chosen on the training split and its shifted copies (``bench/featureless.py``
prints how often they fire). A featureless image is flagged (``in_distribution`` false) whatever its distance,
with its own sentence (``FEATURELESS_NOTE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
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

FEATURELESS_NOTE = (
    "This image shows none of the shapes and edges of a radiograph (it is nearly uniform, a smooth shade or "
    "noise), so the model has nothing to read in it and its probability means nothing here."
)
"""The sentence shown instead of ``OUT_OF_DISTRIBUTION_NOTE`` when ``image_content`` finds nothing to read."""

STRUCTURE_GRID = 16
"""``image_content`` averages the image into this many cells a side before it looks for shapes."""

SHADE_DEGREE = 4
"""The smooth shade ``image_content`` takes away first: a polynomial of this degree over the grid."""

MIN_STRUCTURE = 0.025
"""Below this (the 1st-99th percentile range, on the 0-1 grey scale, of the grid's cells around the best
smooth shade), an image has no shapes: a flat field or a smooth shade. On the training split's benchmark
copies no fractured image came below 0.042; 3.5% of normal 1.5x close-ups did (crops of flat tissue)."""

MIN_NEIGHBOUR_CORRELATION = 0.5
"""Below this correlation of neighbouring pixels, an image is noise (training split's benchmark copies: 0.62
at the least, 0.93 unshifted; noise drawn pixel by pixel: about 0.15)."""

_BLACK = 0.5 / 255
_Y, _X = (axis.ravel() for axis in np.mgrid[-1:1:STRUCTURE_GRID * 1j, -1:1:STRUCTURE_GRID * 1j])
_SHADE = np.stack([_X ** i * _Y ** j for i in range(SHADE_DEGREE + 1) for j in range(SHADE_DEGREE + 1 - i)], axis=1)


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


@dataclass(frozen=True)
class ImageContent:
    """What ``image_content`` measured: ``structure`` (0-1 grey scale) and ``neighbour_correlation`` (-1 to 1)."""

    structure: float
    neighbour_correlation: float

    @property
    def featureless(self) -> bool:
        """Nothing of a radiograph to read: no shapes beyond a smooth shade, or pixels unrelated to their neighbours
        (noise; noise smaller than the network input, enlarged to it, is not caught)."""
        return self.structure < MIN_STRUCTURE or self.neighbour_correlation < MIN_NEIGHBOUR_CORRELATION


def image_content(network_input: np.ndarray) -> ImageContent:
    """Measure one network input ((size, size) or (size, size, 1), values in [0, 1]) for ``featureless``.

    Rows and columns that are black to the border (the letterbox's bars, or a black frame) are left out,
    and one pixel more where the resizing blended them with the image."""
    image = np.asarray(network_input, dtype=np.float32)
    image = image.reshape(image.shape[0], image.shape[1])
    rows, columns = np.flatnonzero(image.max(axis=1) > _BLACK), np.flatnonzero(image.max(axis=0) > _BLACK)
    if len(rows) < STRUCTURE_GRID + 2 or len(columns) < STRUCTURE_GRID + 2:  # black, or a sliver
        return ImageContent(0.0, 1.0)
    inside = image[rows[0] + 1:rows[-1], columns[0] + 1:columns[-1]]
    grid = cv2.resize(inside, (STRUCTURE_GRID, STRUCTURE_GRID), interpolation=cv2.INTER_AREA).ravel().astype(np.float64)
    coefficients, *_ = np.linalg.lstsq(_SHADE, grid, rcond=None)
    low, high = np.percentile(grid - _SHADE @ coefficients, [1, 99])
    correlation = (_correlation(inside[:, :-1], inside[:, 1:]) + _correlation(inside[:-1], inside[1:])) / 2
    return ImageContent(float(high - low), correlation)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally shaped arrays; 1 where either is constant (nothing varies)."""
    a, b = a - a.mean(), b - b.mean()
    scale = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / scale) if scale > 0 else 1.0


def fit(training_features: np.ndarray, validation_features: np.ndarray,
        quantile: float = DEFAULT_QUANTILE) -> DistanceModel:
    """Fit on training features; set the threshold at ``quantile`` of the validation distances."""
    from sklearn.covariance import LedoitWolf

    estimate = LedoitWolf().fit(np.asarray(training_features, dtype=np.float64))
    unthresholded = DistanceModel(estimate.location_, estimate.precision_, threshold=np.inf)
    threshold = float(np.quantile(unthresholded.distances(validation_features), quantile))
    return DistanceModel(estimate.location_, estimate.precision_, threshold)


def card_entry(distance_model: DistanceModel, quantile: float, flags_on_validation: float,
               flags_on_shifted_validation: float | None) -> dict:
    """What the model card says about the check (``Predictor.load`` reads ``file`` and the app the rest)."""
    return {
        "file": OOD_FILE,
        "score": f"Mahalanobis distance of the pooled features (layer '{POOLED_FEATURES_LAYER}') from the training "
                 "split's, Ledoit-Wolf shrunk covariance (fracture_model.ood)",
        "threshold": distance_model.threshold,
        "threshold_rule": f"quantile {quantile} of the validation split's distances",
        "flags_on_validation": flags_on_validation,
        "flags_on_shifted_validation": flags_on_shifted_validation,
        "meaning": "warns, never refuses: the image is scored and a sentence says the probability may be less reliable",
    }


def main(argv: list[str] | None = None) -> int:
    """Fit the check for a trained model from its own split (``python -m fracture_model.ood --model-dir DIR``)."""
    import argparse

    import keras
    import pandas as pd

    from fracture_model import data, localisation
    from fracture_model.model_card import MODEL_FILE, SPLIT_FILE, read_card, write_card

    parser = argparse.ArgumentParser(prog="python -m fracture_model.ood", description=main.__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder")
    parser.add_argument("--quantile", type=float, default=DEFAULT_QUANTILE)
    parser.add_argument("--seed", type=int, default=20261127, help="seed of the shifted validation copy")
    args = parser.parse_args(argv)

    card = read_card(args.model_dir)
    model = keras.saving.load_model(args.model_dir / card.get("model_file", MODEL_FILE), compile=False)
    features = keras.Model(model.inputs, model.get_layer(POOLED_FEATURES_LAYER).output)
    split = pd.read_csv(args.model_dir / SPLIT_FILE)
    size = int(card["input_size"])

    def pooled(inputs: np.ndarray) -> np.ndarray:
        return features.predict(inputs.astype(np.float32) / 255.0, batch_size=16, verbose=0)

    train = split[split["split"] == "train"]
    validation = split[split["split"] == "validation"]
    fitted = fit(pooled(data.load_inputs(args.data, list(train["path"]), size)),
                 validation_features := pooled(data.load_inputs(args.data, list(validation["path"]), size)),
                 args.quantile)
    boxes = localisation.load_boxes(args.data / localisation.ANNOTATIONS_FILE)
    shifted, _ = data.load_shifted_inputs(args.data, validation, boxes, size, "mix", args.seed)
    flags = float(1.0 - fitted.in_distribution(validation_features).mean())
    shifted_flags = float(1.0 - fitted.in_distribution(pooled(shifted)).mean())
    fitted.save(args.model_dir / OOD_FILE)
    card["out_of_distribution"] = card_entry(fitted, args.quantile, flags, shifted_flags)
    write_card(args.model_dir, card)
    print(f"threshold {fitted.threshold:.2f}: flags {flags:.1%} of validation, {shifted_flags:.1%} of its shifted copy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
