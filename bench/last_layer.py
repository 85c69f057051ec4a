"""The shipped network's output layer fitted again on robust-augmented training images, judged on validation.

    python bench/last_layer.py --data ../shared/datasets/fracatlas --cache runs/last_layer [--copies 4]

Last-layer retraining (Kirichenko et al., 2023, "Last layer re-training is sufficient for robustness to
spurious correlations"): the backbone stays, and the one dense unit on the 1280 pooled features is fitted
again as a logistic regression (class-balanced, L2 strength 1/C on standardised features) on the training
split's features: the images as they are plus ``--copies`` copies through the robust augmentation
(``data.augment_robust``, close-ups centred on the fracture boxes, as in training). Each fit is scored
like the shipped model with its test-time view (the mean of the whole image's and the 0.7 view's logit)
on the robustness benchmark's sets built from validation (``bench_robustness.py --split validation
--normal-images 250``'s images): one line per fit with the mean and lowest ROC AUC over the 9 sets and
each set's. Features are computed once into ``--cache`` (about 16 minutes on 2 cores for 4 copies);
the test split is not read. The heatmaps would change with the layer: not measured here.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fracture_model import data, localisation, robustness  # noqa: E402
from fracture_model.model_card import DEFAULT_MODEL_DIR, SPLIT_FILE  # noqa: E402
from fracture_model.network import OUTPUT_LAYER  # noqa: E402
from fracture_model.predictor import Predictor  # noqa: E402
from fracture_model.preprocess import zoomed_out  # noqa: E402

VIEW = 0.7
STRENGTHS = (0.001, 0.003, 0.01, 0.03, 0.1)


def validation_features(predictor: Predictor, data_dir: Path, split: pd.DataFrame, boxes: dict) -> dict:
    """Per benchmark set (bench_robustness' validation draw, seed 0): features of the whole image and the view."""
    frame = robustness.benchmark_frame(split, "validation", normal_images=250, seed=0)
    found = {}
    for shifted in robustness.benchmark_sets():
        whole, view, labels = [], [], []
        for index, pixels, _ in robustness.set_images(frame, data_dir / "images", boxes, shifted, 0):
            network_input = predictor.network_input(pixels)
            whole.append(np.asarray(predictor._forward(network_input)[1]))
            view.append(np.asarray(predictor._forward(zoomed_out(network_input, VIEW))[1]))
            labels.append(int(frame["fractured"].iloc[index]))
        key = shifted.name.replace(" ", "_")
        found[f"val_{key}_whole"], found[f"val_{key}_view"] = np.concatenate(whole), np.concatenate(view)
        found[f"val_{key}_labels"] = np.array(labels)
        print(f"  validation {shifted.name}: {len(labels)} images", flush=True)
    return found


def training_features(predictor: Predictor, data_dir: Path, split: pd.DataFrame, boxes: dict, copies: int) -> dict:
    train = split[split["split"] == "train"].reset_index(drop=True)
    inputs = data.load_inputs(data_dir, list(train["path"]), predictor.image_size)
    labels = train["fractured"].to_numpy()
    features, targets, copy = [], [], []
    for start in range(0, len(inputs), 64):
        features.append(np.asarray(predictor._forward(inputs[start:start + 64].astype(np.float32) / 255.0)[1]))
        targets.append(labels[start:start + 64])
        copy.append(np.zeros(len(targets[-1]), int))
    train_boxes = data.input_boxes(data_dir, train, predictor.image_size, boxes)
    for k in range(copies):
        batches = data.RadiographBatches(inputs, labels, 16, training=True, seed=1000 + k, boxes=train_boxes,
                                         cells=predictor.image_size // 32, augmentation="robust")
        for i in range(len(batches)):
            images, (batch_labels, _), _ = batches[i]
            features.append(np.asarray(predictor._forward(images)[1]))
            targets.append(batch_labels.astype(int))
            copy.append(np.full(len(batch_labels), k + 1))
        print(f"  training copy {k + 1} of {copies}", flush=True)
    return {"features": np.concatenate(features), "labels": np.concatenate(targets), "copy": np.concatenate(copy)}


def cached(path: Path, compute) -> dict:
    if not path.exists():
        np.savez(path, **compute())
    with np.load(path) as stored:
        return dict(stored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "fracatlas")
    parser.add_argument("--cache", type=Path, required=True, help="folder for the features (reused when there)")
    parser.add_argument("--copies", type=int, default=4, help="augmented copies of each training image")
    args = parser.parse_args()

    started = time.time()
    predictor = Predictor.load(args.model_dir)
    split = pd.read_csv(args.model_dir / SPLIT_FILE)
    boxes = localisation.load_boxes(args.data / localisation.ANNOTATIONS_FILE)
    args.cache.mkdir(parents=True, exist_ok=True)
    validation = cached(args.cache / "val_feats.npz", lambda: validation_features(predictor, args.data, split, boxes))
    train = cached(args.cache / "train_feats.npz",
                   lambda: training_features(predictor, args.data, split, boxes, args.copies))
    print(f"features ready in {time.time() - started:.0f} s", flush=True)
    sets = [name[len("val_"):-len("_whole")] for name in validation if name.endswith("_whole")]

    def report(name: str, kernel: np.ndarray, bias: float) -> None:
        aucs = [roc_auc_score(validation[f"val_{s}_labels"],
                              (validation[f"val_{s}_whole"] @ kernel + validation[f"val_{s}_view"] @ kernel) / 2 + bias)
                for s in sets]
        print(f"{name:28s} mean {np.mean(aucs):.4f} lowest {min(aucs):.3f} | " + " ".join(f"{a:.3f}" for a in aucs))

    print(f"{'':28s} sets: {', '.join(sets)}")
    kernel, bias = predictor.model.get_layer(OUTPUT_LAYER).get_weights()
    report("shipped output layer", kernel.reshape(-1), float(bias.reshape(-1)[0]))
    keep = train["copy"] <= args.copies
    scaler = StandardScaler().fit(train["features"][keep])
    standardised = scaler.transform(train["features"][keep])
    for strength in STRENGTHS:
        fitted = LogisticRegression(C=strength, class_weight="balanced", max_iter=3000)
        fitted.fit(standardised, train["labels"][keep])
        kernel = fitted.coef_.reshape(-1) / scaler.scale_
        report(f"{args.copies} copies, C={strength:g}", kernel,
               float(fitted.intercept_[0] - np.sum(fitted.coef_.reshape(-1) * scaler.mean_ / scaler.scale_)))


if __name__ == "__main__":
    main()
