"""Out-of-distribution distances of the samples and of a few images that are not radiographs.

    python bench/ood_examples.py [--model-dir assets/model]

Prints, for the model's out-of-distribution check (``fracture_model.ood``), its threshold, then the
probability and Mahalanobis distance of each sample in ``assets/samples``, of three featureless 512 x 512
images (uniform noise drawn with seed 0, a flat grey field, a left-to-right gradient; each saved as a PNG
and decoded as an upload is, by ``read_radiograph``: until 30 November they went in as 0-255 values, which
the preprocessing clips to white, so all three were scored as white fields) and of two close-ups of the
first sample: its middle half (in each direction), and a square a sixth of its long side around the middle
of its bone, as teaching files crop (``shifts.close_up_on_bone``, the close-up ``tests/test_ood.py`` asserts
is flagged). "FLAGGED featureless" is the second check's verdict
(``ood.image_content``, since 1 December), whatever the distance. The README quotes these figures.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from fracture_model import shifts  # noqa: E402
from fracture_model.imaging import InputError, read_radiograph  # noqa: E402
from fracture_model.predictor import Predictor  # noqa: E402


def featureless(side: int = 512) -> dict[str, np.ndarray]:
    """Three 8-bit images with nothing of a radiograph in them."""
    noise = np.random.default_rng(0).integers(0, 256, (side, side)).astype(np.uint8)
    grey = np.full((side, side), 128, np.uint8)
    gradient = np.tile(np.linspace(0, 255, side).astype(np.uint8), (side, 1))
    return {"uniform noise": noise, "flat grey field": grey, "gradient": gradient}


def png(image: np.ndarray) -> bytes:
    """``image`` (8-bit) as the bytes of a PNG file."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=str(REPO / "assets" / "model"))
    parser.add_argument("--samples", default=str(REPO / "assets" / "samples"))
    args = parser.parse_args()
    predictor = Predictor.load(args.model_dir)
    if predictor.distance_model is None:
        print("this model has no out-of-distribution check")
        return 0
    print(f"model {predictor.model_version}, out-of-distribution threshold {predictor.distance_model.threshold:.2f}")
    images: dict[str, np.ndarray] = {}
    for path in sorted(Path(args.samples).iterdir()):
        try:
            images[path.name] = read_radiograph(path.read_bytes()).pixels
        except InputError:
            continue
    first = next(iter(images.values()))
    rows, columns = first.shape[:2]
    middle = first[rows // 4:3 * rows // 4, columns // 4:3 * columns // 4]
    sixth = shifts.close_up_on_bone(first, 1 / 6)
    uploaded = {name: read_radiograph(png(image)).pixels for name, image in featureless().items()}  # floats in [0, 1]
    scored = {**images, **uploaded, "middle half of the first sample": middle,
              "a sixth of the first sample's side": sixth}
    for name, prediction in zip(scored, predictor.predict_many(list(scored.values())), strict=True):
        flag = "inside" if prediction.in_distribution else "FLAGGED featureless" if prediction.featureless \
            else "FLAGGED outside"
        print(f"{name:40s} P(fractured) {prediction.probability_fractured:.3f}  "
              f"distance {prediction.distance:5.1f}  {flag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
