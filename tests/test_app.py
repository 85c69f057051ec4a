"""The Streamlit pages through AppTest, on the shipped model."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import MODEL_DIR, REPO

TIMEOUT = 180


@pytest.fixture
def app() -> AppTest:
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()


def _probability(at: AppTest) -> float:
    metric = next(m for m in at.metric if m.label == "Probability of fracture")
    return float(metric.value.rstrip("%")) / 100


def test_start_page_offers_upload_and_samples(app):
    assert not app.exception
    assert len(app.get("file_uploader")) == 1
    assert len(app.button) >= 3
    assert any("not a diagnosis" in info.value for info in app.info)


def test_sample_button_shows_probability_decision_and_heatmap(app):
    app.button[0].click().run()
    assert not app.exception and not app.error
    assert 0.0 <= _probability(app) <= 1.0
    assert any("Fracture suspected" in m.value or "No fracture detected" in m.value for m in app.markdown)
    assert any("Decision threshold" in m.value for m in app.markdown)
    assert len(app.image) >= 3  # original, overlay, heatmap
    # beside the map, how often this method's peak found the fracture on the test split (stored figures)
    stored = json.loads((MODEL_DIR / "evaluation" / "metrics.json").read_text())["localisation"]["by_method"]["Grad-CAM"]
    trust = [c.value for c in app.caption if c.value.startswith("How far to trust the map")]
    assert len(trust) == 1 and f"in {stored['pointing_hit_rate']:.0%} of them ({stored['pointing_hits']} images)" in trust[0]


def test_uploaded_radiograph_is_scored(app, fractured_sample):
    app.get("file_uploader")[0].set_value((fractured_sample.name, fractured_sample.read_bytes(), "image/jpeg"))
    app.run()
    assert not app.exception and not app.error
    assert 0.0 <= _probability(app) <= 1.0
    method = app.radio(key="method")
    for other in method.options[1:]:  # every other method that passed the sanity check
        method.set_value(other).run()
        assert not app.exception and len(app.image) >= 3
        method = app.radio(key="method")


def test_bad_file_shows_a_message_and_the_next_upload_works(app, fractured_sample):
    uploader = app.get("file_uploader")[0]
    uploader.set_value(("scan.png", b"%PDF-1.4 not an image at all", "image/png"))
    app.run()
    assert not app.exception
    assert len(app.error) == 1 and "Traceback" not in app.error[0].value
    assert not [m for m in app.metric if m.label == "Probability of fracture"]

    app.get("file_uploader")[0].set_value((fractured_sample.name, fractured_sample.read_bytes(), "image/jpeg"))
    app.run()
    assert not app.exception and not app.error
    assert 0.0 <= _probability(app) <= 1.0


def test_evaluation_page_renders_the_stored_metrics(app):
    app.switch_page("pages/evaluation.py").run()
    assert not app.exception and not app.error
    stored = json.loads((MODEL_DIR / "evaluation" / "metrics.json").read_text())
    shown = {}
    for metric in app.metric:  # the first of each label: the headline and operating-point figures
        shown.setdefault(metric.label, metric.value)
    assert shown["ROC AUC"] == f"{stored['roc_auc']:.3f}"
    assert shown["Sensitivity"] == f"{stored['operating_point']['sensitivity']:.3f}"
    assert len(app.table) >= 1  # confusion matrix


def test_threshold_explorer_recomputes_live(app):
    app.switch_page("pages/evaluation.py").run()
    app.slider(key="threshold_explorer").set_value(0.0).run()
    assert [m for m in app.metric if m.label == "Sensitivity"][-1].value == "100.0%"
    assert [m for m in app.metric if m.label == "Specificity"][-1].value == "0.0%"
    app.slider(key="threshold_explorer").set_value(1.0).run()
    assert not app.exception
    assert [m for m in app.metric if m.label == "Specificity"][-1].value == "100.0%"


def test_empty_heatmap_is_said_and_gets_no_peak_ring(app, sample_paths):
    """A flat Grad-CAM (no region raised the score) is stated in words, never marked with a ring at (0, 0)."""
    for index in range(len(sample_paths)):
        app.button[index].click().run()
        assert not app.exception
        (explanation,) = app.session_state["explanations"].values()
        flat = float(explanation.heatmap.max()) <= 0.0  # judged here from the map itself
        said = any("map is empty" in caption.value for caption in app.caption)
        assert said == flat
        captions = [image.proto.imgs[0].caption for image in app.image]
        assert any("(ring: peak)" in caption for caption in captions) == (not flat)
