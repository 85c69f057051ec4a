"""Read an X-ray: upload (or pick a sample) -> probability, decision at the operating point, heatmap."""

from __future__ import annotations

import hashlib
import logging
from contextlib import nullcontext

import streamlit as st

from fracture_model.imaging import InputError, Radiograph, looks_like_radiograph, read_radiograph
from pages.components import choose_heatmap, show_heatmap, show_prediction, show_report_button
from pages.shared import (
    DISCLAIMER,
    enter_through_app,
    load_card,
    model_service,
    pointing_sentence,
    sample_files,
    sample_label,
)

log = logging.getLogger("fracture_lens")

def _choose_sample(name: str) -> None:
    st.session_state["source"] = f"sample:{name}"


def _input_bytes() -> tuple[str, bytes] | None:
    """(display name, bytes) of the radiograph to read, or None before anything was chosen.

    The latest action wins: a new upload replaces a sample, a sample button replaces the upload.
    """
    uploaded = st.session_state.get("upload")
    upload_id = uploaded.file_id if uploaded is not None else None
    if upload_id != st.session_state.get("upload_id"):
        st.session_state["upload_id"] = upload_id
        st.session_state["source"] = "upload" if uploaded is not None else ""
    source = st.session_state.get("source", "")
    if source.startswith("sample:"):
        name = source.removeprefix("sample:")
        path = next((p for p in sample_files() if p.name == name), None)
        return (f"Sample: {sample_label(path)}", path.read_bytes()) if path else None
    if source == "upload" and uploaded is not None:
        return "Your upload", uploaded.getvalue()
    return None


def _file_name() -> str:
    """The chosen file's own name (for the report, only if the user ticks "include file name")."""
    source = st.session_state.get("source", "")
    if source.startswith("sample:"):
        return source.removeprefix("sample:")
    uploaded = st.session_state.get("upload")
    return uploaded.name if uploaded is not None else ""


def _decode(data: bytes, window: tuple[float, float] | None) -> Radiograph | None:
    """Decode, or show the user's problem in one sentence and return None."""
    try:
        return read_radiograph(data, window=window)
    except InputError as error:
        st.error(str(error))
    except Exception as error:  # a bug, not the user's fault: no traceback or content in the page or log
        log.error("unexpected %s while decoding an upload", type(error).__name__)
        st.error("Sorry, this file could not be read. Please try another PNG, JPEG or DICOM radiograph.")
    return None


def _dicom_window(radiograph: Radiograph, digest: str) -> tuple[float, float] | None:
    """Window centre/width controls for DICOM; returns the window the user set (None: the file's own)."""
    if radiograph.source_format != "DICOM" or radiograph.window is None:
        return None
    centre, width = radiograph.window
    with st.expander("DICOM window"):
        left, right = st.columns(2)
        new_centre = left.number_input("Window centre", value=float(centre), format="%g", key=f"centre_{digest}")
        # A file's SIGMOID or LINEAR_EXACT window, or float data, can be narrower than 1 (imaging keeps it > 0).
        new_width = right.number_input("Window width", value=float(width), min_value=min(1.0, float(width)),
                                       format="%g", key=f"width_{digest}")
        st.caption("The probability and the heatmap are computed on the image as shown with this window.")
    return None if (new_centre, new_width) == (centre, width) else (new_centre, new_width)


def _explanation(radiograph: Radiograph, digest: str, method: str):
    """The heatmap for this image and method, kept in this session only (never on disk)."""
    key = (digest, method)
    cache = st.session_state.setdefault("explanations", {})
    if key not in cache:
        cache.clear()  # only the current image's heatmaps are kept
        cache[key] = model_service().explain(radiograph.pixels, method)
    return cache[key]


enter_through_app("pages/read_xray.py")
st.title("Read an X-ray")
st.info(DISCLAIMER)
card = load_card()

st.file_uploader(
    "Drop a bone radiograph here (PNG, JPEG or DICOM)",
    key="upload",
    help="DICOM files are recognised by their content, with or without a .dcm extension.",
)
st.caption("No radiograph at hand? Load a sample from FracAtlas (test split):")
for column, path in zip(st.columns(len(sample_files()) or 1), sample_files(), strict=False):
    column.button(sample_label(path), key=f"sample_{path.stem}", on_click=_choose_sample, args=(path.name,))

chosen = _input_bytes()
if chosen is None:
    st.stop()
name, data = chosen
digest = hashlib.sha256(data).hexdigest()

radiograph = _decode(data, window=None)
if radiograph is None:
    st.stop()
if radiograph.source_format == "DICOM":
    details = [f"body part: {radiograph.body_part}" if radiograph.body_part else "",
               f"view: {radiograph.view}" if radiograph.view else ""]
    details = [detail for detail in details if detail]
    st.caption("DICOM, " + ", ".join(details) if details else "DICOM (the file names no body part or view)")

window = _dicom_window(radiograph, digest)
if window is not None:
    radiograph = _decode(data, window=window)
    if radiograph is None:
        st.stop()
    digest = f"{digest}:{window}"

plausible, reason = looks_like_radiograph(radiograph)
if not plausible:
    st.warning(reason)
    st.image(radiograph.pixels, caption=name, clamp=True)
    if not st.checkbox("This is a radiograph: score it anyway", key=f"override_{digest}"):
        st.stop()

service = model_service()
loading = st.spinner("Loading the fracture model (the server has just started) ...")
with loading if not service.ready() else nullcontext():
    prediction = service.predict(radiograph.pixels)  # queued at once: scored as soon as the model is loaded
show_prediction(prediction, card, scored_anyway=not plausible)  # on the screen before the heatmap is computed

method, opacity = choose_heatmap("read")
if method is None:
    st.stop()
with st.spinner(f"Computing the {method} heatmap ..."):
    explanation = _explanation(radiograph, digest, method)
show_heatmap(radiograph.pixels, explanation, name=name, opacity=opacity, trust=pointing_sentence(method))
show_report_button(radiograph.pixels, explanation, prediction, card, service.predictor.model_sha256,
                   file_name=_file_name(), pointing=pointing_sentence(method), key=digest)
