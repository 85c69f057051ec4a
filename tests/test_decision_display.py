"""The decision the pages draw (``pages.components``), fast: AppTest on a script that only draws a prediction.

`tests/test_app.py` checks the same on the Read page with the shipped model; this one needs no model, so it
runs in a second and can be part of the mutation-testing subset.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest


def _draw(probability: float, threshold: float, in_distribution: bool | None = None, scored_anyway: bool = False,
          featureless: bool = False):
    def script(probability, threshold, in_distribution, scored_anyway, featureless):
        from fracture_model.predictor import Prediction
        from pages.components import show_prediction

        card = {"operating_threshold": threshold, "operating_threshold_rule": "youden",
                "test": {"at_operating_threshold": {"sensitivity": 0.873, "specificity": 0.838}}}
        show_prediction(Prediction(probability, threshold, in_distribution, featureless=featureless), card,
                        scored_anyway=scored_anyway)

    return AppTest.from_function(
        script, args=(probability, threshold, in_distribution, scored_anyway, featureless), default_timeout=60).run()


def _decisions(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "Fracture suspected" in m.value or "No fracture detected" in m.value]


@pytest.mark.parametrize(
    ("probability", "threshold", "shown"),
    [
        (0.50, 0.50, "### :red-background[Fracture suspected]"),  # at the threshold: fractured (p >= t)
        (0.51, 0.50, "### :red-background[Fracture suspected]"),
        (0.49, 0.50, "### :green-background[No fracture detected]"),
        (0.13, 0.122, "### :red-background[Fracture suspected]"),
        (0.12, 0.122, "### :green-background[No fracture detected]"),  # shown as 12% either way: the label decides
    ],
)
def test_label_and_colour_follow_the_threshold(probability, threshold, shown):
    at = _draw(probability, threshold)
    assert not at.exception
    assert _decisions(at) == [shown]
    assert [m.value for m in at.metric if m.label == "Probability of fracture"] == [f"{probability:.0%}"]
    sentence = next(m.value for m in at.markdown if m.value.startswith("Decision threshold"))
    assert sentence.startswith(f"Decision threshold **{threshold:.2f}**, chosen on the validation split as the point")
    assert "found **87%** of fractures (sensitivity) and cleared **84%** of normal radiographs" in sentence


@pytest.mark.parametrize(("in_distribution", "warned"), [(None, False), (True, False), (False, True)])
def test_out_of_distribution_note_beside_the_decision(in_distribution, warned):
    from fracture_model.ood import OUT_OF_DISTRIBUTION_NOTE

    at = _draw(0.7, 0.5, in_distribution)
    assert [w.value for w in at.warning] == ([OUT_OF_DISTRIBUTION_NOTE] if warned else [])
    assert len(_decisions(at)) == 1  # the decision is still shown


def test_a_featureless_image_gets_its_own_sentence_and_still_its_decision():
    from fracture_model.ood import FEATURELESS_NOTE

    at = _draw(0.03, 0.144, False, featureless=True)
    assert [w.value for w in at.warning] == [FEATURELESS_NOTE]
    assert _decisions(at) == ["### :green-background[No fracture detected]"]


def test_scored_on_request_is_said():
    assert any("Scored on your request" in c.value for c in _draw(0.7, 0.5, scored_anyway=True).caption)
    assert not _draw(0.7, 0.5).caption


# ------------------------------------------------------------------------------------------------
# The other things pages.components draws, without a model (fast enough for the mutation subset)
# ------------------------------------------------------------------------------------------------

def _heatmap_page(flat: bool) -> AppTest:
    def script(flat):
        import numpy as np

        from fracture_model.explain import Explanation
        from pages.components import show_heatmap

        pixels = np.tile(np.linspace(0.1, 0.9, 300, dtype=np.float32), (200, 1))
        heatmap = np.zeros_like(pixels)
        if not flat:
            heatmap[150:170, 250:270] = 1.0
        show_heatmap(pixels, Explanation("Grad-CAM", heatmap, heatmap[:64, :64]), name="Sample",
                     trust="Peaks on the fracture in 77% of test images.")

    return AppTest.from_function(script, args=(flat,), default_timeout=120).run()


@pytest.mark.parametrize("flat", [True, False])
def test_heatmap_panels_say_when_the_map_is_empty_and_otherwise_how_far_to_trust_it(flat):
    at = _heatmap_page(flat)
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert any("map is empty" in c for c in captions) is flat
    assert any("77% of test images" in c for c in captions) is not flat
    images = at.get("image")
    assert len(images) == 3
    labels = [image.captions[0] for image in images]
    assert labels[0] == "Sample" and labels[2] == "Grad-CAM alone (red: most influence)"
    assert labels[1] == "Grad-CAM over the radiograph" + ("" if flat else " (ring: peak)")


def test_heatmap_chooser_offers_the_methods_that_passed_and_warns_when_none_did(monkeypatch):
    import pages.shared

    def script():
        import streamlit as st

        from pages.components import choose_heatmap

        st.session_state["chosen"] = choose_heatmap("test")

    monkeypatch.setattr(pages.shared, "stored_results", lambda: {"explanation_methods": ["Grad-CAM++"]})
    at = AppTest.from_function(script, default_timeout=60).run()
    assert at.radio(key="test_method").options == ["Grad-CAM++"]
    assert at.session_state["chosen"] == ("Grad-CAM++", 0.4)
    monkeypatch.setattr(pages.shared, "stored_results", lambda: {"explanation_methods": []})
    at = AppTest.from_function(script, default_timeout=60).run()
    assert at.session_state["chosen"] == (None, 0.0)
    assert any("No heatmap method passed" in w.value for w in at.warning)


@pytest.mark.parametrize("verdicts", [0, 7])
def test_review_figures_are_the_shares_of_decided_verdicts(verdicts):
    def script(verdicts):
        from fracture_model.reviews import ReviewFigures
        from pages.components import show_review_figures

        show_review_figures(ReviewFigures(verdicts=verdicts, cases=5, reviewers=2, heatmap_yes=3, heatmap_no=1,
                                          heatmap_unsure=1, agree_yes=1, agree_no=3, agree_unsure=0),
                            pointing_hit_rate=0.771)

    at = AppTest.from_function(script, args=(verdicts,), default_timeout=60).run()
    if verdicts == 0:
        assert not at.metric and "No reviewer has recorded" in at.caption[0].value
        return
    values = {metric.label: metric.value for metric in at.metric}
    assert values == {"Heatmaps judged on the fracture": "75%", "Reviewers agreeing with the model's call": "25%",
                      "Cases reviewed": "5", "Automatic pointing game (Grad-CAM)": "77%"}
