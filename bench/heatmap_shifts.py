"""Grad-CAM of the same network over its input shifted by fractions of a cell, judged by the pointing game on
validation's boxed fractures.

    python bench/heatmap_shifts.py [--data ../shared/datasets/fracatlas] [--model-dir assets/model]

The served Grad-CAM has one value per cell of the last conv layer's 12 x 12 grid (32 px of the 384 px input),
so its peak sits on a cell centre. Of the served map's misses on validation, about half lie 18 to 35 px from a
box, the next cell (``bench/heatmap_layers.py``). The same network shown its input moved by part of a cell
samples the class activation map between those centres; moving each map back and averaging them gives a finer
map of the same network ("augmented Grad-CAM", Morbidelli et al., 2020). For each set of shifts (pixels of the
network input, right and down; the bared edge filled black as the letterbox's bars are) this prints the
pointing game on the validation split's fractured images with boxes, as ``fracture_model.evaluate`` scores it
(the peak within 15 px of a box in the working copy's pixels), and how many passes of the network each costs.
About 3 minutes on 2 cores. The test split is not read.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from fracture_model.explain import Explainer  # noqa: E402
from fracture_model.predictor import Predictor  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from heatmap_views import boxed_validation_batches, heatmap_scores, raw_maps  # noqa: E402


def grid(*steps: int) -> list[tuple[int, int]]:
    return [(dx, dy) for dy in steps for dx in steps]


SHIFT_SETS = {
    "none (served)": [(0, 0)],
    "half a cell, 2 x 2": grid(0, 16),
    "half a cell either way, 3 x 3": grid(-16, 0, 16),
    "a quarter cell either way, 3 x 3": grid(-8, 0, 8),
    "quarter cells, 4 x 4": grid(0, 8, 16, 24),
    "quarter cells either way, 5 x 5": grid(-16, -8, 0, 8, 16),
}


def shifted(batch: np.ndarray, dx: int, dy: int, fill: float = 0.0) -> np.ndarray:
    """``batch`` (n, h, w[, c]) moved ``dx`` right and ``dy`` down, the bared edge filled with ``fill``."""
    out = np.full_like(batch, fill)
    h, w = batch.shape[1:3]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        batch[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def shifted_maps(explainer: Explainer, batch: np.ndarray, shifts: list[tuple[int, int]]) -> np.ndarray:
    """The class activation map (before ReLU) over the input, averaged over the input shifted by each of
    ``shifts`` and each map shifted back; where a map has no value (its bared edge), the others average."""
    total = np.zeros(batch.shape[:3], np.float64)
    count = np.zeros(batch.shape[:3], np.float64)
    for dx, dy in shifts:
        maps = raw_maps(explainer, shifted(batch, dx, dy))
        total += shifted(maps, -dx, -dy)
        count += shifted(np.ones_like(maps), -dx, -dy)
    return (total / np.maximum(count, 1.0)).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "fracatlas")
    parser.add_argument("--model-dir", type=Path, default=REPO / "assets" / "model")
    args = parser.parse_args()

    predictor = Predictor.load(args.model_dir)
    explainer = Explainer(predictor.model, predictor.card["positive_class"], predictor.card["last_conv_layer"])
    batches = boxed_validation_batches(predictor, args.data, args.model_dir)
    images = next(batches)
    hits = {name: [] for name in SHIFT_SETS}
    distances = {name: [] for name in SHIFT_SETS}
    for image_boxes, batch, letterboxes in batches:
        for name, shifts in SHIFT_SETS.items():
            for score in heatmap_scores(shifted_maps(explainer, batch, shifts), image_boxes, letterboxes):
                hits[name].append(int(score.pointing_hit))
                distances[name].append(score.distance_px)
    print(f"model {predictor.model_version}; validation's fractured images with boxes: {images}")
    for name, found in hits.items():
        misses = np.array([d for d, hit in zip(distances[name], found, strict=True) if not hit])
        near = int(np.sum(misses <= 40))
        print(f"  {name} ({len(SHIFT_SETS[name])} passes): pointing game {np.mean(found):.3f} "
              f"({sum(found)}/{len(found)}); misses within 40 px of a box {near}, further {len(misses) - near}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
