"""The network: flat graph, named last conv layer, and ImageNet weights that reproduce PyTorch."""

import keras
import numpy as np
import pytest

from fracture_model import network
from tests.conftest import REPO

PRETRAINED = REPO / "assets" / "pretrained" / "efficientnet_lite0_imagenet.npz"
REFERENCE = REPO / "tests" / "fixtures" / "efficientnet_lite0_torch_reference.npz"


@pytest.fixture(scope="module")
def model():
    return network.build_fracture_model(64, backbone_weights=PRETRAINED)


def test_graph_is_flat_with_named_last_conv_layer(model):
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    last_conv = model.get_layer(network.LAST_CONV_LAYER)
    assert last_conv.output.shape[-1] == network.HEAD_FILTERS
    assert model.get_layer(network.OUTPUT_LAYER).activation is keras.activations.sigmoid


def test_output_is_a_probability_per_image(model):
    batch = np.random.default_rng(0).random((3, 64, 64, 1)).astype(np.float32)
    probabilities = np.asarray(model(batch, training=False))
    assert probabilities.shape == (3, 1)
    assert np.all((probabilities > 0) & (probabilities < 1))


def test_pretrained_backbone_reproduces_pytorch():
    """Pooled features of our Keras network with the converted weights equal PyTorch's (saved by the tool)."""
    reference = np.load(REFERENCE)
    classifier = network.imagenet_classifier(reference["inputs"].shape[1])
    with_weights = [n for n in network.backbone_layer_names(classifier) if classifier.get_layer(n).weights]
    assert network.load_backbone_weights(classifier, PRETRAINED) == len(with_weights) == 98
    features = keras.Model(classifier.input, classifier.get_layer("pool").output)
    pooled = np.asarray(features(reference["inputs"], training=False))
    np.testing.assert_allclose(pooled, reference["pooled_features"], atol=1e-4)


def test_fracture_model_feeds_the_gray_image_as_three_equal_channels(model):
    """The model maps [0, 1] gray to the [-1, 1] RGB the ImageNet weights expect."""
    rgb = keras.Model(model.input, model.get_layer("gray_to_rgb").output)
    out = np.asarray(rgb(np.full((1, 64, 64, 1), 0.75, np.float32)))
    np.testing.assert_allclose(out, 0.5)


def test_missing_backbone_weights_are_reported(tmp_path):
    partial = tmp_path / "partial.npz"
    with np.load(PRETRAINED) as saved:
        np.savez(partial, **{k: saved[k] for k in saved.files if not k.startswith("head_")})
    with pytest.raises(ValueError, match="head_"):
        network.build_fracture_model(64, backbone_weights=partial)
