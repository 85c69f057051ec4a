"""The shipped network's output layer fitted again with the pointing loss on frozen features, judged on validation.

    python bench/output_layer_pointing.py --cache runs/output_layer_pointing [--copies 2] [--weights 0,1,4,32]

The Grad-CAM of this head is the class activation map ``features(cell) . kernel + bias`` of the output layer
(``network.with_evidence_map``), so the one dense unit decides both the probability and where the heatmap
peaks. Does the pointing game on test (0.70, target 0.75) need new features, or would the output layer alone,
fitted again with more weight on the training's pointing loss (``train.pointing_loss``), point better? Here
the backbone stays; the maps of ``network.LAST_CONV_LAYER`` (12 x 12 x 1280) are computed once into ``--cache``
for the training split as it is and through ``--copies`` robust-augmented copies (``data.RadiographBatches``
with the fracture boxes moving with the image, the shipped recipe's levers scale, rotation and overlays), and
for the validation split as it is (about 20 minutes on 2 cores, 1 GB a copy). Then the kernel and bias are
fitted again from the shipped ones (Adam, class-weighted cross-entropy on the mean of the map plus ``weight``
times the pointing loss) on the training images alone, and on them with their augmented copies, and each fit
prints the validation ROC AUC of the whole image (no test-time view) and the share of validation's boxed
fractures whose map peaks on a target cell (the training's own evidence-map measure, 0.771 for the shipped
model). The test split is not read.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from fracture_model import data, localisation, network  # noqa: E402
from fracture_model.model_card import DEFAULT_MODEL_DIR, MODEL_FILE, SPLIT_FILE  # noqa: E402
from fracture_model.train import pointing_loss  # noqa: E402

LEVERS = ("scale", "rotation", "overlays")
BATCH = 128


def cache_maps(model: keras.Model, data_dir: Path, split: pd.DataFrame, boxes: dict, cache: Path,
               copies: int) -> None:
    """``cache/{split}_{copy}.npz``: the last conv layer's maps (float16), labels and cell targets."""
    maps_model = keras.Model(model.inputs, model.get_layer(network.LAST_CONV_LAYER).output)
    size = int(model.inputs[0].shape[1])
    cells = int(maps_model.output.shape[1])
    for name in ("validation", "train"):
        wanted = ["plain"] + ([f"copy{k + 1}" for k in range(copies)] if name == "train" else [])
        if all((cache / f"{name}_{tag}.npz").exists() for tag in wanted):
            continue
        frame = split[split["split"] == name]
        inputs = data.load_inputs(data_dir, list(frame["path"]), size)
        labels = frame["fractured"].to_numpy()
        found = data.input_boxes(data_dir, frame, size, boxes)
        for k, tag in enumerate(wanted):
            started = time.time()
            batches = data.RadiographBatches(inputs, labels, 16, training=tag != "plain", seed=100 + k, boxes=found,
                                             cells=cells, augmentation="robust", levers=LEVERS)
            maps, batch_labels, targets = [], [], []
            for i in range(len(batches)):
                images, (labels_i, targets_i), _ = batches[i]
                maps.append(maps_model.predict_on_batch(images).astype(np.float16))
                batch_labels.append(labels_i)
                targets.append(targets_i[..., 0].astype(np.uint8))
            np.savez(cache / f"{name}_{tag}.npz", maps=np.concatenate(maps), labels=np.concatenate(batch_labels),
                     targets=np.concatenate(targets))
            print(f"  {name} {tag}: {len(inputs)} images in {time.time() - started:.0f} s", flush=True)


def load(cache: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    stored = [np.load(cache / f"{name}.npz") for name in names]
    return tuple(np.concatenate([s[key] for s in stored]) for key in ("maps", "labels", "targets"))


def judge(maps: np.ndarray, labels: np.ndarray, targets: np.ndarray, kernel: np.ndarray,
          bias: np.ndarray) -> tuple[float, float, int]:
    """Validation ROC AUC of the map's mean, and the share of boxed images whose map peaks on a target cell."""
    evidence = np.einsum("nhwc,co->nhw", maps.astype(np.float32), kernel) + bias
    boxed = targets.reshape(len(targets), -1).max(axis=1) > 0
    peaks = evidence[boxed].reshape(int(boxed.sum()), -1).argmax(axis=1)
    on_target = targets[boxed].reshape(int(boxed.sum()), -1)[np.arange(int(boxed.sum())), peaks]
    return float(roc_auc_score(labels, evidence.mean(axis=(1, 2)))), float(on_target.mean()), int(boxed.sum())


def shown(judged: tuple[float, float, int]) -> str:
    auc, pointing, boxed = judged
    return f"{auc:.4f} / {pointing:.3f} (of {boxed})"


def refit(maps: np.ndarray, labels: np.ndarray, targets: np.ndarray, kernel: np.ndarray, bias: np.ndarray,
          weight: float, rate: float, epochs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The output layer fitted again from (kernel, bias): class-weighted cross-entropy + weight * pointing loss."""
    positives = labels.mean()
    class_weights = np.where(labels > 0.5, (1 - positives) / positives, 1.0).astype(np.float32)
    w, b = tf.Variable(kernel), tf.Variable(bias)
    optimiser = keras.optimizers.Adam(rate)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(maps))
        for start in range(0, len(maps), BATCH):
            rows = np.sort(order[start:start + BATCH])
            batch = tf.constant(maps[rows].astype(np.float32))
            with tf.GradientTape() as tape:
                evidence = tf.einsum("nhwc,co->nhwo", batch, w) + b
                logits = tf.reduce_mean(evidence, axis=(1, 2, 3))
                loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels[rows], logits)
                                      * class_weights[rows])
                loss += weight * tf.reduce_mean(pointing_loss(targets[rows][..., None].astype(np.float32), evidence))
            optimiser.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b], strict=True))
    return w.numpy(), b.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "fracatlas")
    parser.add_argument("--cache", type=Path, required=True, help="folder for the maps (reused when there)")
    parser.add_argument("--copies", type=int, default=2, help="robust-augmented copies of each training image")
    parser.add_argument("--weights", default="0,1,4,32", help="pointing-loss weights to fit with, comma-separated")
    parser.add_argument("--rate", type=float, default=1e-2, help="Adam's learning rate")
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()

    model = keras.saving.load_model(args.model_dir / MODEL_FILE, compile=False)
    split = pd.read_csv(args.model_dir / SPLIT_FILE)
    boxes = localisation.load_boxes(args.data / localisation.ANNOTATIONS_FILE)
    args.cache.mkdir(parents=True, exist_ok=True)
    cache_maps(model, args.data, split, boxes, args.cache, args.copies)
    validation = load(args.cache, ["validation_plain"])
    kernel, bias = (np.asarray(w, np.float32) for w in model.get_layer(network.OUTPUT_LAYER).get_weights())
    print("validation ROC AUC of the whole image / evidence map on a target cell (boxed fractures)")
    print(f"shipped output layer: {shown(judge(*validation, kernel, bias))}", flush=True)
    training_sets = {"training images": ["train_plain"],
                     f"+ {args.copies} augmented copies": ["train_plain"] + [f"train_copy{k + 1}"
                                                                           for k in range(args.copies)]}
    for described, names in training_sets.items():
        train = load(args.cache, names)
        for weight in (float(text) for text in args.weights.split(",")):
            fitted = refit(*train, kernel, bias, weight, args.rate, args.epochs)
            print(f"refit on {described} ({len(train[0])}), pointing weight {weight:g}: "
                  f"{shown(judge(*validation, *fitted))}", flush=True)


if __name__ == "__main__":
    main()
