"""Teach: a class quiz over the stored test cases that every student follows on their own screen.

The teacher picks the cases (how many, body parts, implants, hard cases) and a quiz number; the share link
``/teach?quiz=<number>&cases=<n>&...`` opens the same cases in the same order on every device. Students
answer fractured or not, click where they see the fracture, then reveal the label, the radiologists'
boxes, whether the click was within the pointing tolerance of a box, and the model's call with its
Grad-CAM. Answers and scores stay in the browser session; no names are asked. The model is not loaded:
everything comes from the stored evaluation.
"""

from __future__ import annotations

import io
import secrets

import cv2
import numpy as np
import streamlit as st
from PIL import Image

from fracture_model.localisation import POINTING_TOLERANCE_PX, draw_boxes, scale_box
from fracture_model.model_card import EVALUATION_DIR
from fracture_model.quiz import (
    DEFAULT_CASES,
    HARD_MARGIN,
    MAX_CASES,
    Answer,
    QuizCase,
    QuizLinkError,
    QuizMaterialMissing,
    QuizSettings,
    check_click,
    choose_cases,
    click_position,
    load_quiz_cases,
    matching_cases,
    score_quiz,
    share_link,
)
from pages.components import BOX_COLOUR, FRACTURE_SUSPECTED, NO_FRACTURE_DETECTED, case_image
from pages.shared import CITATION, MODEL_DIR, enter_through_app, load_card

PAGE_PATH = "teach"
IMPLANT_LABELS = {"any": "With or without", "with": "With an implant", "without": "Without an implant"}
CALLS = ("Fractured", "Not fractured")
CLICK_COLOUR = (0, 200, 255)  # where the student pointed: cyan, apart from the magenta boxes and the heatmap


@st.cache_data(show_spinner=False)
def _quiz_cases(folder: str, stamp: float) -> list[QuizCase]:
    """The stored cases (``stamp``: the material's modification time, so a new evaluation is read again)."""
    return load_quiz_cases(folder)


def _stored_cases() -> list[QuizCase]:
    folder = MODEL_DIR / EVALUATION_DIR
    material = folder / "quiz" / "cases.csv"
    return _quiz_cases(str(folder), material.stat().st_mtime if material.exists() else 0.0)


@st.cache_data(show_spinner=False, max_entries=256)
def _radiograph(path: str) -> np.ndarray:
    """The stored quiz radiograph as 0..1 grayscale."""
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0


def _query() -> dict[str, list[str]]:
    return {name: st.query_params.get_all(name) for name in st.query_params}


def _page_url() -> str:
    """This page's address as the browser sees it (for the share link); a relative one when unknown."""
    url = (getattr(st.context, "url", None) or "").split("?", 1)[0]
    return url if url.rstrip("/").endswith(f"/{PAGE_PATH}") else f"/{PAGE_PATH}"


def _qr_png(text: str) -> bytes | None:
    try:
        import segno
    except ImportError:  # the QR code is a convenience; the link alone works
        return None
    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="png", scale=8, border=2)
    return buffer.getvalue()


def _with_click(pixels: np.ndarray, case: QuizCase, answer: Answer, boxes: bool) -> np.ndarray:
    """RGB: the radiograph, a ring where the student pointed (its radius: the pointing tolerance) and, when
    revealed, the radiologists' boxes drawn over it."""
    factor = pixels.shape[1] / case.width  # stored radiograph pixels per pixel of the box coordinates
    image = case_image(pixels)
    if answer.click is not None:
        centre = (int(answer.click[0] * factor), int(answer.click[1] * factor))
        radius = max(3, round(POINTING_TOLERANCE_PX * factor))
        cv2.circle(image, centre, radius, CLICK_COLOUR, 2, lineType=cv2.LINE_AA)
        cv2.drawMarker(image, centre, CLICK_COLOUR, cv2.MARKER_CROSS, max(6, radius // 2), 1)
    if boxes and case.boxes:
        image = draw_boxes(image, [scale_box(box, factor) for box in case.boxes], BOX_COLOUR)
    return image


# --- the teacher's setup ---------------------------------------------------------------------------------

def setup(cases: list[QuizCase], threshold: float) -> None:
    st.markdown(
        "Build a quiz from the held-out test radiographs. Every student opens the share link on their own "
        "phone or laptop and sees the same cases in the same order; they answer, point at the fracture, and "
        "reveal the radiologists' boxes and the model's call. Scores stay in each student's browser; no names "
        "are asked."
    )
    parts = sorted({case.body_part for case in cases})
    if "teach_seed" not in st.session_state:
        st.session_state["teach_seed"] = secrets.randbelow(10_000)
    left, right = st.columns(2)
    count = left.number_input("Number of cases", 1, MAX_CASES, DEFAULT_CASES, key="teach_cases")
    seed = left.number_input("Quiz number", 0, 9_999_999, key="teach_seed",
                             help="The same number and settings give the same cases in the same order.")
    chosen_parts = right.multiselect("Body parts", parts, key="teach_parts", placeholder="All body parts")
    implant = right.radio("Implants", list(IMPLANT_LABELS), format_func=IMPLANT_LABELS.get, horizontal=True,
                          key="teach_implant")
    hard = right.checkbox(
        "Hard cases only", key="teach_hard",
        help=f"Cases the model got wrong, or whose probability lies within {HARD_MARGIN:.2f} of its operating "
             f"threshold ({threshold:.2f}).")
    settings = QuizSettings(seed=int(seed), cases=int(count), body_parts=tuple(chosen_parts), implant=implant,
                            hard=hard)
    available = len(matching_cases(cases, settings, threshold))
    st.caption(f"{available} test cases match these filters"
               + (f"; the quiz will have {min(available, settings.cases)}." if available else "."))
    if st.button("Start the quiz", type="primary", disabled=available == 0):
        st.query_params.from_dict(settings.to_query())
        st.rerun()


# --- the quiz ---------------------------------------------------------------------------------------------

def share_panel(settings: QuizSettings) -> None:
    link = share_link(_page_url(), settings)
    with st.expander("Share this quiz with the class: link and QR code"):
        columns = st.columns([2, 1])
        columns[0].markdown("Students open this link on their own device:")
        columns[0].code(link, language=None, wrap_lines=True)
        qr = _qr_png(link)
        if qr is not None:
            columns[1].image(qr, caption="Scan to open the quiz", width=240)


def _quiz_key(settings: QuizSettings) -> str:
    return "teach_quiz:" + "&".join(f"{name}={value}" for name, value in settings.to_query().items())


def _state(settings: QuizSettings) -> dict:
    """This quiz's place and answers in the session (another quiz in the same session keeps its own)."""
    key = _quiz_key(settings)
    if key not in st.session_state:
        st.session_state[key] = {"index": 0, "answers": {}}
    return st.session_state[key]


def _go(state: dict, index: int) -> None:
    state["index"] = index


def ask(case: QuizCase, number: int, total: int, state: dict, threshold: float, settings: QuizSettings) -> None:
    """One case: the radiograph to click on (left; on a phone, above) and the call, reveal and moves (right)."""
    from streamlit_image_coordinates import streamlit_image_coordinates

    key = _quiz_key(settings)
    answer: Answer = state["answers"].setdefault(case.image_id, Answer())
    pixels = _radiograph(str(case.radiograph))
    st.progress(number / total, text=f"Case {number} of {total}")
    picture, panel = st.columns([4, 5])
    with picture:
        if not answer.revealed:
            # JPEG: a PNG of the radiograph (the component's default, uncompressed) is ten times the bytes per rerun
            clicked = streamlit_image_coordinates(_with_click(pixels, case, answer, boxes=False), width="stretch",
                                                  key=f"{key}_click_{number}", cursor="crosshair",
                                                  image_format="JPEG", jpeg_quality=90)
            if clicked and clicked.get("width") and clicked.get("height"):
                position = click_position(case, clicked["x"], clicked["y"], clicked["width"], clicked["height"])
                if position != answer.click:
                    answer.click = position
                    st.rerun()  # draw the ring where they pointed
            st.caption(f"{case.body_part.capitalize()} radiograph. Click where you see a fracture (optional).")
        else:
            st.image(_with_click(pixels, case, answer, boxes=True), width="stretch", output_format="PNG",
                     caption="Magenta: the radiologists' fracture boxes. Cyan ring: where you pointed "
                             f"(its radius is the {POINTING_TOLERANCE_PX:g} px tolerance).")
    with panel:
        call = st.radio("Your call", CALLS, index=None if answer.fractured is None else CALLS.index(
            "Fractured" if answer.fractured else "Not fractured"), key=f"{key}_call_{number}", horizontal=True,
            disabled=answer.revealed)
        if call is not None:
            answer.fractured = call == "Fractured"
        if not answer.revealed:
            if st.button("Reveal", type="primary", key=f"{key}_reveal_{number}", width="stretch"):
                answer.revealed = True
                st.rerun()
        else:
            reveal(case, answer, threshold)
        back, forward = st.columns(2)
        back.button("Previous", key=f"{key}_back_{number}", disabled=number == 1, on_click=_go,
                    args=(state, number - 2), width="stretch")
        forward.button("Next" if number < total else "See the score", key=f"{key}_next_{number}",
                       on_click=_go, args=(state, number), width="stretch",
                       type="primary" if answer.revealed else "secondary")
        share_panel(settings)


def reveal(case: QuizCase, answer: Answer, threshold: float) -> None:
    label = "fractured" if case.fractured else "not fractured"
    verdict = "" if answer.fractured is None else (
        " Your call was **right**." if answer.fractured == case.fractured else " Your call was **wrong**.")
    st.markdown(f"**Label: {label}** (FracAtlas radiologists).{verdict}")
    if case.boxes:
        boxes = f"{len(case.boxes)} fracture box" + ("es" if len(case.boxes) > 1 else "")
        if answer.click is None:
            st.markdown(f"{boxes} (magenta). You did not point.")
        else:
            check = check_click(case, *answer.click)
            where = "inside a box" if check.distance_px == 0 else f"{check.distance_px:.0f} px from the nearest box"
            st.markdown(f"{boxes} (magenta). Your click was {where}: "
                        + ("**on the fracture** " if check.hit else "**not on the fracture** ")
                        + f"(within {POINTING_TOLERANCE_PX:g} px counts, as for the heatmap's peak).")
    elif case.fractured:
        st.markdown("No box was drawn for this fracture, so your click is not scored.")
    elif answer.click is not None:
        st.markdown("There is no fracture on this radiograph, so your click is not scored.")
    decision = FRACTURE_SUSPECTED if case.model_says_fractured else NO_FRACTURE_DETECTED
    model, heatmap_cell = st.columns(2)
    model.metric("Model: probability of fracture", f"{case.probability_fractured:.0%}")
    model.metric("Model's call", decision, help=f"at its operating threshold {threshold:.2f}")
    if case.case_image is not None and case.case_image.exists():
        stored = np.asarray(Image.open(case.case_image).convert("RGB"))
        heatmap = stored[:, stored.shape[1] // 2 :]  # the stored case image: radiograph | Grad-CAM overlay
        hit = {True: " Its peak (white ring) is on a fracture box.", False: " Its peak is not on a fracture box.",
               None: ""}[case.heatmap_hit if case.boxes else None]
        heatmap_cell.image(heatmap, width="stretch",
                           caption="Grad-CAM: where the model looked (red: most influence)." + hit)


def summary(cases: list[QuizCase], state: dict, settings: QuizSettings) -> None:
    score = score_quiz(cases, state["answers"])
    st.subheader("Your score beside the model's")
    if score.answered == 0:
        st.info("You did not answer any case.")
    else:
        cells = st.columns(2)
        cells[0].metric("Your calls", f"{score.student_correct} of {score.answered} right")
        cells[1].metric("The model's calls on the same cases", f"{score.model_correct} of {score.answered} right")
    if score.pointed:
        cells = st.columns(2)
        cells[0].metric("Your clicks on the fracture", f"{score.pointed_hits} of {score.pointed}",
                        help=f"within {POINTING_TOLERANCE_PX:g} px of a radiologist's box")
        if score.heatmap_cases:
            cells[1].metric("Grad-CAM peaks on the fracture, same cases",
                            f"{score.heatmap_hits} of {score.heatmap_cases}")
    if score.unanswered:
        st.caption(f"{len(score.unanswered)} of {score.cases} cases without an answer are left out.")
    rows = []
    for number, case in enumerate(cases, 1):
        answer = state["answers"].get(case.image_id, Answer())
        rows.append({
            "case": number, "body part": case.body_part, "label": "fractured" if case.fractured else "not fractured",
            "your call": {None: "", True: "fractured", False: "not fractured"}[answer.fractured],
            "model's call": case.model_decision, "model P(fractured)": case.probability_fractured,
        })
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"model P(fractured)": st.column_config.NumberColumn(format="%.2f")})
    st.caption("Your answers are kept in this browser session only.")
    again = st.columns(2)
    again[0].button("Back to the cases", on_click=_go, args=(state, 0), width="stretch")
    if again[1].button("New quiz", width="stretch"):
        st.query_params.clear()
        st.rerun()


def quiz(cases: list[QuizCase], settings: QuizSettings, threshold: float) -> None:
    try:
        settings.check_body_parts(sorted({case.body_part for case in cases}))
    except QuizLinkError as error:
        st.error(str(error))
        if st.button("Build a quiz"):
            st.query_params.clear()
            st.rerun()
        return
    chosen = choose_cases(cases, settings, threshold)
    if not chosen:
        st.warning("No test case matches this quiz's filters.")
        return
    if len(chosen) < settings.cases:
        st.caption(f"Only {len(chosen)} test cases match this quiz's filters.")
    state = _state(settings)
    index = min(state["index"], len(chosen))
    if index == len(chosen):
        summary(chosen, state, settings)
    else:
        ask(chosen[index], index + 1, len(chosen), state, threshold, settings)
    st.caption(CITATION)


enter_through_app("pages/teach.py")
st.title("Teach: class quiz")
card = load_card()
operating_threshold = float(card["operating_threshold"])
try:
    stored = _stored_cases()
except QuizMaterialMissing:
    st.error("The stored evaluation has no quiz material. Run `python -m fracture_model.evaluate` "
             "(or `python -m fracture_model.quiz` for an existing evaluation) to create it.")
    st.stop()
try:
    quiz_settings = QuizSettings.from_query(_query())
except QuizLinkError as link_error:
    st.error(f"This quiz link cannot be read: {link_error}")
    quiz_settings = None
    if st.button("Build a new quiz"):
        st.query_params.clear()
        st.rerun()
    st.stop()
if quiz_settings is None:
    setup(stored, operating_threshold)
else:
    quiz(stored, quiz_settings, operating_threshold)
