"""Test-time views of the shipped model (flips, rotations, zoomed-out copies), judged on validation only.

    python bench/test_time_views.py --data ../shared/datasets/fracatlas

Each radiograph's network input is also scored flipped, rotated, or shrunk into the middle of the
black square (``zoom 0.7``: ``preprocess.zoomed_out``, the image at 70% of its side, as if taken from
further away), and the logits of the views are averaged. Printed for each combination: ROC AUC on the
validation split and on its shifted copy (``shifts.py``'s mix, as training uses to choose an epoch),
and their mean. Each view costs one more forward pass per radiograph (about 30 ms here). Scores
through the LiteRT copy of the shipped model. About 5 minutes on 2 cores. The test split is not read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from fracture_model import data, localisation  # noqa: E402
from fracture_model.model_card import SPLIT_FILE, read_card  # noqa: E402
from fracture_model.predictor import Predictor  # noqa: E402
from fracture_model.preprocess import zoomed_out  # noqa: E402

SEED = 20261127  # the shifted copy's seed in training


VIEWS = {
    "whole": lambda x: x,
    "horizontal flip": lambda x: x[:, ::-1],
    "vertical flip": lambda x: x[::-1],
    "rotated 90": lambda x: np.rot90(x, 1),
    "rotated 180": lambda x: np.rot90(x, 2),
    "rotated 270": lambda x: np.rot90(x, 3),
    "zoom 0.7": lambda x: zoomed_out(x[np.newaxis], 0.7)[0],
    "zoom 0.5": lambda x: zoomed_out(x[np.newaxis], 0.5)[0],
}
COMBINATIONS = [
    ["whole"],
    ["whole", "horizontal flip"],
    ["whole", "horizontal flip", "vertical flip"],
    ["whole", "rotated 90", "rotated 180", "rotated 270"],
    ["whole", "horizontal flip", "rotated 90", "rotated 270"],
    ["whole", "zoom 0.7"],
    ["whole", "horizontal flip", "zoom 0.7"],
    ["whole", "zoom 0.5"],
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder")
    parser.add_argument("--model-dir", type=Path, default=REPO / "assets" / "model")
    args = parser.parse_args(argv)

    predictor = Predictor.load(args.model_dir)
    predictor.test_time_views = None  # each view scored alone: the card's own views would hide inside "whole"
    size = int(read_card(args.model_dir)["input_size"])
    split = pd.read_csv(args.model_dir / SPLIT_FILE)
    validation = split[split["split"] == "validation"]
    boxes = localisation.load_boxes(args.data / localisation.ANNOTATIONS_FILE)
    sets = {
        "validation": (data.load_inputs(args.data, list(validation["path"]), size), validation["fractured"].to_numpy()),
        "shifted": data.load_shifted_inputs(args.data, validation, boxes, size, "mix", SEED),
    }
    logits = {}
    for name, (inputs, _) in sets.items():
        for view, transform in VIEWS.items():
            batch = np.stack([np.ascontiguousarray(transform(x)) for x in inputs]).astype(np.float32) / 255.0
            probabilities = np.clip(predictor.probabilities(batch), 1e-7, 1 - 1e-7)
            logits[name, view] = np.log(probabilities / (1 - probabilities))
    print(f"validation: {len(sets['validation'][1])} images; shifted copy: {len(sets['shifted'][1])}")
    for combination in COMBINATIONS:
        row = {"views": " + ".join(combination)}
        for name, (_, labels) in sets.items():
            averaged = np.mean([logits[name, view] for view in combination], axis=0)
            row[f"{name}_roc_auc"] = round(float(roc_auc_score(labels, averaged)), 4)
        row["mean"] = round((row["validation_roc_auc"] + row["shifted_roc_auc"]) / 2, 4)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
