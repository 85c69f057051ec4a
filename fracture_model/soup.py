"""Average the weights of runs trained on the same split into one model folder ("model soup").

    python -m fracture_model.soup --data ../shared/datasets/fracatlas --out runs/soup RUN_DIR RUN_DIR ...

Runs fine-tuned from the same start (another training seed, schedule or rate: ``train --init-from``
with ``--training-seed``) can be averaged weight by weight into one network that ranks better than each
(Wortsman et al., 2022, "Model soups"), at the cost of one network: the same latency, file size and
Grad-CAM. Batch normalisation is frozen during fine-tuning, so its statistics are the start's in every
run and the average keeps them. The runs must share the split and the data fingerprint (else the
average would have seen validation or test images); the command refuses otherwise.

Then, as after training and on the validation split alone: Platt calibration folded into the output
layer, the operating threshold, the out-of-distribution check (``fracture_model.ood``). The card
lists every ingredient with its own training record. Next, as after training under JAX:
``python -m fracture_model.lite --model-dir OUT`` (the LiteRT copy), optionally the test-time views
(``python -m fracture_model.views``), then ``python -m fracture_model.evaluate --model-dir OUT``.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from fracture_model import data, localisation, network, ood
from fracture_model.model_card import MODEL_FILE, SPLIT_FILE, file_sha256, read_card, write_card
from fracture_model.train import _git_commit, cell_pointing_rate, fit_operating_point

HISTORY_FILE = "history.csv"


def average_weights(weight_lists: list[list[np.ndarray]]) -> list[np.ndarray]:
    """The uniform mean of each weight across the runs (all of one architecture)."""
    shapes = {tuple(w.shape for w in weights) for weights in weight_lists}
    if len(shapes) != 1:
        raise ValueError("the runs do not share one architecture (their weights differ in shape)")
    return [np.mean([weights[i] for weights in weight_lists], axis=0) for i in range(len(weight_lists[0]))]


def check_ingredients(run_dirs: list[Path]) -> list[dict]:
    """The runs' cards; refuses runs that were not trained on one split of one data copy at one input size."""
    if len(run_dirs) < 2:
        raise ValueError("a weight average needs at least two runs")
    cards = [read_card(run) for run in run_dirs]
    splits = [(run / SPLIT_FILE).read_bytes() for run in run_dirs]
    for run, card, split in zip(run_dirs[1:], cards[1:], splits[1:], strict=True):
        if split != splits[0]:
            raise ValueError(f"{run} was trained on another split than {run_dirs[0]}: its average would have seen "
                             "validation or test images")
        if card["data"]["fingerprint_sha256"] != cards[0]["data"]["fingerprint_sha256"]:
            raise ValueError(f"{run} was trained on another copy of the data than {run_dirs[0]}")
        if card["input_size"] != cards[0]["input_size"]:
            raise ValueError(f"{run} has input size {card['input_size']}, {run_dirs[0]} {cards[0]['input_size']}")
    return cards


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fracture_model.soup", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="training output folders (fracture_cnn.keras, card, split)")
    parser.add_argument("--data", type=Path, required=True, help="FracAtlas folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the averaged model, its card and split")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    try:
        cards = check_ingredients(args.runs)
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    models = [keras.saving.load_model(run / card.get("model_file", MODEL_FILE), compile=False)
              for run, card in zip(args.runs, cards, strict=True)]
    model = models[0]
    model.set_weights(average_weights([m.get_weights() for m in models]))
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.runs[0] / SPLIT_FILE, args.out / SPLIT_FILE)
    histories = [pd.read_csv(run / HISTORY_FILE).assign(run=str(run))
                 for run in args.runs if (run / HISTORY_FILE).exists()]
    pd.concat(histories).to_csv(args.out / HISTORY_FILE, index=False)

    card, size = copy.deepcopy(cards[0]), int(cards[0]["input_size"])
    split = pd.read_csv(args.out / SPLIT_FILE)
    validation = split[split["split"] == "validation"]
    inputs = data.load_inputs(args.data, list(validation["path"]), size)
    labels = validation["fractured"].to_numpy()
    batches = data.RadiographBatches(inputs, labels, args.batch_size, training=False)
    rule = card.get("operating_threshold_rule", "youden")
    calibrated, operating_point = fit_operating_point(model, batches, labels, rule)

    boxes = localisation.load_boxes(args.data / localisation.ANNOTATIONS_FILE)
    seed = card.get("training", {}).get("seed", 20261127)
    shifted_inputs, shifted_labels = data.load_shifted_inputs(args.data, validation, boxes, size, "mix", seed)
    shifted_auc = float(roc_auc_score(shifted_labels, model.predict(
        data.RadiographBatches(shifted_inputs, shifted_labels, args.batch_size, training=False), verbose=0).ravel()))
    if card.get("box_supervision"):
        evidence = network.with_evidence_map(model)
        cells = int(evidence.outputs[1].shape[1])
        keep, targets = data.boxed_cell_targets(data.input_boxes(args.data, validation, size, boxes), size, cells)
        card["box_supervision"]["validation_cell_pointing"] = (
            cell_pointing_rate(evidence, inputs[keep], targets, args.batch_size) if keep.any() else None)

    keras.Model(model.inputs, model.outputs, name=model.name).save(args.out / MODEL_FILE)
    command = "python -m fracture_model.soup " + " ".join(sys.argv[1:] if argv is None else argv)
    card.update({
        "model_file": MODEL_FILE,
        "initialisation": f"uniform weight average of {len(args.runs)} runs (weight_average); the first run's: "
                          f"{cards[0].get('initialisation')}",
        "weight_average": {
            "method": "uniform mean of every weight (model soup, Wortsman et al. 2022); batch-norm statistics are "
                      "frozen in fine-tuning, so they are the runs' common start",
            "command": command,
            "ingredients": [{"folder": str(run), "model_sha256": file_sha256(run / c.get("model_file", MODEL_FILE)),
                             "training": c.get("training"), "validation": c.get("validation")}
                            for run, c in zip(args.runs, cards, strict=True)],
        },
        **operating_point,
        "fast_forward": None,
        "validation": {"roc_auc": float(roc_auc_score(labels, calibrated)), "images": int(len(labels)),
                       "fractured": int(labels.sum()), "shifted_mix_roc_auc": shifted_auc,
                       "epoch_chosen_by": "each run's own (weight_average.ingredients)"},
        "out_of_distribution": None,
    })
    card["training"] = {**card.get("training", {}), "code_version": _git_commit(),
                        "note": "the first run's training record (weight_average.ingredients holds every run's)"}
    card.pop("test_time_views", None)  # fitted again for this network by python -m fracture_model.views
    for evaluated in ("test", "evaluation_command"):  # an evaluated ingredient's test figures are not the average's
        card.pop(evaluated, None)
    write_card(args.out, card)
    ood.main(["--model-dir", str(args.out), "--data", str(args.data), "--seed", str(seed)])
    print(f"wrote {args.out / MODEL_FILE}: validation ROC AUC {card['validation']['roc_auc']:.4f}, shifted copy "
          f"{shifted_auc:.4f}, threshold {card['operating_threshold']:.4f} ({rule}); now python -m fracture_model.lite "
          f"--model-dir {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
