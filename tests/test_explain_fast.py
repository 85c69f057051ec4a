"""The compiled Grad-CAM the app serves equals tf-keras-vis' own Grad-CAM map (to 1e-4) on the shipped test cases.

By default every 30th shipped test case (24 images, in batches); FRACTURE_LENS_ALL_CASES=1 checks all of them.
The radiograph is the left panel of each case image in ``assets/model/evaluation/cases/``. Grad-CAM and
Grad-CAM++ read the logit of one linearised clone, never the served model itself.
"""

import os

import cv2
import keras
import numpy as np

from fracture_model.explain import Explainer
from fracture_model.model_card import CASES_DIR, EVALUATION_DIR
from tests.conftest import MODEL_DIR

TOLERANCE = 1e-4
STEP = 1 if os.environ.get("FRACTURE_LENS_ALL_CASES") else 30
BATCH = 8


def _case_radiograph(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return image[:, : image.shape[1] // 2].astype(np.float32) / 255.0


def test_compiled_gradcam_equals_tf_keras_vis_on_the_shipped_test_cases(shipped_predictor, shipped_explainer):
    cases = sorted((MODEL_DIR / EVALUATION_DIR / CASES_DIR).glob("*.jpg"))[::STEP]
    assert len(cases) >= 20, "the shipped evaluation holds too few case images"
    worst, flat = 0.0, 0
    for start in range(0, len(cases), BATCH):
        batch = np.concatenate([shipped_predictor.network_input(_case_radiograph(path))
                                for path in cases[start:start + BATCH]])
        served = shipped_explainer.input_heatmaps(batch, "Grad-CAM")
        reference = shipped_explainer.input_heatmaps(batch, "Grad-CAM", reference=True)
        worst = max(worst, float(np.abs(served - reference).max()))
        flat += int((reference.max(axis=(1, 2)) == 0).sum())
    print(f"largest |compiled - tf-keras-vis| over {len(cases)} cases: {worst:.2e} ({flat} flat maps)")
    assert worst <= TOLERANCE
    assert flat < len(cases)  # the comparison is not vacuous: most maps have a peak


def _tiny_model_with_a_nonlinear_head() -> keras.Model:
    keras.utils.set_random_seed(7)
    inputs = keras.Input((24, 24, 1))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="features")(inputs)
    x = keras.layers.Flatten()(keras.layers.MaxPooling2D(4)(x))
    mostly_positive = keras.initializers.RandomUniform(-0.4, 0.5, seed=7)  # so that some cells speak for the class
    x = keras.layers.Dense(8, activation="relu", kernel_initializer=mostly_positive)(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", kernel_initializer=mostly_positive)(x))


def test_compiled_gradcam_matches_tf_keras_vis_on_a_tiny_model_with_a_nonlinear_head():
    """A head where Grad-CAM's weights really vary over the cells (dense layers after flattening)."""
    explainer = Explainer(_tiny_model_with_a_nonlinear_head(), last_conv_layer="features")
    batch = np.random.default_rng(1).uniform(size=(5, 24, 24, 1)).astype(np.float32)
    served = explainer.input_heatmaps(batch)
    reference = explainer.input_heatmaps(batch, reference=True)
    assert reference.max() > 0 and (reference < 1e-6).any()  # some cells speak for the class, some against
    assert np.abs(served - reference).max() <= TOLERANCE


def test_both_gradient_methods_read_the_logit_and_leave_the_served_model_alone():
    """Grad-CAM and Grad-CAM++ share one linearised clone (tf-keras-vis' ReplaceToLinear): both differentiate the
    logit, and the model that serves the probability still gives probabilities."""
    model = _tiny_model_with_a_nonlinear_head()
    batch = np.random.default_rng(2).uniform(size=(5, 24, 24, 1)).astype(np.float32)
    probabilities = np.asarray(model.predict_on_batch(batch))
    explainer = Explainer(model, last_conv_layer="features")
    logits = np.log(probabilities / (1.0 - probabilities))
    for method in ("Grad-CAM", "Grad-CAM++"):
        linear = explainer._visualisers[method].model
        np.testing.assert_allclose(np.asarray(linear.predict_on_batch(batch)), logits, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(model.predict_on_batch(batch)), probabilities)
    assert explainer.input_heatmaps(batch, "Grad-CAM++").max() > 0
