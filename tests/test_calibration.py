"""Platt calibration folded into the output layer (`fracture_model.train.calibrate_output_layer`).

A tiny model whose output layer is the network's (a dense sigmoid named ``network.OUTPUT_LAYER``); labels
drawn from a known logistic curve of its logit. The fit is checked against a direct maximum-likelihood fit
(scipy), the folded weights against the formula, and the result against the labels.
"""

import keras
import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit, logit

from fracture_model import metrics, network
from fracture_model.train import calibrate_output_layer

TRUE_SLOPE, TRUE_INTERCEPT = 2.0, -0.5


def _tiny_model(seed: int = 0) -> keras.Model:
    inputs = keras.Input((4,))
    output = keras.layers.Dense(1, activation="sigmoid", name=network.OUTPUT_LAYER)(inputs)
    model = keras.Model(inputs, output)
    rng = np.random.default_rng(seed)
    model.get_layer(network.OUTPUT_LAYER).set_weights([rng.normal(0, 0.5, (4, 1)), np.array([0.3])])
    return model


def _cases(model: keras.Model, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, raw probabilities, labels) with P(label 1) = sigmoid(TRUE_SLOPE * raw logit + TRUE_INTERCEPT)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(0, 1.5, (count, 4)).astype(np.float32)
    raw = model.predict(features, verbose=0).ravel().astype(np.float64)
    labels = (rng.random(count) < expit(TRUE_SLOPE * logit(raw) + TRUE_INTERCEPT)).astype(int)
    return features, raw, labels


def _maximum_likelihood(raw: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The Platt parameters by minimising the log loss directly."""
    z = logit(raw)

    def log_loss(parameters: np.ndarray) -> float:
        p = np.clip(expit(parameters[0] * z + parameters[1]), 1e-12, 1 - 1e-12)
        return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))

    fitted = minimize(log_loss, x0=np.array([1.0, 0.0]), method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-12})
    return float(fitted.x[0]), float(fitted.x[1])


def test_platt_fit_is_the_maximum_likelihood_fit_and_recovers_the_true_curve():
    model = _tiny_model()
    _, raw, labels = _cases(model, 20_000, seed=1)
    slope, intercept = calibrate_output_layer(model, raw, labels)
    assert (slope, intercept) == pytest.approx(_maximum_likelihood(raw, labels), abs=1e-3)
    assert slope == pytest.approx(TRUE_SLOPE, abs=0.1) and intercept == pytest.approx(TRUE_INTERCEPT, abs=0.1)


def test_calibration_is_folded_into_the_output_layer():
    model = _tiny_model()
    kernel, bias = (w.copy() for w in model.get_layer(network.OUTPUT_LAYER).get_weights())
    _, raw, labels = _cases(model, 2_000, seed=2)
    slope, intercept = calibrate_output_layer(model, raw, labels)
    new_kernel, new_bias = model.get_layer(network.OUTPUT_LAYER).get_weights()
    np.testing.assert_allclose(new_kernel, kernel * slope, rtol=1e-6)
    np.testing.assert_allclose(new_bias, bias * slope + intercept, rtol=1e-6)

    features, raw_new, _ = _cases(_tiny_model(), 500, seed=3)  # fresh inputs through the uncalibrated twin
    calibrated = model.predict(features, verbose=0).ravel()
    np.testing.assert_allclose(calibrated, expit(slope * logit(raw_new) + intercept), atol=1e-5)


def test_calibration_lowers_the_error_on_new_cases():
    model = _tiny_model()
    _, raw, labels = _cases(model, 5_000, seed=4)
    features, raw_new, labels_new = _cases(_tiny_model(), 5_000, seed=5)
    before = metrics.expected_calibration_error(labels_new, raw_new)
    calibrate_output_layer(model, raw, labels)
    after = metrics.expected_calibration_error(labels_new, model.predict(features, verbose=0).ravel())
    assert after < 0.03 < before


def test_a_model_no_better_than_chance_is_left_uncalibrated(capsys):
    model = _tiny_model()
    weights = [w.copy() for w in model.get_layer(network.OUTPUT_LAYER).get_weights()]
    _, raw, labels = _cases(model, 2_000, seed=6)
    assert calibrate_output_layer(model, raw, 1 - labels) == (1.0, 0.0)  # reversed labels: negative slope
    for before, after in zip(weights, model.get_layer(network.OUTPUT_LAYER).get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert "left uncalibrated" in capsys.readouterr().err
