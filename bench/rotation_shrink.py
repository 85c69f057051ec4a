"""Is the rotation set's loss the turn or the shrink? The shipped model on turned and shrunk validation images.

    python bench/rotation_shrink.py [--data ../shared/datasets/fracatlas] [--model-dir assets/model]

The robustness benchmark turns each radiograph on an enlarged canvas (``shifts.rotate``), as software that
rotates an image does: the whole image stays, so after the letterbox it is also smaller, by up to
1 / (|cos| + |sin|) of the angle (0.71 at 45 degrees for a square). Training's rotation lever turns within the
square instead (``data.augment_robust``). This scores the validation split's network inputs, each at one random
angle (seed 0), three ways: turned within the square, turned and shrunk as on the enlarged canvas, and shrunk
by the same factor without turning, and prints each one's ROC AUC beside the unshifted split's. With the
card's test-time views, as served. About 2 minutes on 2 cores. The test split is not read.
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
from sklearn.metrics import roc_auc_score  # noqa: E402

from fracture_model import data  # noqa: E402
from fracture_model.model_card import SPLIT_FILE  # noqa: E402
from fracture_model.predictor import Predictor  # noqa: E402


def turned(network_input: np.ndarray, angle: float, *, turn: bool = True, shrink: bool = False) -> np.ndarray:
    """``network_input`` (size, size, 1) turned by ``angle`` about its centre, and/or shrunk as the enlarged canvas
    of that angle would shrink it."""
    side = network_input.shape[0]
    radians = np.deg2rad(angle)
    scale = 1.0 / (abs(np.cos(radians)) + abs(np.sin(radians))) if shrink else 1.0
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle if turn else 0.0, scale)
    return cv2.warpAffine(network_input[..., 0], matrix, (side, side), flags=cv2.INTER_LINEAR, borderValue=0)[..., None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "fracatlas")
    parser.add_argument("--model-dir", type=Path, default=REPO / "assets" / "model")
    args = parser.parse_args()

    predictor = Predictor.load(args.model_dir)
    split = pd.read_csv(args.model_dir / SPLIT_FILE)
    validation = split[split["split"] == "validation"]
    inputs = data.load_inputs(args.data, list(validation["path"]), predictor.image_size).astype(np.float32) / 255.0
    labels = validation["fractured"].to_numpy()
    angles = np.random.default_rng(0).uniform(0.0, 360.0, len(inputs))

    def roc_auc(batch: np.ndarray) -> float:
        scores = np.concatenate([predictor.probabilities(batch[i:i + 16]) for i in range(0, len(batch), 16)])
        return float(roc_auc_score(labels, scores))

    print(f"model {predictor.model_version}; validation split: {len(labels)} images, {int(labels.sum())} fractured")
    print(f"  unshifted: ROC AUC {roc_auc(inputs):.3f}")
    for name, options in [("turned within the square (as training's rotation lever)", {"turn": True}),
                          ("turned and shrunk (as the benchmark's enlarged canvas)", {"turn": True, "shrink": True}),
                          ("shrunk as that canvas would, not turned", {"turn": False, "shrink": True})]:
        batch = np.stack([turned(x, angle, **options) for x, angle in zip(inputs, angles, strict=True)])
        print(f"  {name}: ROC AUC {roc_auc(batch):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
