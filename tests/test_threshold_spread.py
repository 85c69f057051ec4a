"""How far an operating-threshold rule moves under a bootstrap of validation."""

import numpy as np

from fracture_model.train import threshold_spread


def test_spread_is_narrow_when_classes_separate_and_wide_when_scores_are_noise():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 200 + [1] * 50)
    separated = np.concatenate([rng.uniform(0.0, 0.3, 200), rng.uniform(0.7, 1.0, 50)])
    noise = rng.uniform(0.0, 1.0, 250)
    low, high = threshold_spread(labels, separated, "sensitivity=0.90", resamples=200)
    assert 0.7 <= low <= high <= 1.0 and high - low < 0.15
    low_noise, high_noise = threshold_spread(labels, noise, "youden", resamples=200)
    assert high_noise - low_noise > 0.3
