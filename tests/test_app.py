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
    metrics = json.loads((MODEL_DIR / "evaluation" / "metrics.json").read_text())
    stored = metrics["localisation"]["by_method"]["Grad-CAM"]
    trust = [c.value for c in app.caption if c.value.startswith("How far to trust the map")]
    assert len(trust) == 1
    assert f"in {stored['pointing_hit_rate']:.0%} of them ({stored['pointing_hits']} images)" in trust[0]


def test_uploaded_radiograph_is_scored(app, fractured_sample):
    app.get("file_uploader")[0].set_value((fractured_sample.name, fractured_sample.read_bytes(), "image/jpeg"))
    app.run()
    assert not app.exception and not app.error
    assert 0.0 <= _probability(app) <= 1.0
    method = app.radio(key="read_method")
    for other in method.options[1:]:  # every other method that passed the sanity check
        method.set_value(other).run()
        assert not app.exception and len(app.image) >= 3
        method = app.radio(key="read_method")


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


# ------------------------------------------------------------------------------------------------
# The decision shown is the one the card's threshold makes, in its colour, on each side of it
# ------------------------------------------------------------------------------------------------

LABEL_COLOURS = {"Fracture suspected": "red", "No fracture detected": "green"}


@pytest.fixture
def card_threshold(monkeypatch):
    """Set the operating threshold of the model card the app reads, for one test: the pages and the predictor
    (which takes its threshold from the card when it loads) see the same value."""
    import streamlit as st

    import pages.shared
    from fracture_model.model_card import read_card

    def set_threshold(threshold: float) -> None:
        card = {**read_card(MODEL_DIR), "operating_threshold": threshold}
        monkeypatch.setattr(pages.shared, "read_card", lambda _folder: card)
        monkeypatch.setattr(pages.shared.model_service().predictor, "operating_threshold", threshold)
        st.cache_data.clear()

    yield set_threshold
    st.cache_data.clear()  # later tests read the shipped card


def _decision_shown(at: AppTest) -> tuple[str, str]:
    """(label, colour) of the one decision on the page."""
    shown = [(label, m.value) for m in at.markdown for label in LABEL_COLOURS if label in m.value]
    assert len(shown) == 1, shown
    label, markdown = shown[0]
    colours = [colour for colour in ("red", "green") if f":{colour}-background[{label}]" in markdown]
    assert len(colours) == 1, markdown
    return label, colours[0]


@pytest.mark.parametrize("side", ["above", "at", "below"])
def test_decision_label_and_colour_follow_the_card_threshold(app, card_threshold, fractured_sample, side):
    import pages.shared
    from fracture_model.imaging import read_radiograph

    predictor = pages.shared.model_service().predictor
    probability = predictor.predict(read_radiograph(fractured_sample.read_bytes()).pixels).probability_fractured
    step = min(0.01, probability / 2, (1 - probability) / 2)
    threshold = {"above": probability - step, "at": probability, "below": probability + step}[side]
    card_threshold(threshold)

    app.get("file_uploader")[0].set_value((fractured_sample.name, fractured_sample.read_bytes(), "image/jpeg"))
    app.run()
    assert not app.exception and not app.error
    expected = "Fracture suspected" if side in ("above", "at") else "No fracture detected"  # fractured: p >= t
    assert _decision_shown(app) == (expected, LABEL_COLOURS[expected])
    assert any(f"Decision threshold **{threshold:.2f}**" in m.value for m in app.markdown)


# ------------------------------------------------------------------------------------------------
# Branches the samples do not reach
# ------------------------------------------------------------------------------------------------


def test_an_empty_heatmap_is_said_without_a_ring_or_a_trust_sentence(app, monkeypatch):
    """A quarter of normal test images get an all-zero Grad-CAM; every shipped sample has a peak, so the map
    the model service returns is emptied here (the same explanation, its maps set to zero)."""
    import numpy as np

    from fracture_model.explain import Explanation
    from fracture_model.serving import ModelService

    explain = ModelService.explain

    def empty(self, pixels, method):
        found = explain(self, pixels, method)
        return Explanation(found.method, np.zeros_like(found.heatmap), np.zeros_like(found.input_heatmap))

    monkeypatch.setattr(ModelService, "explain", empty)
    app.button[0].click().run()
    assert not app.exception and not app.error
    method = app.radio(key="read_method").value
    assert [c.value for c in app.caption if "map is empty" in c.value] == [
        f"The {method} map is empty: no region of this image raised the fracture score."]
    captions = [caption for image in app.image for caption in image.captions]
    assert f"{method} over the radiograph" in captions and not any("ring" in c for c in captions)
    assert not [c for c in app.caption if c.value.startswith("How far to trust the map")]


def test_an_unexpected_error_while_reading_is_one_sentence_and_logs_no_content(
    app, monkeypatch, caplog, fractured_sample
):
    import fracture_model.imaging

    def broken(data, *, window=None):
        raise RuntimeError("Quixleyfarn pixel dump")  # a bug, with file content in its message

    monkeypatch.setattr(fracture_model.imaging, "read_radiograph", broken)
    app.get("file_uploader")[0].set_value((fractured_sample.name, fractured_sample.read_bytes(), "image/jpeg"))
    app.run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        "Sorry, this file could not be read. Please try another PNG, JPEG or DICOM radiograph."]
    assert not [m for m in app.metric if m.label == "Probability of fracture"]
    logged = [record.getMessage() for record in caplog.records if record.name == "fracture_lens"]
    assert logged == ["unexpected RuntimeError while decoding an upload"]
    assert "Quixleyfarn" not in caplog.text


def test_no_heatmap_when_no_method_passed_the_sanity_check(app, monkeypatch):
    import pages.shared

    stored = pages.shared.stored_results()
    monkeypatch.setattr(pages.shared, "stored_results", lambda: {**stored, "explanation_methods": []})
    app.button[0].click().run()
    assert not app.exception and not app.error
    assert 0.0 <= _probability(app) <= 1.0 and _decision_shown(app)  # the probability and decision still show
    assert any("No heatmap method passed the sanity check" in w.value for w in app.warning)
    assert not app.image


def test_evaluation_page_without_a_stored_evaluation_says_how_to_make_one(monkeypatch, tmp_path):
    import shutil

    import streamlit as st

    import pages.shared
    from fracture_model.model_card import CARD_FILE

    shutil.copy(MODEL_DIR / CARD_FILE, tmp_path / CARD_FILE)  # a model directory never evaluated
    monkeypatch.setattr(pages.shared, "MODEL_DIR", tmp_path)
    st.cache_data.clear()
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
        at.switch_page("pages/evaluation.py").run()
        assert not at.exception
        assert [e.value for e in at.error] == [
            "No stored evaluation was found. Run `python -m fracture_model.evaluate` to create it."]
        assert not at.metric
    finally:
        st.cache_data.clear()
