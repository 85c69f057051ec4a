"""Robustness of a model on shifted copies of a split: what radiographs from other sources look like.

    python bench/bench_robustness.py [--model-dir assets/model] [--split test] [--normal-images N] [--json out.json]

Builds, deterministically (``--seed``), shifted copies of the split's images (``fracture_model.shifts``):
close-up crops at 1.5x, 2x, 3x and 4x a fracture box's size (normal images cropped to the same relative
sizes, on bone), rotations over 0-360 degrees, 224 px with JPEG quality 75, synthetic side letters,
text, rulers, watermarks and arrows, and a mix of all. For each it prints ROC AUC, sensitivity and
specificity at the model's own operating threshold, the Grad-CAM pointing game on fractured images
with boxes, and how often the out-of-distribution check fires (with the ROC AUC of flagged and
unflagged images). With ``--json`` it writes the figures there and every image's row beside it (.csv).
Run it on ``--split validation`` to choose; the test split only reports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from fracture_model import localisation, robustness  # noqa: E402
from fracture_model.explain import Explainer  # noqa: E402
from fracture_model.model_card import DEFAULT_MODEL_DIR, SPLIT_FILE  # noqa: E402
from fracture_model.predictor import Predictor  # noqa: E402

DEFAULT_DATA_DIR = REPO.parent / "shared" / "datasets" / "fracatlas"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--split", default="test", choices=("test", "validation"))
    parser.add_argument("--sets", default=None, help="comma-separated set names (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="first N images of the split (quick look)")
    parser.add_argument("--normal-images", type=int, default=None,
                        help="every fractured image but only N normal ones (a fixed random draw): a cheaper run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    predictor = Predictor.load(args.model_dir)
    explainer = Explainer(predictor.model, predictor.card["positive_class"], predictor.card["last_conv_layer"])
    split = pd.read_csv(args.model_dir / SPLIT_FILE)
    frame = robustness.benchmark_frame(split, args.split, args.normal_images, args.seed, args.limit)
    boxes = localisation.load_boxes(args.data / localisation.ANNOTATIONS_FILE)
    wanted = None if args.sets is None else set(args.sets.split(","))
    print(f"model {predictor.card['name']} {predictor.model_version}, threshold {predictor.operating_threshold:.3f}; "
          f"{args.split} split: {len(frame)} images, {int(frame['fractured'].sum())} fractured", flush=True)
    summaries, every_row = {}, []
    for shifted in robustness.benchmark_sets():
        if wanted is not None and shifted.name not in wanted:
            continue
        started = time.time()
        scored = robustness.score_set(predictor, explainer, frame, args.data / "images", boxes, shifted, args.seed)
        summaries[shifted.name] = robustness.summarise(scored, predictor.operating_threshold)
        every_row.append(scored.assign(set=shifted.name))
        print(f"  {shifted.name}: {len(scored)} images in {time.time() - started:.0f} s", flush=True)
    print(robustness.table(summaries))
    if args.json:
        pd.concat(every_row).to_csv(args.json.with_suffix(".csv"), index=False)  # re-summarise at any threshold
        args.json.write_text(json.dumps({"model_version": predictor.model_version, "split": args.split,
                                         "seed": args.seed, "normal_images": args.normal_images, "sets": summaries},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
