"""Add test-time views to a model folder: score each radiograph also zoomed out (and mirrored), fitted on validation.

    python -m fracture_model.views --model-dir runs/new_model --data ../shared/datasets/fracatlas [--zoom 0.7]
        [--flip vertical]

Each network input is also scored shrunk to ``--zoom`` of its side in the middle of the black square
(``preprocess.zoomed_out``: as if taken from further away, which is how FracAtlas' whole limbs look
beside the close-ups of other sources) and, with ``--flip``, mirrored (``preprocess.flipped``: upside down
or left to right, as a radiograph hung the other way round), and the views' logits are averaged
(``bench/test_time_views.py`` measured these on validation, its shifted copy and the benchmark built from
validation). The average gets its own Platt calibration and the
operating threshold is chosen again, both on the validation split of the folder's ``split.csv``, and
written into the card (``test_time_views``, ``operating_threshold``, ``validation``). The test split is
not read; run ``python -m fracture_model.evaluate --model-dir DIR`` afterwards for the test figures, as
after training. Grad-CAM still explains the whole image alone.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from fracture_model import data, localisation
from fracture_model.metrics import choose_threshold
from fracture_model.model_card import SPLIT_FILE, read_card, write_card
from fracture_model.predictor import Predictor
from fracture_model.preprocess import FLIP_AXES
from fracture_model.train import fit_platt, threshold_spread


def fit(predictor: Predictor, inputs: np.ndarray, labels: np.ndarray, zoom_factors: Sequence[float],
        flips: Sequence[str] = ()) -> dict:
    """The card's ``test_time_views`` entry: Platt scaling of the views' mean logit on ``inputs`` (validation)."""
    views = {"zoom_factors": list(zoom_factors), "flips": list(flips)}
    predictor.test_time_views = {**views, "calibration": {"slope": 1.0, "intercept": 0.0}}
    slope, intercept = fit_platt(predictor.probabilities(inputs), labels)  # sigmoid of the mean logit, uncalibrated
    return {**views, "combine": "mean of the views' logits, then Platt scaling",
            "calibration": {"slope": slope, "intercept": intercept}, "chosen_on": "validation split"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fracture_model.views", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder")
    parser.add_argument("--zoom", type=float, nargs="+", default=[0.7], help="zoom-out factors of the extra views")
    parser.add_argument("--flip", nargs="*", default=[], choices=sorted(FLIP_AXES),
                        help="mirrored extra views (none by default)")
    args = parser.parse_args(argv)

    card = read_card(args.model_dir)
    predictor = Predictor.load(args.model_dir)
    predictor.test_time_views = None
    split = pd.read_csv(args.model_dir / SPLIT_FILE)
    validation = split[split["split"] == "validation"]
    inputs = data.load_inputs(args.data, list(validation["path"]), predictor.image_size).astype(np.float32) / 255.0
    labels = validation["fractured"].to_numpy()
    whole_image_alone = predictor.probabilities(inputs)
    views = fit(predictor, inputs, labels, args.zoom, args.flip)
    predictor.test_time_views = views
    calibrated = predictor.probabilities(inputs)
    rule = card.get("operating_threshold_rule", "youden")
    card["test_time_views"] = views
    card["operating_threshold"] = choose_threshold(labels, calibrated, rule)
    card["operating_threshold_chosen_on"] = "validation split (test-time views)"
    card["operating_threshold_bootstrap_95"] = list(threshold_spread(labels, calibrated, rule))
    card["validation"] = {**card.get("validation", {}), "roc_auc": float(roc_auc_score(labels, calibrated)),
                          "roc_auc_whole_image_alone": float(roc_auc_score(labels, whole_image_alone))}
    if card["validation"].get("shifted_mix_roc_auc") is not None:  # the shifted copy training watched, re-scored
        boxes = localisation.load_boxes(args.data / localisation.ANNOTATIONS_FILE)
        shifted, shifted_labels = data.load_shifted_inputs(args.data, validation, boxes, predictor.image_size, "mix",
                                                           card.get("training", {}).get("seed", 20261127))
        card["validation"]["shifted_mix_roc_auc"] = float(roc_auc_score(
            shifted_labels, predictor.probabilities(shifted.astype(np.float32) / 255.0)))
    write_card(args.model_dir, card)
    print(f"validation ROC AUC {card['validation']['roc_auc']:.4f} with views {args.zoom} {args.flip}; threshold "
          f"{card['operating_threshold']:.4f} ({rule}); now run python -m fracture_model.evaluate --model-dir "
          f"{args.model_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
