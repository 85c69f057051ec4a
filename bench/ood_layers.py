"""Would an earlier layer's features flag what the pooled features miss? Validation and its shifted copy only.

    python bench/ood_layers.py [--data ../shared/datasets/fracatlas] [--model-dir assets/model]

The out-of-distribution check (``fracture_model.ood``) measures the Mahalanobis distance of the pooled
features, and the shipped model's check does not flag featureless images (``bench/ood_examples.py``). This
fits the same check (Ledoit-Wolf covariance on training images, a fixed draw of 1200 of them; threshold at
the 0.95 quantile of the validation split's distances) on features of earlier blocks, each summarised by the
mean and standard deviation of every channel over the image, and prints for each layer: the threshold, how
often it flags the shifted validation copy (``shifts.py``'s mix: radiographs that look like other sources,
which the network was trained to read), that copy's 99th percentile, and the distances of the featureless
images and the samples. About 3 minutes on 2 cores. The test split is not read.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from ood_examples import featureless  # noqa: E402

from fracture_model import data, localisation, ood  # noqa: E402
from fracture_model.imaging import InputError, read_radiograph  # noqa: E402
from fracture_model.model_card import SPLIT_FILE, read_card  # noqa: E402
from fracture_model.preprocess import preprocess  # noqa: E402

LAYERS = ("block4_add", "block6_add", "block10_add", ood.POOLED_FEATURES_LAYER)
TRAINING_IMAGES = 1200
SEED = 20261127  # the shifted copy's seed in training


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "fracatlas")
    parser.add_argument("--model-dir", type=Path, default=REPO / "assets" / "model")
    args = parser.parse_args()

    card = read_card(args.model_dir)
    size = int(card["input_size"])
    model = keras.saving.load_model(args.model_dir / card["model_file"], compile=False)
    layers = keras.Model(model.inputs, [model.get_layer(name).output for name in LAYERS])

    def features(inputs: np.ndarray) -> dict[str, np.ndarray]:
        batch = inputs.astype(np.float32) / 255.0 if inputs.dtype == np.uint8 else inputs.astype(np.float32)
        outputs = layers.predict(batch, batch_size=16, verbose=0)
        return {name: output if output.ndim == 2 else
                np.concatenate([output.mean(axis=(1, 2)), output.std(axis=(1, 2))], axis=-1)
                for name, output in zip(LAYERS, outputs, strict=True)}

    split = pd.read_csv(args.model_dir / SPLIT_FILE)
    training = split[split["split"] == "train"].sample(TRAINING_IMAGES, random_state=0)
    validation = split[split["split"] == "validation"]
    boxes = localisation.load_boxes(args.data / localisation.ANNOTATIONS_FILE)
    shifted, _ = data.load_shifted_inputs(args.data, validation, boxes, size, "mix", SEED)
    extra = {name: preprocess(pixels.astype(np.float32) / 255.0, size) for name, pixels in featureless().items()}
    for path in sorted((REPO / "assets" / "samples").iterdir()):
        try:
            extra[path.stem] = preprocess(read_radiograph(path.read_bytes()).pixels, size)
        except InputError:
            continue
    found = {"training": features(data.load_inputs(args.data, list(training["path"]), size)),
             "validation": features(data.load_inputs(args.data, list(validation["path"]), size)),
             "shifted": features(shifted), "extra": features(np.stack(list(extra.values())))}
    print(f"model {card['name']}; {TRAINING_IMAGES} training images, {len(validation)} validation images and its "
          "shifted copy")
    for name in LAYERS:
        check = ood.fit(found["training"][name], found["validation"][name])
        shifted_distances = check.distances(found["shifted"][name])
        print(f"{name} ({found['training'][name].shape[1]} values): threshold {check.threshold:.1f}; flags "
              f"{np.mean(shifted_distances > check.threshold):.0%} of the shifted copy (its 99th percentile "
              f"{np.quantile(shifted_distances, 0.99):.1f})")
        print("  " + ", ".join(f"{image} {distance:.1f}" for image, distance
                               in zip(extra, check.distances(found["extra"][name]), strict=True)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
