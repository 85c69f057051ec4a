"""The one preprocessing function and the letterbox geometry."""

import numpy as np
import pytest

from fracture_model.preprocess import Letterbox, preprocess


def test_output_shape_dtype_and_range():
    pixels = np.random.default_rng(0).random((300, 200), dtype=np.float32)
    network_input = preprocess(pixels, 128)
    assert network_input.shape == (128, 128, 1)
    assert network_input.dtype == np.float32
    assert 0.0 <= network_input.min() and network_input.max() <= 1.0


def test_letterbox_keeps_aspect_and_pads_with_black():
    pixels = np.ones((200, 100), dtype=np.float32)  # tall white image
    network_input = preprocess(pixels, 100)[..., 0]
    # 100 px wide image in a 200 px square: 50 px of black on each side, scaled by 1/2.
    assert network_input[:, :24].max() == 0.0
    assert network_input[:, 76:].max() == 0.0
    assert network_input[:, 26:74].min() == pytest.approx(1.0)


def test_small_images_are_enlarged_not_rejected():
    assert preprocess(np.full((64, 64), 0.5, np.float32), 256).shape == (256, 256, 1)


def test_rejects_colour_arrays():
    with pytest.raises(ValueError):
        preprocess(np.zeros((10, 10, 3), np.float32), 32)


@pytest.mark.parametrize("shape", [(300, 200), (200, 300), (256, 256)])
def test_letterbox_round_trip_and_bright_pixel_lands_where_mapped(shape):
    letterbox = Letterbox(shape, 128)
    x, y = 37.0, 61.0
    assert letterbox.to_original(*letterbox.to_input(x, y)) == pytest.approx((x, y))

    pixels = np.zeros(shape, np.float32)
    pixels[int(y) - 4 : int(y) + 4, int(x) - 4 : int(x) + 4] = 1.0
    network_input = preprocess(pixels, 128)[..., 0]
    peak_y, peak_x = np.unravel_index(np.argmax(network_input), network_input.shape)
    expected_x, expected_y = letterbox.to_input(x, y)
    assert abs(peak_x - expected_x) <= 2 and abs(peak_y - expected_y) <= 2


def test_crop_to_original_inverts_the_letterbox():
    shape = (300, 200)
    pixels = np.zeros(shape, np.float32)
    pixels[100:140, 50:90] = 1.0
    back = Letterbox(shape, 150).crop_to_original(preprocess(pixels, 150)[..., 0])
    assert back.shape == shape
    assert back[110:130, 60:80].mean() > 0.9
    assert back[200:, :].max() < 0.05
