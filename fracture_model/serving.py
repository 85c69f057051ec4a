"""The model and its explainer for a server: loaded and warmed at start, then called on one long-lived thread.

Why one thread. A Streamlit page runs on a new thread for every rerun, and TensorFlow calls made from a
thread that has not called it before pay for setting up that thread's state again (measured in the
browser: bench/bench_browser.py). A single worker thread that loads the model, warms it (one prediction
and one heatmap, so that graph tracing and tf-keras-vis' first-call costs are paid before the first user)
and then runs every model call also serialises them: one model call at a time across all sessions, as the
CPU is shared anyway, and peak memory does not grow with the number of people uploading at once.

Loading starts when the service is made (``ModelService(...)``) and goes on in the background, in steps:
the predictor (load, one warm prediction), then the explainer, then one warm heatmap per method in
``warm_methods``. A user's call goes ahead of any warm-up step still waiting, and is queued at once, even
while the predictor loads: a radiograph dropped on a server that has just started is scored as soon as
the predictor is ready, before the explainer and the heatmaps' warm-up. Nothing here
imports TensorFlow on the caller's thread.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
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
_STOP, _LOAD, _CALL, _WARM_UP = 0, 1, 2, 3
"""Priorities on the worker's queue (lowest first): stopping, loading the predictor, a user's call, a later
warm-up step. Loading goes first, so a user's call never runs before the predictor exists."""


def _warm_up_image(size: int) -> np.ndarray:
    """A smooth synthetic grey image (not blank, so the warm-up heatmap is not degenerate)."""
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    return np.outer(ramp, ramp[::-1]) * 0.8 + 0.1


class ModelService:
    """The predictor and explainer of ``model_dir``, on one worker thread. Make one per process."""

    def __init__(self, model_dir: Path | str = DEFAULT_MODEL_DIR, *, warm_methods: Sequence[str] = WARM_METHODS):
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()  # first in, first out within a priority
        self._thread = threading.Thread(target=self._serve, name="fracture-model", daemon=True)
        self._thread.start()
        self._predictor: Future = self._submit(_LOAD, self._load_predictor, Path(model_dir))
        self._explainer: Future = self._submit(_WARM_UP, self._load_explainer)
        self._warmed: list[Future] = [self._submit(_WARM_UP, self._warm, method) for method in warm_methods]

    def _submit(self, priority: int, function: Callable[..., Result], *args, **kwargs) -> Future:
        future: Future = Future()
        self._queue.put((priority, next(self._order), future, function, args, kwargs))
        return future

    def _serve(self) -> None:
        while True:
            priority, _, future, function, args, kwargs = self._queue.get()
            if priority == _STOP:
                break
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function(*args, **kwargs))
                except BaseException as error:  # handed to whoever waits for the result
                    future.set_exception(error)
        while not self._queue.empty():  # cancel what was still waiting
            self._queue.get()[2].cancel()

    @staticmethod
    def _load_predictor(model_dir: Path) -> Predictor:
        from fracture_model.predictor import Predictor

        predictor = Predictor.load(model_dir)
        predictor.predict(_warm_up_image(predictor.image_size))
        return predictor

    def _load_explainer(self) -> Explainer:
        from fracture_model.explain import Explainer

        predictor = self._predictor.result()
        return Explainer(predictor.model, predictor.card["positive_class"], predictor.card["last_conv_layer"])

    def _warm(self, method: str) -> None:
        predictor, explainer = self._predictor.result(), self._explainer.result()
        pixels = _warm_up_image(predictor.image_size)
        explainer.explain(predictor.network_input(pixels), pixels.shape, method)

    def ready(self) -> bool:
        """True once the predictor is loaded and warm (or failed to load: the next call raises why)."""
        return self._predictor.done()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the predictor is loaded and warm; raises what loading raised."""
        self._predictor.result(timeout)

    def warm(self, timeout: float | None = None) -> None:
        """Block until every warm-up step (predictor, explainer, heatmaps) is done; raises what one raised."""
        for step in (self._predictor, self._explainer, *self._warmed):
            step.result(timeout)

    @property
    def predictor(self) -> Predictor:
        return self._predictor.result()

    @property
    def explainer(self) -> Explainer:
        return self._explainer.result()

    def run(self, function: Callable[..., Result], *args, **kwargs) -> Result:
        """Run ``function(*args, **kwargs)`` on the model's thread, after the predictor has loaded and the
        users' calls queued before it, ahead of any warm-up step still waiting. Raises what loading raised."""
        return self._submit(_CALL, self._after_loading, function, args, kwargs).result()

    def _after_loading(self, function: Callable[..., Result], args: tuple, kwargs: dict) -> Result:
        self._predictor.result()  # done (loading has the worker first); raises here if it failed
        return function(*args, **kwargs)

    def predict(self, pixels: np.ndarray) -> Prediction:
        return self.run(lambda: self._predictor.result().predict(pixels))

    def predict_many(self, images: Sequence[np.ndarray], batch_size: int = 16) -> list[Prediction]:
        return self.run(lambda: self._predictor.result().predict_many(images, batch_size))

    def explain(self, pixels: np.ndarray, method: str) -> Explanation:
        """The heatmap of ``method`` for a decoded radiograph, over the original image."""
        predictor, explainer = self.predictor, self.explainer
        return self.run(lambda: explainer.explain(predictor.network_input(pixels), pixels.shape, method))

    def close(self) -> None:
        """Finish the call running now, cancel what waits, and end the thread."""
        self._queue.put((_STOP, next(self._order), Future(), None, (), {}))
        self._thread.join()
