"""The LiteRT copy of the network scores exactly as the Keras model does, and never drifts from it."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from fracture_model import lite
from fracture_model.imaging import read_radiograph
from fracture_model.model_card import CARD_FILE, LITE_FILE, MODEL_FILE, file_sha256
from fracture_model.predictor import Predictor, with_pooled_features
from fracture_model.preprocess import PREPROCESSING_NAME
from tests.conftest import MODEL_DIR

SIZE = 32


def _small_network() -> keras.Model:
    """A few layers with the shipped network's names where they matter ('pool' feeds the output)."""
    inputs = keras.Input((SIZE, SIZE, 1), name="radiograph")
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3, activation="relu")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    output = keras.layers.Dense(1, activation="sigmoid", name="probability_fractured")(pooled)
    model = keras.Model(inputs, output)
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _card(**changes) -> dict:
    return {"name": "small", "model_file": MODEL_FILE, "input_size": SIZE, "preprocessing": PREPROCESSING_NAME,
            "output": "one sigmoid unit: P(fractured)", "positive_class": "fractured",
            "operating_threshold": 0.5, "last_conv_layer": "none", **changes}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lite_model")
    model = _small_network()
    model.save(folder / MODEL_FILE)
    lite.export(with_pooled_features(model), folder / LITE_FILE)
    card = _card(fast_forward=lite.card_entry(file_sha256(folder / MODEL_FILE)))
    (folder / CARD_FILE).write_text(json.dumps(card))
    return folder


def _inputs(count: int) -> np.ndarray:
    return np.random.default_rng(0).random((count, SIZE, SIZE, 1), dtype=np.float32)


def test_the_converted_network_gives_the_keras_outputs(model_dir):
    model = with_pooled_features(keras.saving.load_model(model_dir / MODEL_FILE, compile=False))
    inputs = _inputs(5)
    expected_probabilities, expected_features = (np.asarray(out) for out in model(inputs, training=False))
    probabilities, features = lite.LiteForward(model_dir / LITE_FILE)(inputs)
    assert probabilities.shape == (5, 1) and features.shape == expected_features.shape
    np.testing.assert_allclose(probabilities, expected_probabilities, atol=1e-5)
    np.testing.assert_allclose(features, expected_features, atol=1e-5)
    assert len(set(np.round(probabilities.ravel(), 4))) == 5  # five different answers, each in its place


def test_load_scores_through_the_converted_network_as_through_keras(model_dir):
    loaded = Predictor.load(model_dir)
    assert isinstance(loaded._forward, lite.LiteForward)
    keras_path = Predictor(loaded.model, loaded.card)  # the compiled TensorFlow graph
    images = [np.random.default_rng(i).random((40 + i, 50)).astype(np.float32) for i in range(4)]
    for converted, compiled in zip(loaded.predict_many(images, batch_size=3), keras_path.predict_many(images),
                                   strict=True):
        assert converted.probability_fractured == pytest.approx(compiled.probability_fractured, abs=1e-5)


def test_a_converted_file_of_another_model_is_refused(model_dir, tmp_path):
    for name in (MODEL_FILE, LITE_FILE):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    card = json.loads((model_dir / CARD_FILE).read_text())
    card["fast_forward"]["converted_from_sha256"] = "0" * 64  # the .keras file was replaced after conversion
    (tmp_path / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ValueError, match="converted from another model file"):
        Predictor.load(tmp_path)


def test_the_shipped_converted_file_is_the_shipped_models(shipped_predictor, sample_paths):
    card = shipped_predictor.card
    assert card["fast_forward"]["file"] == LITE_FILE
    assert card["fast_forward"]["converted_from_sha256"] == file_sha256(MODEL_DIR / MODEL_FILE)
    assert isinstance(shipped_predictor._forward, lite.LiteForward)
    model = with_pooled_features(shipped_predictor.model)
    for path in sample_paths:
        network_input = shipped_predictor.network_input(read_radiograph(path.read_bytes()).pixels)
        probability, features = (np.asarray(out) for out in model(network_input, training=False))
        converted_probability, converted_features = shipped_predictor._forward(network_input)
        assert converted_probability.item() == pytest.approx(probability.item(), abs=1e-5)
        np.testing.assert_allclose(converted_features, features, atol=1e-4)


def test_loading_and_scoring_print_nothing(model_dir, capfd):
    forward = lite.LiteForward(model_dir / LITE_FILE)
    forward(_inputs(2))
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")  # the predict command's stderr holds only its own sentences
