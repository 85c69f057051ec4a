"""Shifted copies for the robustness benchmark, the robust augmentation and the marks they draw."""

import cv2
import numpy as np
import pandas as pd
import pytest

from fracture_model import data, localisation, overlays, shifts
from fracture_model.localisation import Box


def _bar_image(shape=(300, 200)) -> np.ndarray:
    """A dark image with a bright vertical 'bone'."""
    pixels = np.full(shape, 0.1, np.float32)
    pixels[:, 80:120] = 0.8
    return pixels


def _marked(shape, box: Box) -> np.ndarray:
    """Black image, white inside ``box``: where the box's pixels go, the white goes."""
    pixels = np.zeros(shape, np.float32)
    pixels[int(box.top):int(box.bottom), int(box.left):int(box.right)] = 1.0
    return pixels


def _centre_of_white(pixels: np.ndarray) -> tuple[float, float]:
    rows, columns = np.nonzero(pixels > 0.5)
    return columns.mean() + 0.5, rows.mean() + 0.5


@pytest.mark.parametrize("angle", [0.0, 37.0, 90.0, 211.0])
def test_rotation_moves_the_box_with_the_image(angle):
    box = Box(40, 60, 30, 20)
    turned, (moved,) = shifts.rotate(_marked((200, 160), box), (box,), angle)
    x, y = _centre_of_white(turned)
    assert abs(x - (moved.left + moved.width / 2)) < 1.5 and abs(y - (moved.top + moved.height / 2)) < 1.5
    assert localisation.boxes_mask((moved,), turned.shape)[turned > 0.5].mean() > 0.99
    assert turned.sum() == pytest.approx(30 * 20, rel=0.05)  # the canvas keeps the whole image


@pytest.mark.parametrize("factor", shifts.ZOOM_FACTORS)
def test_zoom_crop_keeps_the_box_inside_and_scales_it(factor):
    box = Box(100, 150, 24, 16)
    rng = np.random.default_rng(3)
    crop, (moved,) = shifts.zoom_on_box(_marked((400, 300), box), (box,), factor, rng)
    assert max(crop.shape) == shifts.CLOSE_UP_SIDE
    scale = shifts.CLOSE_UP_SIDE / (factor * 24)
    assert moved.width == pytest.approx(24 * scale, rel=0.05)
    assert moved.left >= 0 and moved.right <= crop.shape[1] + 1e-6
    x, y = _centre_of_white(crop)
    assert abs(x - (moved.left + moved.width / 2)) < scale and abs(y - (moved.top + moved.height / 2)) < scale


def test_downscale_is_224_px_and_boxes_scale():
    box = Box(100, 200, 40, 40)
    small, (moved,) = shifts.downscale_jpeg(_bar_image((512, 400)), (box,))
    assert max(small.shape) == 224 and moved.left == pytest.approx(100 * 224 / 512, rel=0.01)
    assert shifts.tolerance_px(small.shape) == pytest.approx(15 * 224 / 512)


def test_shifted_copies_are_deterministic_and_independent_of_the_other_images():
    images = [_bar_image(), _bar_image((260, 240)), _bar_image()]
    rows = [(1, (Box(85, 100, 30, 30),)), (0, ()), (1, ())]

    def copies(kind, chosen):
        found = shifts.shifted_images([rows[i] for i in chosen], lambda i: images[chosen[i]], kind, seed=5,
                                      zoom_factor=2)
        return {chosen[i]: pixels for i, pixels, _ in found}

    for kind in shifts.SHIFTS:
        first, again = copies(kind, [0, 1, 2]), copies(kind, [0, 1, 2])
        assert first.keys() == again.keys()
        assert all(np.array_equal(first[i], again[i]) for i in first)
    zoomed = copies("zoom", [0, 1, 2])
    assert 2 not in zoomed, "a fractured image without a box gets no close-up (its label could become false)"
    assert set(zoomed) == {0, 1}
    other_seed = shifts.shifted_images(rows, lambda i: images[i], "rotation", seed=6)
    assert not np.array_equal(next(other_seed)[1], copies("rotation", [0, 1, 2])[0])


def test_normal_close_ups_take_the_fractured_crops_relative_sizes():
    rows = [(1, (Box(10, 10, 40, 40),)), (0, ())]
    found = list(shifts.shifted_images(rows, lambda i: _bar_image((400, 400)), "zoom", seed=0, zoom_factor=2.0))
    assert [index for index, _, _ in found] == [0, 1]
    # both crops cover 80 of 400 px and are enlarged to the same side
    assert found[0][1].shape == found[1][1].shape == (512, 512)
    assert found[1][1][256, 256] > 0.5, "the normal crop is centred on bone"


def test_markers_change_pixels_but_not_boxes():
    box = Box(10, 10, 5, 5)
    marked, boxes = shifts.add_markers(_bar_image(), (box,), np.random.default_rng(0))
    assert boxes == (box,) and not np.array_equal(marked, _bar_image())


@pytest.mark.parametrize("kind", overlays.KINDS)
@pytest.mark.parametrize("style", sorted(overlays.STYLES))
def test_every_mark_draws_something(kind, style):
    plane = np.zeros((200, 260), np.float32)
    overlays.draw(plane, np.random.default_rng(1), kind, style)
    assert (plane != 0).any() and plane.min() >= 0 and plane.max() <= 1


def test_robust_augmentation_moves_the_fracture_mask_with_the_image():
    """A bright square where the box mask is: after any augmentation the mask still covers it."""
    size = 128
    rng = np.random.default_rng(0)
    for trial in range(40):
        image = np.zeros((size, size, 1), np.float32)
        image[20:110, 30:100] = 0.3  # the radiograph's content (not black, so it is not taken for padding)
        image[60:70, 50:60] = 1.0
        mask = np.zeros((size, size), np.uint8)
        mask[58:72, 48:62] = 1
        augmented, moved = data.augment_robust(image, rng, mask, label=1)
        assert augmented.shape == image.shape and augmented.dtype == np.float32
        assert moved.any(), f"trial {trial}: the fracture left the frame of a fractured image"
        # the fracture (the bright square) is still inside the image, and at the moved mask
        rows, columns = np.nonzero(moved)
        assert rows.min() >= 0 and rows.max() < size and columns.min() >= 0 and columns.max() < size


def test_robust_close_ups_of_fractured_images_keep_the_whole_box():
    size = 128
    plane = np.full((size, size), 0.4, np.float32)
    mask = np.zeros((size, size), np.uint8)
    mask[10:30, 90:110] = 1
    rng = np.random.default_rng(2)
    for _ in range(200):
        side = size / float(np.exp(rng.uniform(0, np.log(data.ROBUST_MAX_ZOOM))))
        centre = data._close_up_centre(plane, mask, 1, side, rng)
        if centre is None:
            assert side * 0.9 < 20
            continue
        x, y = centre
        assert x - side / 2 <= 90 and x + side / 2 >= 110 and y - side / 2 <= 10 and y + side / 2 >= 30
    assert data._close_up_centre(plane, None, 1, 40, rng) is None


def _augmented(levers, image, mask=None, label=0, trials=80):
    """The robust augmentation of ``image`` with only ``levers``, once per seed."""
    return [data.augment_robust(image.copy(), np.random.default_rng(seed), mask, label, levers)
            for seed in range(trials)]


def test_without_appearance_or_overlays_a_black_square_stays_black():
    # outside the radiograph stays black: only the appearance lever (noise) and the marks draw there
    black = np.zeros((96, 96, 1), np.float32)
    for levers in [(), ("scale",), ("rotation",), ("scale", "rotation")]:
        assert all(not out.any() for out in _augmented(levers, black)), levers
    for lever in ("appearance", "overlays"):
        assert sum(out.any() for out in _augmented((lever,), black)) >= 10, lever


def test_close_ups_only_with_the_scale_lever():
    image = np.zeros((96, 96, 1), np.float32)
    image[8:88, 8:88] = 0.5
    mask = np.zeros((96, 96), np.uint8)
    mask[44:52, 44:52] = 1

    def largest_growth(levers):
        return max(moved.sum() / mask.sum() for _, moved in _augmented(levers, image, mask, label=1))

    assert largest_growth(("rotation", "appearance", "overlays")) < 1.6  # zoom 0.85-1.15 at most: area x1.32
    assert largest_growth(("scale",)) > 4  # close-ups up to 6x


def test_any_angle_only_with_the_rotation_lever():
    image = np.zeros((96, 96, 1), np.float32)
    image[8:88, 8:88] = 0.5
    bar = np.zeros((96, 96), np.uint8)
    bar[46:50, 24:72] = 1  # a horizontal bar: its axis tells the rotation (flips leave it horizontal)

    def steepest(levers):
        angles = []
        for _, moved in _augmented(levers, image, bar, label=1):
            moments = cv2.moments(moved, binaryImage=True)
            angle = 0.5 * np.degrees(np.arctan2(2 * moments["mu11"], moments["mu20"] - moments["mu02"]))
            angles.append(abs(angle))
        return max(angles)

    assert steepest(("scale", "appearance", "overlays")) < 17  # within 15 degrees, and the pixels' rounding
    assert steepest(("rotation",)) > 45


def test_the_canvas_lever_shrinks_turned_images_so_the_whole_square_stays_in_view():
    full = np.full((96, 96, 1), 0.5, np.float32)

    def least_covered(levers):  # the smallest share of the output that still shows the radiograph
        return min(float((out > 0).mean()) for out in _augmented(levers, full))

    # turned within the square, a full square covers at least about 0.83 of it (0.7 with zoom 0.85); shrunk onto
    # the enlarged canvas, at 45 degrees half of it
    assert least_covered(("rotation",)) > 0.65
    assert least_covered(("rotation", "canvas")) < 0.5


def test_the_canvas_share_sets_how_many_images_the_canvas_lever_shrinks():
    full = np.full((96, 96, 1), 0.5, np.float32)
    levers = ("rotation", "canvas")

    def coverage(share):  # the mean share of the outputs still showing the radiograph, as the training batches make
        batches = data.RadiographBatches(np.repeat((full * 255).astype(np.uint8)[None], 80, axis=0), np.zeros(80), 80,
                                         training=True, seed=3, augmentation="robust", levers=levers,
                                         canvas_share=share)
        return float((batches[0][0] > 0).mean())

    assert coverage(0.0) > coverage(0.5) + 0.03 > coverage(1.0) + 0.06
    # the default share is one half: the recipes trained with the lever before keep their meaning
    for seed in range(5):
        default = data.augment_robust(full.copy(), np.random.default_rng(seed), levers=levers)
        half = data.augment_robust(full.copy(), np.random.default_rng(seed), levers=levers, canvas_share=0.5)
        np.testing.assert_array_equal(default, half)


@pytest.mark.parametrize("share", ["1.5", "-0.1", "half"])
def test_training_refuses_a_canvas_share_that_is_not_a_share(share, capsys):
    from fracture_model import train

    assert train.parse_args(["--data", "d", "--out", "o", "--canvas-share", "0.25"]).canvas_share == 0.25
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(["--data", "d", "--out", "o", "--canvas-share", share])
    assert exit_info.value.code == 2 and "is not a share of the images from 0 to 1" in capsys.readouterr().err


def test_unknown_levers_are_refused():
    with pytest.raises(ValueError, match="unknown levers"):
        data.augment_robust(np.zeros((32, 32, 1), np.float32), np.random.default_rng(0), levers=("zoom",))


def test_training_batches_pass_their_levers_on():
    black = np.zeros((24, 48, 48, 1), np.uint8)
    labels = np.zeros(24)

    def drawn(levers):
        batches = data.RadiographBatches(black, labels, 8, training=True, augmentation="robust", levers=levers)
        return sum(int(batches[i][0].any()) for i in range(len(batches)))

    assert drawn(()) == 0 and drawn(("overlays",)) > 0


def test_benchmark_frame_keeps_every_fractured_image_and_a_fixed_draw_of_normal_ones():
    from fracture_model import robustness

    split = pd.DataFrame({"image_id": [f"IMG{i:03d}" for i in range(40)][::-1], "split": ["validation", "test"] * 20,
                          "fractured": [1 if i % 8 < 2 else 0 for i in range(40)]})
    frame = robustness.benchmark_frame(split, "validation", normal_images=5, seed=3)
    validation = split[split["split"] == "validation"]
    assert set(validation.loc[validation["fractured"] == 1, "image_id"]) <= set(frame["image_id"])
    assert (frame["fractured"] == 0).sum() == 5 and list(frame["image_id"]) == sorted(frame["image_id"])
    assert frame.equals(robustness.benchmark_frame(split, "validation", normal_images=5, seed=3))
    assert len(robustness.benchmark_frame(split, "validation")) == 20
    assert len(robustness.benchmark_frame(split, "validation", limit=4)) == 4


def test_a_set_summary_carries_its_intervals():
    from fracture_model import robustness
    from fracture_model.metrics import wilson_interval

    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(30, int), np.zeros(70, int)]
    scored = pd.DataFrame({"fractured": labels, "probability_fractured": rng.random(100) * 0.5 + 0.4 * labels,
                           "in_distribution": True, "pointing_hit": np.r_[np.ones(20), np.zeros(10), [np.nan] * 70]})
    summary = robustness.summarise(scored, threshold=0.5)
    low, high = summary["roc_auc_ci95"]
    assert low < summary["roc_auc"] < high
    true_negatives = int(((scored["probability_fractured"] < 0.5) & (labels == 0)).sum())
    assert summary["specificity_ci95"] == list(wilson_interval(true_negatives, 70))
    low, high = summary["sensitivity_ci95"]
    assert low < summary["sensitivity"] < high

    normal_only = robustness.summarise(scored[labels == 0], threshold=0.5)
    assert normal_only["roc_auc"] is None and normal_only["roc_auc_ci95"] is None
    assert normal_only["sensitivity_ci95"] is None and normal_only["specificity_ci95"] is not None


def test_target_misses_name_each_missed_target_of_each_shifted_set():
    from fracture_model import robustness

    def figures(auc, specificity, pointing):
        return {"images": 10, "fractured": 4, "roc_auc": auc, "sensitivity": 0.8, "specificity": specificity,
                "pointing_hit_rate": pointing, "pointing_images": 4}

    summaries = {
        "unshifted": figures(0.93, 0.50, 0.30),  # the reference: its own figures are no target
        "zoom 1.5x box": figures(0.87, 0.69, 0.59),
        "zoom 2x box": figures(0.881, 0.70, 0.60),  # specificity and pointing exactly at their bounds
        "rotation 0-360": figures(0.90, 0.80, 0.10),  # pointing is a target on close-ups only
        "mix of all": figures(None, float("nan"), None),  # nothing to judge: no miss claimed
    }
    misses = robustness.target_misses(summaries)
    assert misses["unshifted"] == [] and misses["zoom 2x box"] == [] and misses["rotation 0-360"] == []
    assert misses["mix of all"] == []
    assert misses["zoom 1.5x box"] == ["ROC AUC 0.060 below the unshifted set's", "specificity under 0.70",
                                       "pointing game under 0.60"]
    table = robustness.table({name: summaries[name] for name in ("unshifted", "zoom 1.5x box", "zoom 2x box")})
    rows = table.splitlines()[2:]
    assert rows[0].endswith("| (reference) |") and rows[2].endswith("| none |")
    assert "specificity under 0.70" in rows[1]
