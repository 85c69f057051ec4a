"""The fracture CNN: EfficientNet-Lite0 built as one flat Keras 3 functional graph.

Flat (no nested sub-model) so that tf-keras-vis can take gradients from the output back to the last
convolutional layer, which is named ``LAST_CONV_LAYER``. Everything here is backend-neutral Keras
(no ``tf.`` calls), so the same code trains under JAX on a GPU and serves under TensorFlow.

EfficientNet-Lite0 is the EfficientNet-B0 block table without squeeze-excitation, with ReLU6, a fixed
32-channel stem and a 1280-channel head, TF "same" padding and batch-norm epsilon 1e-3. Layer names
follow the ``efficientnet_pytorch`` state-dict naming so that ``tools/convert_efficientnet_lite0.py``
can map the ImageNet weights one to one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

LAST_CONV_LAYER = "head_activation"
"""Name of the layer whose output Grad-CAM explains (after the head's batch-norm and ReLU6)."""

OUTPUT_LAYER = "probability_fractured"

BATCH_NORM_EPSILON = 1e-3


@dataclass(frozen=True)
class Stage:
    expand_ratio: int
    kernel_size: int
    stride: int
    filters_in: int
    filters_out: int
    repeats: int


# The EfficientNet-B0 / Lite0 block table.
STAGES: tuple[Stage, ...] = (
    Stage(1, 3, 1, 32, 16, 1),
    Stage(6, 3, 2, 16, 24, 2),
    Stage(6, 5, 2, 24, 40, 2),
    Stage(6, 3, 2, 40, 80, 3),
    Stage(6, 5, 1, 80, 112, 3),
    Stage(6, 5, 2, 112, 192, 4),
    Stage(6, 3, 1, 192, 320, 1),
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280


def _batch_norm(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, momentum=0.99, name=name)


def _relu6(name: str) -> layers.ReLU:
    return layers.ReLU(max_value=6.0, name=name)


def _mobile_block(x, stage: Stage, filters_in: int, stride: int, index: int):
    """One inverted-residual block (MBConv without squeeze-excitation)."""
    prefix = f"block{index}"
    inputs = x
    expanded = filters_in * stage.expand_ratio
    if stage.expand_ratio != 1:
        x = layers.Conv2D(expanded, 1, padding="same", use_bias=False, name=f"{prefix}_expand_conv")(x)
        x = _batch_norm(f"{prefix}_bn0")(x)
        x = _relu6(f"{prefix}_expand_relu")(x)
    x = layers.DepthwiseConv2D(
        stage.kernel_size, strides=stride, padding="same", use_bias=False, name=f"{prefix}_depthwise_conv"
    )(x)
    x = _batch_norm(f"{prefix}_bn1")(x)
    x = _relu6(f"{prefix}_depthwise_relu")(x)
    x = layers.Conv2D(stage.filters_out, 1, padding="same", use_bias=False, name=f"{prefix}_project_conv")(x)
    x = _batch_norm(f"{prefix}_bn2")(x)
    if stride == 1 and filters_in == stage.filters_out:
        x = layers.Add(name=f"{prefix}_add")([x, inputs])
    return x


def backbone_features(image):
    """Apply EfficientNet-Lite0 to ``image`` (an RGB tensor in [-1, 1]); returns ``LAST_CONV_LAYER``'s output."""
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(image)
    x = _batch_norm("stem_bn")(x)
    x = _relu6("stem_relu")(x)
    index = 0
    for stage in STAGES:
        for repeat in range(stage.repeats):
            filters_in = stage.filters_in if repeat == 0 else stage.filters_out
            stride = stage.stride if repeat == 0 else 1
            x = _mobile_block(x, stage, filters_in, stride, index)
            index += 1
    x = layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="head_conv")(x)
    x = _batch_norm("head_bn")(x)
    return _relu6(LAST_CONV_LAYER)(x)


def imagenet_classifier(image_size: int = 224) -> keras.Model:
    """The full ImageNet classifier (1000 logits), used only to check the weight conversion."""
    image = keras.Input((image_size, image_size, 3), name="image")
    x = layers.GlobalAveragePooling2D(name="pool")(backbone_features(image))
    logits = layers.Dense(1000, name="imagenet_logits")(x)
    return keras.Model(image, logits, name="efficientnet_lite0_imagenet")


def load_backbone_weights(model: keras.Model, path: Path | str) -> int:
    """Copy weights saved by ``tools/convert_efficientnet_lite0.py`` into the layers of the same name.

    The file is an ``.npz`` with one entry per weight, keyed ``<layer name>/<index>``. Returns the number
    of layers loaded; raises ``ValueError`` if a backbone layer of ``model`` finds no weights.
    """
    with np.load(path) as saved:
        by_layer: dict[str, dict[int, np.ndarray]] = {}
        for key in saved.files:
            layer_name, index = key.rsplit("/", 1)
            by_layer.setdefault(layer_name, {})[int(index)] = saved[key]
    loaded = 0
    for layer in model.layers:
        if not layer.weights or layer.name not in by_layer:
            continue
        arrays = by_layer[layer.name]
        layer.set_weights([arrays[i] for i in range(len(arrays))])
        loaded += 1
    missing = [name for name in backbone_layer_names(model) if name not in by_layer and model.get_layer(name).weights]
    if missing:
        raise ValueError(f"{path} has no weights for backbone layers {missing[:5]}")
    return loaded


def build_fracture_model(
    image_size: int,
    backbone_weights: Path | str | None = None,
    dropout: float = 0.3,
) -> keras.Model:
    """The fracture classifier.

    Input: the output of ``fracture_model.preprocess.preprocess`` — a (size, size, 1) grayscale image in
    [0, 1]. The model itself maps it to three channels in [-1, 1]. Output: one sigmoid unit, the
    probability that the radiograph shows a fracture (``OUTPUT_LAYER``).

    ``backbone_weights``: an ``.npz`` written by ``tools/convert_efficientnet_lite0.py`` (ImageNet), or
    None to start from scratch.
    """
    grayscale = keras.Input((image_size, image_size, 1), name="radiograph")
    scaled = layers.Rescaling(2.0, offset=-1.0, name="to_unit_range")(grayscale)
    rgb = layers.Concatenate(axis=-1, name="gray_to_rgb")([scaled, scaled, scaled])
    x = layers.GlobalAveragePooling2D(name="pool")(backbone_features(rgb))
    x = layers.Dropout(dropout, name="dropout")(x)
    probability = layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(x)
    model = keras.Model(grayscale, probability, name="fracture_efficientnet_lite0")
    if backbone_weights is not None:
        load_backbone_weights(model, backbone_weights)
    return model


EVIDENCE_MAP = "evidence_map"
"""Name of the training-only second output of ``with_evidence_map``."""


def with_evidence_map(model: keras.Model) -> keras.Model:
    """The classifier with a second output: its logit at every cell of ``LAST_CONV_LAYER``.

    The head is global average pooling then one dense unit, so the classifier's logit is exactly the mean
    over cells of ``features(cell) . kernel + bias``: that map, computed with the output layer's own
    weights, is the class activation map, and it is what Grad-CAM draws for this head (the gradient of
    the logit with respect to each feature channel is ``kernel / cells`` everywhere). Training a loss on
    this map therefore trains the explanation itself. The returned model shares every layer and weight
    with ``model``; it is used for training only, and ``model`` alone is saved.
    """
    dense = model.get_layer(OUTPUT_LAYER)
    features = model.get_layer(LAST_CONV_LAYER).output

    def cell_logits(feature_map):
        return keras.ops.einsum("bhwc,co->bhwo", feature_map, dense.kernel) + dense.bias

    evidence = layers.Lambda(cell_logits, name=EVIDENCE_MAP)(features)
    return keras.Model(model.inputs, [model.outputs[0], evidence], name=f"{model.name}_with_evidence_map")


HEAD_LAYERS = frozenset({"radiograph", "image", "to_unit_range", "gray_to_rgb", "pool", "dropout", OUTPUT_LAYER,
                         "imagenet_logits"})


def backbone_layer_names(model: keras.Model) -> list[str]:
    """Names of the EfficientNet-Lite0 layers inside a model (the part with ImageNet weights)."""
    head = HEAD_LAYERS
    return [layer.name for layer in model.layers if layer.name not in head]
