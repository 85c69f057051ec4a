"""Worklist: drop many radiographs (or a .zip) -> scored in batches -> studies, most suspicious first -> open one.

Everything stays in this session's memory, as uploads do on the Read page. Heatmaps are computed only for
the line that is opened.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pandas as pd
import streamlit as st

from fracture_model.imaging import InputError, read_radiograph
from fracture_model.worklist import StudyLine, WorkItem, csv_text, decode, expand_uploads, score, study_lines
from pages.components import (
    FRACTURE_SUSPECTED,
    NO_FRACTURE_DETECTED,
    choose_heatmap,
    show_heatmap,
    show_prediction,
    show_report_button,
)
from pages.shared import DISCLAIMER, enter_through_app, load_card, model_service, pointing_sentence

# Files decoded and scored together: one forward pass each, and at most this many decoded images in memory.
BATCH_SIZE = 16
THUMBNAIL_HEIGHT_PX = 72
NOT_SCORED = "Not scored"


def _thumbnail(pixels: np.ndarray) -> str:
    """A small JPEG of the radiograph as a data URL (kept in the session, never on disk)."""
    scale = THUMBNAIL_HEIGHT_PX / pixels.shape[0]
    size = (max(1, round(pixels.shape[1] * scale)), THUMBNAIL_HEIGHT_PX)
    small = cv2.resize(np.clip(pixels * 255.0, 0, 255).astype(np.uint8), size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode() if ok else ""


def _read_worklist(uploads, score_anyway: bool) -> dict:
    """Decode and score every uploaded file in batches, with a progress bar; returns the session's worklist."""
    items = expand_uploads((upload.name, upload.getvalue()) for upload in uploads)
    service = model_service()
    thumbnails: dict[int, str] = {}
    bar = st.progress(0.0, text=f"Reading and scoring {len(items)} file(s) ..." + (
        "" if service.ready() else " (the fracture model is still loading: the server has just started)"))
    for start in range(0, len(items), BATCH_SIZE):
        batch = items[start:start + BATCH_SIZE]
        for item in batch:
            decode(item, score_unlike_radiographs=score_anyway)
            if item.radiograph is not None:
                thumbnails[item.number] = _thumbnail(item.radiograph.pixels)
        score(batch, service.predict_many, batch_size=BATCH_SIZE)
        for item in batch:
            item.radiograph = None  # decoded again when opened: memory holds the files, not every image
        done = min(start + BATCH_SIZE, len(items))
        bar.progress(done / len(items), text=f"Scored {done} of {len(items)} file(s)")
    bar.empty()
    return {"items": items, "thumbnails": thumbnails, "model_version": service.predictor.model_version}


def _line_label(line: StudyLine, hide_names: bool) -> str:
    top = line.top
    if len(line.items) == 1:
        return top.label(hide_names)
    return f"{top.label(hide_names)} + {len(line.items) - 1} more view(s) of the study"


def _line_decision(line: StudyLine) -> str:
    if line.probability is None:
        return NOT_SCORED
    return FRACTURE_SUSPECTED if line.fractured else NO_FRACTURE_DETECTED


def _line_note(line: StudyLine, hide_names: bool) -> str:
    notes = []
    if line.featureless:
        notes.append("Nothing of a radiograph in this image: its probability means nothing." if len(line.items) == 1
                     else "Nothing of a radiograph in one of its views: that view's probability means nothing.")
    elif line.out_of_distribution:
        notes.append("Unlike the training radiographs: read with extra care.")
    problems = [f"{item.label(hide_names)}: {item.problem}"
                if len(line.items) > 1 else item.problem for item in line.items if item.problem]
    return " ".join(notes + problems)


def _table(lines: list[StudyLine], thumbnails: dict[int, str], hide_names: bool) -> pd.DataFrame:
    return pd.DataFrame([{
        "#": rank,
        "image": thumbnails.get(line.top.number, ""),
        "study / file": _line_label(line, hide_names),
        "views": len(line.items),
        "P(fractured)": None if line.probability is None else 100.0 * line.probability,
        "decision": _line_decision(line),
        "note": _line_note(line, hide_names),
    } for rank, line in lines])


def _explanation(item: WorkItem, pixels: np.ndarray, method: str):
    """The heatmap of the opened view, kept in this session only for the view that is open."""
    key = (item.number, method)
    cache = st.session_state.setdefault("worklist_explanations", {})
    if key not in cache:
        cache.clear()
        cache[key] = model_service().explain(pixels, method)
    return cache[key]


def _open(line: StudyLine, rank: int, hide_names: bool, card: dict) -> None:
    """Read one line in full: each view's probability, decision and, for the chosen view, its heatmap."""
    st.subheader(f"#{rank}: {_line_label(line, hide_names)}")
    item = line.items[0]
    if len(line.items) > 1:
        labels = [f"{view.label(hide_names)} ({view.prediction.probability_fractured:.0%})" if view.scored
                  else f"{view.label(hide_names)} (not scored)" for view in line.items]
        chosen = st.radio("View", range(len(line.items)), format_func=labels.__getitem__, horizontal=True,
                          index=line.items.index(line.top), key=f"worklist_view_{rank}_{line.top.number}")
        item = line.items[chosen]
    if not item.scored:
        st.error(item.problem or "This file was not scored.")
        return
    try:
        radiograph = read_radiograph(item.data)
    except InputError as error:  # it decoded when scored; only a changed file could fail here
        st.error(str(error))
        return
    show_prediction(item.prediction, card, scored_anyway=item.looks_unlike_radiograph)
    method, opacity = choose_heatmap("worklist")
    if method is None:
        return
    with st.spinner(f"Computing the {method} heatmap ..."):
        explanation = _explanation(item, radiograph.pixels, method)
    show_heatmap(radiograph.pixels, explanation, name=item.label(hide_names), opacity=opacity,
                 trust=pointing_sentence(method))
    show_report_button(radiograph.pixels, explanation, item.prediction, card, model_service().predictor.model_sha256,
                       file_name=item.name, pointing=pointing_sentence(method), key=f"worklist_{item.number}")


enter_through_app("pages/worklist.py")
st.title("Worklist")
st.info(DISCLAIMER)
card = load_card()

st.file_uploader(
    "Drop radiographs here: many at once (PNG, JPEG or DICOM), or a .zip of them",
    accept_multiple_files=True, key="worklist_upload",
    help="DICOM views of the same study are grouped on one line. Files stay in this session's memory only.",
)
options = st.columns(3)
hide_names = options[0].toggle("Hide file names", key="hide_names",
                               help="Shows 'Image 1..N' (in upload order) instead of file names, for screen sharing.")
suspected_only = options[1].toggle("Suspected fractures only", key="suspected_only")
score_anyway = options[2].toggle("Also score images that do not look like radiographs", key="score_anyway",
                                 help="Colour photographs are otherwise listed with the reason and not scored.")

uploads = st.session_state.get("worklist_upload") or []
if not uploads:
    st.caption(f"Each file is scored at the operating threshold {card['operating_threshold']:.2f}; the list is "
               "sorted by the probability of fracture, highest first.")
    st.stop()

signature = (tuple(upload.file_id for upload in uploads), score_anyway)
if st.session_state.get("worklist_signature") != signature:
    st.session_state.pop("worklist_explanations", None)
    st.session_state["worklist_open"] = None  # line numbers change with a new list
    st.session_state["worklist"] = _read_worklist(uploads, score_anyway)
    st.session_state["worklist_signature"] = signature
worklist = st.session_state["worklist"]
items: list[WorkItem] = worklist["items"]

ranked = list(enumerate(study_lines(items), start=1))
shown = [(rank, line) for rank, line in ranked if not suspected_only or line.fractured]
scored = sum(item.scored for item in items)
flagged = sum(line.fractured for _, line in ranked)
summary = (f"**{len(items)}** file(s) in **{len(ranked)}** line(s): **{scored}** scored, "
           f"**{flagged}** line(s) with a suspected fracture, **{len(items) - scored}** not scored.")
st.markdown(summary)
if shown:
    st.dataframe(
        _table(shown, worklist["thumbnails"], hide_names), hide_index=True, width="stretch", key="worklist_table",
        row_height=THUMBNAIL_HEIGHT_PX + 8, height=min(40 + (THUMBNAIL_HEIGHT_PX + 8) * len(shown), 720),
        column_config={
            "#": st.column_config.NumberColumn(width="small"),
            "image": st.column_config.ImageColumn("image", width="small"),
            "P(fractured)": st.column_config.NumberColumn("P(fractured)", format="%.0f%%",
                                                          help="Highest probability of fracture among the views"),
            "views": st.column_config.NumberColumn(width="small"),
            "note": st.column_config.TextColumn(width="large"),
        },
    )
else:
    st.caption("No line is flagged as a suspected fracture.")
st.download_button("Download CSV", data=csv_text(items, worklist["model_version"]),
                   file_name="fracture_lens_worklist.csv",
                   mime="text/csv", on_click="ignore", icon=":material/download:", key="worklist_csv",
                   help="One row per file: path,probability_fractured,decision first (as the predict command), "
                        "then in_distribution, the study line, status and reason, and the model version. "
                        "It holds the real file names even when they are hidden on screen.")

by_rank = dict(ranked)
opened = st.selectbox(
    "Open a line to read it in full", [rank for rank, _ in shown], index=None, key="worklist_open",
    placeholder="Choose a line", format_func=lambda rank: f"#{rank}: {_line_label(by_rank[rank], hide_names)}",
)
if opened is not None and opened in by_rank:
    _open(by_rank[opened], opened, hide_names, card)
