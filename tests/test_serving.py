"""fracture_model.serving: the model on one worker thread, warmed in steps, users' calls ahead of warm-up."""

import threading

import numpy as np
import pytest

from fracture_model.imaging import read_radiograph
from fracture_model.serving import ModelService
from tests.conftest import MODEL_DIR


def test_a_call_made_while_the_model_loads_runs_as_soon_as_the_predictor_is_ready():
    fresh = ModelService(MODEL_DIR)
    try:
        assert not fresh.ready()  # loading takes seconds; the call is queued at once
        explainer_built_first = fresh.run(lambda: fresh._explainer.done())
        assert explainer_built_first is False
    finally:
        fresh.close()


@pytest.fixture(scope="module")
def service():
    made = ModelService(MODEL_DIR, warm_methods=("Grad-CAM", "Grad-CAM++"))
    yield made
    made.close()


def test_a_call_made_as_the_server_starts_goes_ahead_of_the_heatmap_warm_up(service):
    service.wait()  # the predictor is ready; the explainer and two warm heatmaps are still queued or running
    assert service.ready()
    warm_heatmaps_done = service.run(lambda: [step.done() for step in service._warmed])
    assert warm_heatmaps_done == [False, False]
    service.warm()
    assert all(step.done() for step in service._warmed)


def test_every_call_runs_on_the_model_thread_and_answers_as_the_model_does(service, fractured_sample,
                                                                           shipped_predictor, shipped_explainer):
    assert service.run(lambda: threading.current_thread().name) == "fracture-model"
    pixels = read_radiograph(fractured_sample.read_bytes()).pixels
    served = service.predict(pixels)
    assert served.probability_fractured == pytest.approx(shipped_predictor.predict(pixels).probability_fractured,
                                                         abs=1e-5)
    assert [p.probability_fractured for p in service.predict_many([pixels, pixels[::2, ::2]])] == pytest.approx(
        [p.probability_fractured for p in shipped_predictor.predict_many([pixels, pixels[::2, ::2]])], abs=1e-5)
    heatmap = service.explain(pixels, "Grad-CAM").heatmap
    direct = shipped_explainer.explain(shipped_predictor.network_input(pixels), pixels.shape, "Grad-CAM").heatmap
    assert heatmap.shape == pixels.shape
    assert np.abs(heatmap - direct).max() <= 1e-4


def test_a_model_that_cannot_load_says_why_to_every_caller_and_the_service_still_closes(tmp_path):
    broken = ModelService(tmp_path)  # no model card, no model file
    with pytest.raises(Exception) as loading:
        broken.wait(timeout=60)
    assert broken.ready()  # done, with the error kept for the next call
    with pytest.raises(type(loading.value)):
        broken.predict(np.zeros((64, 64), np.float32))
    with pytest.raises(type(loading.value)):
        broken.warm(timeout=60)
    broken.close()
    assert not broken._thread.is_alive()
