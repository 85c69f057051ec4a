"""Weight averages of runs on one split (python -m fracture_model.soup), end to end on the tiny FracAtlas copy."""

import shutil

import keras
import numpy as np
import pandas as pd
import pytest

from fracture_model import data, network, soup
from fracture_model.metrics import choose_threshold
from fracture_model.model_card import read_card, write_card
from fracture_model.predictor import Predictor


@pytest.fixture(scope="module")
def two_runs(tiny_trained_run, tiny_plain_run, tmp_path_factory):
    """Two tiny runs on one split with different training seeds (3 and 8; ``tests/conftest.py``), copied."""
    folder = tmp_path_factory.mktemp("runs")
    shutil.copytree(tiny_trained_run, folder / "run_a")
    shutil.copytree(tiny_plain_run, folder / "run_b")
    return folder / "run_a", folder / "run_b"


def test_soup_averages_the_weights_and_refits_on_validation(two_runs, tiny_fracatlas, tmp_path):
    first, second = two_runs
    evaluated = read_card(first) | {"test": {"roc_auc": 0.5}, "evaluation_command": "python -m fracture_model.evaluate"}
    write_card(first, evaluated)  # an ingredient evaluated on test (the shipped model was one)
    out = tmp_path / "soup"
    assert soup.main(["--data", str(tiny_fracatlas), "--out", str(out), str(first), str(second)]) == 0

    averaged = keras.saving.load_model(out / "fracture_cnn.keras", compile=False)
    ingredients = [keras.saving.load_model(run / "fracture_cnn.keras", compile=False) for run in two_runs]
    for layer in averaged.layers:
        if layer.name == network.OUTPUT_LAYER or not layer.weights:
            continue  # the output layer holds the calibration fitted again on validation
        for i, weight in enumerate(layer.get_weights()):
            expected = np.mean([m.get_layer(layer.name).get_weights()[i] for m in ingredients], axis=0)
            np.testing.assert_allclose(weight, expected, rtol=0, atol=1e-6)

    card = read_card(out)
    assert [i["training"]["training_seed"] for i in card["weight_average"]["ingredients"]] == [3, 8]
    assert card["operating_threshold_chosen_on"] == "validation split"
    split = pd.read_csv(out / "split.csv")
    validation = split[split["split"] == "validation"]
    inputs = data.load_inputs(tiny_fracatlas, list(validation["path"]), card["input_size"])
    labels = validation["fractured"].to_numpy()
    calibrated = averaged.predict(data.RadiographBatches(inputs, labels, 8, training=False), verbose=0).ravel()
    # the average's own threshold, from its own calibrated validation scores (not an ingredient's; tiny runs
    # separate validation perfectly, so the value itself may sit at either end of [0, 1])
    assert card["operating_threshold"] == pytest.approx(
        choose_threshold(labels, calibrated, "youden"), abs=1e-6)
    assert card["out_of_distribution"]["file"] == "out_of_distribution.npz"
    assert card["fast_forward"] is None and "test_time_views" not in card
    assert "test" not in card and "evaluation_command" not in card
    assert (out / "split.csv").read_bytes() == (first / "split.csv").read_bytes()
    predictor = Predictor.load(out)
    prediction = predictor.predict(np.zeros((64, 64), np.float32))
    assert 0.0 <= prediction.probability_fractured <= 1.0 and prediction.in_distribution is not None


def test_soup_refuses_runs_on_another_split(two_runs, tiny_fracatlas, tmp_path, capsys):
    first, second = two_runs
    other = tmp_path / "other_split"
    shutil.copytree(second, other)
    split = pd.read_csv(other / "split.csv")
    split.loc[0, "split"] = "test" if split.loc[0, "split"] != "test" else "train"  # one image moved
    split.to_csv(other / "split.csv", index=False)
    assert soup.main(["--data", str(tiny_fracatlas), "--out", str(tmp_path / "soup"), str(first), str(other)]) == 2
    assert "another split" in capsys.readouterr().err
    assert not (tmp_path / "soup").exists()


def test_average_weights_is_the_mean_and_refuses_other_shapes():
    a, b = [np.zeros((2, 2)), np.ones(3)], [np.full((2, 2), 4.0), np.full(3, 3.0)]
    mean = soup.average_weights([a, b])
    np.testing.assert_array_equal(mean[0], np.full((2, 2), 2.0))
    np.testing.assert_array_equal(mean[1], np.full(3, 2.0))
    with pytest.raises(ValueError, match="architecture"):
        soup.average_weights([a, [np.zeros((3, 2)), np.ones(3)]])
