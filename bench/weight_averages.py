"""Weight averages ("model soups") of the models shipped so far, judged on validation only.

    python bench/weight_averages.py --data ../shared/datasets/fracatlas

The three models this project has shipped share one architecture and one split: the first (ImageNet,
fine-tuned), the box-supervised one (ImageNet, fine-tuned again with box supervision) and the robust one
(fine-tuned from the box-supervised one). Averaging the weights of models fine-tuned from the same start
can rank better than each (Wortsman et al., 2022) at no cost in latency, and keeps one network for
Grad-CAM. Each average is scored, as training chooses an epoch, on the validation split and on its shifted
copy (``shifts.py``'s mix), with the share of boxed validation images whose class activation map peaks on
the fracture. The output layers hold each model's folded Platt calibration; ROC AUC does not depend on it.
The models are read from this repository's history (``git show``). Prints one line per average; about
2 minutes each on 2 cores. The test split is not read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from fracture_model import data, localisation, network, train  # noqa: E402
from fracture_model.model_card import MODEL_FILE, SPLIT_FILE  # noqa: E402

SHIPPED = {  # commit that shipped each model
    "first": "551ab00",
    "box-supervised": "1134d5e",
    "robust": "95199a6",
}
AVERAGES = {
    "first": {"first": 1.0},
    "box-supervised": {"box-supervised": 1.0},
    "robust (shipped)": {"robust": 1.0},
    "box-supervised 1/4 + robust 3/4": {"box-supervised": 0.25, "robust": 0.75},
    "box-supervised 1/2 + robust 1/2": {"box-supervised": 0.5, "robust": 0.5},
    "box-supervised 3/4 + robust 1/4": {"box-supervised": 0.75, "robust": 0.25},
    "first 1/2 + robust 1/2": {"first": 0.5, "robust": 0.5},
    "first 1/2 + box-supervised 1/2": {"first": 0.5, "box-supervised": 0.5},
    "all three, 1/3 each": {"first": 1 / 3, "box-supervised": 1 / 3, "robust": 1 / 3},
    "first 1/4 + box-supervised 1/4 + robust 1/2": {"first": 0.25, "box-supervised": 0.25, "robust": 0.5},
}
SEED = 20261127  # the shifted copy's seed in training


def _weights(commit: str, folder: Path) -> list[np.ndarray]:
    path = folder / f"{commit}.keras"
    path.write_bytes(subprocess.run(["git", "show", f"{commit}:assets/model/{MODEL_FILE}"], cwd=REPO,
                                    capture_output=True, check=True).stdout)
    return keras.saving.load_model(path, compile=False).get_weights()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder")
    parser.add_argument("--image-size", type=int, default=384)
    args = parser.parse_args(argv)

    split = pd.read_csv(REPO / "assets" / "model" / SPLIT_FILE)
    validation = split[split["split"] == "validation"]
    boxes = localisation.load_boxes(args.data / localisation.ANNOTATIONS_FILE)
    inputs = data.load_inputs(args.data, list(validation["path"]), args.image_size)
    labels = validation["fractured"].to_numpy()
    shifted = data.load_shifted_inputs(args.data, validation, boxes, args.image_size, "mix", SEED)
    found = data.input_boxes(args.data, validation, args.image_size, boxes)
    model = network.build_fracture_model(args.image_size, backbone_weights=None)
    evidence = network.with_evidence_map(model)
    cells = int(evidence.outputs[1].shape[1])
    keep, targets = data.boxed_cell_targets(found, args.image_size, cells)
    boxed = inputs[keep]
    with tempfile.TemporaryDirectory() as temp:
        weights = {name: _weights(commit, Path(temp)) for name, commit in SHIPPED.items()}

    def auc(images: np.ndarray, truth: np.ndarray) -> float:
        batches = data.RadiographBatches(images, truth, 32, training=False)
        return float(roc_auc_score(truth, model.predict(batches, verbose=0).ravel()))

    print(f"validation: {len(labels)} images ({labels.sum()} fractured); shifted copy: {len(shifted[1])}; "
          f"boxed for pointing: {len(boxed)}")
    for name, mix in AVERAGES.items():
        started = time.perf_counter()
        model.set_weights([sum(share * weights[source][i] for source, share in mix.items())
                           for i in range(len(weights["robust"]))])
        clean, moved = auc(inputs, labels), auc(*shifted)
        print(json.dumps({"average": name, "validation_roc_auc": round(clean, 4), "shifted_roc_auc": round(moved, 4),
                          "mean": round((clean + moved) / 2, 4),
                          "cell_pointing": round(train.cell_pointing_rate(evidence, boxed, targets, 32), 3),
                          "seconds": round(time.perf_counter() - started)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
