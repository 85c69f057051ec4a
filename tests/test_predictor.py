"""The decision the predictor makes at the card's threshold, on tiny models whose outputs we know.

Fast (no shipped model): the tiny network is global average pooling and one sigmoid unit, so its
probability is sigmoid(w * mean(input) + b), computed here by hand.
"""

from __future__ import annotations

import hashlib
import json
import math

import keras
import numpy as np
import pytest

from fracture_model import ood
from fracture_model.model_card import CARD_FILE, MODEL_FILE, file_sha256, model_hashes, model_sha256
from fracture_model.ood import OUT_OF_DISTRIBUTION_NOTE, DistanceModel
from fracture_model.predictor import Prediction, Predictor
from fracture_model.preprocess import PREPROCESSING_NAME, preprocess

SIZE = 32
WEIGHT, BIAS = 6.0, -3.0


def _card(threshold: float = 0.5, **changes: object) -> dict:
    return {"name": "tiny", "model_file": MODEL_FILE, "input_size": SIZE, "preprocessing": PREPROCESSING_NAME,
            "output": "one sigmoid unit: P(fractured)",
            "positive_class": "fractured", "operating_threshold": threshold, "operating_threshold_rule": "youden",
            "last_conv_layer": "none", **changes}


def _tiny_model() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dropped = keras.layers.Dropout(0.5)(pooled)  # as the real head: the predictor must call it in inference mode
    output = keras.layers.Dense(1, activation="sigmoid", name="probability_fractured")(dropped)
    model = keras.Model(inputs, output)
    model.get_layer("probability_fractured").set_weights([np.array([[WEIGHT]]), np.array([BIAS])])
    return model


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return _tiny_model()


def _expected_probability(pixels: np.ndarray) -> float:
    mean = float(preprocess(pixels, SIZE).mean())
    return 1.0 / (1.0 + math.exp(-(WEIGHT * mean + BIAS)))


def _images(count: int) -> list[np.ndarray]:
    """Brighter and brighter images, each with a brighter band down its middle (not featureless: ``ood``)."""
    rng = np.random.default_rng(0)
    images = []
    for i in range(count):
        image = rng.normal(0.1 + 0.7 * i / count, 0.02, (40 + 3 * i, 48))
        image[:, 16:32] += 0.15
        images.append(np.clip(image, 0, 1).astype(np.float32))
    return images


@pytest.mark.parametrize(("probability", "threshold", "fractured"),
                         [(0.5, 0.5, True), (0.4999, 0.5, False), (0.5001, 0.5, True), (0.0, 0.0, True)])
def test_a_probability_at_the_threshold_is_called_fractured(probability, threshold, fractured):
    prediction = Prediction(probability, threshold)
    assert prediction.fractured is fractured
    assert prediction.decision == ("fractured" if fractured else "not fractured")


@pytest.mark.parametrize(("in_distribution", "note"), [(None, None), (True, None), (False, OUT_OF_DISTRIBUTION_NOTE)])
def test_the_out_of_distribution_note_only_when_flagged(in_distribution, note):
    assert Prediction(0.3, 0.5, in_distribution).out_of_distribution_note == note


def test_probabilities_are_the_models_and_the_threshold_is_the_cards(model):
    predictor = Predictor(model, _card(threshold=0.37))
    assert predictor.operating_threshold == 0.37 and predictor.image_size == SIZE
    for pixels in _images(4):
        prediction = predictor.predict(pixels)
        assert prediction.probability_fractured == pytest.approx(_expected_probability(pixels), abs=1e-6)
        assert prediction.operating_threshold == 0.37
        assert prediction.fractured is (prediction.probability_fractured >= 0.37)
        assert prediction.in_distribution is None and prediction.distance is None
    batch = np.concatenate([predictor.network_input(pixels) for pixels in _images(3)])
    np.testing.assert_allclose(predictor.probabilities(batch), [_expected_probability(p) for p in _images(3)],
                               atol=1e-6)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 16])
def test_batches_give_the_single_predictions_in_order(model, batch_size):
    predictor = Predictor(model, _card())
    images = _images(7)
    many = predictor.predict_many(images, batch_size=batch_size)
    assert len(many) == len(images)
    for one, pixels in zip(many, images, strict=True):
        assert one.probability_fractured == pytest.approx(predictor.predict(pixels).probability_fractured, abs=1e-6)
    assert predictor.predict_many([]) == []


def test_the_forward_pass_is_traced_once_for_every_batch_size(model):
    predictor = Predictor(model, _card())  # traces once, at load
    predictor.predict_many(_images(21), batch_size=16)  # batches of 16 and 5
    predictor.predict(_images(1)[0])
    assert predictor._forward.experimental_get_tracing_count() == 1  # a worklist pays no second tracing


def test_distance_check_flags_at_its_threshold(model):
    # features: the mean of the network input; mean 0 and precision 1, so the distance is |mean|
    images = _images(5)
    means = [float(preprocess(p, SIZE).mean()) for p in images]
    assert means == sorted(means)
    threshold = (means[1] + means[2]) / 2
    predictor = Predictor(model, _card(), distance_model=DistanceModel(np.zeros(1), np.eye(1), threshold))
    predictions = predictor.predict_many(images)
    assert [p.distance for p in predictions] == pytest.approx(means, abs=1e-5)
    assert [p.in_distribution for p in predictions] == [True, True, False, False, False]
    assert predictions[4].out_of_distribution_note == OUT_OF_DISTRIBUTION_NOTE
    assert all(p.operating_threshold == 0.5 and p.fractured is (p.probability_fractured >= 0.5) for p in predictions)


def test_a_featureless_image_is_flagged_with_or_without_a_distance_check(model):
    flat = np.full((48, 48), 0.5, np.float32)  # square, so its mean is the training mean: the distance passes it
    with_check = Predictor(model, _card(), distance_model=DistanceModel(np.full(1, 0.5), np.eye(1), 0.25))
    without = Predictor(model, _card())
    for predictor in (with_check, without):
        flagged, banded = predictor.predict_many([flat, _images(3)[1]])
        assert flagged.featureless and flagged.in_distribution is False
        assert flagged.out_of_distribution_note == ood.FEATURELESS_NOTE
        assert flagged.probability_fractured == pytest.approx(_expected_probability(flat), abs=1e-6)
        assert not banded.featureless
    assert with_check.predict(flat).distance == pytest.approx(0.0, abs=1e-5)
    assert without.predict(_images(3)[1]).in_distribution is None


@pytest.mark.parametrize(("change", "words"), [({"preprocessing": "imagenet"}, "preprocessing"),
                                               ({"positive_class": "normal"}, "positive class")])
def test_a_card_this_code_cannot_honour_is_refused(model, change, words):
    with pytest.raises(ValueError, match=words):
        Predictor(model, _card(**change))


def test_load_reads_card_model_and_distance_check(model, tmp_path):
    model.save(tmp_path / "renamed.keras")  # the card names the model file
    ood.DistanceModel(np.zeros(1), np.eye(1), 0.25).save(tmp_path / "ood.npz")
    card = _card(threshold=0.61, model_file="renamed.keras", out_of_distribution={"file": "ood.npz"})
    (tmp_path / CARD_FILE).write_text(json.dumps(card))
    loaded = Predictor.load(tmp_path)
    assert loaded.operating_threshold == 0.61
    assert loaded.model_sha256 == model_sha256(tmp_path)
    assert loaded.model_version == loaded.model_sha256[:12]
    assert loaded.distance_model is not None and loaded.distance_model.threshold == 0.25
    pixels = _images(1)[0]
    assert loaded.predict(pixels).probability_fractured == pytest.approx(_expected_probability(pixels), abs=1e-6)
    assert Predictor(model, _card()).model_version == "unsaved"
    # a card from before the out-of-distribution check: no check, and no column value
    (tmp_path / CARD_FILE).write_text(json.dumps(_card(model_file="renamed.keras")))
    without = Predictor.load(tmp_path)
    assert without.distance_model is None and without.predict(pixels).in_distribution is None


def test_the_version_changes_with_the_model_file_and_the_cards_scoring_entries_only(tmp_path):
    (tmp_path / MODEL_FILE).write_bytes(b"weights")
    card = _card(out_of_distribution={"file": "ood.npz", "threshold": 24.0})

    def version(**changes: object) -> str:
        (tmp_path / CARD_FILE).write_text(json.dumps({**card, **changes}))
        return model_sha256(tmp_path)

    first = version()
    assert len(first) == 64 and first == version()  # deterministic
    assert version(intended_use="teaching", validation={"roc_auc": 0.9}) == first  # words and figures: same answers
    views = {"zoom_factors": [0.7], "calibration": {"slope": 1.2, "intercept": 0.8}}
    others = [version(operating_threshold=0.19), version(test_time_views=views), version(input_size=512),
              version(out_of_distribution={"file": "ood.npz", "threshold": 30.0})]
    (tmp_path / MODEL_FILE).write_bytes(b"other weights")
    others.append(version())
    assert len({first, *others}) == 1 + len(others)  # each changes the version
    # one read of the model file gives the file's own SHA-256 (the LiteRT copy's check) and the version
    assert model_hashes(tmp_path) == (hashlib.sha256(b"other weights").hexdigest(), others[-1])


def test_file_sha256_of_a_file_larger_than_one_read(tmp_path):
    data = np.random.default_rng(1).bytes(3 * (1 << 20) + 17)  # several 1 MiB chunks and a remainder
    (tmp_path / "blob").write_bytes(data)
    assert file_sha256(tmp_path / "blob") == hashlib.sha256(data).hexdigest()


def test_flipped_views_mirror_each_input_the_named_way_round():
    from fracture_model.preprocess import flipped

    batch = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4, 1)
    upside_down, mirrored = flipped(batch, "vertical"), flipped(batch, "horizontal")
    for i in range(2):
        assert np.array_equal(upside_down[i, ..., 0], batch[i, ::-1, :, 0])  # rows reversed, columns kept
        assert np.array_equal(mirrored[i, ..., 0], batch[i, :, ::-1, 0])
    assert upside_down.flags["C_CONTIGUOUS"]  # LiteRT takes contiguous buffers only


def test_test_time_flips_score_the_mirrored_input_as_one_more_view(model):
    """A network that looks only at the top half: its upside-down view sees the bottom half."""
    def top_half(batch):
        logits = WEIGHT * batch[:, : SIZE // 2].mean(axis=(1, 2, 3)) + BIAS
        return 1.0 / (1.0 + np.exp(-logits)), batch.mean(axis=(1, 2))

    views = {"zoom_factors": [], "flips": ["vertical"], "calibration": {"slope": 2.0, "intercept": 0.5}}
    with_flip = Predictor(model, _card(test_time_views=views), forward=top_half)
    pixels = np.zeros((SIZE, SIZE), np.float32)
    pixels[: SIZE // 2] = 0.9  # bright above, black below
    network_input = preprocess(pixels, SIZE)
    top, bottom = network_input[: SIZE // 2].mean(), network_input[SIZE // 2 :].mean()
    expected = 1.0 / (1.0 + math.exp(-(2.0 * WEIGHT * (top + bottom) / 2 + 2.0 * BIAS + 0.5)))
    assert with_flip.predict(pixels).probability_fractured == pytest.approx(expected, abs=1e-5)


def test_test_time_views_average_the_whole_and_zoomed_out_logits(model):
    from fracture_model.preprocess import zoomed_out

    views = {"zoom_factors": [0.5], "calibration": {"slope": 1.5, "intercept": -0.25}}
    with_views = Predictor(model, _card(test_time_views=views))
    for pixels in _images(3):
        network_input = preprocess(pixels, SIZE)[np.newaxis]
        whole = WEIGHT * float(network_input.mean()) + BIAS
        zoomed = WEIGHT * float(zoomed_out(network_input, 0.5).mean()) + BIAS
        expected = 1.0 / (1.0 + math.exp(-(1.5 * (whole + zoomed) / 2 - 0.25)))
        assert with_views.predict(pixels).probability_fractured == pytest.approx(expected, abs=1e-5)
    # the zoomed-out view is the input at half its side, in the middle of a black square
    square = np.ones((1, SIZE, SIZE, 1), np.float32)
    shrunk = zoomed_out(square, 0.5)[0, ..., 0]
    assert shrunk.sum() == pytest.approx((SIZE // 2) ** 2) and shrunk[SIZE // 2, SIZE // 2] == 1 and shrunk[0, 0] == 0
