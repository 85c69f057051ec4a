"""Sanity check for heatmaps: model-parameter randomisation (Adebayo et al., 2018).

An explanation of *this* model must change when the model's learned weights are destroyed. If a
heatmap method draws nearly the same map for the trained network and for one whose top layers were
re-initialised, it shows the image's structure (edges, bright bone, metal), not what the model uses,
and it is not offered as an explanation.

Scheme (a cascade from the top, as in the paper): two randomised copies of the model,

1. ``output layer``: only the final dense layer (the classifier) re-initialised. Reported, not decisive:
   when the last conv layer's features all respond to the same structure, any mix of them draws a
   similar map, so this stage says how much the map depends on the classifier alone;
2. ``top blocks`` (decisive): every layer with weights from ``top_from`` to the output re-initialised.
   For the EfficientNet-Lite0 network that is ``TOP_BLOCKS_FROM``: the last two stages (blocks 11 to
   15), the head convolution and its batch-norm, and the output layer, about 80% of the parameters.

Re-initialised means fresh weights from each layer's own initialiser (batch-norm: scale 1, offset 0,
moving mean 0, variance 1), seeded. Measure: Spearman rank correlation between the trained and the
randomised heatmap of the same image over the original radiograph, per image. A method passes when the
median of |rho| over the images is below ``SPEARMAN_BOUND`` at every decisive stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
from scipy.stats import spearmanr

from fracture_model.explain import Explainer
from fracture_model.network import LAST_CONV_LAYER, OUTPUT_LAYER

SPEARMAN_BOUND = 0.5
"""A method passes when the median |Spearman rho| (trained vs randomised heatmap) is below this."""

TOP_BLOCKS_FROM = "block11_expand_conv"
"""First re-initialised layer of the ``top blocks`` stage in the fracture network (start of stage 6)."""

MEASURE = (
    "Spearman rank correlation between the heatmap of the trained model and that of a copy with "
    "re-initialised weights, over the original radiograph, per image; a method passes when the median "
    f"|rho| is below {SPEARMAN_BOUND} with the top blocks re-initialised"
)


@dataclass(frozen=True)
class RandomisationStage:
    """One randomised copy of the model: which layers lost their learned weights."""

    name: str
    layers: tuple[str, ...]
    description: str
    decisive: bool = True
    """Whether a method must stay below the bound at this stage to pass."""


def randomisation_stages(model: keras.Model, top_from: str = TOP_BLOCKS_FROM) -> list[RandomisationStage]:
    """The cascade: the output layer alone, then every layer with weights from ``top_from`` upwards."""
    names = [layer.name for layer in model.layers]
    if top_from not in names:
        raise ValueError(f"the model has no layer {top_from!r} to start the top-blocks randomisation from")
    top = tuple(layer.name for layer in model.layers[names.index(top_from):] if layer.weights)
    parameters = sum(model.get_layer(name).count_params() for name in top)
    return [
        RandomisationStage("output layer", (OUTPUT_LAYER,), "the final dense layer (the classifier) re-initialised",
                           decisive=False),
        RandomisationStage(
            "top blocks", top,
            f"{len(top)} layers from {top_from} to the output re-initialised "
            f"({parameters / model.count_params():.0%} of the parameters)",
        ),
    ]


def randomised_copy(model: keras.Model, layers: Sequence[str], seed: int = 0) -> keras.Model:
    """A copy of ``model`` with the named layers re-initialised (seeded) and all others' weights kept.

    Seeds Keras' global random generators with ``seed`` (``keras.utils.set_random_seed``).
    """
    unknown = set(layers) - {layer.name for layer in model.layers}
    if unknown:
        raise ValueError(f"no such layers in the model: {sorted(unknown)}")
    keras.utils.set_random_seed(seed)
    copy = keras.models.clone_model(model)
    for layer in model.layers:
        if layer.name not in layers and layer.weights:
            copy.get_layer(layer.name).set_weights(layer.get_weights())
    return copy


def rank_correlation(trained: np.ndarray, randomised: np.ndarray) -> float:
    """Spearman's rho between the trained and the randomised heatmap of the same image.

    A constant map carries no ranking. A flat *trained* map (Grad-CAM draws one when nothing speaks for
    'fractured') leaves nothing to compare: NaN, left out of the median. A flat *randomised* map against a
    trained one counts as rho = 0: nothing of the trained map survives.
    """
    trained, randomised = np.ravel(trained), np.ravel(randomised)
    if not np.ptp(trained) > 0:
        return math.nan
    if not np.ptp(randomised) > 0:
        return 0.0
    return float(spearmanr(trained, randomised).statistic)


HeatmapFunction = Callable[[keras.Model, str, np.ndarray, tuple[int, int]], np.ndarray]
"""(model, method, network input (1, size, size, 1), original shape) -> heatmap over the original image."""


def explainer_heatmap(positive_class: str = "fractured", last_conv_layer: str = LAST_CONV_LAYER, *,
                      built: tuple[keras.Model, Explainer] | None = None) -> HeatmapFunction:
    """A ``HeatmapFunction`` over ``Explainer``: one explainer per model, kept for the last two models seen.

    ``built``: a model and the explainer already built for it (evaluate's, for the trained model), used as is
    (building one and tracing its methods takes seconds)."""
    explainers: dict[int, tuple[keras.Model, Explainer]] = {} if built is None else {id(built[0]): built}

    def heatmap(model: keras.Model, method: str, network_input: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        if id(model) not in explainers:
            while len(explainers) >= 2:
                explainers.pop(next(iter(explainers)))
            explainers[id(model)] = (model, Explainer(model, positive_class, last_conv_layer))
        return explainers[id(model)][1].explain(network_input, shape, method).heatmap

    return heatmap


def randomisation_check(
    model: keras.Model,
    heatmap: HeatmapFunction,
    images: Sequence[tuple[np.ndarray, tuple[int, int]]],
    methods: Sequence[str],
    stages: Sequence[RandomisationStage],
    bound: float = SPEARMAN_BOUND,
    seed: int = 0,
) -> dict:
    """Run the cascade for each method on ``images`` ((network input, original shape) pairs).

    ``heatmap`` draws one heatmap with a given model (build its explainers once per model). Returns a
    JSON-ready summary: per method and stage the per-image rho and the median |rho|, the worst decisive
    stage's median, and whether the method passed (below ``bound`` at every decisive stage).
    """
    trained = {(method, i): heatmap(model, method, network_input, shape)
               for method in methods for i, (network_input, shape) in enumerate(images)}
    by_method: dict[str, dict] = {method: {"stages": {}} for method in methods}
    for stage_number, stage in enumerate(stages):
        copy = randomised_copy(model, stage.layers, seed=seed + stage_number)
        for method in methods:
            rhos = [rank_correlation(trained[method, i], heatmap(copy, method, network_input, shape))
                    for i, (network_input, shape) in enumerate(images)]
            finite = [abs(rho) for rho in rhos if not math.isnan(rho)]
            by_method[method]["stages"][stage.name] = {
                "median_abs_spearman": float(np.median(finite)) if finite else None,
                "images_compared": len(finite),  # images whose trained heatmap is not flat
                "spearman_per_image": [None if math.isnan(rho) else round(rho, 4) for rho in rhos],
            }
        del copy
    decisive = [stage.name for stage in stages if stage.decisive]
    for summary in by_method.values():
        medians = [summary["stages"][name]["median_abs_spearman"] for name in decisive]
        known = [median for median in medians if median is not None]
        summary["worst_median_abs_spearman"] = max(known) if known else None
        summary["passed"] = bool(known) and len(known) == len(medians) and max(known) < bound
    return {
        "reference": "Adebayo et al., Sanity Checks for Saliency Maps, NeurIPS 2018 (model-parameter randomisation)",
        "measure": MEASURE,
        "bound": bound,
        "images": len(images),
        "seed": seed,
        "stages": [{"name": stage.name, "layers": len(stage.layers), "description": stage.description,
                    "decisive": stage.decisive} for stage in stages],
        "by_method": by_method,
        "passed": [method for method in methods if by_method[method]["passed"]],
    }
