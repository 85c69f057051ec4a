"""Two or more models' answers averaged (mean logit), from the rows ``bench_robustness.py --json`` writes.

    python bench/logit_ensemble.py runs/a.csv runs/b.csv

Each CSV holds one row per image and shifted set (``set``, ``image_id``, ``fractured``,
``probability_fractured``) from the same split, seed and draw of normal images. Prints, per set, the
ROC AUC of the mean logit and the sensitivity and specificity at the threshold of Youden's J on the
unshifted set, then the mean over sets. A screen on validation rows: a model to ship would get its own
calibration and threshold on the whole validation split.
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

from fracture_model.metrics import choose_threshold  # noqa: E402
from fracture_model.predictor import logit  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", type=Path, nargs="+")
    args = parser.parse_args()
    rows = mean_logit([pd.read_csv(path) for path in args.rows])
    unshifted = rows[rows["set"] == "unshifted"]
    threshold = choose_threshold(unshifted["fractured"].to_numpy(), unshifted["score"].to_numpy(), "youden")
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
