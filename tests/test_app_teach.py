"""The teach and review pages through Streamlit's AppTest, on whatever evaluation assets/model holds.

Which cases a quiz holds is computed here with ``fracture_model.quiz`` from the stored files, never written
down; the verdicts go to a real SQLite file in a temporary folder.
"""

from __future__ import annotations

import sqlite3

import pytest
from streamlit.testing.v1 import AppTest

from fracture_model import quiz
from fracture_model.model_card import EVALUATION_DIR, model_sha256, read_card
from fracture_model.reviews import ENVIRONMENT_VARIABLE
from tests.conftest import MODEL_DIR, REPO

TIMEOUT = 120
CASES = 3


@pytest.fixture(scope="module")
def stored():
    try:
        cases = quiz.load_quiz_cases(MODEL_DIR / EVALUATION_DIR)
    except quiz.QuizMaterialMissing:
        pytest.skip("the shipped evaluation has no quiz material (python -m fracture_model.quiz)")
    return cases, float(read_card(MODEL_DIR)["operating_threshold"])


def _page(path: str, query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    at.switch_page(path)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    return at.run()


def _texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error])


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_the_teacher_builds_a_quiz_and_gets_a_share_link(stored):
    cases, _ = stored
    at = _page("pages/teach.py")
    assert not at.exception and not at.error
    assert f"{len(cases)} test cases match these filters" in _texts(at)
    at.number_input(key="teach_cases").set_value(CASES)
    at.number_input(key="teach_seed").set_value(1234)
    at.button[0].click().run()
    assert at.query_params["quiz"] in ("1234", ["1234"]) and at.query_params["cases"] in (str(CASES), [str(CASES)])
    assert not at.exception and not at.error
    assert any(b.label == "Reveal" for b in at.button)
    link = next(c.value for c in at.code)
    assert link.endswith(f"/teach?quiz=1234&cases={CASES}")


def test_the_filters_narrow_the_cases(stored):
    cases, threshold = stored
    part = sorted({case.body_part for case in cases})[0]
    at = _page("pages/teach.py")
    at.multiselect(key="teach_parts").set_value([part])
    at.checkbox(key="teach_hard").check().run()
    expected = quiz.matching_cases(cases, quiz.QuizSettings(seed=0, body_parts=(part,), hard=True), threshold)
    assert f"{len(expected)} test cases match these filters" in _texts(at)


def test_a_share_link_opens_its_cases_and_reveal_tells_the_truth(stored):
    cases, threshold = stored
    settings = quiz.QuizSettings(seed=77, cases=CASES)
    chosen = quiz.choose_cases(cases, settings, threshold)
    at = _page("pages/teach.py", settings.to_query())
    assert not at.exception and not at.error
    for case in chosen:
        call = "Not fractured" if case.fractured else "Fractured"  # always wrong: the score must say so
        at.radio[0].set_value(call).run()
        next(b for b in at.button if b.label == "Reveal").click().run()
        texts = _texts(at)
        assert f"Label: {'fractured' if case.fractured else 'not fractured'}" in texts
        assert "Your call was **wrong**" in texts
        assert _metric(at, "Model: probability of fracture") == f"{case.probability_fractured:.0%}"
        assert _metric(at, "Model's call") == ("Fracture suspected" if case.model_says_fractured
                                               else "No fracture detected")
        if case.boxes:
            assert "You did not point" in texts
        next(b for b in at.button if b.label in ("Next", "See the score")).click().run()
    assert not at.exception
    assert _metric(at, "Your calls") == f"0 of {len(chosen)} right"
    model_right = sum(case.model_correct for case in chosen)
    assert _metric(at, "The model's calls on the same cases") == f"{model_right} of {len(chosen)} right"


@pytest.mark.parametrize(("query", "sentence"), [
    ({"quiz": "abc"}, "The quiz number must be a whole number"),
    ({"quiz": "1", "cases": "500"}, "The number of cases must be between 1 and"),
    ({"quiz": "1", "parts": "knee"}, "The test cases have no body part 'knee'"),
])
def test_a_bad_link_says_why_and_the_app_keeps_running(stored, query, sentence):
    at = _page("pages/teach.py", query)
    assert not at.exception
    assert any(sentence in error.value for error in at.error), [e.value for e in at.error]


# --- reviewers ---------------------------------------------------------------------------------------------

@pytest.fixture
def verdict_db(tmp_path, monkeypatch):
    path = tmp_path / "verdicts.sqlite3"
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(path))
    return path


def _verdict_rows(path) -> list[tuple]:
    with sqlite3.connect(path) as connection:
        return connection.execute(
            "SELECT model_sha256, image_id, reviewer, heatmap_on_fracture, agrees_with_model, comment FROM verdicts"
        ).fetchall()


def test_a_reviewer_records_a_verdict_under_the_model_version(stored, verdict_db):
    at = _page("pages/review.py")
    assert not at.exception and not at.error
    image_id = at.selectbox(key="review_case").value
    at.text_input(key="review_name").input("Dr <b>Ada</b>")
    at.radio(key="review_heatmap").set_value("no")
    at.radio(key="review_agree").set_value("unsure")
    at.text_area(key="review_comment").input("**peak** on the <script>alert(1)</script> plate")
    at.button[0].click().run()  # the form's submit button
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [s.value for s in at.success] == [f"Verdict on {image_id} recorded."]
    assert _verdict_rows(verdict_db) == [(model_sha256(MODEL_DIR), image_id,
                                          "Dr <b>Ada</b>", "no", "unsure",
                                          "**peak** on the <script>alert(1)</script> plate")]
    assert all("<script>" not in markdown.value for markdown in at.markdown)  # shown in a table, as text
    assert _metric(at, "Cases reviewed") == "1"
    fractured = next(case.fractured for case in stored[0] if case.image_id == image_id)
    assert _metric(at, "Heatmaps judged on the fracture") == ("0%" if fractured else "n/a")


def test_a_verdict_without_a_name_is_refused_with_a_sentence(stored, verdict_db):
    at = _page("pages/review.py")
    at.radio(key="review_heatmap").set_value("yes")
    at.radio(key="review_agree").set_value("yes")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Type your name before recording a verdict."]
    assert _verdict_rows(verdict_db) == []


def test_the_evaluation_page_shows_the_reviewers_figures(stored, verdict_db):
    from fracture_model.reviews import ReviewStore, Verdict

    store = ReviewStore(verdict_db)
    sha = model_sha256(MODEL_DIR)
    fractured = [case for case in stored[0] if case.fractured][:4]
    normal = next(case for case in stored[0] if not case.fractured)
    for number, case in enumerate(fractured):
        store.record(Verdict(sha, case.image_id, "Ada", "yes" if number else "no", "yes"))
    store.record(Verdict(sha, normal.image_id, "Ada", "no", "no"))  # no fracture: not in the heatmap share
    store.record(Verdict("0" * 64, fractured[0].image_id, "Ada", "yes", "no"))  # another model: not counted
    at = _page("pages/evaluation.py")
    assert not at.exception
    assert "What reviewers say about the heatmaps" in [s.value for s in at.subheader]
    assert _metric(at, "Heatmaps judged on the fracture") == f"{(len(fractured) - 1) / len(fractured):.0%}"
    assert _metric(at, "Reviewers agreeing with the model's call") == f"{len(fractured) / (len(fractured) + 1):.0%}"
    assert _metric(at, "Cases reviewed") == str(len(fractured) + 1)
