"""Test-time views of the shipped model (flips, rotations, zoomed-out and zoomed-in copies), judged on validation only.

    python bench/test_time_views.py --data ../shared/datasets/fracatlas [--benchmark]

Each radiograph's network input is also scored flipped, rotated, shrunk into the middle of the black
square (``zoom 0.7``: ``preprocess.zoomed_out``, the image at 70% of its side, as if taken from further
away) or enlarged from its middle (``zoom in 1.25``: the middle 80% of the square brought to full size,
as if taken from closer), and the logits of the views are averaged. Printed for each combination: ROC
AUC on the validation split and on its shifted copy (``shifts.py``'s mix, as training uses to choose an
epoch), and their mean. With ``--benchmark``, each combination is also calibrated (Platt) and
thresholded (Youden's J) on the validation split, as ``fracture_model.views`` does, and scored on the
robustness benchmark built from validation (``bench/bench_robustness.py --split validation
--normal-images 250``'s nine sets, same draw): mean and lowest ROC AUC over the sets, how far the
rotations and the mix lie below the unshifted draw, and specificity and sensitivity at the threshold
(mean, lowest). Each view costs one more forward pass per radiograph (about 15 ms here). Scores through
the LiteRT copy of the shipped model. About 5 minutes on 2 cores, 15 with ``--benchmark``. The test split
is not read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from fracture_model import data, localisation, robustness  # noqa: E402
from fracture_model.metrics import at_threshold, choose_threshold  # noqa: E402
from fracture_model.model_card import SPLIT_FILE, read_card  # noqa: E402
from fracture_model.predictor import Predictor, logit  # noqa: E402
from fracture_model.preprocess import flipped, zoomed_out  # noqa: E402
from fracture_model.train import fit_platt  # noqa: E402

SEED = 20261127  # the shifted copy's seed in training


def zoomed_in(network_input: np.ndarray, factor: float) -> np.ndarray:
    """The middle ``1 / factor`` of the square enlarged to the whole input (size, size, 1)."""
    side = network_input.shape[0]
    kept = int(round(side / factor))
    offset = (side - kept) // 2
    middle = network_input[offset:offset + kept, offset:offset + kept, 0]
    return cv2.resize(middle, (side, side), interpolation=cv2.INTER_LINEAR)[..., np.newaxis]


VIEWS = {
    "whole": lambda x: x,
    "horizontal flip": lambda x: flipped(x[np.newaxis], "horizontal")[0],  # as the served views flip
    "vertical flip": lambda x: flipped(x[np.newaxis], "vertical")[0],
    "rotated 90": lambda x: np.rot90(x, 1),
    "rotated 180": lambda x: np.rot90(x, 2),
    "rotated 270": lambda x: np.rot90(x, 3),
    "zoom 0.85": lambda x: zoomed_out(x[np.newaxis], 0.85)[0],
    "zoom 0.7": lambda x: zoomed_out(x[np.newaxis], 0.7)[0],
    "zoom 0.5": lambda x: zoomed_out(x[np.newaxis], 0.5)[0],
    "zoom in 1.25": lambda x: zoomed_in(x, 1.25),
    "zoom in 1.4": lambda x: zoomed_in(x, 1.4),
}
COMBINATIONS = [
    ["whole"],
    ["whole", "horizontal flip"],
    ["whole", "horizontal flip", "vertical flip"],
    ["whole", "rotated 90", "rotated 180", "rotated 270"],
    ["whole", "horizontal flip", "rotated 90", "rotated 270"],
    ["whole", "zoom 0.7"],
    ["whole", "horizontal flip", "zoom 0.7"],
    ["whole", "vertical flip", "zoom 0.7"],
    ["whole", "rotated 180", "zoom 0.7"],
    ["whole", "rotated 90", "rotated 180", "rotated 270", "zoom 0.7"],
    ["whole", "zoom 0.85"],
    ["whole", "zoom 0.5"],
    ["whole", "zoom in 1.25"],
    ["whole", "zoom in 1.4"],
    ["whole", "zoom 0.7", "zoom in 1.25"],
]


def view_logits(predictor: Predictor, inputs: np.ndarray, views: list[str], batch: int = 16) -> dict[str, np.ndarray]:
    """Each view's logit for network inputs (uint8 0-255 or float in [0, 1], (n, size, size, 1))."""
    found = {}
    for view in views:
        parts = []
        for start in range(0, len(inputs), batch):
            chunk = inputs[start:start + batch]
            chunk = chunk.astype(np.float32) / 255.0 if chunk.dtype == np.uint8 else chunk.astype(np.float32)
            transformed = np.stack([np.ascontiguousarray(VIEWS[view](x)) for x in chunk])
            parts.append(logit(predictor.probabilities(transformed)))
        found[view] = np.concatenate(parts)
    return found


def benchmark_row(combination: list[str], validation: tuple[dict, np.ndarray],
                  sets: dict[str, tuple[dict, np.ndarray]]) -> dict:
    """Calibrate and threshold the combination on validation, then score it on each benchmark set."""
    logits, labels = validation
    averaged = np.mean([logits[view] for view in combination], axis=0)
    slope, intercept = fit_platt(1.0 / (1.0 + np.exp(-averaged)), labels)

    def calibrated(values: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(slope * values + intercept)))

    threshold = choose_threshold(labels, calibrated(averaged), "youden")
    aucs, specificities, sensitivities = {}, [], []
    for name, (set_logits, set_labels) in sets.items():
        set_averaged = np.mean([set_logits[view] for view in combination], axis=0)
        aucs[name] = float(roc_auc_score(set_labels, set_averaged))
        point = at_threshold(set_labels, calibrated(set_averaged), threshold)
        specificities.append(point.specificity)
        sensitivities.append(point.sensitivity)
    unshifted = aucs["unshifted"]
    return {"benchmark_mean_roc_auc": round(float(np.mean(list(aucs.values()))), 4),
            "benchmark_lowest_roc_auc": round(min(aucs.values()), 4), "unshifted": round(unshifted, 4),
            "rotation_below_unshifted": round(unshifted - aucs["rotation 0-360"], 4),
            "mix_below_unshifted": round(unshifted - aucs["mix of all"], 4),
            "sets_more_than_0.05_below": sum(unshifted - auc > 0.05 for auc in aucs.values()),
            "threshold": round(threshold, 3),
            "specificity_mean_lowest": [round(float(np.mean(specificities)), 3), round(min(specificities), 3)],
            "sensitivity_mean_lowest": [round(float(np.mean(sensitivities)), 3), round(min(sensitivities), 3)],
            "roc_auc_by_set": {name: round(auc, 3) for name, auc in aucs.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder")
    parser.add_argument("--model-dir", type=Path, default=REPO / "assets" / "model")
    parser.add_argument("--benchmark", action="store_true",
                        help="also score each combination on the robustness benchmark built from validation")
    args = parser.parse_args(argv)

    predictor = Predictor.load(args.model_dir)
    predictor.test_time_views = None  # each view scored alone: the card's own views would hide inside "whole"
    size = int(read_card(args.model_dir)["input_size"])
    split = pd.read_csv(args.model_dir / SPLIT_FILE)
    validation = split[split["split"] == "validation"]
    boxes = localisation.load_boxes(args.data / localisation.ANNOTATIONS_FILE)
    views = list(VIEWS)
    sets = {
        "validation": (data.load_inputs(args.data, list(validation["path"]), size), validation["fractured"].to_numpy()),
        "shifted": data.load_shifted_inputs(args.data, validation, boxes, size, "mix", SEED),
    }
    logits = {name: view_logits(predictor, inputs, views) for name, (inputs, _) in sets.items()}
    print(f"validation: {len(sets['validation'][1])} images; shifted copy: {len(sets['shifted'][1])}", flush=True)
    benchmark = {}
    if args.benchmark:
        frame = robustness.benchmark_frame(split, "validation", normal_images=250, seed=0)
        for shifted in robustness.benchmark_sets():
            items = list(robustness.set_images(frame, args.data / "images", boxes, shifted, seed=0))
            inputs = np.concatenate([predictor.network_input(pixels) for _, pixels, _ in items])
            labels = frame["fractured"].to_numpy()[[index for index, _, _ in items]]
            benchmark[shifted.name] = (view_logits(predictor, inputs, views), labels)
            print(f"  benchmark set {shifted.name}: {len(items)} images", flush=True)
    for combination in COMBINATIONS:
        row = {"views": " + ".join(combination)}
        for name, (_, labels) in sets.items():
            averaged = np.mean([logits[name][view] for view in combination], axis=0)
            row[f"{name}_roc_auc"] = round(float(roc_auc_score(labels, averaged)), 4)
        row["mean"] = round((row["validation_roc_auc"] + row["shifted_roc_auc"]) / 2, 4)
        if benchmark:
            row |= benchmark_row(combination, (logits["validation"], sets["validation"][1]), benchmark)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
