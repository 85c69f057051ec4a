"""Model-parameter randomisation (Adebayo et al., 2018) on the planted-feature toy model of test_explain."""

import math

import keras
import numpy as np
import pytest

from fracture_model.explain import METHODS
from fracture_model.network import LAST_CONV_LAYER, OUTPUT_LAYER, build_fracture_model
from fracture_model.sanity import (
    SPEARMAN_BOUND,
    TOP_BLOCKS_FROM,
    RandomisationStage,
    explainer_heatmap,
    randomisation_check,
    randomisation_stages,
    randomised_copy,
    rank_correlation,
)
from tests.test_explain import SIZE, _planted, planted_model  # noqa: F401  (the module-scoped toy model)


@pytest.fixture(scope="module")
def planted_images() -> list[tuple[np.ndarray, tuple[int, int]]]:
    rng = np.random.default_rng(11)
    positions = [(4, 4), (4, 36), (36, 20), (20, 12), (30, 34), (10, 24)]
    return [(_planted(rng, position)[np.newaxis], (SIZE, SIZE)) for position in positions]


@pytest.fixture(scope="module")
def check(planted_model, planted_images) -> dict:  # noqa: F811
    stages = randomisation_stages(planted_model, top_from=LAST_CONV_LAYER)
    return randomisation_check(planted_model, explainer_heatmap(), planted_images, METHODS, stages)


def test_rank_correlation_known_answers():
    ramp = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert rank_correlation(ramp, ramp) == pytest.approx(1.0)
    assert rank_correlation(ramp, ramp**3) == pytest.approx(1.0)  # ranks, not values
    assert rank_correlation(ramp, -ramp) == pytest.approx(-1.0)
    assert rank_correlation(ramp, np.zeros_like(ramp)) == 0.0  # a flat map keeps nothing of the ranking
    assert math.isnan(rank_correlation(np.zeros_like(ramp), ramp))  # no trained map: nothing to compare
    assert math.isnan(rank_correlation(np.ones((3, 4)), np.zeros((3, 4))))


def test_randomised_copy_reinitialises_only_the_named_layers(planted_model):  # noqa: F811
    copy = randomised_copy(planted_model, [OUTPUT_LAYER], seed=1)
    assert copy is not planted_model
    for layer in planted_model.layers:
        for kept, new in zip(layer.get_weights(), copy.get_layer(layer.name).get_weights(), strict=True):
            if layer.name == OUTPUT_LAYER:
                assert not np.allclose(kept, new) or not kept.any()
            else:
                np.testing.assert_array_equal(kept, new)
    image = _planted(np.random.default_rng(0), (10, 10))[np.newaxis]
    assert not np.allclose(planted_model.predict_on_batch(image), copy.predict_on_batch(image))
    again = randomised_copy(planted_model, [OUTPUT_LAYER], seed=1)
    np.testing.assert_array_equal(again.get_layer(OUTPUT_LAYER).get_weights()[0],
                                  copy.get_layer(OUTPUT_LAYER).get_weights()[0])
    with pytest.raises(ValueError):
        randomised_copy(planted_model, ["no_such_layer"])


def test_stages_of_the_fracture_network():
    model = build_fracture_model(32)
    output_only, top = randomisation_stages(model)
    assert output_only.layers == (OUTPUT_LAYER,) and not output_only.decisive
    assert top.decisive
    assert top.layers[0] == TOP_BLOCKS_FROM and top.layers[-1] == OUTPUT_LAYER
    assert "head_conv" in top.layers and "block15_project_conv" in top.layers
    assert not any(name.startswith(("block10_", "stem_")) for name in top.layers)
    assert "80%" in top.description or "79%" in top.description
    with pytest.raises(ValueError):
        randomisation_stages(model, top_from="no_such_layer")


def test_check_summary_shape(check, planted_images):
    assert check["bound"] == SPEARMAN_BOUND and check["images"] == len(planted_images)
    assert [stage["name"] for stage in check["stages"]] == ["output layer", "top blocks"]
    for method in METHODS:
        summary = check["by_method"][method]
        assert set(summary["stages"]) == {"output layer", "top blocks"}
        for stage in summary["stages"].values():
            assert len(stage["spearman_per_image"]) == len(planted_images)
        assert summary["passed"] == (summary["worst_median_abs_spearman"] < SPEARMAN_BOUND)
    assert check["passed"] == [method for method in METHODS if check["by_method"][method]["passed"]]


@pytest.mark.parametrize("method", METHODS)
def test_heatmaps_change_markedly_when_the_top_weights_are_randomised(check, method):
    summary = check["by_method"][method]
    assert summary["passed"], summary
    assert summary["worst_median_abs_spearman"] < SPEARMAN_BOUND


def test_a_map_that_ignores_the_model_fails(planted_model, planted_images):  # noqa: F811
    """Negative control: an 'explanation' that is the image itself (an edge-detector-like map) must fail."""
    def image_itself(model, method, network_input, shape):
        return network_input[0, ..., 0]

    stages = [RandomisationStage("output layer", (OUTPUT_LAYER,), "dense")]
    result = randomisation_check(planted_model, image_itself, planted_images, ["image"], stages)
    assert result["by_method"]["image"]["worst_median_abs_spearman"] == pytest.approx(1.0)
    assert result["passed"] == []


def test_scorecam_depends_on_the_classifier(planted_model, planted_images):  # noqa: F811
    """Regression: tf-keras-vis' softmax over one sigmoid unit made ScoreCAM ignore the output layer."""
    heatmap = explainer_heatmap()
    network_input, shape = planted_images[0]
    trained = heatmap(planted_model, "Faster-ScoreCAM", network_input, shape)
    flipped = keras.models.clone_model(planted_model)
    flipped.set_weights(planted_model.get_weights())
    kernel, bias = flipped.get_layer(OUTPUT_LAYER).get_weights()
    flipped.get_layer(OUTPUT_LAYER).set_weights([-kernel, -bias])  # now it explains 'not fractured'
    assert not np.allclose(trained, heatmap(flipped, "Faster-ScoreCAM", network_input, shape), atol=0.05)


def test_an_explainer_already_built_serves_its_model(planted_model, planted_images):  # noqa: F811
    """``built`` (evaluate passes the explainer it drew the test split with) answers for its model; other models
    get their own. Here the explainer handed over is a randomised copy's, so its maps show where it was used."""
    from fracture_model.explain import Explainer

    copy = randomised_copy(planted_model, [OUTPUT_LAYER, LAST_CONV_LAYER], seed=3)
    network_input, shape = planted_images[0]
    own = explainer_heatmap()(planted_model, "Grad-CAM", network_input, shape)
    copys_explainer = Explainer(copy)
    copys = copys_explainer.explain(network_input, shape, "Grad-CAM").heatmap
    assert not np.allclose(own, copys, atol=0.05)
    heatmap = explainer_heatmap(built=(planted_model, copys_explainer))
    np.testing.assert_array_equal(heatmap(planted_model, "Grad-CAM", network_input, shape), copys)
    np.testing.assert_array_equal(heatmap(copy, "Grad-CAM", network_input, shape), copys)
