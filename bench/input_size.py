"""The shipped network at another input size, same weights: a model folder to judge on validation.

    python bench/input_size.py --size 448 --out runs/size448
    python -m fracture_model.views --model-dir runs/size448 --data ../shared/datasets/fracatlas --zoom 0.7
    python bench/bench_robustness.py --model-dir runs/size448 --split validation --normal-images 250

Training on random crops shows objects larger than whole images do at test time; scoring at a larger
input size can correct that without training (Touvron et al., 2019, "Fixing the train-test resolution
discrepancy"). The network is convolutional up to its global average pooling, so the same weights serve
any input size. This writes ``--out`` with the network rebuilt at ``--size``, the shipped card with that
``input_size`` and without its LiteRT entry (the folder scores through TensorFlow), ``split.csv`` and the
out-of-distribution statistics (fitted at the shipped size: read its flags with care). ``views`` then
fits the calibration and threshold again on validation; the test split is not read.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import keras  # noqa: E402

from fracture_model.model_card import DEFAULT_MODEL_DIR, MODEL_FILE, SPLIT_FILE, read_card, write_card  # noqa: E402
from fracture_model.network import build_fracture_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--size", type=int, required=True, help="input side in pixels")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    card = read_card(args.model_dir)
    shipped = keras.saving.load_model(args.model_dir / card.get("model_file", MODEL_FILE), compile=False)
    resized = build_fracture_model(args.size)
    resized.set_weights(shipped.get_weights())
    args.out.mkdir(parents=True, exist_ok=True)
    resized.save(args.out / MODEL_FILE)
    card.update(input_size=args.size, model_file=MODEL_FILE)
    card.pop("fast_forward", None)
    write_card(args.out, card)
    shutil.copy(args.model_dir / SPLIT_FILE, args.out / SPLIT_FILE)
    if ood := (card.get("out_of_distribution") or {}).get("file"):
        shutil.copy(args.model_dir / ood, args.out / ood)
    print(f"wrote {args.out}: the network at {args.size} px; now run the views command and the benchmark")


if __name__ == "__main__":
    main()
