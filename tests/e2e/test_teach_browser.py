"""The class quiz in chromium against a freshly started server: the share link as the server's very first
request, two students on the same link, another quiz number, clicking on the fracture and the reveal, and
the page on a phone and on a projector.

Which cases the quiz holds is read from the shipped evaluation (whatever model is there), never written here.
"""

from __future__ import annotations

import base64
import io
import json
from urllib.parse import urljoin

import numpy as np
import pytest
from PIL import Image

from fracture_model import quiz
from fracture_model.localisation import scale_box
from fracture_model.model_card import EVALUATION_DIR
from tests.conftest import MODEL_DIR
from tests.e2e.conftest import SCREENSHOTS, WAIT_MS, running_server

pytestmark = pytest.mark.browser

CASES = 4
CLICK_FRAME = 'iframe[title="streamlit_image_coordinates.streamlit_image_coordinates"]'
PHONE = {"width": 390, "height": 844}
PROJECTOR = {"width": 1920, "height": 1080}


def _stored_cases() -> list[quiz.QuizCase]:
    try:
        return quiz.load_quiz_cases(MODEL_DIR / EVALUATION_DIR)
    except quiz.QuizMaterialMissing:
        pytest.skip("the shipped evaluation has no quiz material (python -m fracture_model.quiz)")


@pytest.fixture(scope="module")
def quizzes():
    """Two quiz numbers from the shipped cases: the first opens on a fractured case with a box; the other
    opens on a different case."""
    cases = _stored_cases()
    threshold = float(json.loads((MODEL_DIR / "model_card.json").read_text())["operating_threshold"])

    def first(seed: int) -> quiz.QuizCase:
        return quiz.choose_cases(cases, quiz.QuizSettings(seed=seed, cases=CASES), threshold)[0]

    seed = next((seed for seed in range(1, 5000) if first(seed).boxes), None)
    if seed is None:
        pytest.skip("no stored test case has a fracture box")
    other = next(other for other in range(seed + 1, seed + 5000) if first(other).image_id != first(seed).image_id)
    return {"seed": seed, "first": first(seed), "other": other, "other_first": first(other)}


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    """A server no browser has talked to yet: the first request it gets is a test's share link."""
    with running_server(tmp_path_factory.mktemp("teach_server")) as started:
        yield started


def _link(server, seed: int) -> str:
    return f"{server.url}/teach?quiz={seed}&cases={CASES}"


def _open(browser, url: str, viewport=None):
    page = browser.new_context(viewport=viewport or {"width": 1400, "height": 1000}).new_page()
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_text(f"Case 1 of {CASES}").wait_for(timeout=WAIT_MS)
    return page


def _radiograph_element(page):
    """The radiograph to click on, once the component has drawn it at its size (a screenshot if it never does)."""
    image = page.frame_locator(CLICK_FRAME).locator("img#image")
    try:
        image.wait_for(timeout=WAIT_MS)
        page.wait_for_function(
            """(frame) => { const f = document.querySelector(frame); if (!f) return false;
                 const img = f.contentDocument && f.contentDocument.querySelector('img#image');
                 return img && img.complete && img.naturalWidth > 0 && img.width > 0; }""",
            arg=CLICK_FRAME, timeout=WAIT_MS)
    except Exception:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "teach_no_radiograph.png"))
        state = page.evaluate("""(frame) => { const f = document.querySelector(frame);
            const img = f && f.contentDocument && f.contentDocument.querySelector('img#image');
            return {frame: f ? [f.clientWidth, f.clientHeight] : null,
                    image: img ? [img.width, img.height, img.naturalWidth, img.complete, (img.src || '').slice(0, 30)]
                               : null}; }""", CLICK_FRAME)
        raise AssertionError(f"the radiograph was not drawn: {state}") from None
    return image


def _decode(source: str, page=None) -> np.ndarray:
    if source.startswith("data:"):
        data = base64.b64decode(source.split(",", 1)[1])
    else:
        data = page.request.get(urljoin(page.url, source)).body()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def _shown_radiograph(page) -> np.ndarray:
    return _decode(_radiograph_element(page).get_attribute("src"))


def _stored_radiograph(case: quiz.QuizCase) -> np.ndarray:
    return np.asarray(Image.open(case.radiograph).convert("L"), dtype=np.int16)


def test_the_share_link_as_the_first_request_opens_the_same_quiz_for_two_students(browser, fresh_server, quizzes):
    link = _link(fresh_server, quizzes["seed"])
    teacher = _open(browser, link)  # the fresh server's very first request
    assert f"quiz={quizzes['seed']}" in teacher.url and f"cases={CASES}" in teacher.url
    student = _open(browser, link)  # another browser context: another session
    first, second = _shown_radiograph(teacher), _shown_radiograph(student)
    assert np.array_equal(first, second)
    expected = _stored_radiograph(quizzes["first"])
    assert first.shape[:2] == expected.shape
    assert np.abs(first.mean(axis=2) - expected).mean() < 1.5  # the case the seed chose, no boxes drawn
    assert teacher.locator('[data-testid="stException"]').count() == 0
    for page in (teacher, student):
        page.context.close()


def test_another_quiz_number_opens_another_case(browser, fresh_server, quizzes):
    page = _open(browser, _link(fresh_server, quizzes["other"]))
    shown = _shown_radiograph(page)
    expected = _stored_radiograph(quizzes["other_first"])
    assert shown.shape[:2] == expected.shape and np.abs(shown.mean(axis=2) - expected).mean() < 1.5
    first = _stored_radiograph(quizzes["first"])
    assert shown.shape[:2] != first.shape or np.abs(shown.mean(axis=2) - first).mean() > 5
    page.context.close()


def test_click_on_the_fracture_then_reveal_shows_the_box(browser, fresh_server, quizzes):
    case = quizzes["first"]
    page = _open(browser, _link(fresh_server, quizzes["seed"]), PROJECTOR)
    image = _radiograph_element(page)
    before = image.get_attribute("src")
    shown = image.bounding_box()
    box = case.boxes[0]
    centre = (box.left + box.width / 2, box.top + box.height / 2)
    image.click(position={"x": centre[0] * shown["width"] / case.width, "y": centre[1] * shown["height"] / case.height})
    page.wait_for_function(  # the ring where the student pointed is drawn
        """([frame, before]) => {
             const img = document.querySelector(frame)?.contentDocument?.querySelector('img#image');
             return img && img.getAttribute('src') !== before; }""",
        arg=[CLICK_FRAME, before], timeout=WAIT_MS)
    page.get_by_text("Fractured", exact=True).click()
    page.get_by_role("button", name="Reveal").click()

    page.get_by_text("Label: fractured").wait_for(timeout=WAIT_MS)
    page.get_by_text("Your call was right").wait_for()
    page.get_by_text("Your click was inside a box").wait_for()
    page.get_by_text("on the fracture", exact=False).first.wait_for()
    page.locator('[data-testid="stMetric"]').filter(has_text="Model: probability of fracture").wait_for()
    page.get_by_text("Grad-CAM: where the model looked").wait_for()

    revealed = page.locator('[data-testid="stImage"]').filter(has_text="radiologists' fracture boxes").locator("img")
    revealed.wait_for(timeout=WAIT_MS)
    pixels = _decode(revealed.get_attribute("src"), page)
    stored = _stored_radiograph(case)
    assert pixels.shape[:2] == stored.shape
    outline = scale_box(box, stored.shape[1] / case.width)  # the box in the stored radiograph's pixels
    top = int(outline.top)
    columns = slice(int(outline.left) + 1, int(outline.right) - 1)
    red, green, blue = (pixels[top, columns, channel] for channel in range(3))
    magenta = (red > 180) & (green < 90) & (blue > 180)
    assert magenta.mean() > 0.8, "the box's top edge is not drawn in magenta"
    assert page.locator('[data-testid="stException"]').count() == 0
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stImage"] img')]
                               .filter(img => img.complete && img.naturalWidth > 0).length >= 2""", timeout=WAIT_MS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "teach_projector_revealed.png"))
    page.context.close()


def test_teach_page_fits_a_phone_and_a_projector(browser, fresh_server, quizzes):
    """The quiz on a 390 x 844 phone (nothing scrolls sideways) and a 1920 x 1080 projector (the radiograph
    fits the screen); the screenshots are kept for a look (README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, viewport in (("phone", PHONE), ("projector", PROJECTOR)):
        page = _open(browser, _link(fresh_server, quizzes["seed"]), viewport)
        _radiograph_element(page)
        frame = page.locator(CLICK_FRAME).bounding_box()
        if name == "phone":
            assert page.evaluate("() => document.documentElement.scrollWidth") <= viewport["width"], \
                "the page scrolls sideways on a phone"
            assert frame["x"] >= 0 and frame["x"] + frame["width"] <= viewport["width"]
        else:
            assert frame["y"] + frame["height"] <= viewport["height"], "the radiograph runs off a 1080 px screen"
        page.wait_for_timeout(500)
        page.screenshot(path=str(SCREENSHOTS / f"teach_{name}.png"))
        page.context.close()
