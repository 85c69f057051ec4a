"""The decision the pages draw (``pages.components``), fast: AppTest on a script that only draws a prediction.

`tests/test_app.py` checks the same on the Read page with the shipped model; this one needs no model, so it
runs in a second and can be part of the mutation-testing subset.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest


def _draw(probability: float, threshold: float, in_distribution: bool | None = None, scored_anyway: bool = False):
    def script(probability, threshold, in_distribution, scored_anyway):
        from fracture_model.predictor import Prediction
        from pages.components import show_prediction

        card = {"operating_threshold": threshold, "operating_threshold_rule": "youden",
                "test": {"at_operating_threshold": {"sensitivity": 0.873, "specificity": 0.838}}}
        show_prediction(Prediction(probability, threshold, in_distribution), card, scored_anyway=scored_anyway)

    return AppTest.from_function(
        script, args=(probability, threshold, in_distribution, scored_anyway), default_timeout=60).run()


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


def test_scored_on_request_is_said():
    assert any("Scored on your request" in c.value for c in _draw(0.7, 0.5, scored_anyway=True).caption)
    assert not _draw(0.7, 0.5).caption
