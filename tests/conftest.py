"""Shared fixtures: paths, the shipped model, and a tiny FracAtlas-shaped dataset built on the fly."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "assets" / "samples"
MODEL_DIR = REPO / "assets" / "model"
FRACATLAS = REPO.parent / "shared" / "datasets" / "fracatlas"


@pytest.fixture(scope="session", autouse=True)
def verdicts_in_a_temporary_folder(tmp_path_factory):
    """Reviewers' verdicts written during the tests (also by servers they start) go to a temporary SQLite file,
    never to the user's data folder, the app's default (``fracture_model.reviews``)."""
    from fracture_model.reviews import ENVIRONMENT_VARIABLE

    before = os.environ.get(ENVIRONMENT_VARIABLE)
    os.environ[ENVIRONMENT_VARIABLE] = str(tmp_path_factory.mktemp("verdicts") / "reviews.sqlite3")
    yield
    if before is None:
        os.environ.pop(ENVIRONMENT_VARIABLE, None)
    else:
        os.environ[ENVIRONMENT_VARIABLE] = before


@pytest.fixture(scope="session")
def sample_paths() -> list[Path]:
    paths = sorted(SAMPLES.glob("*.jpg"))
    assert paths, "assets/samples/ holds no sample radiographs"
    return paths


@pytest.fixture(scope="session")
def fractured_sample() -> Path:
    return SAMPLES / "leg_fractured_IMG0001191.jpg"


@pytest.fixture(scope="session")
def shipped_predictor():
    from fracture_model.predictor import Predictor

    return Predictor.load(MODEL_DIR)


@pytest.fixture(scope="session")
def shipped_explainer(shipped_predictor):
    from fracture_model.explain import Explainer

    card = shipped_predictor.card
    return Explainer(shipped_predictor.model, card["positive_class"], card["last_conv_layer"])


@pytest.fixture(scope="session")
def fracatlas_dir() -> Path:
    if not (FRACATLAS / "image_index.csv").exists():
        pytest.skip("FracAtlas working copy not found beside the repository")
    return FRACATLAS


def synthetic_fracture(
    rng: np.random.Generator, fractured: bool, shape=(96, 80)
) -> tuple[np.ndarray, list[float] | None]:
    """A dark image with a bright 'bone' bar; fractured ones have a dark gap (a 'fracture line') in it.

    Returns the image and the fracture line's COCO box [left, top, width, height] (None when not fractured).
    """
    image = rng.normal(20, 5, shape)
    top, bottom = shape[0] // 6, shape[0] - shape[0] // 6
    left = shape[1] // 2 - 8
    image[top:bottom, left : left + 16] = rng.normal(180, 10, (bottom - top, 16))
    box = None
    if fractured:
        row = int(rng.integers(top + 10, bottom - 10))
        image[row : row + 4, left : left + 16] = 30
        box = [float(left), float(row), 16.0, 4.0]
    return np.clip(image, 0, 255).astype(np.uint8), box


def synthetic_radiograph(rng: np.random.Generator, fractured: bool, shape=(96, 80)) -> np.ndarray:
    """A dark image with a bright 'bone' bar; fractured ones have a dark gap (a 'fracture line') in it."""
    return synthetic_fracture(rng, fractured, shape)[0]


@pytest.fixture(scope="session")
def tiny_fracatlas(tmp_path_factory) -> Path:
    """A FracAtlas-shaped folder of 80 synthetic images (20 fractured), with a duplicate pair, neighbouring
    IDs (two per block of ten), two truncated originals and a COCO box around each fracture line
    (``annotations/coco_fractures.json``), for exercising training, evaluation and localisation."""
    root = tmp_path_factory.mktemp("fracatlas")
    rng = np.random.default_rng(7)
    index, groups, details = [], [], []
    coco = {"images": [], "annotations": [], "categories": [{"id": 0, "name": "fractured"}]}
    for number in range(80):
        fractured = number % 4 == 0
        folder = "Fractured" if fractured else "Non_fractured"
        name = f"IMG{number * 5:07d}.jpg"  # two images per block of ten neighbouring IDs
        (root / "images" / folder).mkdir(parents=True, exist_ok=True)
        image, box = synthetic_fracture(rng, fractured)
        Image.fromarray(image).save(root / "images" / folder / name, quality=95)
        if box is not None:
            coco["images"].append({"id": number, "width": image.shape[1], "height": image.shape[0], "file_name": name})
            coco["annotations"].append({"id": len(coco["annotations"]), "image_id": number, "category_id": 0,
                                        "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
        path = f"{folder}/{name}"
        index.append({"src": path, "dst": path, "truncated": int(number in (3, 5))})
        group = "dup_pair" if number in (1, 41) else f"single_{name[:-4]}"
        groups.append({"file": path, "label": folder, "group_id": group})
        part = ("hand", "leg", "hip", "shoulder")[number % 4 if not fractured else (number // 4) % 4]
        details.append({"image_id": name, **{p: int(p == part) for p in ("hand", "leg", "hip", "shoulder")},
                        "mixed": 0, "hardware": int(number in (8, 12)), "multiscan": 0,
                        "fractured": int(fractured), "fracture_count": int(fractured),
                        "frontal": 1, "lateral": 0, "oblique": 0})
    pd.DataFrame(index).to_csv(root / "image_index.csv", index=False)
    pd.DataFrame(groups).to_csv(root / "leakage_groups.csv", index=False)
    pd.DataFrame(details).to_csv(root / "dataset.csv", index=False)
    (root / "annotations").mkdir()
    (root / "annotations" / "coco_fractures.json").write_text(json.dumps(coco))
    return root


@pytest.fixture(scope="session")
def tiny_trained_run(tiny_fracatlas, tmp_path_factory) -> Path:
    """A training run on ``tiny_fracatlas`` with the default recipe (box supervision, LiteRT copy) at 64 px, one
    head-only and one whole-network epoch, seed 3. Trained once per session (training is the slowest thing in the
    suite) for ``test_train_evaluate`` and ``test_soup``: never change this folder, copy it first."""
    from fracture_model import train

    out = tmp_path_factory.mktemp("trained_run")
    assert train.main([
        "--data", str(tiny_fracatlas), "--out", str(out), "--image-size", "64", "--batch-size", "8",
        "--frozen-epochs", "1", "--epochs", "1", "--seed", "3",
    ]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_plain_run(tiny_fracatlas, tmp_path_factory) -> Path:
    """A second run on the same split (seed 3) with another training seed (8): the plain recipe (no box
    supervision), levers rotation and overlays, stopped by a STOP file after its first epoch, and no LiteRT copy
    (as under JAX). Trained once per session for ``test_train_evaluate`` and ``test_soup``: never change this
    folder, copy it first."""
    from fracture_model import train

    out = tmp_path_factory.mktemp("plain_run")
    # a STOP file in the run's folder ends the run after its first epoch; the best epoch is checkpointed
    (out / train.STOP_FILE).touch()
    with pytest.MonkeyPatch.context() as patch:
        # as under JAX on a GPU machine: no LiteRT converter, so the copy is made afterwards by its own command
        patch.setattr(train, "_can_convert_to_lite", lambda: False)
        assert train.main([
            "--data", str(tiny_fracatlas), "--out", str(out), "--image-size", "64", "--batch-size", "8",
            "--frozen-epochs", "0", "--epochs", "3", "--seed", "3", "--training-seed", "8", "--box-loss-weight", "0",
            "--levers", "rotation,overlays",
        ]) == 0
    return out
