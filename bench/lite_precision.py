"""Does a smaller LiteRT copy of the shipped network serve faster on this CPU?

    python bench/lite_precision.py [--model-dir assets/model] [--repeats 30]

Converts the shipped Keras model (with its pooled features, as ``fracture_model.lite`` does) two smaller
ways into a temporary folder: float16 weights, and dynamic-range int8 weights (``tf.lite.Optimize.DEFAULT``).
Times one forward pass of one network input through each and through the float32 copy that serves (the
model folder's own, named by the card), warm, through ``LiteForward`` as the app scores; prints the file
size, median and 95th percentile, and the largest difference in P(fractured) from the served copy on the
sample radiographs. Asserts nothing; writes nothing to the
model folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench.timing import report, timed  # noqa: E402
from fracture_model.imaging import read_radiograph  # noqa: E402
from fracture_model.lite import LiteForward  # noqa: E402
from fracture_model.model_card import DEFAULT_MODEL_DIR, LITE_FILE  # noqa: E402
from fracture_model.predictor import Predictor, with_pooled_features  # noqa: E402


def convert_smaller(model, path: Path, precision: str) -> None:
    """``fracture_model.lite.export`` with the converter's weight compression: "float16" or "int8 weights"."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # alone: int8 weights, float activations
    if precision == "float16":
        converter.target_spec.supported_types = [tf.float16]
    path.write_bytes(converter.convert())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    predictor = Predictor.load(args.model_dir)
    network = with_pooled_features(predictor.model)
    samples = sorted((REPO / "assets/samples").glob("*.jpg"))
    inputs = np.concatenate([predictor.network_input(read_radiograph(path.read_bytes()).pixels) for path in samples])
    views = predictor.test_time_views or {}
    passes = 1 + len(views.get("zoom_factors", [])) + len(views.get("flips", []))
    print(f"input {predictor.image_size} px; {os.cpu_count()} cores; one forward pass (the served model makes "
          f"{passes} per radiograph)")
    served = Path(args.model_dir) / (predictor.card.get("fast_forward") or {}).get("file", LITE_FILE)
    with tempfile.TemporaryDirectory() as folder:
        reference = None
        for precision in ("float32", "float16", "int8 weights"):
            path = served if precision == "float32" else Path(folder) / f"{precision.replace(' ', '_')}.tflite"
            if precision != "float32":
                convert_smaller(network, path, precision)
            forward = LiteForward(path)
            probabilities = forward(inputs)[0].ravel()
            reference = probabilities if reference is None else reference
            megabytes = path.stat().st_size / 2**20
            report(f"{precision} ({megabytes:.1f} MB)", timed(lambda f=forward: f(inputs[:1]), args.repeats))
            print(f"  largest change in P(fractured) on {len(samples)} samples: "
                  f"{np.abs(probabilities - reference).max():.4f}")


if __name__ == "__main__":
    main()
