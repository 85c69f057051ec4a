"""How often the featureless check (``fracture_model.ood.image_content``) fires, on radiographs and on non-radiographs.

    python bench/featureless.py [--split train] [--data ../shared/datasets/fracatlas] [--model-dir assets/model]

For every set of the robustness benchmark (``fracture_model.robustness``: unshifted, close-ups at 1.5x to 4x
a box, rotations, 224 px + JPEG 75, marks, the mix; seed 0) built from ``--split``'s images, prints how many
fractured and normal images the check calls featureless, and the smallest ``structure`` and neighbour
correlation it measured there; then the same for synthetic images with nothing of a radiograph in them
(``featureless_examples``), each decoded as an upload is and also at 224 px. No network is loaded. The
limits (``ood.MIN_STRUCTURE``, ``ood.MIN_NEIGHBOUR_CORRELATION``) were chosen with ``--split train``; run
``--split validation`` or ``test`` to see how they hold. About 4 minutes for the training split on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from ood_examples import featureless, png  # noqa: E402

from fracture_model import localisation, ood, robustness  # noqa: E402
from fracture_model.imaging import read_radiograph  # noqa: E402
from fracture_model.model_card import DEFAULT_MODEL_DIR, SPLIT_FILE, read_card  # noqa: E402
from fracture_model.preprocess import preprocess  # noqa: E402

DEFAULT_DATA_DIR = REPO.parent / "shared" / "datasets" / "fracatlas"


def featureless_examples(side: int = 512) -> dict[str, np.ndarray]:
    """8-bit images with nothing of a radiograph in them: ``ood_examples.featureless`` and more of the kind."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[:side, :side] / (side - 1)
    vignette = np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.18)
    return {
        **featureless(side),
        "salt-and-pepper noise": (rng.integers(0, 2, (side, side)) * 255).astype(np.uint8),
        "gaussian noise": np.clip(rng.normal(128, 40, (side, side)), 0, 255).astype(np.uint8),
        "blurred noise (sigma 3 px)": np.clip(cv2.GaussianBlur(rng.normal(128, 60, (side, side)), (0, 0), 3),
                                              0, 255).astype(np.uint8),
        "gentle vignette": (210 / (1 + (x - 0.5) ** 2 + (y - 0.5) ** 2) ** 2).astype(np.uint8),
        "strong vignette (round blob)": (60 + 150 * vignette).astype(np.uint8),
        "diagonal gradient": (255 * (x + y) / 2).astype(np.uint8),
        "white field": np.full((side, side), 255, np.uint8),
        "wide grey field 700 x 300": np.full((300, 700), 200, np.uint8),
        "wide gradient 800 x 500": np.tile(np.linspace(30, 220, 800), (500, 1)).astype(np.uint8),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="train", choices=("train", "validation", "test"))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    args = parser.parse_args()
    size = int(read_card(args.model_dir)["input_size"])
    print(f"featureless: structure < {ood.MIN_STRUCTURE} or neighbour correlation < {ood.MIN_NEIGHBOUR_CORRELATION}"
          f" (network input {size} px)")

    split = pd.read_csv(args.model_dir / SPLIT_FILE)
    frame = robustness.benchmark_frame(split, args.split)
    boxes = localisation.load_boxes(args.data / localisation.ANNOTATIONS_FILE)
    print(f"\n{args.split} split, {len(frame)} images; per set: flagged fractured / flagged normal, "
          "then the smallest structure and neighbour correlation (fractured; normal)")
    for shifted in robustness.benchmark_sets():
        started, rows = time.perf_counter(), []
        for index, pixels, _ in robustness.set_images(frame, args.data / "images", boxes, shifted, seed=0):
            content = ood.image_content(preprocess(pixels, size))
            rows.append((int(frame["fractured"].iloc[index]), content.structure, content.neighbour_correlation,
                         content.featureless))
        found = pd.DataFrame(rows, columns=["fractured", "structure", "correlation", "featureless"])
        by_label = {label: found[found["fractured"] == label] for label in (1, 0)}
        counts = " / ".join(f"{int(part['featureless'].sum())} of {len(part)}" for part in by_label.values())
        smallest = "; ".join(f"{part['structure'].min():.3f} {part['correlation'].min():.3f}"
                             for part in by_label.values())
        print(f"{shifted.name:20s} {counts:20s} smallest {smallest}  ({time.perf_counter() - started:.0f} s)")

    print("\nnon-radiographs, decoded as uploads (and at 224 px): structure, neighbour correlation, flagged")
    for name, image in featureless_examples().items():
        small = cv2.resize(image, (224, round(224 * image.shape[0] / image.shape[1])), interpolation=cv2.INTER_AREA)
        found = [ood.image_content(preprocess(read_radiograph(png(version)).pixels, size))
                 for version in (image, small)]
        print(f"{name:28s} " + "   ".join(f"{c.structure:.3f} {c.neighbour_correlation:.3f} "
                                          f"{'FLAGGED' if c.featureless else 'not flagged'}" for c in found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
