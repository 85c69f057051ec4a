"""Grad-CAM of a logit ensemble of networks, judged by the pointing game on validation's boxed fractures.

    python bench/heatmap_ensemble.py --model-dir assets/model --model-dir OTHER [--data ../shared/datasets/fracatlas]

A logit ensemble (the mean of several networks' logits) has as its class activation map the mean of theirs,
each the Grad-CAM of its network's logit before the ReLU and normalisation. For each network alone and for
the mean of all, this prints the pointing game (the peak within 15 px of a radiologist's box, in the working
copy's pixels, as ``fracture_model.evaluate`` scores it) over the whole image, as the app draws it, on the
validation split's fractured images with boxes. The networks must share the first one's split. About a
minute a network on 2 cores. The test split is not read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from heatmap_views import (  # also puts the repository on sys.path
    REPO,
    boxed_validation_batches,
    pointing_hits,
    print_pointing,
    raw_maps,
)

from fracture_model.explain import Explainer  # noqa: E402
from fracture_model.model_card import SPLIT_FILE  # noqa: E402
from fracture_model.predictor import Predictor  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "fracatlas")
    parser.add_argument("--model-dir", type=Path, action="append", required=True,
                        help="a model folder; give two or more")
    args = parser.parse_args()

    splits = [pd.read_csv(folder / SPLIT_FILE) for folder in args.model_dir]
    if any(not split.equals(splits[0]) for split in splits[1:]):
        print("error: the networks were not trained on the same split", file=sys.stderr)
        return 2
    predictors = [Predictor.load(folder) for folder in args.model_dir]
    explainers = [Explainer(p.model, p.card["positive_class"], p.card["last_conv_layer"]) for p in predictors]
    names = [f"{folder} ({p.model_version})" for folder, p in zip(args.model_dir, predictors, strict=True)]
    names.append("mean of their maps (the logit ensemble's)")
    batches = boxed_validation_batches(predictors[0], args.data, args.model_dir[0])
    images = next(batches)
    hits = {name: [] for name in names}
    for image_boxes, batch, letterboxes in batches:
        maps = [raw_maps(explainer, batch) for explainer in explainers]
        maps.append(np.mean(maps, axis=0))
        for name, heatmaps in zip(names, maps, strict=True):
            hits[name] += pointing_hits(heatmaps, image_boxes, letterboxes)
    print(f"validation's fractured images with boxes: {images}")
    print_pointing(hits)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
