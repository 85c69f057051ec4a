"""The evaluation page's localisation section, sanity check, implant list and case browser, through AppTest.

The page reads ``pages.shared.MODEL_DIR``; here it points at a model directory evaluated on the tiny
synthetic FracAtlas (a fracture network at 64 px with ImageNet features and an untrained head, threshold
at the median probability so that every outcome occurs), so the test does not depend on what
``assets/model`` holds.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from fracture_model import evaluate
from fracture_model.data import load_index
from fracture_model.model_card import CARD_FILE, MODEL_FILE, SPLIT_FILE
from fracture_model.network import LAST_CONV_LAYER, build_fracture_model
from fracture_model.preprocess import PREPROCESSING_NAME
from fracture_model.train import PRETRAINED
from tests.conftest import REPO

TIMEOUT = 180


@pytest.fixture(scope="module")
def evaluated_model_dir(tiny_fracatlas, tmp_path_factory):
    import keras

    from fracture_model.predictor import Predictor

    folder = tmp_path_factory.mktemp("evaluated_model")
    keras.utils.set_random_seed(5)
    model = build_fracture_model(64, backbone_weights=PRETRAINED)  # varied outputs
    model.save(folder / MODEL_FILE)
    frame = load_index(tiny_fracatlas)
    frame["split"] = np.where(np.arange(len(frame)) < 30, "test", "train")  # includes both implant images
    frame.to_csv(folder / SPLIT_FILE, index=False)
    card = {
        "name": "tiny test model", "model_file": MODEL_FILE, "input_size": 64, "preprocessing": PREPROCESSING_NAME,
        "output": "P(fractured)", "positive_class": "fractured", "last_conv_layer": LAST_CONV_LAYER,
        "operating_threshold": 0.5, "operating_threshold_rule": "youden",
    }
    (folder / CARD_FILE).write_text(json.dumps(card))
    test = frame[frame["split"] == "test"]
    # the model in memory scores as the saved one that evaluate loads (no need to load it twice)
    probabilities = evaluate.score_images(Predictor(model, card), tiny_fracatlas / "images", list(test["path"]))
    card["operating_threshold"] = float(np.median(probabilities))  # every outcome occurs
    (folder / CARD_FILE).write_text(json.dumps(card))
    # two images are enough for the page's sanity-check section (each heatmap image costs several seconds)
    assert evaluate.main(["--model-dir", str(folder), "--data", str(tiny_fracatlas), "--sanity-images", "2"]) == 0
    return folder


def _page(model_dir, monkeypatch) -> AppTest:
    import pages.shared

    monkeypatch.setattr(pages.shared, "MODEL_DIR", model_dir)
    st.cache_data.clear()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/evaluation.py").run()
    return at


@pytest.fixture
def page(evaluated_model_dir, monkeypatch):
    yield _page(evaluated_model_dir, monkeypatch)
    st.cache_data.clear()  # later tests read the shipped model's evaluation


def _texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.subheader])


def test_localisation_section_states_tolerance_figures_and_sanity(page, evaluated_model_dir):
    assert not page.exception and not page.error
    headings = [s.value for s in page.subheader]
    for heading in ("Do the heatmaps point at the fracture?", "Case browser"):
        assert heading in headings
    assert any(h.startswith("Sanity check") for h in headings) and any(h.startswith("Implant images") for h in headings)
    stored = json.loads((evaluated_model_dir / "evaluation" / "metrics.json").read_text())
    texts = _texts(page)
    assert "15 px" in texts and "Spearman" in texts and "median |rho|" in texts
    assert "taught where to look" not in texts  # this card records no box supervision
    hit = next(m for m in page.metric if m.label.startswith("Pointing-game hit rate"))
    assert hit.value == f"{stored['localisation']['by_method']['Grad-CAM']['pointing_hit_rate']:.0%}"
    tables = [frame.value for frame in page.dataframe]
    by_method = next(t for t in tables if "pointing-game hit rate" in t.columns)
    assert list(by_method["method"]) == list(stored["localisation"]["by_method"])
    assert set(by_method["sanity check"]) <= {"passed", "FAILED"}
    sanity = next(t for t in tables if "result" in t.columns)
    expected = {method: "passed" if summary["passed"] else "FAILED"
                for method, summary in stored["sanity_check"]["by_method"].items()}
    assert dict(zip(sanity["method"], sanity["result"], strict=True)) == expected


def _texts_with_card(model_dir, tmp_path, monkeypatch, **changes) -> str:
    """The page's texts for a copy of ``model_dir`` whose card has ``changes``."""
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    card = json.loads((folder / CARD_FILE).read_text())
    (folder / CARD_FILE).write_text(json.dumps({**card, **changes}))
    try:
        at = _page(folder, monkeypatch)
        assert not at.exception
        return _texts(at)
    finally:
        st.cache_data.clear()


def test_localisation_section_says_when_the_model_was_trained_on_boxes(evaluated_model_dir, tmp_path, monkeypatch):
    texts = _texts_with_card(evaluated_model_dir, tmp_path, monkeypatch, box_supervision={
        "weight": 1.0, "loss": "pointing loss", "validation_cell_pointing": 0.5})
    assert "taught where to look" in texts and "test boxes measured here were never seen" in texts


def test_page_says_when_probabilities_average_test_time_views(page, evaluated_model_dir, tmp_path, monkeypatch):
    assert "test-time views" not in _texts(page)  # this card has none
    texts = _texts_with_card(evaluated_model_dir, tmp_path, monkeypatch, test_time_views={
        "zoom_factors": [0.7], "calibration": {"slope": 1.0, "intercept": 0.0}})
    assert "as it is and shrunk to 70% of its side" in texts and "heatmaps explain the radiograph as it is" in texts
    assert "upside down" not in texts
    texts = _texts_with_card(evaluated_model_dir, tmp_path / "flips", monkeypatch, test_time_views={
        "zoom_factors": [0.7], "flips": ["vertical"], "calibration": {"slope": 1.0, "intercept": 0.0}})
    assert "as it is, shrunk to 70% of its side in the middle of the square and upside down" in texts


def test_case_browser_filters(page, evaluated_model_dir):
    predictions = pd.read_csv(evaluated_model_dir / "evaluation" / "predictions.csv", keep_default_na=False)
    assert len(page.image) >= 12  # a full first page of cases
    page.multiselect(key="case_outcome").set_value(["FN", "TP"]).run()
    assert not page.exception
    fractured = int((predictions["fractured"] == 1).sum())
    assert any(f"**{fractured}** of {len(predictions)} test cases" in m.value for m in page.markdown)

    part = predictions["body_part"].iloc[0]
    page.multiselect(key="case_body_part").set_value([part]).run()
    page.radio(key="case_implant").set_value("With implant").run()
    assert not page.exception
    expected = predictions[(predictions["fractured"] == 1) & (predictions["body_part"] == part)
                           & (predictions["hardware"] == 1)]
    assert any(f"**{len(expected)}** of {len(predictions)} test cases" in m.value for m in page.markdown)

    page.radio(key="case_implant").set_value("Without implant").run()
    page.multiselect(key="case_outcome").set_value([]).run()
    assert not page.exception
    assert any(f"**0** of {len(predictions)} test cases" in m.value for m in page.markdown)

    page.multiselect(key="case_outcome").set_value(["FP", "TN", "FN", "TP"]).run()
    page.multiselect(key="case_body_part").set_value(sorted(predictions["body_part"].unique())).run()
    page.number_input(key="case_page").set_value(99).run()  # past the last page: shows the last one
    assert not page.exception
    assert any(c.value.startswith("Page 3 of 3") for c in page.caption)  # 30 cases, 12 a page


def test_implant_cases_called_fractured_are_listed(page, evaluated_model_dir):
    predictions = pd.read_csv(evaluated_model_dir / "evaluation" / "predictions.csv", keep_default_na=False)
    called = predictions[(predictions["hardware"] == 1) & (predictions["decision"] == "fractured")]
    texts = _texts(page)
    assert "brightness rank" in texts
    if len(called):
        listed = next(frame.value for frame in page.dataframe if "peak_brightness_rank" in frame.value.columns)
        assert sorted(listed["image_id"]) == sorted(called["image_id"])


def test_page_copes_with_an_evaluation_from_before_localisation(evaluated_model_dir, tmp_path, monkeypatch):
    old = tmp_path / "old_model"
    shutil.copytree(evaluated_model_dir, old)
    metrics_path = old / "evaluation" / "metrics.json"
    results = json.loads(metrics_path.read_text())
    for key in ("localisation", "sanity_check", "explanation_methods", "implant_heatmaps"):
        results.pop(key)
    metrics_path.write_text(json.dumps(results))
    predictions = pd.read_csv(old / "evaluation" / "predictions.csv", keep_default_na=False)
    predictions = predictions[["image_id", "path", "body_part", "hardware", "fractured", "probability_fractured",
                               "decision", "outcome", "case_image"]]
    predictions.to_csv(old / "evaluation" / "predictions.csv", index=False)
    at = _page(old, monkeypatch)
    try:
        assert not at.exception and not at.error
        assert len(at.info) >= 2  # no localisation figures, no sanity check: said so
        assert "Case browser" in [s.value for s in at.subheader]
    finally:
        st.cache_data.clear()


def test_reading_page_offers_only_methods_that_passed(evaluated_model_dir, monkeypatch):
    import pages.shared

    monkeypatch.setattr(pages.shared, "MODEL_DIR", evaluated_model_dir)
    st.cache_data.clear()
    try:
        stored = json.loads((evaluated_model_dir / "evaluation" / "metrics.json").read_text())
        assert pages.shared.explanation_methods() == tuple(stored["explanation_methods"])
        results = dict(stored, explanation_methods=["Grad-CAM"])
        (evaluated_model_dir / "evaluation" / "metrics.json").write_text(json.dumps(results))
        st.cache_data.clear()
        assert pages.shared.explanation_methods() == ("Grad-CAM",)
        results.pop("explanation_methods")
        (evaluated_model_dir / "evaluation" / "metrics.json").write_text(json.dumps(results))
        st.cache_data.clear()
        assert pages.shared.explanation_methods() == ("Grad-CAM", "Grad-CAM++", "Faster-ScoreCAM")
    finally:
        (evaluated_model_dir / "evaluation" / "metrics.json").write_text(json.dumps(stored))
        st.cache_data.clear()


def test_robustness_section_shows_the_stored_benchmark_and_its_missed_targets(page, evaluated_model_dir, tmp_path,
                                                                                monkeypatch):
    from fracture_model import robustness
    from fracture_model.model_card import model_sha256

    assert any("No robustness benchmark is stored" in info.value for info in page.info)  # the fixture has none
    folder = tmp_path / "benchmarked"
    shutil.copytree(evaluated_model_dir, folder)

    def figures(auc, specificity):
        return {"images": 376, "fractured": 126, "roc_auc": auc, "roc_auc_ci95": [auc - 0.03, auc + 0.02],
                "sensitivity": 0.87, "specificity": specificity, "specificity_ci95": [specificity - 0.06,
                                                                                     specificity + 0.05],
                "pointing_hit_rate": 0.75, "pointing_images": 126, "out_of_distribution_rate": 0.1}

    stored = {"model_version": model_sha256(folder)[:12], "split": "test", "seed": 0, "normal_images": 250,
              "sets": {"unshifted": figures(0.927, 0.816), "zoom 1.5x box": figures(0.882, 0.748),
                       "224 px + JPEG 75": figures(0.893, 0.680), "mix of all": figures(0.870, 0.75)}}
    path = folder / "evaluation" / robustness.ROBUSTNESS_FILE
    path.write_text(json.dumps(stored))
    at = _page(folder, monkeypatch)
    try:
        assert not at.exception and not at.error and not at.warning
        table = next(frame.value for frame in at.dataframe if "targets missed" in frame.value.columns)
        missed = dict(zip(table["set"], table["targets missed"], strict=True))
        assert missed == {"unshifted": "(reference)", "zoom 1.5x box": "none",
                          "224 px + JPEG 75": "specificity under 0.70",
                          "mix of all": "ROC AUC 0.057 below the unshifted set's"}
        assert table.loc[table["set"] == "224 px + JPEG 75", "specificity 95% CI"].item() == "0.62 to 0.73"
        assert any(metric.value == "1 of 3" for metric in at.metric)
        assert "a fixed draw of 250 normal ones" in _texts(at)

        path.write_text(json.dumps(stored | {"model_version": "0123456789ab"}))
        st.cache_data.clear()
        at = _page(folder, monkeypatch)
        assert any("measured on model version 0123456789ab" in warning.value for warning in at.warning)

        for unreadable in ("{not json", json.dumps({"sets": [1, 2]}), json.dumps({"model_version": "x"})):
            path.write_text(unreadable)
            st.cache_data.clear()
            at = _page(folder, monkeypatch)
            assert not at.exception and any("could not be read" in warning.value for warning in at.warning)
        path.write_text(json.dumps(stored | {"sets": {"unshifted": {}, "mix of all": {"roc_auc": 0.5}}}))
        st.cache_data.clear()
        at = _page(folder, monkeypatch)
        assert not at.exception  # figures missing from a set: shown as missing, no target claimed missed
        table = next(frame.value for frame in at.dataframe if "targets missed" in frame.value.columns)
        assert list(table["targets missed"]) == ["(reference)", "none"]
    finally:
        st.cache_data.clear()
