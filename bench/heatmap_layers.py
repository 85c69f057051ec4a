"""Grad-CAM at other layers, mixed across layers, and enlarged in other ways, judged by the pointing game on validation.

    python bench/heatmap_layers.py [--data ../shared/datasets/fracatlas] [--model-dir assets/model]

The served heatmap is Grad-CAM at ``network.LAST_CONV_LAYER`` (12 x 12 cells of 32 px of the 384 px input),
enlarged bilinearly, whose peak therefore always lies on a cell centre. Could a finer or smoother map point
better without training? For the validation split's fractured images with boxes this prints the pointing game
(the peak within 15 px of a radiologist's box, in the working copy's pixels, as ``fracture_model.evaluate``
scores it) of: the served map enlarged bicubically, with Lanczos or blurred after the bilinear enlargement
(peaks between cell centres); Grad-CAM at earlier blocks (24 x 24 cells for blocks 7 to 10) and the last
blocks before the head; and the served map multiplied by or added to (at half weight) each of those. The
served map's misses are listed by distance. About three minutes on 2 cores; the test split is not read.
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
from heatmap_views import boxed_validation_batches, print_pointing  # noqa: E402

from fracture_model import localisation  # noqa: E402
from fracture_model.explain import Explainer, _CompiledGradcam  # noqa: E402
from fracture_model.predictor import Predictor  # noqa: E402

LAYERS = ("block7_add", "block9_add", "block10_add", "block14_add", "block15_project_conv")
SERVED = "served (bilinear)"


def variants(served_cells: np.ndarray, layer_cells: dict[str, np.ndarray], side: int) -> dict[str, np.ndarray]:
    """Every map to judge over the (side, side) network input, from normalised Grad-CAM cells."""
    def enlarged(cells: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        return cv2.resize(cells, (side, side), interpolation=interpolation)

    served = enlarged(served_cells)
    maps = {SERVED: served, "bicubic": enlarged(served_cells, cv2.INTER_CUBIC),
            "Lanczos": enlarged(served_cells, cv2.INTER_LANCZOS4)}
    for sigma in (8, 16, 24):
        maps[f"bilinear, then blurred (sigma {sigma} px)"] = cv2.GaussianBlur(served, (0, 0), sigma)
    for layer, cells in layer_cells.items():
        other = enlarged(cells)
        maps[f"{layer} ({cells.shape[0]} x {cells.shape[0]})"] = other
        maps[f"served x {layer}"] = served * other
        maps[f"served + half {layer}"] = served + 0.5 * other
    return maps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "fracatlas")
    parser.add_argument("--model-dir", type=Path, default=REPO / "assets" / "model")
    args = parser.parse_args()

    predictor = Predictor.load(args.model_dir)
    explainer = Explainer(predictor.model, predictor.card["positive_class"], predictor.card["last_conv_layer"])
    linear_model = explainer._visualisers["Grad-CAM"].model
    at_layers = {layer: _CompiledGradcam(linear_model, layer) for layer in LAYERS}
    batches = boxed_validation_batches(predictor, args.data, args.model_dir)
    images = next(batches)
    hits: dict[str, list[bool]] = {}
    served_distances = []
    for image_boxes, batch, letterboxes in batches:
        served = explainer._compiled_gradcam(batch)
        others = {layer: compiled(batch) for layer, compiled in at_layers.items()}
        for i, (boxes, letterbox) in enumerate(zip(image_boxes, letterboxes, strict=True)):
            maps = variants(served[i], {layer: cells[i] for layer, cells in others.items()}, batch.shape[1])
            for name, heatmap in maps.items():
                score = localisation.score_heatmap(letterbox.crop_to_original(heatmap), boxes)
                hits.setdefault(name, []).append(score.pointing_hit)
                if name == SERVED:
                    served_distances.append(score.distance_px)
    print(f"model {predictor.model_version}; validation's fractured images with boxes: {images}")
    print_pointing(hits)
    misses = sorted(round(d) for d in served_distances if d > localisation.POINTING_TOLERANCE_PX)
    print(f"served map's misses, px from the nearest box: {misses}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
