"""Load the shipped model with its card and score radiographs at the stated operating point."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from fracture_model import model_card  # noqa: E402
from fracture_model.model_card import DEFAULT_MODEL_DIR, MODEL_FILE, read_card  # noqa: E402
from fracture_model.ood import (  # noqa: E402
    FEATURELESS_NOTE,
    OUT_OF_DISTRIBUTION_NOTE,
    POOLED_FEATURES_LAYER,
    DistanceModel,
    image_content,
)
from fracture_model.preprocess import PREPROCESSING_NAME, flipped, preprocess, zoomed_out  # noqa: E402

DEFAULT_BATCH_SIZE = 16


@dataclass(frozen=True)
class Prediction:
    probability_fractured: float
    operating_threshold: float
    in_distribution: bool | None = None
    """False: the image lies outside what the model knows (``ood``: too far from the training data, or
    featureless); None: the model has no distance check and the image is not featureless."""
    distance: float | None = None
    """Mahalanobis distance of the image's pooled features from the training data (None without the check)."""
    featureless: bool = False
    """Nothing of a radiograph in the image (``ood.image_content``): a flat field, a smooth shade, noise."""

    @property
    def fractured(self) -> bool:
        return self.probability_fractured >= self.operating_threshold

    @property
    def decision(self) -> str:
        return "fractured" if self.fractured else "not fractured"

    @property
    def out_of_distribution_note(self) -> str | None:
        """The one sentence to show beside the probability when the image is outside what the model knows."""
        if self.featureless:
            return FEATURELESS_NOTE
        return OUT_OF_DISTRIBUTION_NOTE if self.in_distribution is False else None


class Predictor:
    """The model, its card, its out-of-distribution check, and a fast forward pass.

    ``model_sha256`` (``model_card.model_sha256``: the model file and the card's scoring entries) identifies
    the model version everywhere a result is reported; ``model_version`` is its first 12 characters.
    ``forward`` scores a batch of network inputs, returning P(fractured) and the pooled features: by default
    the model's compiled TensorFlow graph; ``load`` uses the model folder's LiteRT copy where the card names
    one (``fracture_model.lite``).
    """

    def __init__(self, model: keras.Model, card: dict, *, distance_model: DistanceModel | None = None,
                 model_sha256: str | None = None, forward=None) -> None:
        if card["preprocessing"] != PREPROCESSING_NAME:
            raise ValueError(
                f"model expects preprocessing {card['preprocessing']!r}, this code provides {PREPROCESSING_NAME!r}"
            )
        if card["positive_class"] != "fractured":
            raise ValueError(f"model card's positive class is {card['positive_class']!r}, expected 'fractured'")
        self.model, self.card = model, card
        self.distance_model = distance_model
        self.model_sha256 = model_sha256 or "unsaved"
        self.image_size = int(card["input_size"])
        self.operating_threshold = float(card["operating_threshold"])
        self._forward = forward or _compiled_forward(with_pooled_features(model))
        self.test_time_views = card.get("test_time_views")
        """None, or the card's extra views (``fracture_model.views``): each input is also scored zoomed out by
        each factor in ``zoom_factors`` and mirrored in each direction in ``flips`` (absent: none), the views'
        logits averaged and calibrated again (slope, intercept)."""
        self.probabilities(np.zeros((1, self.image_size, self.image_size, 1), np.float32))  # trace (or warm) now

    @classmethod
    def load(cls, model_dir: Path | str = DEFAULT_MODEL_DIR) -> Predictor:
        card = read_card(model_dir)
        model_path = Path(model_dir) / card.get("model_file", MODEL_FILE)
        model = keras.saving.load_model(model_path, compile=False)
        ood = card.get("out_of_distribution") or {}
        distance_model = DistanceModel.load(Path(model_dir) / ood["file"]) if ood.get("file") else None
        file_sha256, version = model_card.model_hashes(model_dir, card)
        forward = None
        if fast := card.get("fast_forward"):
            if fast["converted_from_sha256"] != file_sha256:
                raise ValueError(f"{fast['file']} in {model_dir} was converted from another model file than "
                                 f"{model_path.name}; convert it again: python -m fracture_model.lite --model-dir "
                                 f"{model_dir}")
            from fracture_model.lite import LiteForward

            forward = LiteForward(Path(model_dir) / fast["file"])
        return cls(model, card, distance_model=distance_model, model_sha256=version, forward=forward)

    @property
    def model_version(self) -> str:
        return self.model_sha256[:12]

    def network_input(self, pixels: np.ndarray) -> np.ndarray:
        """The one preprocessing, at this model's input size: (1, size, size, 1)."""
        return preprocess(pixels, self.image_size)[np.newaxis]

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P(fractured) (n,), pooled features (n, d)) for a batch of preprocessed inputs (n, size, size, 1).

        With the card's test-time views, P(fractured) is that of the averaged views; the features are always
        the whole image's (the out-of-distribution check was fitted on them)."""
        batch = np.asarray(batch, dtype=np.float32)
        probabilities, features = self._forward(batch)
        probabilities, features = np.asarray(probabilities).reshape(-1), np.asarray(features).reshape(len(batch), -1)
        if self.test_time_views and len(batch):
            views = [zoomed_out(batch, factor) for factor in self.test_time_views["zoom_factors"]]
            views += [flipped(batch, direction) for direction in self.test_time_views.get("flips", [])]
            logits = [logit(probabilities)] + [logit(np.asarray(self._forward(view)[0]).reshape(-1)) for view in views]
            calibration = self.test_time_views["calibration"]
            combined = calibration["slope"] * np.mean(logits, axis=0) + calibration["intercept"]
            probabilities = 1.0 / (1.0 + np.exp(-combined))
        return probabilities, features

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """P(fractured) for a batch of preprocessed inputs (n, size, size, 1)."""
        return self.outputs(batch)[0]

    def predictions(self, batch: np.ndarray) -> list[Prediction]:
        """One ``Prediction`` per preprocessed input of ``batch`` (n, size, size, 1), in one forward pass."""
        probabilities, features = self.outputs(batch)
        featureless = [image_content(image).featureless for image in np.asarray(batch)]
        if self.distance_model is None:
            return [Prediction(float(p), self.operating_threshold, False if empty else None, featureless=empty)
                    for p, empty in zip(probabilities, featureless, strict=True)]
        distances = self.distance_model.distances(features)
        return [Prediction(float(p), self.operating_threshold, bool(d <= self.distance_model.threshold) and not empty,
                           float(d), empty)
                for p, d, empty in zip(probabilities, distances, featureless, strict=True)]

    def predict(self, pixels: np.ndarray) -> Prediction:
        """Score one decoded radiograph (2-D float in [0, 1])."""
        return self.predictions(self.network_input(pixels))[0]

    def predict_many(self, images: Sequence[np.ndarray], batch_size: int = DEFAULT_BATCH_SIZE) -> list[Prediction]:
        """Score decoded radiographs in batches of ``batch_size``; same values as ``predict`` one by one."""
        found: list[Prediction] = []
        for start in range(0, len(images), batch_size):
            batch = np.concatenate([self.network_input(pixels) for pixels in images[start:start + batch_size]])
            found += self.predictions(batch)
        return found


def logit(probabilities: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), with p kept within 1e-7 of 0 and 1."""
    clipped = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(clipped / (1 - clipped))


def with_pooled_features(model: keras.Model) -> keras.Model:
    """The same network (shared weights) returning P(fractured) and the pooled features the output reads."""
    try:
        pooled = model.get_layer(POOLED_FEATURES_LAYER).output
    except ValueError:  # a model without a layer of that name (tiny test models): features are its inputs' mean
        pooled = keras.layers.GlobalAveragePooling2D()(model.inputs[0])
    return keras.Model(model.inputs, [model.outputs[0], pooled])


def _compiled_forward(model: keras.Model):
    """A graph-compiled inference call: about 7x faster than calling the model eagerly.

    Traced once for any batch size (the batch dimension is left open), so the first worklist batch does not
    pay a second tracing (about a second here) after the single radiographs' one.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        any_batch = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32)
        return tf.function(lambda batch: model(batch, training=False), input_signature=[any_batch])
    return lambda batch: model.predict_on_batch(batch)
