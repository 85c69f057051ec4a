"""Box supervision: the radiologists' boxes as targets on the class activation map (issue 4)."""

import math

import keras
import numpy as np
import pandas as pd
import pytest

from fracture_model import data, localisation, network
from fracture_model.explain import Explainer
from fracture_model.preprocess import Letterbox
from fracture_model.train import PRETRAINED, cell_pointing_rate, pointing_loss


def test_augmentation_moves_the_mask_with_the_image():
    image = np.zeros((96, 96, 1), np.float32)
    image[20:44, 50:70] = 0.9
    mask = (image[..., 0] > 0).astype(np.uint8)
    for seed in range(8):
        moved_image, moved_mask = data.augment(image, np.random.default_rng(seed), mask)
        bright = moved_image[..., 0] > 0.5
        overlap = (bright & (moved_mask > 0)).sum() / (bright | (moved_mask > 0)).sum()
        assert overlap > 0.8, seed
    # the mask argument does not change what the image alone would have become
    alone = data.augment(image, np.random.default_rng(3))
    assert np.array_equal(alone, data.augment(image, np.random.default_rng(3), mask)[0])


def test_cell_targets_mark_the_cells_whose_centre_would_be_a_hit():
    mask = np.zeros((384, 384), bool)
    mask[96:130, 160:180] = True  # holds the centre (112, 176) of cell row 3, column 5 (32 px cells)
    targets = data.cell_targets(mask, 12)
    assert targets.shape == (12, 12) and targets.sum() == 1 and targets[3, 5] == 1


def test_cell_targets_fall_back_to_the_best_covered_cell_and_are_empty_without_a_box():
    mask = np.zeros((384, 384), bool)
    mask[2:10, 34:60] = True  # between centres, inside cell row 0, column 1
    targets = data.cell_targets(mask, 12)
    assert targets.sum() == 1 and targets[0, 1] == 1
    assert data.cell_targets(np.zeros((384, 384), bool), 12).sum() == 0


def test_input_boxes_go_through_the_letterbox_with_a_scaled_tolerance(tiny_fracatlas):
    frame = data.load_index(tiny_fracatlas)
    boxes = localisation.load_boxes(tiny_fracatlas / localisation.ANNOTATIONS_FILE)
    found = data.input_boxes(tiny_fracatlas, frame, 64, boxes)
    assert len(found) == len(frame)
    boxed = [i for i, name in enumerate(frame["image_id"]) if boxes.get(name)]
    assert boxed and len(boxed) < len(frame)
    for i in range(len(frame)):
        if i not in boxed:
            assert found[i] == ((), 0.0)
    from fracture_model.imaging import read_radiograph

    i = boxed[0]
    shape = read_radiograph((tiny_fracatlas / "images" / frame["path"][i]).read_bytes()).pixels.shape
    letterbox = Letterbox(shape, 64)
    original = boxes[frame["image_id"][i]][0]
    mapped, tolerance = found[i][0][0], found[i][1]
    assert (mapped.left, mapped.top) == pytest.approx(letterbox.to_input(original.left, original.top))
    assert mapped.width == pytest.approx(original.width * letterbox.scale)
    assert tolerance == pytest.approx(localisation.POINTING_TOLERANCE_PX * letterbox.scale)


def _loss(targets: np.ndarray, logits: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(pointing_loss(targets.astype(np.float32), logits.astype(np.float32)))


def test_pointing_loss_has_known_values():
    targets = np.zeros((3, 12, 12, 1))
    targets[0, 2:4, 2:4] = 1  # 4 of 144 cells
    targets[1, 5, 5] = 1
    logits = np.zeros((3, 12, 12, 1))
    logits[1, 5, 5] = 30.0  # all the softmax on the target
    logits[2] = np.random.default_rng(0).normal(size=(12, 12, 1))  # no box: no loss, whatever the map
    loss = _loss(targets, logits)
    assert loss[0] == pytest.approx(math.log(144 / 4), rel=1e-5)
    assert loss[1] == pytest.approx(0.0, abs=1e-6)
    assert loss[2] == 0.0
    # blind to the map's mean (the classification loss's business)
    assert _loss(targets, logits + 5.0) == pytest.approx(loss, abs=1e-4)


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(1)
    model = network.build_fracture_model(128, backbone_weights=PRETRAINED)
    dense = model.get_layer(network.OUTPUT_LAYER)
    dense.set_weights([np.random.default_rng(2).normal(0, 0.05, (1280, 1)).astype(np.float32), np.zeros(1, np.float32)])
    return model


def test_evidence_map_averages_to_the_classifiers_logit(small_model):
    paired = network.with_evidence_map(small_model)
    images = np.random.default_rng(0).random((2, 128, 128, 1)).astype(np.float32)
    probability, evidence = (keras.ops.convert_to_numpy(out) for out in paired(images, training=False))
    assert evidence.shape == (2, 4, 4, 1)
    logit = evidence.reshape(2, -1).mean(axis=1)
    assert probability.ravel() == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-5)
    # the paired model shares the classifier's weights: training it trains the saved model
    assert {id(v) for v in small_model.trainable_variables} == {id(v) for v in paired.trainable_variables}


def test_grad_cam_is_the_evidence_map(small_model):
    """What the pointing loss trains is what the reviewer sees: Grad-CAM peaks where the map does."""
    paired = network.with_evidence_map(small_model)
    image = np.zeros((1, 128, 128, 1), np.float32)
    image[0, 20:60, 70:90] = 0.8
    evidence = keras.ops.convert_to_numpy(paired(image, training=False)[1])[0, ..., 0]
    bias = small_model.get_layer(network.OUTPUT_LAYER).get_weights()[1][0]
    expected = np.maximum(evidence - bias, 0.0)
    assert expected.max() > 0
    heatmap = Explainer(small_model).input_heatmaps(image)[0]
    # one value per 32 px cell, placed over the cell's centre (pixel-centre convention, as the boxes)
    # (scipy's corner-aligned zoom, tf-keras-vis' default, scored 0.91 here)
    at_centres = heatmap.reshape(4, 32, 4, 32)[:, 16, :, 16]
    assert np.corrcoef(at_centres.ravel(), expected.ravel())[0, 1] > 0.999
    peak_row, peak_column = np.unravel_index(heatmap.argmax(), heatmap.shape)
    assert (peak_row // 32, peak_column // 32) == np.unravel_index(expected.argmax(), expected.shape)


def test_cell_pointing_rate_counts_peaks_on_target_cells(small_model):
    paired = network.with_evidence_map(small_model)
    inputs = (np.random.default_rng(0).random((3, 128, 128, 1)) * 255).astype(np.uint8)
    evidence = keras.ops.convert_to_numpy(paired.predict(inputs.astype(np.float32) / 255.0, verbose=0)[1])
    peaks = evidence.reshape(3, -1).argmax(axis=1)
    targets = np.zeros((3, 4, 4, 1), np.float32)
    targets.reshape(3, -1)[0, peaks[0]] = 1  # a hit
    targets.reshape(3, -1)[1, (peaks[1] + 1) % 16] = 1  # a miss
    targets.reshape(3, -1)[2, peaks[2]] = 1  # a hit
    assert cell_pointing_rate(paired, inputs, targets, 2) == pytest.approx(2 / 3)


def test_batches_with_boxes_carry_targets_and_weights(tiny_fracatlas):
    frame = data.load_index(tiny_fracatlas)
    boxes = localisation.load_boxes(tiny_fracatlas / localisation.ANNOTATIONS_FILE)
    found = data.input_boxes(tiny_fracatlas, frame, 64, boxes)
    inputs = data.load_inputs(tiny_fracatlas, list(frame["path"]), 64)
    labels = frame["fractured"].to_numpy()
    batches = data.RadiographBatches(inputs, labels, len(frame), training=True, boxes=found, cells=2,
                                     class_weight={0: 1.0, 1: 3.0})
    images, (batch_labels, targets), (weights, has_target) = batches[0]
    order = batches.order
    assert images.shape == (len(frame), 64, 64, 1) and targets.shape == (len(frame), 2, 2, 1)
    assert weights == pytest.approx(np.where(batch_labels == 1, 3.0, 1.0))
    assert np.array_equal(batch_labels, labels[order])
    has_box = np.array([bool(found[i][0]) for i in order])
    assert not has_target[~has_box].any()  # no box, no target
    assert has_target[has_box].mean() > 0.8  # augmentation rarely pushes a box out of the frame
    assert pd.Series(has_target).isin([0.0, 1.0]).all()
