"""The model's contract, stored as ``model_card.json`` beside ``fracture_cnn.keras``.

The app reads the input size, preprocessing, class meaning and operating threshold from here and
never hard-codes them. The names of the model's artifacts live here too, so that the serving code
(pages, PACS, batch jobs) reads them without importing the training or evaluation code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MODEL_FILE = "fracture_cnn.keras"
LITE_FILE = "fracture_cnn.tflite"
"""The same network converted for fast CPU scoring (``fracture_model.lite``); the card says which model it came from."""
CARD_FILE = "model_card.json"
SPLIT_FILE = "split.csv"
EVALUATION_DIR = "evaluation"
"""Beside the model: what ``python -m fracture_model.evaluate`` writes (metrics, predictions, case images)."""
CASES_DIR = "cases"
"""Inside ``EVALUATION_DIR``: one JPEG per test case (radiograph and heatmap overlay side by side)."""
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "model"

REQUIRED_FIELDS = ("input_size", "preprocessing", "output", "operating_threshold", "positive_class")
SCORING_FIELDS = ("input_size", "preprocessing", "operating_threshold", "test_time_views", "out_of_distribution")
"""The card's entries that change a probability, a decision or the out-of-distribution note: with the model
file's bytes they make the model's version (``model_sha256``)."""


def read_card(model_dir: Path | str = DEFAULT_MODEL_DIR) -> dict:
    card = json.loads((Path(model_dir) / CARD_FILE).read_text())
    missing = [field for field in REQUIRED_FIELDS if field not in card]
    if missing:
        raise ValueError(f"model card in {model_dir} lacks {missing}")
    return card


def write_card(model_dir: Path | str, card: dict) -> None:
    path = Path(model_dir) / CARD_FILE
    path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")


def file_sha256(path: Path | str) -> str:
    """SHA-256 of a file's bytes (hex)."""
    return _file_digest(path).hexdigest()


def model_hashes(model_dir: Path | str = DEFAULT_MODEL_DIR, card: dict | None = None) -> tuple[str, str]:
    """(the model file's own SHA-256, ``model_sha256``) from one read of the model file."""
    card = read_card(model_dir) if card is None else card
    digest = _file_digest(Path(model_dir) / card.get("model_file", MODEL_FILE))
    version = digest.copy()
    version.update(json.dumps({field: card.get(field) for field in SCORING_FIELDS}, sort_keys=True).encode())
    return digest.hexdigest(), version.hexdigest()


def model_sha256(model_dir: Path | str = DEFAULT_MODEL_DIR) -> str:
    """The model's version wherever a result is reported or kept (reports, CSVs, PACS results, verdicts,
    archive runs), computed without TensorFlow: SHA-256 of the model file's bytes followed by the card's
    ``SCORING_FIELDS`` as canonical JSON. A new threshold or new test-time views (``fracture_model.views``)
    change a model's answers without touching its file, so they make a new version too."""
    return model_hashes(model_dir)[1]


def _file_digest(path: Path | str):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256")
