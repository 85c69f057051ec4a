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
