"""Would another threshold rule hold better off FracAtlas? Chosen on validation only; reported on test.

    python bench/threshold_rules.py [--model-dir assets/model] [--test-rows runs/robustness_test.csv]

Scores the validation split and shifted copies of it (``fracture_model.data.load_shifted_inputs``: the mix
that training watches, 224 px + JPEG, rotation, markers, 1.5x and 2x close-ups) with the model, then
prints, for each threshold rule, the threshold it picks and the sensitivity and specificity it gives on
each validation set. ``--test-rows`` (the per-image CSV that ``bench/bench_robustness.py --json`` writes
beside its JSON) adds the same figures on the test benchmark, for reporting only. Asserts nothing.
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
import pandas as pd  # noqa: E402

from fracture_model import data, localisation  # noqa: E402
from fracture_model.model_card import DEFAULT_MODEL_DIR, SPLIT_FILE  # noqa: E402
from fracture_model.predictor import Predictor  # noqa: E402

DEFAULT_DATA_DIR = REPO.parent / "shared" / "datasets" / "fracatlas"
SHIFTED = [("mix", None), ("downscale_jpeg", None), ("rotation", None), ("markers", None), ("zoom", 2.0),
           ("zoom", 1.5)]
SEED = 20261127  # the training seed: the same shifted validation copy the epoch was chosen on


def rates(frame: pd.DataFrame, threshold: float) -> tuple[float, float]:
    """(sensitivity, specificity) of calling ``probability_fractured >= threshold`` fractured."""
    called = frame["probability_fractured"].to_numpy() >= threshold
    fractured = frame["fractured"].to_numpy() == 1
    return float(called[fractured].mean()), float((~called[~fractured]).mean())


def best(frame_sets: list[pd.DataFrame], candidates: np.ndarray) -> float:
    """The candidate threshold with the highest mean Youden's J over ``frame_sets``."""
    scores = [np.mean([sum(rates(frame, t)) - 1 for frame in frame_sets]) for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--test-rows", type=Path, default=None)
    args = parser.parse_args()
    predictor = Predictor.load(args.model_dir)
    split = pd.read_csv(args.model_dir / SPLIT_FILE)
    validation = split[split["split"] == "validation"].reset_index(drop=True)
    boxes = localisation.load_boxes(args.data / localisation.ANNOTATIONS_FILE)
    sets = {}

    def score(name: str, inputs: np.ndarray, labels: np.ndarray) -> None:
        probabilities = np.concatenate([predictor.probabilities(inputs[start:start + 16].astype(np.float32) / 255.0)
                                        for start in range(0, len(inputs), 16)])
        sets[name] = pd.DataFrame({"fractured": labels, "probability_fractured": probabilities})

    score("unshifted", data.load_inputs(args.data, list(validation["path"]), predictor.image_size),
          validation["fractured"].to_numpy())
    for kind, zoom in SHIFTED:
        inputs, labels = data.load_shifted_inputs(args.data, validation, boxes, predictor.image_size, kind, SEED, zoom)
        score(kind if zoom is None else f"zoom{zoom:g}", inputs, labels)
    candidates = np.unique(np.concatenate([frame["probability_fractured"].to_numpy() for frame in sets.values()]))
    pooled = pd.concat([sets["unshifted"], sets["mix"]])
    rules = {
        "Youden on validation (the card's rule)": best([sets["unshifted"]], candidates),
        "Youden on validation and its shifted copy pooled": best([pooled], candidates),
        "mean of Youden on validation and on its shifted copy": best([sets["unshifted"], sets["mix"]], candidates),
        "Youden on every validation set pooled": best([pd.concat(list(sets.values()))], candidates),
    }
    test = pd.read_csv(args.test_rows) if args.test_rows else None
    print(f"model card threshold {predictor.operating_threshold:.3f}")
    for rule, threshold in rules.items():
        print(f"\n{rule}: threshold {threshold:.3f}")
        for name, frame in sets.items():
            print("  validation {:<22} sensitivity {:.2f}  specificity {:.2f}".format(name, *rates(frame, threshold)))
        if test is not None:
            for name, frame in test.groupby("set", sort=False):
                sensitivity, specificity = rates(frame, threshold)
                print(f"  test       {name:<22} sensitivity {sensitivity:.2f}  specificity {specificity:.2f}")


if __name__ == "__main__":
    main()
