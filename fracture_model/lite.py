"""The network's forward pass for CPU scoring: the same weights, converted once to LiteRT (XNNPACK).

    python -m fracture_model.lite --model-dir assets/model

On this 2-core CPU one 384 px radiograph takes about 18 ms through LiteRT against about 60 ms through
TensorFlow's compiled graph, with the same outputs (largest difference about 1e-8 in the probability and
1e-5 in the pooled features). So every score (the Read page, the worklist, the predict command, PACS and
archive jobs, the evaluation) goes through it, while Grad-CAM keeps the Keras model, which it needs for
gradients.

The converted file lives beside the model (``LITE_FILE``); the card records the SHA-256 of the ``.keras``
file it was converted from, and ``Predictor.load`` refuses a converted file whose source is another model
file, so the two never drift apart. Training writes it with the model; this command writes it for a
model folder that lacks it.
"""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path

import numpy as np

from fracture_model import native_stderr
from fracture_model.model_card import LITE_FILE, MODEL_FILE, file_sha256, read_card, write_card

RUNTIME = "LiteRT (ai-edge-litert), XNNPACK, float32"
PROBABILITY_OUTPUT, FEATURES_OUTPUT = "output_0", "output_1"
"""The converted signature's outputs, in the order of the Keras model's outputs (``export``)."""


class LiteForward:
    """``forward(batch) -> (P(fractured) (n, 1), pooled features (n, d))`` through a LiteRT interpreter.

    Scores one image at a time (a batch costs the same per image here, and one input shape needs no
    re-allocation). An interpreter is not thread-safe: calls are serialised.
    """

    def __init__(self, path: Path | str, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=threads or os.cpu_count() or 1)
        self._run = self._interpreter.get_signature_runner()
        signature = self._interpreter.get_signature_list()["serving_default"]
        self._input = next(iter(signature["inputs"]))
        self._lock = threading.Lock()
        with native_stderr.silenced():  # the first run prints "INFO: Created ... XNNPACK delegate" on stderr
            self._run(**{self._input: np.zeros(self._interpreter.get_input_details()[0]["shape"], np.float32)})

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.asarray(batch, dtype=np.float32)
        probabilities, features = [], []
        with self._lock:
            for image in batch:
                outputs = self._run(**{self._input: image[np.newaxis]})
                probabilities.append(outputs[PROBABILITY_OUTPUT].reshape(1))
                features.append(outputs[FEATURES_OUTPUT].reshape(1, -1))
        if not probabilities:
            return np.zeros((0, 1), np.float32), np.zeros((0, 0), np.float32)
        return np.stack(probabilities), np.concatenate(features)


def export(model, path: Path | str) -> None:
    """Convert ``model`` (the classifier with its pooled features as a second output) to LiteRT at ``path``."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    Path(path).write_bytes(converter.convert())


def card_entry(model_sha256: str) -> dict:
    """What the model card says about the converted file (``Predictor.load`` checks ``converted_from_sha256``)."""
    import tensorflow as tf

    return {"file": LITE_FILE, "runtime": RUNTIME, "converted_from_sha256": model_sha256,
            "converter": f"tensorflow {tf.__version__} TFLiteConverter.from_keras_model",
            "outputs": ["probability_fractured", "pooled features (the out-of-distribution check's input)"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fracture_model.lite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="folder with fracture_cnn.keras and its card")
    args = parser.parse_args(argv)
    import keras

    from fracture_model.predictor import with_pooled_features

    card = read_card(args.model_dir)
    model_path = args.model_dir / card.get("model_file", MODEL_FILE)
    export(with_pooled_features(keras.saving.load_model(model_path, compile=False)), args.model_dir / LITE_FILE)
    card["fast_forward"] = card_entry(file_sha256(model_path))
    write_card(args.model_dir, card)
    print(f"wrote {args.model_dir / LITE_FILE} and the card's fast_forward entry")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
