"""Two or more models' answers averaged (mean logit), from the rows ``bench_robustness.py --json`` writes.

    python bench/logit_ensemble.py runs/a.csv runs/b.csv [--model-dirs A B --data ../shared/datasets/fracatlas]

Each CSV holds one row per image and shifted set (``set``, ``image_id``, ``fractured``,
``probability_fractured``) from the same split, seed and draw of normal images. Prints, per set, the
ROC AUC of the mean logit and the sensitivity and specificity at the threshold of Youden's J on the
unshifted set, then the mean over sets. With ``--model-dirs`` (the CSVs' model folders, in the same order)
the threshold is instead Youden's J of the mean logit over the whole validation split, each model scoring
it with its own test-time views: the rule a shipped model's threshold follows. A screen on validation
rows; the test split is not read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from fracture_model import data  # noqa: E402
from fracture_model.metrics import choose_threshold  # noqa: E402
from fracture_model.model_card import SPLIT_FILE  # noqa: E402
from fracture_model.predictor import logit  # noqa: E402

DEFAULT_DATA_DIR = REPO.parent / "shared" / "datasets" / "fracatlas"

KEY = ["set", "image_id"]


def mean_logit(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The first frame's rows with ``score``: the mean over frames of each row's logit."""
    rows = frames[0][[*KEY, "fractured"]].copy()
    scores = []
    for frame in frames:
        merged = rows.merge(frame[[*KEY, "probability_fractured"]], on=KEY, how="left", validate="one_to_one")
        if merged["probability_fractured"].isna().any():
            raise SystemExit("the CSVs do not hold the same images and sets")
        scores.append(logit(merged["probability_fractured"].to_numpy()))
    return rows.assign(score=np.mean(scores, axis=0))


def validation_threshold(model_dirs: list[Path], data_dir: Path) -> float:
    """Youden's J of the models' mean logit over the whole validation split (each with its own views)."""
    from fracture_model.predictor import Predictor

    logits, labels = [], None
    for model_dir in model_dirs:
        predictor = Predictor.load(model_dir)
        split = pd.read_csv(model_dir / SPLIT_FILE)
        validation = split[split["split"] == "validation"]
        found = validation["fractured"].to_numpy()
        if labels is not None and not np.array_equal(labels, found):
            raise SystemExit("the model folders do not share one validation split")
        labels = found
        inputs = data.load_inputs(data_dir, list(validation["path"]), predictor.image_size).astype(np.float32) / 255
        probabilities = predictor.probabilities(inputs)
        logits.append(logit(probabilities))
        print(f"{model_dir}: whole validation ROC AUC {roc_auc_score(labels, probabilities):.4f}", flush=True)
    score = np.mean(logits, axis=0)
    print(f"mean logit: whole validation ROC AUC {roc_auc_score(labels, score):.4f}")
    return choose_threshold(labels, score, "youden")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", type=Path, nargs="+")
    parser.add_argument("--model-dirs", type=Path, nargs="+", default=None,
                        help="the CSVs' model folders, in order: threshold fitted on the whole validation split")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args()
    if args.model_dirs is not None and len(args.model_dirs) != len(args.rows):
        parser.error("give one model folder per CSV")
    rows = mean_logit([pd.read_csv(path) for path in args.rows])
    if args.model_dirs is None:
        unshifted = rows[rows["set"] == "unshifted"]
        threshold = choose_threshold(unshifted["fractured"].to_numpy(), unshifted["score"].to_numpy(), "youden")
    else:
        threshold = validation_threshold(args.model_dirs, args.data)
    print(f"threshold (mean logit) {threshold:.3f}, probability {1 / (1 + np.exp(-threshold)):.3f}")
    aucs, specificities = [], []
    for name, found in rows.groupby("set", sort=False):
        labels, scores = found["fractured"].to_numpy(), found["score"].to_numpy()
        aucs.append(roc_auc_score(labels, scores))
        specificities.append(float((scores[labels == 0] < threshold).mean()))
        print(f"{name:22s} ROC AUC {aucs[-1]:.3f}  sensitivity {(scores[labels == 1] >= threshold).mean():.3f}  "
              f"specificity {specificities[-1]:.3f}")
    print(f"mean over {len(aucs)} sets: ROC AUC {np.mean(aucs):.4f} (lowest {min(aucs):.3f}), "
          f"specificity {np.mean(specificities):.3f} (lowest {min(specificities):.3f})")


if __name__ == "__main__":
    main()
