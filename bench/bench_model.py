"""Quality of the shipped model on its held-out test split, re-scored from the images.

    python bench/bench_model.py [--model-dir assets/model] [--data ../shared/datasets/fracatlas]

Scores every test image again through imaging + preprocess + the model (nothing read from the stored
predictions), then prints ROC AUC with its 95% bootstrap CI, sensitivity at 90% specificity, expected
calibration error, the implant-free ROC AUC, and the operating-point figures. With ``--rule`` it also
scores the validation split, chooses a second threshold there by that rule (e.g. ``specificity=0.90``)
and prints the test figures at it. Asserts nothing; the last line says whether the stored evaluation
agrees.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from fracture_model import metrics  # noqa: E402
from fracture_model.evaluate import DEFAULT_DATA_DIR, score_images  # noqa: E402
from fracture_model.model_card import DEFAULT_MODEL_DIR, SPLIT_FILE  # noqa: E402
from fracture_model.predictor import Predictor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--rule", default=None, help="also choose a threshold on validation by this rule")
    args = parser.parse_args()

    predictor = Predictor.load(args.model_dir)
    split = pd.read_csv(args.model_dir / SPLIT_FILE)
    test = split[split["split"] == "test"].reset_index(drop=True)
    test["probability_fractured"] = score_images(predictor, args.data / "images", list(test["path"]))
    labels, probabilities = test["fractured"].to_numpy(), test["probability_fractured"].to_numpy()

    auc, low, high = metrics.bootstrap_roc_auc(labels, probabilities)
    free = test[test["hardware"] == 0]
    auc_free, low_free, high_free = metrics.bootstrap_roc_auc(free["fractured"], free["probability_fractured"])
    point = metrics.at_threshold(labels, probabilities, predictor.operating_threshold)
    print(f"test split: {len(test)} images, {int(labels.sum())} fractured, {int(test['hardware'].sum())} with implants")
    print(f"ROC AUC                      {auc:.3f}  (95% CI {low:.3f}-{high:.3f})")
    print(f"ROC AUC without implants     {auc_free:.3f}  (95% CI {low_free:.3f}-{high_free:.3f}); "
          f"difference {auc - auc_free:+.3f}")
    print(f"sensitivity at 90% specificity {metrics.sensitivity_at_specificity(labels, probabilities, 0.90):.3f}")
    print(f"expected calibration error   {metrics.expected_calibration_error(labels, probabilities):.3f}")
    print(f"at threshold {point.threshold:.3f}: sensitivity {point.sensitivity:.3f} "
          f"(95% CI {point.sensitivity_ci95[0]:.3f}-{point.sensitivity_ci95[1]:.3f}), specificity "
          f"{point.specificity:.3f} (95% CI {point.specificity_ci95[0]:.3f}-{point.specificity_ci95[1]:.3f})")
    if args.rule:
        validation = split[split["split"] == "validation"]
        validation_probabilities = score_images(predictor, args.data / "images", list(validation["path"]))
        threshold = metrics.choose_threshold(validation["fractured"].to_numpy(), validation_probabilities, args.rule)
        chosen = metrics.at_threshold(labels, probabilities, threshold)
        print(f"threshold {threshold:.3f} chosen on validation by {args.rule}: on test sensitivity "
              f"{chosen.sensitivity:.3f} (95% CI {chosen.sensitivity_ci95[0]:.3f}-{chosen.sensitivity_ci95[1]:.3f}), "
              f"specificity {chosen.specificity:.3f} (95% CI {chosen.specificity_ci95[0]:.3f}-"
              f"{chosen.specificity_ci95[1]:.3f})")
    stored_path = args.model_dir / "evaluation" / "metrics.json"
    if stored_path.exists():
        stored = json.loads(stored_path.read_text())["roc_auc"]
        print(f"stored evaluation ROC AUC {stored:.3f}: {'agrees' if abs(stored - auc) < 1e-4 else 'DIFFERS'}")


if __name__ == "__main__":
    main()
