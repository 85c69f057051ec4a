"""Evaluate the model on its held-out test split and regenerate ``<model-dir>/evaluation/``.

    python -m fracture_model.evaluate [--model-dir assets/model] [--data ../shared/datasets/fracatlas]

Reads the split that training wrote (``split.csv``), scores every test image through the same
``imaging`` + ``preprocess`` path as the app, and writes:

- ``evaluation/predictions.csv``: one row per test image (label, probability, decision, outcome);
- ``evaluation/metrics.json``: ROC AUC with a 95% bootstrap CI, the operating-point metrics,
  sensitivity at 90% specificity, calibration error, and the same by body part and by implant;
- ``evaluation/cases/*.jpg``: every misclassified test case with its Grad-CAM overlay;

and copies the headline figures into ``model_card.json``, so model, card and evaluation change together.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from fracture_model import metrics
from fracture_model.explain import DEFAULT_METHOD, Explainer, overlay
from fracture_model.imaging import read_radiograph
from fracture_model.model_card import DEFAULT_MODEL_DIR, SPLIT_FILE, read_card, write_card
from fracture_model.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "datasets" / "fracatlas"
EVALUATION_DIR = "evaluation"
CASES_DIR = "cases"
CASE_IMAGE_SIDE = 384
"""Case images are stored with their long side at most this many pixels."""

OUTCOMES = {(1, 1): "true positive", (0, 1): "false positive", (0, 0): "true negative", (1, 0): "false negative"}


def score_images(predictor: Predictor, images_dir: Path, paths: list[str], batch_size: int = 16) -> np.ndarray:
    """P(fractured) for each image file, decoded and preprocessed exactly as in the app."""
    probabilities = []
    for start in range(0, len(paths), batch_size):
        batch = np.concatenate([
            predictor.network_input(read_radiograph((images_dir / path).read_bytes()).pixels)
            for path in paths[start : start + batch_size]
        ])
        probabilities.append(predictor.probabilities(batch))
    return np.concatenate(probabilities) if probabilities else np.empty(0)


def subgroup_summary(predictions: pd.DataFrame, threshold: float) -> dict:
    """Per subgroup: images, fractured, ROC AUC (when both classes are present), sensitivity, specificity."""
    def summarise(part: pd.DataFrame) -> dict:
        labels, probabilities = part["fractured"].to_numpy(), part["probability_fractured"].to_numpy()
        point = metrics.at_threshold(labels, probabilities, threshold)
        both = 0 < labels.sum() < len(labels)
        return {
            "images": int(len(part)),
            "fractured": int(labels.sum()),
            "roc_auc": float(roc_auc_score(labels, probabilities)) if both else None,
            "sensitivity": None if np.isnan(point.sensitivity) else point.sensitivity,
            "specificity": None if np.isnan(point.specificity) else point.specificity,
        }

    return {
        "by_body_part": {part: summarise(rows) for part, rows in predictions.groupby("body_part")},
        "with_implant": summarise(predictions[predictions["hardware"] == 1]),
        "without_implant": summarise(predictions[predictions["hardware"] == 0]),
    }


def compute_metrics(predictions: pd.DataFrame, threshold: float, seed: int = 0) -> dict:
    labels = predictions["fractured"].to_numpy()
    probabilities = predictions["probability_fractured"].to_numpy()
    auc, low, high = metrics.bootstrap_roc_auc(labels, probabilities, seed=seed)
    without_implant = predictions[predictions["hardware"] == 0]
    auc_free, low_free, high_free = metrics.bootstrap_roc_auc(
        without_implant["fractured"].to_numpy(), without_implant["probability_fractured"].to_numpy(), seed=seed
    )
    return {
        "split": "test",
        "images": int(len(labels)),
        "fractured": int(labels.sum()),
        "roc_auc": auc,
        "roc_auc_ci95": [low, high],
        "roc_auc_without_implants": auc_free,
        "roc_auc_without_implants_ci95": [low_free, high_free],
        "sensitivity_at_specificity_0.90": metrics.sensitivity_at_specificity(labels, probabilities, 0.90),
        "expected_calibration_error": metrics.expected_calibration_error(labels, probabilities),
        "operating_point": metrics.at_threshold(labels, probabilities, threshold).as_dict(),
        "subgroups": subgroup_summary(predictions, threshold),
        "bootstrap": {"resamples": 2000, "seed": seed, "method": "percentile, cases resampled"},
    }


def save_case_image(path: Path, pixels: np.ndarray, heatmap: np.ndarray) -> None:
    """The radiograph and its heatmap overlay side by side, long side at most ``CASE_IMAGE_SIDE``."""
    scale = min(1.0, CASE_IMAGE_SIDE / max(pixels.shape))
    size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    small_heatmap = cv2.resize(heatmap, size, interpolation=cv2.INTER_LINEAR)
    original = cv2.cvtColor(np.clip(small * 255, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    combined = np.concatenate([original, overlay(small, small_heatmap, 0.45)], axis=1)
    cv2.imwrite(str(path), cv2.cvtColor(combined, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fracture_model.evaluate", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="FracAtlas folder")
    parser.add_argument("--no-case-images", action="store_true", help="skip the heatmaps of misclassified cases")
    args = parser.parse_args(argv)

    card = read_card(args.model_dir)
    predictor = Predictor.load(args.model_dir)
    split = pd.read_csv(args.model_dir / SPLIT_FILE)
    test = split[split["split"] == "test"].reset_index(drop=True)
    images_dir = args.data / "images"
    threshold = predictor.operating_threshold

    print(f"scoring {len(test)} test images ...", flush=True)
    test["probability_fractured"] = score_images(predictor, images_dir, list(test["path"]))
    test["decision"] = np.where(test["probability_fractured"] >= threshold, "fractured", "not fractured")
    decided = (test["probability_fractured"] >= threshold).astype(int)
    test["outcome"] = [OUTCOMES[(label, decision)] for label, decision in zip(test["fractured"], decided, strict=True)]

    out = args.model_dir / EVALUATION_DIR
    cases = out / CASES_DIR
    if cases.exists():
        shutil.rmtree(cases)
    cases.mkdir(parents=True)
    test["case_image"] = ""
    if not args.no_case_images:
        explainer = Explainer(predictor.model, card["positive_class"], card["last_conv_layer"])
        wrong = test[test["outcome"].isin(["false positive", "false negative"])]
        print(f"drawing {DEFAULT_METHOD} for {len(wrong)} misclassified cases ...", flush=True)
        for row in wrong.itertuples():
            pixels = read_radiograph((images_dir / row.path).read_bytes()).pixels
            explanation = explainer.explain(predictor.network_input(pixels), pixels.shape, DEFAULT_METHOD)
            name = f"{Path(row.image_id).stem}.jpg"
            save_case_image(cases / name, pixels, explanation.heatmap)
            test.loc[row.Index, "case_image"] = f"{CASES_DIR}/{name}"

    columns = ["image_id", "path", "body_part", "hardware", "fractured", "probability_fractured", "decision",
               "outcome", "case_image"]
    test[columns].to_csv(out / "predictions.csv", index=False, float_format="%.6f")
    results = compute_metrics(test, threshold)
    results["heatmap_method"] = DEFAULT_METHOD
    (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")

    card["test"] = {key: results[key] for key in (
        "images", "fractured", "roc_auc", "roc_auc_ci95", "roc_auc_without_implants",
        "roc_auc_without_implants_ci95", "sensitivity_at_specificity_0.90", "expected_calibration_error",
    )}
    card["test"]["at_operating_threshold"] = results["operating_point"]
    card["test"]["note"] = "group-aware test split, never used for training, early stopping, calibration or threshold"
    card["evaluation_command"] = "python -m fracture_model.evaluate"
    write_card(args.model_dir, card)
    point = results["operating_point"]
    print(
        f"test ROC AUC {results['roc_auc']:.3f} (95% CI {results['roc_auc_ci95'][0]:.3f}-{results['roc_auc_ci95'][1]:.3f}); "
        f"at threshold {threshold:.3f}: sensitivity {point['sensitivity']:.3f}, specificity {point['specificity']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
