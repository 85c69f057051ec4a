"""What several pages draw the same way: a probability with its decision, a case with its boxes and heatmap.

The Read, Worklist, evaluation and teaching pages import from here, so a probability, its decision, the
threshold sentence and the out-of-distribution note look and read the same everywhere.

``fracture_model.explain`` (TensorFlow) is imported inside the functions that draw heatmaps, so that a
page that has not shown a heatmap yet appears without waiting for TensorFlow to import.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import streamlit as st

from fracture_model.localisation import Box, draw_boxes, scale_box
from fracture_model.report import threshold_rule

BOX_COLOUR = (255, 0, 255)
"""Magenta, as in the stored case images: not in the jet colour map, so boxes stay visible over a heatmap."""
FRACTURE_SUSPECTED = "Fracture suspected"
NO_FRACTURE_DETECTED = "No fracture detected"


def threshold_sentence(card: dict) -> str:
    """The operating threshold, how it was chosen and what it did on the test split (Markdown)."""
    sentence = (f"Decision threshold **{card['operating_threshold']:.2f}**, chosen on the validation split as "
                f"{threshold_rule(card)}.")
    at_threshold = card.get("test", {}).get("at_operating_threshold")
    if at_threshold:
        sentence += (
            f" On the held-out test split this threshold found **{at_threshold['sensitivity']:.0%}** of fractures "
            f"(sensitivity) and cleared **{at_threshold['specificity']:.0%}** of normal radiographs (specificity)."
        )
    return sentence


def decision_label(prediction) -> str:
    return FRACTURE_SUSPECTED if prediction.fractured else NO_FRACTURE_DETECTED


def show_prediction(prediction, card: dict, *, scored_anyway: bool = False) -> None:
    """The probability, the decision at the operating threshold, the out-of-distribution note beside them
    (when the model has the check and the image is flagged) and the threshold sentence.

    ``prediction``: a ``fracture_model.predictor.Prediction``. ``scored_anyway``: the user asked to score an
    image that does not look like a radiograph.
    """
    left, right = st.columns([1, 2])
    with left:
        st.metric("Probability of fracture", f"{prediction.probability_fractured:.0%}")
        if prediction.fractured:
            st.markdown(f"### :red-background[{FRACTURE_SUSPECTED}]")
        else:
            st.markdown(f"### :green-background[{NO_FRACTURE_DETECTED}]")
    with right:
        if prediction.out_of_distribution_note:
            st.warning(prediction.out_of_distribution_note, icon=":material/help:")
        st.markdown(threshold_sentence(card))
        if scored_anyway:
            st.caption("Scored on your request although the image does not look like a radiograph.")


def _grey(pixels: np.ndarray) -> np.ndarray:
    return np.clip(pixels * 255.0, 0, 255).astype(np.uint8)


def _grey_rgb(pixels: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(_grey(pixels), cv2.COLOR_GRAY2RGB)


DISPLAY_SIDE = 1460
"""Long side, in pixels, of the pictures a page sends to the browser: Streamlit itself shrinks anything
wider than 1460 px, but only after encoding the full-size image; shrinking first (and sending JPEG) keeps
a heatmap on the screen a few hundred milliseconds sooner. Full-screen view still gets 1460 px."""


def for_display(pixels: np.ndarray, heatmap: np.ndarray | None = None, peak: tuple[int, int] | None = None,
                side: int = DISPLAY_SIDE) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int] | None]:
    """``pixels`` (and its ``heatmap`` and ``peak``, in the same pixels) shrunk so that the long side is at
    most ``side``; unchanged if already small enough."""
    scale = side / max(pixels.shape)
    if scale >= 1.0:
        return pixels, heatmap, peak
    size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
    shrunk = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    heatmap = None if heatmap is None else cv2.resize(heatmap, size, interpolation=cv2.INTER_AREA)
    if peak is not None:
        peak = (min(size[0] - 1, int(peak[0] * scale)), min(size[1] - 1, int(peak[1] * scale)))
    return shrunk, heatmap, peak


def case_image(pixels: np.ndarray, heatmap: np.ndarray | None = None, boxes: Sequence[Box] = (),
               peak: tuple[int, int] | None = None, *, side: int | None = None, opacity: float = 0.45) -> np.ndarray:
    """RGB uint8: the radiograph with ``boxes`` (magenta); with a ``heatmap``, beside it the heatmap overlay
    with the boxes and its ``peak`` (white ring). ``side``: shrink so that each panel's long side is at most
    this many pixels (boxes and peak in original-image pixels are scaled with it)."""
    if side is not None:
        width = pixels.shape[1]
        pixels, heatmap, peak = for_display(pixels, heatmap, peak, side)
        boxes = [scale_box(box, pixels.shape[1] / width) for box in boxes] if pixels.shape[1] != width else boxes
    original = draw_boxes(_grey_rgb(pixels), boxes, BOX_COLOUR) if boxes else _grey_rgb(pixels)
    if heatmap is None:
        return original
    from fracture_model.explain import mark_peak, overlay

    blended = overlay(pixels, heatmap, opacity)
    blended = draw_boxes(blended, boxes, BOX_COLOUR) if boxes else blended
    if peak is not None:
        blended = mark_peak(blended, peak)
    return np.concatenate([original, blended], axis=1)


def show_case(pixels: np.ndarray, heatmap: np.ndarray | None = None, boxes: Sequence[Box] = (),
              peak: tuple[int, int] | None = None, *, caption: str | None = None, side: int | None = None) -> None:
    """``case_image`` on the page, as wide as its column."""
    st.image(case_image(pixels, heatmap, boxes, peak, side=side), caption=caption, width="stretch")


def choose_heatmap(key: str) -> tuple[str | None, float]:
    """The heatmap method (a radio of the methods that passed the sanity check) and its opacity (a slider),
    side by side; the method is None, with a warning shown, when no method passed."""
    from pages.shared import explanation_methods

    controls = st.columns([2, 1])
    method = controls[0].radio("Heatmap", explanation_methods(), horizontal=True, key=f"{key}_method",
                               help="What the network looked at when it scored P(fractured). Only methods that "
                                    "passed the sanity check (weights randomised, on validation images) are offered.")
    if method is None:
        st.warning("No heatmap method passed the sanity check (see Model evaluation), so none is shown.")
        return None, 0.0
    return method, controls[1].slider("Heatmap opacity", 0.0, 1.0, 0.4, 0.05, key=f"{key}_opacity")


def show_heatmap(pixels: np.ndarray, explanation, *, name: str, opacity: float = 0.4,
                 trust: str | None = None) -> None:
    """Three panels: the radiograph, the heatmap over it (peak ringed) and the heatmap alone; then either
    the sentence that the map is empty or ``trust`` (how often this method found the fracture on test)."""
    from fracture_model.explain import heatmap_image, mark_peak, overlay

    method = explanation.method
    flat = explanation.peak is None  # no region raised the fracture score: nothing to point at
    pixels, heatmap, peak = for_display(pixels, explanation.heatmap, explanation.peak)
    blended_image = overlay(pixels, heatmap, opacity)
    original, blended, heat = st.columns(3)
    original.image(_grey(pixels), caption=name, width="stretch", output_format="JPEG")
    blended.image(blended_image if flat else mark_peak(blended_image, peak),
                  caption=f"{method} over the radiograph" + ("" if flat else " (ring: peak)"), width="stretch",
                  output_format="JPEG")
    heat.image(heatmap_image(heatmap), caption=f"{method} alone (red: most influence)", width="stretch",
               output_format="JPEG")
    if flat:
        st.caption(f"The {method} map is empty: no region of this image raised the fracture score.")
    elif trust is not None:
        st.caption(trust)


def show_report_button(pixels: np.ndarray, explanation, prediction, card: dict, model_sha256: str, *,
                       file_name: str = "", pointing: str | None = None, key: str = "report") -> None:
    """"Download report (PDF)" for this read, with an "include file name" tick box (off by default).

    The PDF (and the overlay in it) is made only when the button is pressed (``fracture_model.report``),
    in memory.
    """
    include = st.checkbox("Include file name in the report", value=False, key=f"report_name_{key}",
                          help="Off: the report names no file. It never holds DICOM attributes such as the "
                               "patient's name or ID.")

    def pdf() -> bytes:
        from fracture_model.explain import overlay
        from fracture_model.report import CaseReport, case_report_pdf

        return case_report_pdf(CaseReport(
            pixels=pixels, overlay_rgb=None if explanation is None else overlay(pixels, explanation.heatmap, 0.4),
            probability_fractured=prediction.probability_fractured, decision=prediction.decision,
            operating_threshold=prediction.operating_threshold, card=card, model_sha256=model_sha256,
            method=None if explanation is None else explanation.method, pointing=pointing,
            out_of_distribution_note=prediction.out_of_distribution_note,
            file_name=file_name if include and file_name else None,
        ))

    st.download_button("Download report (PDF)", data=pdf, file_name="fracture_lens_report.pdf",
                       mime="application/pdf", on_click="ignore", icon=":material/picture_as_pdf:",
                       key=f"report_{key}")


def show_review_figures(figures, pointing_hit_rate: float | None = None) -> None:
    """The reviewers' figures (``fracture_model.reviews.ReviewFigures``): share of heatmaps judged on the
    fracture, agreement with the model's call and the number of cases reviewed; beside them the automatic
    pointing-game hit rate when given."""
    if figures.verdicts == 0:
        st.caption("No reviewer has recorded a verdict for this model version yet (page: Review heatmaps).")
        return
    cells = st.columns(4 if pointing_hit_rate is not None else 3)
    share = figures.heatmap_on_fracture_share
    cells[0].metric("Heatmaps judged on the fracture", "n/a" if share is None else f"{share:.0%}",
                    help=f"fractured cases: {figures.heatmap_yes} yes, {figures.heatmap_no} no, "
                         f"{figures.heatmap_unsure} unsure")
    agreement = figures.agreement_share
    cells[1].metric("Reviewers agreeing with the model's call", "n/a" if agreement is None else f"{agreement:.0%}",
                    help=f"{figures.agree_yes} yes, {figures.agree_no} no, {figures.agree_unsure} unsure")
    cells[2].metric("Cases reviewed", figures.cases,
                    help=f"{figures.reviewers} reviewers, {figures.verdicts} verdicts")
    if pointing_hit_rate is not None:
        cells[3].metric("Automatic pointing game (Grad-CAM)", f"{pointing_hit_rate:.0%}",
                        help="peak within the tolerance of a radiologist's box, fractured test images")
    st.caption("The latest verdict of each reviewer on each case counts; 'unsure' is left out of the shares.")
