"""Heatmaps: shape and range, the class they explain, agreement with a hand-written Grad-CAM, overlay."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fracture_model.explain import METHODS, Explainer, heatmap_image, mark_peak, overlay
from fracture_model.network import LAST_CONV_LAYER, OUTPUT_LAYER

SIZE = 48


def _planted(rng: np.random.Generator, position: tuple[int, int] | None) -> np.ndarray:
    """Noise, plus a bright 8x8 square (the 'fracture' the model learns to key on) at (row, col)."""
    image = rng.uniform(0.0, 0.3, (SIZE, SIZE)).astype(np.float32)
    if position is not None:
        row, col = position
        image[row : row + 8, col : col + 8] = 1.0
    return image[..., np.newaxis]


@pytest.fixture(scope="module")
def planted_model() -> keras.Model:
    """A tiny flat CNN trained until it says 'fractured' exactly when a bright square is present."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    positives = [_planted(rng, tuple(rng.integers(2, SIZE - 10, 2))) for _ in range(200)]
    negatives = [_planted(rng, None) for _ in range(200)]
    images = np.stack(positives + negatives)
    labels = np.array([1.0] * 200 + [0.0] * 200, np.float32)

    inputs = keras.Input((SIZE, SIZE, 1), name="radiograph")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name=LAST_CONV_LAYER)(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, epochs=15, batch_size=32, verbose=0)
    assert model.evaluate(images, labels, verbose=0)[1] > 0.95, "the toy model did not learn the planted square"
    return model


@pytest.fixture(scope="module")
def explainer(planted_model) -> Explainer:
    return Explainer(planted_model)


@pytest.mark.parametrize("method", METHODS)
def test_heatmap_shape_and_range(explainer, method):
    image = _planted(np.random.default_rng(1), (10, 30))
    explanation = explainer.explain(image[np.newaxis], (SIZE * 2, SIZE), method)
    assert explanation.input_heatmap.shape == (SIZE, SIZE)
    assert explanation.heatmap.shape == (SIZE * 2, SIZE)  # mapped back through the letterbox
    assert explanation.heatmap.dtype == np.float32
    assert 0.0 <= explanation.heatmap.min() and explanation.heatmap.max() <= 1.0
    assert explanation.input_heatmap.max() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("position", [(4, 4), (4, 36), (36, 20)])
def test_heatmap_follows_the_planted_feature(explainer, method, position):
    """The explained class is 'fractured': the heatmap's peak sits on the square wherever it is put."""
    image = _planted(np.random.default_rng(2), position)
    heatmap = explainer.input_heatmaps(image[np.newaxis], method)[0]
    row, col = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    assert position[0] - 3 <= row <= position[0] + 11
    assert position[1] - 3 <= col <= position[1] + 11
    inside = heatmap[position[0] : position[0] + 8, position[1] : position[1] + 8].mean()
    assert inside > 3 * heatmap.mean() / 2


def test_grad_cam_matches_a_hand_written_oracle(planted_model, explainer):
    """tf-keras-vis Grad-CAM equals the keras-io recipe: ReLU(sum_k mean(d logit / d A_k) A_k)."""
    image = _planted(np.random.default_rng(3), (20, 12))[np.newaxis]
    output_layer = planted_model.get_layer(OUTPUT_LAYER)
    features_model = keras.Model(planted_model.input, planted_model.get_layer(LAST_CONV_LAYER).output)
    head = keras.Sequential(planted_model.layers[-2:-1])
    with tf.GradientTape() as tape:
        activations = features_model(image)
        tape.watch(activations)
        pooled = head(activations)
        kernel, bias = output_layer.kernel, output_layer.bias
        logit = tf.matmul(pooled, kernel) + bias
    gradients = tape.gradient(logit, activations)
    weights = tf.reduce_mean(gradients, axis=(1, 2))
    oracle = tf.nn.relu(tf.reduce_sum(activations * weights[:, None, None, :], axis=-1))[0].numpy()
    oracle = (oracle - oracle.min()) / (oracle.max() - oracle.min())

    ours = explainer.input_heatmaps(image, "Grad-CAM")[0]
    assert np.corrcoef(oracle.ravel(), ours.ravel())[0, 1] > 0.99


def test_explainer_refuses_a_model_of_another_class(planted_model):
    with pytest.raises(ValueError):
        Explainer(planted_model, positive_class="not fractured")


def test_overlay_and_peak_marker():
    pixels = np.full((40, 30), 0.5, np.float32)
    heatmap = np.zeros((40, 30), np.float32)
    heatmap[10, 20] = 1.0
    blended = overlay(pixels, heatmap, 0.5)
    assert blended.shape == (40, 30, 3) and blended.dtype == np.uint8
    np.testing.assert_array_equal(overlay(pixels, heatmap, 0.0)[..., 0], np.full((40, 30), 127))
    assert heatmap_image(heatmap)[10, 20, 0] > 100  # red at the peak of the jet colour map
    marked = mark_peak(blended, (20, 10))
    assert not np.array_equal(marked, blended) and marked.shape == blended.shape


def test_peak_is_in_original_pixels_and_none_for_a_flat_map():
    from fracture_model.explain import Explanation

    heatmap = np.zeros((40, 30), np.float32)
    assert Explanation("Grad-CAM", heatmap, heatmap).peak is None
    heatmap[10, 20] = 1.0
    assert Explanation("Grad-CAM", heatmap, heatmap).peak == (20, 10)  # (x, y)
