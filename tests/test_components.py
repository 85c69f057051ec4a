"""pages/components.py: the case drawing shared by the pages, and the threshold sentence."""

import numpy as np

from fracture_model.localisation import Box
from pages.components import BOX_COLOUR, case_image, for_display, threshold_sentence


def _pixels(height=200, width=100):
    return np.tile(np.linspace(0.2, 0.8, width, dtype=np.float32), (height, 1))


def test_radiograph_alone_with_a_box_outlined_in_magenta():
    image = case_image(_pixels(), boxes=[Box(10, 20, 30, 40)])
    assert image.shape == (200, 100, 3) and image.dtype == np.uint8
    assert tuple(image[20, 10]) == BOX_COLOUR and tuple(image[59, 39]) == BOX_COLOUR  # both corners
    assert tuple(image[40, 25]) != BOX_COLOUR  # inside: the radiograph


def test_with_a_heatmap_the_overlay_stands_beside_and_everything_shrinks_together():
    heatmap = np.zeros((200, 100), np.float32)
    heatmap[150:170, 60:80] = 1.0
    image = case_image(_pixels(), heatmap, [Box(10, 20, 30, 40)], peak=(70, 160), side=100)
    assert image.shape == (100, 100, 3)  # two 50 x 100 panels
    left, right = image[:, :50], image[:, 50:]
    assert tuple(left[10, 5]) == BOX_COLOUR and tuple(right[10, 5]) == BOX_COLOUR  # box scaled by 0.5
    assert right[80, 35, 0] > right[20, 35, 0]  # the hot region (red in jet) is where the heatmap is
    assert (right[75:86, 30:41] == 255).all(axis=-1).any()  # the white peak ring around (35, 80)


def test_pictures_for_the_browser_shrink_with_their_heatmap_and_peak_and_small_ones_stay():
    pixels, heatmap = _pixels(3000, 1500), np.zeros((3000, 1500), np.float32)
    heatmap[2900:, 1400:] = 1.0
    shown, shown_heatmap, peak = for_display(pixels, heatmap, (1450, 2950), side=1000)
    assert shown.shape == shown_heatmap.shape == (1000, 500)
    assert peak == (483, 983)
    assert shown_heatmap[983, 483] == 1.0 and shown_heatmap[10, 10] == 0.0  # the hot corner stays where it was
    small = _pixels()
    assert for_display(small, None, None, side=1000)[0] is small


def test_threshold_sentence_names_the_rule_and_the_test_figures():
    card = {"operating_threshold": 0.1219, "operating_threshold_rule": "youden",
            "test": {"at_operating_threshold": {"sensitivity": 0.873, "specificity": 0.838}}}
    sentence = threshold_sentence(card)
    assert "**0.12**" in sentence and "Youden's J" in sentence and "**87%**" in sentence and "**84%**" in sentence
