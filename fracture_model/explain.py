"""Heatmaps of what the network looked at (tf-keras-vis), and their overlay on the radiograph.

The explained score is the model's sigmoid output, P(fractured): ``BinaryScore(True)`` explains the
"fractured" class (the model card says the positive class is "fractured"). Grad-CAM and Grad-CAM++
take gradients of the pre-sigmoid logit (``ReplaceToLinear``); Faster-ScoreCAM works on the probability.
tf-keras-vis' ScoreCAM passes the model's output through a softmax, which turns a single sigmoid unit
into a constant 1 (the map would then ignore the classifier entirely): ScoreCAM is therefore given the
same network with two outputs, log P(not fractured) and log P(fractured), whose softmax is exactly
(1 - P, P), and scores index 1.
Maps are taken at ``LAST_CONV_LAYER`` itself (after the head's batch-norm and ReLU6), so
``seek_penultimate_conv_layer=False``.

Each map is computed at the layer's own resolution (one value per cell of its grid, ``expand_cam=False``)
and enlarged here with ``cv2.resize``, which puts the value of cell ``j`` of ``n`` over the centre of the
``j``-th of ``n`` equal strips of the input, the pixel-centre convention of ``Letterbox`` and the COCO boxes
and the one box supervision trains with (``data.cell_targets``). tf-keras-vis' own enlargement
(``scipy.ndimage.zoom``) aligns the corner cells with the corner pixels instead, which moves the map by up to
half a cell (16 px of a 384 px input) towards the image's borders.

Grad-CAM is served through a graph-compiled copy of tf-keras-vis' own computation (``_CompiledGradcam``):
tf-keras-vis runs eagerly and rebuilds its gradient model on every call (0.3 to 0.5 s a map here); the
compiled path reuses tf-keras-vis' linearised clone of the model and does the same arithmetic in one traced
function. ``input_heatmaps(..., reference=True)`` still goes through tf-keras-vis; tests/test_explain_fast.py
holds the two to 1e-4 over the shipped test cases.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from tf_keras_vis.gradcam import Gradcam  # noqa: E402
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus  # noqa: E402
from tf_keras_vis.scorecam import Scorecam  # noqa: E402
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear  # noqa: E402
from tf_keras_vis.utils.scores import BinaryScore, CategoricalScore  # noqa: E402

from fracture_model.localisation import heatmap_peak  # noqa: E402
from fracture_model.network import LAST_CONV_LAYER  # noqa: E402
from fracture_model.preprocess import Letterbox  # noqa: E402

METHODS = ("Grad-CAM", "Grad-CAM++", "Faster-ScoreCAM")
DEFAULT_METHOD = "Grad-CAM"
SCORECAM_CHANNELS = 32
"""Faster-ScoreCAM (max_N): only the channels with the largest activations are scored."""


@dataclass(frozen=True)
class Explanation:
    method: str
    heatmap: np.ndarray
    """Over the original image, float32 in [0, 1], same shape as the radiograph."""
    input_heatmap: np.ndarray
    """Over the square network input, float32 in [0, 1]."""

    @property
    def peak(self) -> tuple[int, int] | None:
        """(x, y) of the heatmap's maximum in original-image pixels; None for a flat map (it points nowhere)."""
        return heatmap_peak(self.heatmap)


class _TwoClassLogProbabilities(keras.layers.Layer):
    """P(fractured) -> [log(1 - P), log P]: softmax of it gives back (1 - P, P)."""

    def call(self, probability):
        probability = keras.ops.clip(probability, 1e-7, 1.0 - 1e-7)
        return keras.ops.concatenate([keras.ops.log1p(-probability), keras.ops.log(probability)], axis=-1)


def two_class_model(model: keras.Model) -> keras.Model:
    """The same network (shared layers and weights) with outputs [log P(not fractured), log P(fractured)]."""
    return keras.Model(model.inputs, _TwoClassLogProbabilities(name="two_class_log_probabilities")(model.outputs[0]))


class Explainer:
    """One tf-keras-vis visualiser per method over the same model, built once (cache it)."""

    def __init__(self, model: keras.Model, positive_class: str = "fractured", last_conv_layer: str = LAST_CONV_LAYER):
        if positive_class != "fractured":
            raise ValueError(f"the model's output means {positive_class!r}; expected P(fractured)")
        self.last_conv_layer = last_conv_layer
        self.scorecam_channels = min(SCORECAM_CHANNELS, int(model.get_layer(last_conv_layer).output.shape[-1]))
        self.score = BinaryScore(True)
        self.scorecam_score = CategoricalScore(1)  # index 1 of two_class_model's output: P(fractured)
        gradcam = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)
        self._visualisers = {
            "Grad-CAM": gradcam,
            # the same linearised clone: cloning a network takes about a second, and the two methods read the
            # same layers of the same network (neither changes the model it is given)
            "Grad-CAM++": GradcamPlusPlus(gradcam.model, clone=False),
            "Faster-ScoreCAM": Scorecam(two_class_model(model), clone=False),
        }
        self._compiled_gradcam = _CompiledGradcam(gradcam.model, last_conv_layer)

    def input_heatmaps(self, batch: np.ndarray, method: str = DEFAULT_METHOD, *, reference: bool = False) -> np.ndarray:
        """Heatmaps over the network input for a batch of preprocessed images: (n, size, size) in [0, 1].

        Grad-CAM goes through the compiled path unless ``reference`` (then through tf-keras-vis itself).
        """
        if method not in self._visualisers:
            raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
        options = {"penultimate_layer": self.last_conv_layer, "seek_penultimate_conv_layer": False,
                   "expand_cam": False}
        if method == "Faster-ScoreCAM":
            options |= {"max_N": self.scorecam_channels, "batch_size": self.scorecam_channels}
        score = self.scorecam_score if method == "Faster-ScoreCAM" else self.score
        if method == "Grad-CAM" and not reference:
            cells = self._compiled_gradcam(batch.astype(np.float32))
        else:
            cells = self._visualisers[method](score, batch.astype(np.float32), **options)
        cells = np.nan_to_num(np.asarray(cells, dtype=np.float32), nan=0.0).reshape(len(batch), *np.shape(cells)[-2:])
        size = (batch.shape[2], batch.shape[1])
        maps = np.stack([cv2.resize(cell_map, size, interpolation=cv2.INTER_LINEAR) for cell_map in cells])
        return np.clip(maps, 0.0, 1.0)

    def explain(self, network_input: np.ndarray, original_shape: tuple[int, int],
                method: str = DEFAULT_METHOD) -> Explanation:
        """Explain one preprocessed image (1, size, size, 1) of a radiograph of ``original_shape``."""
        input_heatmap = self.input_heatmaps(network_input, method)[0]
        letterbox = Letterbox(original_shape, network_input.shape[1])
        heatmap = np.clip(letterbox.crop_to_original(input_heatmap), 0.0, 1.0)
        return Explanation(method=method, heatmap=heatmap, input_heatmap=input_heatmap)


class _CompiledGradcam:
    """tf-keras-vis' Grad-CAM (``BinaryScore(True)`` on the linearised output, map at ``layer``, ReLU,
    per-image min-max normalisation, no enlargement) with the forward and backward pass in one ``tf.function``.

    ``linear_model``: the model whose output activation tf-keras-vis' ``ReplaceToLinear`` already replaced
    (the Grad-CAM visualiser's own clone), so both paths differentiate the same network.
    """

    def __init__(self, linear_model: keras.Model, layer: str):
        import tensorflow as tf

        graph = keras.Model(linear_model.inputs, [linear_model.outputs[0], linear_model.get_layer(layer).output])

        def features_and_weights(batch):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(batch)
                output, features = graph(batch, training=False)
                score = tf.reshape(output, (-1,))  # BinaryScore(True): (2 * 1 - 1) * output
            gradients = tape.gradient(score, features)
            return features, tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)

        self._features_and_weights = tf.function(features_and_weights, reduce_retracing=True)

    def cells(self, batch: np.ndarray) -> np.ndarray:
        """The class activation map per cell, (n, cells, cells), before the ReLU and normalisation: the gradient-
        weighted sum of the layer's channels (``bench/heatmap_views.py`` averages these over test-time views)."""
        features, weights = (np.asarray(value) for value in self._features_and_weights(batch))
        return np.sum(np.multiply(features, weights), axis=-1)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        cam = np.maximum(self.cells(batch), 0.0)  # as tf-keras-vis: sum, then ReLU
        low = cam.min(axis=(1, 2), keepdims=True)
        high = cam.max(axis=(1, 2), keepdims=True)
        return (cam - low) / (high - low + keras.backend.epsilon())  # tf_keras_vis.utils.normalize


def overlay(pixels: np.ndarray, heatmap: np.ndarray, opacity: float = 0.4) -> np.ndarray:
    """RGB uint8 image: the radiograph with the heatmap (jet colour map) blended in at ``opacity``."""
    gray = np.clip(pixels * 255.0, 0, 255).astype(np.uint8)
    base = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(heatmap_image(heatmap), float(opacity), base, 1.0 - float(opacity), 0.0)


def heatmap_image(heatmap: np.ndarray) -> np.ndarray:
    """The heatmap alone as an RGB uint8 image (jet colour map)."""
    colour = cv2.applyColorMap(np.clip(heatmap * 255.0, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)


def mark_peak(image_rgb: np.ndarray, peak: tuple[int, int]) -> np.ndarray:
    """A copy of ``image_rgb`` with a white ring and cross at ``peak`` (x, y)."""
    marked = image_rgb.copy()
    radius = max(6, min(marked.shape[:2]) // 30)
    cv2.circle(marked, peak, radius, (255, 255, 255), thickness=max(2, radius // 4), lineType=cv2.LINE_AA)
    cv2.drawMarker(marked, peak, (255, 255, 255), cv2.MARKER_CROSS, radius, 1, cv2.LINE_AA)
    return marked
