"""Grad-CAM averaged over test-time views, judged by the pointing game on validation's boxed fractures.

    python bench/heatmap_views.py [--data ../shared/datasets/fracatlas] [--model-dir assets/model]

The served heatmap is the whole image's Grad-CAM. Since the probability averages views' logits, one could
also draw the map of that average: each view's class activation map (the Grad-CAM of its logit, before the
ReLU and normalisation) turned, flipped or enlarged back onto the whole input, and averaged. For each
combination this prints the pointing game (the peak within 15 px of a radiologist's box, in the working
copy's pixels, as ``fracture_model.evaluate`` scores it) on the validation split's fractured images with
boxes. About a minute on 2 cores. The test split is not read.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fracture_model import localisation  # noqa: E402
from fracture_model.explain import Explainer  # noqa: E402
from fracture_model.imaging import read_radiograph  # noqa: E402
from fracture_model.model_card import SPLIT_FILE  # noqa: E402
from fracture_model.predictor import Predictor  # noqa: E402
from fracture_model.preprocess import FLIP_AXES, Letterbox, flipped, zoomed_out  # noqa: E402

ZOOM = 0.7
COMBINATIONS = {
    "whole image (served)": ["whole"],
    "whole + zoom 0.7 (the served probability's views until 1 December)": ["whole", "zoom 0.7"],
    "whole + zoom 0.7 + vertical flip (the served probability's views)": ["whole", "zoom 0.7", "vertical flip"],
    "whole + vertical flip": ["whole", "vertical flip"],
    "whole + horizontal flip": ["whole", "horizontal flip"],
    "whole + both flips": ["whole", "horizontal flip", "vertical flip"],
    "four rotations": ["whole", "rotated 90", "rotated 180", "rotated 270"],
    "four rotations + zoom 0.7": ["whole", "rotated 90", "rotated 180", "rotated 270", "zoom 0.7"],
}


def raw_maps(explainer: Explainer, views: np.ndarray) -> np.ndarray:
    """The served Grad-CAM's own computation, before ReLU and normalisation, enlarged over each input."""
    side = views.shape[1]
    cells = explainer._compiled_gradcam.cells(np.ascontiguousarray(views, np.float32))
    return np.stack([cv2.resize(cell_map, (side, side), interpolation=cv2.INTER_LINEAR) for cell_map in cells])


def view_maps(explainer: Explainer, batch: np.ndarray) -> dict[str, np.ndarray]:
    """Each view's raw class activation map over the whole input (n, size, size), mapped back from the view."""
    side = batch.shape[1]
    small = int(round(side * ZOOM))
    offset = (side - small) // 2
    zoomed = raw_maps(explainer, zoomed_out(batch, ZOOM))[:, offset:offset + small, offset:offset + small]
    maps = {"whole": raw_maps(explainer, batch),
            **{f"{direction} flip": flipped(raw_maps(explainer, flipped(batch, direction)), direction)
               for direction in FLIP_AXES},  # the served views' flip, and the map (n, size, size) flipped back
            "zoom 0.7": np.stack([cv2.resize(m, (side, side), interpolation=cv2.INTER_LINEAR) for m in zoomed])}
    for turns in (1, 2, 3):
        turned = raw_maps(explainer, np.rot90(batch, turns, axes=(1, 2)))
        maps[f"rotated {90 * turns}"] = np.rot90(turned, -turns, axes=(1, 2))
    return maps


def boxed_validation_batches(predictor: Predictor, data_dir: Path, model_dir: Path, size: int = 8):
    """Validation's fractured images with boxes, ``size`` at a time: (their boxes, their network inputs, their
    letterboxes back to the working copy); the first thing yielded is how many images there are."""
    split = pd.read_csv(model_dir / SPLIT_FILE)
    boxes = localisation.load_boxes(data_dir / localisation.ANNOTATIONS_FILE)
    rows = split[(split["split"] == "validation") & (split["fractured"] == 1)]
    rows = rows[[bool(boxes.get(image_id)) for image_id in rows["image_id"]]]
    yield len(rows)
    for start in range(0, len(rows), size):
        chunk = rows.iloc[start:start + size]
        pixels = [read_radiograph((data_dir / "images" / path).read_bytes()).pixels for path in chunk["path"]]
        batch = np.concatenate([predictor.network_input(image) for image in pixels]).astype(np.float32)
        letterboxes = [Letterbox(image.shape, batch.shape[1]) for image in pixels]
        yield [boxes[image_id] for image_id in chunk["image_id"]], batch, letterboxes


def heatmap_scores(maps: np.ndarray, image_boxes, letterboxes) -> list[localisation.LocalisationScore]:
    """Raw class activation maps (n, size, size), each ReLU'd, cropped back to its working copy and normalised
    as the served heatmap is, scored against that image's boxes."""
    scores = []
    for heatmap, boxes, letterbox in zip(np.maximum(maps, 0.0), image_boxes, letterboxes, strict=True):
        heatmap = letterbox.crop_to_original(heatmap)
        scores.append(localisation.score_heatmap(heatmap / (heatmap.max() + 1e-9), boxes))
    return scores


def pointing_hits(maps: np.ndarray, image_boxes, letterboxes) -> list[int]:
    """Pointing-game hits (1 or 0) of raw class activation maps, as ``heatmap_scores`` scores them."""
    return [int(score.pointing_hit) for score in heatmap_scores(maps, image_boxes, letterboxes)]


def print_pointing(hits: dict[str, list[int]]) -> None:
    """One line per map: its pointing game as a rate and as hits of images."""
    for name, found in hits.items():
        print(f"  {name}: pointing game {np.mean(found):.3f} ({sum(found)}/{len(found)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "fracatlas")
    parser.add_argument("--model-dir", type=Path, default=REPO / "assets" / "model")
    args = parser.parse_args()

    predictor = Predictor.load(args.model_dir)
    explainer = Explainer(predictor.model, predictor.card["positive_class"], predictor.card["last_conv_layer"])
    batches = boxed_validation_batches(predictor, args.data, args.model_dir)
    images = next(batches)
    hits = {name: [] for name in COMBINATIONS}
    for image_boxes, batch, letterboxes in batches:
        maps = view_maps(explainer, batch)
        for name, views in COMBINATIONS.items():
            hits[name] += pointing_hits(np.mean([maps[view] for view in views], axis=0), image_boxes, letterboxes)
    print(f"model {predictor.model_version}; validation's fractured images with boxes: {images}")
    print_pointing(hits)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
