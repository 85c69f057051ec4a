"""The class quiz's logic: the cases a seed and filters choose, the click check against a box, the score,
the share link's settings, and the material the evaluation writes for it."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pandas as pd
import pytest

from fracture_model import quiz
from fracture_model.localisation import POINTING_TOLERANCE_PX, Box, load_boxes
from fracture_model.model_card import EVALUATION_DIR
from fracture_model.quiz import Answer, QuizCase, QuizLinkError, QuizSettings
from tests.conftest import MODEL_DIR

THRESHOLD = 0.3


def _case(number: int, *, fractured: bool = False, probability: float = 0.1, part: str = "hand",
          implant: bool = False, boxes: tuple[Box, ...] = (), heatmap_hit: bool | None = None,
          width: int = 400, height: int = 500) -> QuizCase:
    return QuizCase(
        image_id=f"IMG{number:07d}.jpg", body_part=part, implant=implant, fractured=fractured,
        probability_fractured=probability, model_decision="fractured" if probability >= THRESHOLD else "not fractured",
        radiograph=MODEL_DIR / "none.jpg", case_image=None, width=width, height=height, boxes=boxes,
        heatmap_hit=heatmap_hit,
    )


@pytest.fixture
def pool() -> list[QuizCase]:
    rng = np.random.default_rng(3)
    parts = ("hand", "leg", "hip")
    return [_case(number, fractured=number % 3 == 0, probability=float(rng.uniform()), part=parts[number % 3],
                  implant=number % 7 == 0) for number in range(60)]


# --- choosing cases --------------------------------------------------------------------------------------

def test_the_same_seed_gives_the_same_cases_in_the_same_order(pool):
    settings = QuizSettings(seed=42, cases=10)
    first = quiz.choose_cases(pool, settings, THRESHOLD)
    assert len(first) == 10 and len({case.image_id for case in first}) == 10
    assert quiz.choose_cases(list(reversed(pool)), settings, THRESHOLD) == first  # stored order does not matter


def test_another_seed_gives_another_order(pool):
    orders = {tuple(case.image_id for case in quiz.choose_cases(pool, QuizSettings(seed=seed, cases=10), THRESHOLD))
              for seed in range(5)}
    assert len(orders) == 5


def test_filters_keep_only_the_asked_cases(pool):
    chosen = quiz.choose_cases(pool, QuizSettings(seed=1, cases=50, body_parts=("leg",), implant="without"), THRESHOLD)
    assert chosen and all(case.body_part == "leg" and not case.implant for case in chosen)
    with_implant = quiz.choose_cases(pool, QuizSettings(seed=1, cases=50, implant="with"), THRESHOLD)
    assert with_implant and all(case.implant for case in with_implant)
    assert len(with_implant) == sum(case.implant for case in pool)  # fewer than asked: all of them


def test_hard_cases_are_the_model_s_errors_or_near_the_threshold():
    wrong = _case(1, fractured=True, probability=0.05)  # a missed fracture, far from the threshold
    near = _case(2, fractured=False, probability=THRESHOLD + quiz.HARD_MARGIN / 2)  # a false alarm, near it
    near_right = _case(3, fractured=False, probability=THRESHOLD - quiz.HARD_MARGIN / 2)  # right, but near
    easy = _case(4, fractured=False, probability=0.01)
    chosen = quiz.choose_cases([wrong, near, near_right, easy], QuizSettings(seed=0, cases=10, hard=True), THRESHOLD)
    assert {case.image_id for case in chosen} == {wrong.image_id, near.image_id, near_right.image_id}


# --- the click check -------------------------------------------------------------------------------------

def test_click_inside_near_and_far_from_a_box():
    case = _case(1, fractured=True, boxes=(Box(100, 200, 30, 40),))
    assert quiz.check_click(case, 110, 210) == quiz.ClickCheck(110, 210, 0.0, True)
    near = quiz.check_click(case, 130 + POINTING_TOLERANCE_PX - 0.5, 220)
    assert near.hit and near.distance_px == pytest.approx(POINTING_TOLERANCE_PX - 0.5)
    far = quiz.check_click(case, 130 + POINTING_TOLERANCE_PX + 0.5, 220)
    assert not far.hit and far.distance_px == pytest.approx(POINTING_TOLERANCE_PX + 0.5)
    corner = quiz.check_click(case, 130 + 12, 240 + 12)  # diagonal: Euclidean, 17 px from the corner
    assert not corner.hit and corner.distance_px == pytest.approx(math.hypot(12, 12))


def test_a_case_without_a_box_is_never_hit():
    check = quiz.check_click(_case(1), 10, 10)
    assert check.distance_px == math.inf and not check.hit


def test_click_on_the_shown_image_maps_to_radiograph_pixels():
    case = _case(1, width=400, height=500)
    # shown at 800 x 1000 (twice the size): the clicked screen pixel's centre, halved
    assert quiz.click_position(case, 219.5, 439.5, 800, 1000) == (110.0, 220.0)
    # shown at 200 x 250 (half): doubled; clicks past the edge stay on the image
    assert quiz.click_position(case, 54.5, 9.5, 200, 250) == (110.0, 20.0)
    assert quiz.click_position(case, 500, -3, 200, 250) == (400.0, 0.0)
    with pytest.raises(ValueError):
        quiz.click_position(case, 1, 1, 0, 250)


# --- the score -------------------------------------------------------------------------------------------

def test_score_counts_calls_clicks_and_the_model_on_the_same_cases():
    box = (Box(100, 100, 20, 20),)
    cases = [
        _case(1, fractured=True, probability=0.9, boxes=box, heatmap_hit=True),   # model right, heatmap hit
        _case(2, fractured=True, probability=0.1, boxes=box, heatmap_hit=False),  # model wrong
        _case(3, fractured=False, probability=0.1),                               # model right
        _case(4, fractured=False, probability=0.9),                               # model wrong, unanswered
    ]
    answers = {
        cases[0].image_id: Answer(fractured=True, click=(110.0, 110.0)),   # right, click inside
        cases[1].image_id: Answer(fractured=False, click=(300.0, 300.0)),  # wrong, click far
        cases[2].image_id: Answer(fractured=False, click=(5.0, 5.0)),      # right; a click without a box counts not
    }
    score = quiz.score_quiz(cases, answers)
    assert (score.cases, score.answered, score.student_correct, score.model_correct) == (4, 3, 2, 2)
    assert (score.pointed, score.pointed_hits, score.heatmap_cases, score.heatmap_hits) == (2, 1, 2, 1)
    assert score.unanswered == (cases[3].image_id,)


# --- the share link ---------------------------------------------------------------------------------------

def test_settings_travel_through_the_share_link():
    settings = QuizSettings(seed=7, cases=12, body_parts=("leg", "hand"), implant="without", hard=True)
    link = quiz.share_link("https://host/teach?old=1", settings)
    assert link == "https://host/teach?quiz=7&cases=12&parts=hand%2Cleg&implant=without&hard=1"
    query = dict(pair.split("=") for pair in link.split("?")[1].replace("%2C", ",").split("&"))
    assert QuizSettings.from_query(query) == settings
    assert QuizSettings.from_query({"quiz": ["3", "9"]}) == QuizSettings(seed=9)  # repeated: the last counts
    assert QuizSettings.from_query({}) is None
    assert QuizSettings.from_query({"quiz": "5"}) == QuizSettings(seed=5, cases=quiz.DEFAULT_CASES)


@pytest.mark.parametrize("query", [
    {"quiz": "abc"}, {"quiz": "-1"}, {"quiz": "99999999999"}, {"quiz": "1", "cases": "0"},
    {"quiz": "1", "cases": "51"}, {"quiz": "1", "cases": "ten"}, {"quiz": "1", "implant": "maybe"},
    {"quiz": "1", "hard": "yes"}, {"quiz": "1", "parts": "<script>"}, {"quiz": "1", "parts": "a" * 300},
])
def test_a_bad_link_gets_one_sentence(query):
    with pytest.raises(QuizLinkError) as raised:
        QuizSettings.from_query(query)
    message = str(raised.value)
    assert message.endswith(".") and message.count(". ") == 0 and "<script>" not in message


def test_unknown_body_part_is_named():
    with pytest.raises(QuizLinkError, match="no body part 'knee'; they have hand, leg"):
        QuizSettings(seed=1, body_parts=("knee",)).check_body_parts(["hand", "leg"])


# --- the stored material ----------------------------------------------------------------------------------

def test_material_written_from_a_fracatlas_folder_loads_back(tiny_fracatlas, tmp_path):
    """The radiographs without boxes and the boxes in their pixels, joined to the predictions."""
    coco = load_boxes(tiny_fracatlas / "annotations" / "coco_fractures.json")
    details = pd.read_csv(tiny_fracatlas / "dataset.csv")
    test = details.head(12).assign(
        path=lambda frame: [("Fractured/" if f else "Non_fractured/") + name
                            for name, f in zip(frame["image_id"], frame["fractured"], strict=True)])
    evaluation = tmp_path / EVALUATION_DIR
    quiz.write_quiz_material(test, tiny_fracatlas / "images", coco, evaluation)
    predictions = test.assign(body_part="hand", probability_fractured=0.5, decision="fractured", outcome="x",
                              case_image="", pointing_hit="")
    predictions.to_csv(evaluation / "predictions.csv", index=False)

    cases = quiz.load_quiz_cases(evaluation)
    assert [case.image_id for case in cases] == sorted(test["image_id"])
    for case in cases:
        original = cv2.imread(str(next((tiny_fracatlas / "images").rglob(case.image_id))), cv2.IMREAD_GRAYSCALE)
        stored = cv2.imread(str(case.radiograph), cv2.IMREAD_GRAYSCALE)
        assert (case.height, case.width) == original.shape == stored.shape  # small images are never enlarged
        assert np.abs(stored.astype(int) - original.astype(int)).mean() < 6  # the radiograph (JPEG noise)
        assert case.boxes == (coco[case.image_id] if case.fractured else ())
    assert any(case.boxes for case in cases)


def test_missing_material_is_reported(tmp_path):
    with pytest.raises(quiz.QuizMaterialMissing):
        quiz.load_quiz_cases(tmp_path)


def test_shipped_evaluation_has_material_for_every_test_case():
    """Whatever model is shipped: every stored test case has a quiz radiograph, and boxes exactly where fractured."""
    evaluation = MODEL_DIR / EVALUATION_DIR
    if not (evaluation / quiz.QUIZ_DIR).exists():
        pytest.skip("the shipped evaluation has no quiz material yet (python -m fracture_model.quiz)")
    predictions = pd.read_csv(evaluation / "predictions.csv", keep_default_na=False)
    cases = quiz.load_quiz_cases(evaluation)
    assert len(cases) == len(predictions)
    for case in cases:
        assert case.radiograph.exists()
        assert max(case.width, case.height) <= 512
        assert case.fractured or not case.boxes  # only fractured images keep boxes, as in the pointing game
        assert all(0 <= box.left and box.right <= case.width + 1 and box.bottom <= case.height + 1
                   for box in case.boxes)
    stored_boxes = predictions.set_index("image_id")["fracture_boxes"] if "fracture_boxes" in predictions else None
    if stored_boxes is not None:
        assert all(len(case.boxes) == int(stored_boxes[case.image_id]) for case in cases)
