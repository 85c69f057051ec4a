"""The out-of-distribution distance and its threshold; the predictor's batched scoring and model version."""

import numpy as np
import pytest

from fracture_model import ood


def test_mahalanobis_distance_against_a_hand_computed_value():
    model = ood.DistanceModel(mean=np.array([1.0, 2.0]), precision=np.diag([4.0, 1.0]), threshold=3.0)
    # (x - m) = (1, 2): 4 * 1 + 1 * 4 = 8
    assert model.distances(np.array([[2.0, 4.0]]))[0] == pytest.approx(np.sqrt(8.0))
    assert model.in_distribution(np.array([[2.0, 4.0], [1.0, 2.0], [3.0, 2.0]])).tolist() == [True, True, False]


def test_threshold_is_the_validation_quantile_and_far_points_are_flagged():
    rng = np.random.default_rng(0)
    training, validation = rng.normal(size=(400, 5)), rng.normal(size=(200, 5))
    fitted = ood.fit(training, validation, quantile=0.9)
    flagged = ~fitted.in_distribution(validation)
    assert flagged.mean() == pytest.approx(0.1, abs=0.01)
    assert not fitted.in_distribution(rng.normal(loc=6.0, size=(20, 5))).any()


def test_saved_and_loaded_model_gives_the_same_distances(tmp_path):
    rng = np.random.default_rng(1)
    fitted = ood.fit(rng.normal(size=(100, 4)), rng.normal(size=(50, 4)))
    fitted.save(tmp_path / ood.OOD_FILE)
    loaded = ood.DistanceModel.load(tmp_path / ood.OOD_FILE)
    points = rng.normal(size=(10, 4))
    assert np.allclose(loaded.distances(points), fitted.distances(points), rtol=1e-5)
    assert loaded.threshold == pytest.approx(fitted.threshold)


def test_shipped_predictor_batches_equal_single_predictions(shipped_predictor, sample_paths):
    from fracture_model.imaging import read_radiograph

    images = [read_radiograph(path.read_bytes()).pixels for path in sample_paths]
    one_by_one = [shipped_predictor.predict(pixels) for pixels in images]
    batched = shipped_predictor.predict_many(images, batch_size=4)
    assert [p.probability_fractured for p in batched] == pytest.approx(
        [p.probability_fractured for p in one_by_one], abs=1e-5)
    assert [p.in_distribution for p in batched] == [p.in_distribution for p in one_by_one]
    assert len(shipped_predictor.model_version) == 12


def test_shipped_model_flags_a_close_up_but_not_its_own_samples(shipped_predictor, sample_paths):
    """The samples are FracAtlas test images; a close-up of one (a sixth of its side, as teaching files crop)
    is what the check is for. Whether featureless images (noise, a flat grey field) are flagged depends on
    the model (``python bench/ood_examples.py`` prints their distances; the README gives them), so the
    photograph check and the clinician remain the guard there, and this test does not ask.

    The threshold is the 95th percentile of validation's distances, so some FracAtlas images are flagged by
    design: the model shipped on 30 November flagged both hand samples just above it (27.4 and 27.0 against
    26.3); the one that replaced it later that day passes all six, the normal hand just under its threshold
    (26.9 against 26.91); the weight average shipped that evening passes all six (at most 25.8 against 28.0)
    and puts this close-up at 51.6. All but one of the samples must pass."""
    from fracture_model import shifts
    from fracture_model.imaging import read_radiograph

    if shipped_predictor.distance_model is None:
        pytest.skip("the shipped model has no out-of-distribution check")
    images = [read_radiograph(p.read_bytes()).pixels for p in sample_paths]
    samples = shipped_predictor.predict_many(images)
    assert sum(p.in_distribution for p in samples) >= len(samples) - 1
    pixels = images[0]
    rows, columns = shifts.bone_pixels(pixels)
    close_up, _ = shifts.crop(pixels, (), (columns[len(columns) // 2], rows[len(rows) // 2]), max(pixels.shape) / 6)
    flagged = shipped_predictor.predict(close_up)
    assert flagged.in_distribution is False
    assert flagged.out_of_distribution_note == ood.OUT_OF_DISTRIBUTION_NOTE
