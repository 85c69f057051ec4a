"""Latency and memory of the shipped model on this machine's CPU.

    python bench/bench_inference.py [--repeats 50] [--image assets/samples/leg_fractured_IMG0001191.jpg]

Loads the shipped model once, then times, warm, one prediction (decode + preprocess + forward) and one
Grad-CAM (and the other heatmap methods) on a real sample radiograph. The prediction is timed through the
forward pass that serves (the LiteRT copy, ``fracture_model.lite``) and, for comparison, through
TensorFlow's compiled graph of the same model. Prints median and 95th
percentile in milliseconds and the process's peak resident memory. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from bench.timing import report, timed  # noqa: E402
from fracture_model.explain import METHODS, Explainer  # noqa: E402
from fracture_model.imaging import read_radiograph  # noqa: E402
from fracture_model.model_card import DEFAULT_MODEL_DIR  # noqa: E402
from fracture_model.predictor import Predictor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--image", type=Path, default=REPO / "assets/samples/leg_fractured_IMG0001191.jpg")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--explain-repeats", type=int, default=20)
    args = parser.parse_args()

    start = time.perf_counter()
    predictor = Predictor.load(args.model_dir)
    explainer = Explainer(predictor.model, predictor.card["positive_class"], predictor.card["last_conv_layer"])
    print(f"model load + explainer setup: {time.perf_counter() - start:.1f} s")
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"input {predictor.image_size} px; image {args.image.name}")
    data = args.image.read_bytes()

    def predict() -> float:
        return predictor.predict(read_radiograph(data).pixels).probability_fractured

    report("prediction (decode+forward), LiteRT", timed(predict, args.repeats))
    graph = Predictor(predictor.model, predictor.card, distance_model=predictor.distance_model)
    report("prediction (decode+forward), TensorFlow graph",
           timed(lambda: graph.predict(read_radiograph(data).pixels).probability_fractured, args.repeats))
    pixels = read_radiograph(data).pixels
    network_input = predictor.network_input(pixels)
    for method in METHODS:
        report(method, timed(lambda m=method: explainer.explain(network_input, pixels.shape, m), args.explain_repeats))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
