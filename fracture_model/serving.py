"""The model and its explainer for a server: loaded and warmed at start, then called on one long-lived thread.

Why one thread. A Streamlit page runs on a new thread for every rerun, and TensorFlow calls made from a
thread that has not called it before pay for setting up that thread's state again (measured in the
browser: bench/bench_browser.py). A single worker thread that loads the model, warms it (one prediction
and one heatmap, so that graph tracing and tf-keras-vis' first-call costs are paid before the first user)
and then runs every model call also serialises them: one model call at a time across all sessions, as the
CPU is shared anyway, and peak memory does not grow with the number of people uploading at once.

Loading starts when the service is made (``ModelService(...)``) and goes on in the background; the first
call that needs the model waits for it. Nothing here imports TensorFlow on the caller's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from fracture_model.model_card import DEFAULT_MODEL_DIR

if TYPE_CHECKING:
    from fracture_model.explain import Explainer, Explanation
    from fracture_model.predictor import Prediction, Predictor

Result = TypeVar("Result")
WARM_METHODS = ("Grad-CAM",)
"""Heatmap methods called once at start (the default one; the others are rarely opened)."""


def _warm_up_image(size: int) -> np.ndarray:
    """A smooth synthetic grey image (not blank, so the warm-up heatmap is not degenerate)."""
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    return np.outer(ramp, ramp[::-1]) * 0.8 + 0.1


class ModelService:
    """The predictor and explainer of ``model_dir``, on one worker thread. Make one per process."""

    def __init__(self, model_dir: Path | str = DEFAULT_MODEL_DIR, *, warm_methods: Sequence[str] = WARM_METHODS):
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fracture-model")
        self._loaded: Future = self._worker.submit(self._load, Path(model_dir), tuple(warm_methods))

    @staticmethod
    def _load(model_dir: Path, warm_methods: tuple[str, ...]) -> tuple[Predictor, Explainer]:
        from fracture_model.explain import Explainer
        from fracture_model.predictor import Predictor

        predictor = Predictor.load(model_dir)
        explainer = Explainer(predictor.model, predictor.card["positive_class"], predictor.card["last_conv_layer"])
        pixels = _warm_up_image(predictor.image_size)
        predictor.predict(pixels)
        for method in warm_methods:
            explainer.explain(predictor.network_input(pixels), pixels.shape, method)
        return predictor, explainer

    def ready(self) -> bool:
        """True once the model is loaded and warm (or failed to load: the next call raises why)."""
        return self._loaded.done()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the model is loaded and warm; raises what loading raised."""
        self._loaded.result(timeout)

    @property
    def predictor(self) -> Predictor:
        return self._loaded.result()[0]

    @property
    def explainer(self) -> Explainer:
        return self._loaded.result()[1]

    def run(self, function: Callable[..., Result], *args, **kwargs) -> Result:
        """Run ``function(*args, **kwargs)`` on the model's thread, after every call queued before it."""
        self.wait()
        return self._worker.submit(function, *args, **kwargs).result()

    def predict(self, pixels: np.ndarray) -> Prediction:
        return self.run(self.predictor.predict, pixels)

    def predict_many(self, images: Sequence[np.ndarray], batch_size: int = 16) -> list[Prediction]:
        return self.run(self.predictor.predict_many, images, batch_size)

    def explain(self, pixels: np.ndarray, method: str) -> Explanation:
        """The heatmap of ``method`` for a decoded radiograph, over the original image."""
        predictor, explainer = self.predictor, self.explainer
        return self.run(lambda: explainer.explain(predictor.network_input(pixels), pixels.shape, method))

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
