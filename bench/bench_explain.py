"""Latency of each heatmap method with the shipped model on this machine's CPU.

    python bench/bench_explain.py [--repeats 20] [--image assets/samples/leg_fractured_IMG0001191.jpg]

Loads the shipped model and builds the explainer once, then times, warm, one full explanation per method
(``Explainer.explain``: the map over the network input and its cut back to the original radiograph) on a
real sample radiograph, as the reading page does after the prediction. Also times the per-case work of the
evaluation (localisation scores against a box and the case image). Prints median and 95th percentile in
milliseconds. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import keras  # noqa: E402

from bench.timing import report, timed  # noqa: E402
from fracture_model import localisation  # noqa: E402
from fracture_model.evaluate import case_image  # noqa: E402
from fracture_model.explain import METHODS, SCORECAM_CHANNELS, Explainer  # noqa: E402
from fracture_model.imaging import read_radiograph  # noqa: E402
from fracture_model.predictor import Predictor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", type=Path, default=REPO / "assets/samples/leg_fractured_IMG0001191.jpg")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    keras.utils.disable_interactive_logging()  # ScoreCAM's internal predict() prints a bar per call
    start = time.perf_counter()
    predictor = Predictor.load()
    explainer = Explainer(predictor.model, predictor.card["positive_class"], predictor.card["last_conv_layer"])
    print(f"model load + explainer setup: {time.perf_counter() - start:.1f} s")
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"input {predictor.image_size} px; image {args.image.name}; "
          f"Faster-ScoreCAM scores the {SCORECAM_CHANNELS} most varied channels")
    pixels = read_radiograph(args.image.read_bytes()).pixels
    network_input = predictor.network_input(pixels)

    report("prediction (forward only)", timed(lambda: predictor.probabilities(network_input), args.repeats))
    explanations = {}
    for method in METHODS:
        times = timed(lambda m=method: explanations.__setitem__(m, explainer.explain(network_input, pixels.shape, m)),
                       args.repeats)
        report(method, times)

    heatmap = explanations[METHODS[0]].heatmap
    height, width = pixels.shape
    box = localisation.Box(width * 0.4, height * 0.4, width * 0.05, height * 0.05)  # a typical fracture box
    scores = timed(lambda: localisation.score_heatmap(heatmap, [box]), args.repeats)
    report("localisation scores (per method)", scores)
    report("case image (evaluation)", timed(lambda: case_image(pixels, heatmap, (box,), (10, 10)), args.repeats))


if __name__ == "__main__":
    main()
