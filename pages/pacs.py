"""PACS: recent radiograph studies from the configured DICOMweb server -> score one -> see each image -> send back.

Shown in the navigation only when a DICOMweb address is configured (``pages.shared.dicomweb_settings``).
Patient names and IDs stay hidden unless the user asks; nothing of a study is logged or written to disk.
"""

from __future__ import annotations

import datetime
import logging

import pandas as pd
import streamlit as st

from fracture_model import pacs
from pages.shared import DISCLAIMER, dicomweb_settings, enter_through_app, model_service

log = logging.getLogger("fracture_lens")

STUDIES_KEY = "pacs_studies"
RESULT_KEY = "pacs_result"
STORED_KEY = "pacs_stored"
LOOKBACK_DAYS = 30


def _client():
    settings = dicomweb_settings()
    if settings is None:
        st.warning(f"No PACS is configured: set {pacs.ENV_URL} or [dicomweb] url in .streamlit/secrets.toml.")
        st.stop()
    try:
        return pacs.connect(settings.url, settings.credentials, settings.ca_bundle)
    except pacs.PacsError as error:
        st.error(str(error))
        st.stop()


def _studies(client, since: datetime.date, with_patient: bool, refresh: bool) -> list[pacs.StudySummary]:
    """The study list, kept in this session (not shared with other sessions) until asked to refresh."""
    key = (since, with_patient)
    kept = st.session_state.get(STUDIES_KEY)
    if refresh or kept is None or kept[0] != key:
        with st.spinner("Asking the PACS for studies ..."):
            kept = (key, pacs.find_studies(client, since=since, with_patient=with_patient))
        st.session_state[STUDIES_KEY] = kept
    return kept[1]


def _label(number: int, study: pacs.StudySummary, with_patient: bool) -> str:
    parts = [f"Study {number}", study.date or "no date", " ".join(study.modalities),
             " ".join(study.body_parts) or "body part not stated", f"{study.images} image(s)"]
    if with_patient:
        parts.append(f"{study.patient_name or '-'} ({study.patient_id or '-'})")
    if study.scored:
        parts.append("already scored")
    return " · ".join(parts)


def _table(studies: list[pacs.StudySummary], with_patient: bool) -> pd.DataFrame:
    table = pd.DataFrame({
        "Study": range(1, len(studies) + 1),
        "Date": [study.date for study in studies],
        "Modality": [" ".join(study.modalities) for study in studies],
        "Body part": [" ".join(study.body_parts) for study in studies],
        "Images": [study.images for study in studies],
        "Scored by Fracture Lens": ["yes" if study.scored else "no" for study in studies],
    })
    if with_patient:
        table["Patient name"] = [study.patient_name or "" for study in studies]
        table["Patient ID"] = [study.patient_id or "" for study in studies]
    return table


def _score(client, study_uid: str) -> None:
    service = model_service()
    bar = st.progress(0.0, text="Fetching and scoring the images ...")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Scored {done} of {total} image(s) ...")

    result = pacs.score_study(client, study_uid, service.predictor, service.explainer,
                              run_model=service.run, progress=progress)
    bar.empty()
    st.session_state[RESULT_KEY] = result
    st.session_state.pop(STORED_KEY, None)


def _show(result: pacs.StudyResult) -> None:
    for problem in result.problems:
        st.warning(problem)
    for note in result.notes:
        st.caption(note)
    if result.already_scored:
        st.info(f"{len(result.already_scored)} image(s) of this study already have a Fracture Lens report in the PACS "
                "and were not scored again.")
    if not result.scored:
        if not result.problems:
            st.info("Nothing new to score in this study.")
        return
    for start in range(0, len(result.scored), 2):
        for column, (number, image) in zip(st.columns(2), enumerate(result.scored[start:start + 2], start + 1),
                                           strict=False):
            prediction = image.prediction
            column.metric(f"Image {number}: probability of fracture", f"{prediction.probability_fractured:.0%}",
                          prediction.decision, delta_color="off")
            column.image(image.capture, caption=f"Image {number}: Grad-CAM heatmap, as the PACS will receive it",
                         width="stretch")
            if prediction.out_of_distribution_note:
                column.warning(prediction.out_of_distribution_note)


enter_through_app("pages/pacs.py")
st.title("PACS")
st.info(DISCLAIMER)
client = _client()

left, middle, right = st.columns([2, 2, 1])
since = left.date_input("Studies since", value=datetime.date.today() - datetime.timedelta(days=LOOKBACK_DAYS),
                        key="pacs_since")
with_patient = middle.toggle("Show patient names and IDs", value=False, key="pacs_show_patient",
                             help="Hidden unless you ask: the list is shown on this screen only, never logged.")
refresh = right.button("Refresh", key="pacs_refresh")
try:
    studies = _studies(client, since, with_patient, refresh)
except pacs.PacsError as error:
    st.error(str(error))
    st.stop()
if not studies:
    st.info(f"The PACS holds no CR or DX study dated {since:%Y-%m-%d} or later.")
    st.stop()
st.dataframe(_table(studies, with_patient), hide_index=True, width="stretch")

# A fresh chooser when names are shown or hidden: the browser's combobox keeps showing a choice's old wording.
number = st.selectbox("Study", range(1, len(studies) + 1), key=f"pacs_study_{int(with_patient)}",
                      format_func=lambda n: _label(n, studies[n - 1], with_patient))
study = studies[number - 1]
if st.button("Score this study", type="primary", key="pacs_score"):
    try:
        _score(client, study.study_uid)
    except pacs.PacsError as error:
        st.error(str(error))
    except Exception as error:  # a bug, not the user's: no study content in the page or the log
        log.error("unexpected %s while scoring a PACS study", type(error).__name__)
        st.error("Sorry, this study could not be scored.")

result: pacs.StudyResult | None = st.session_state.get(RESULT_KEY)
if result is None or result.study_uid != study.study_uid:
    st.stop()
_show(result)
if not result.scored:
    st.stop()
if st.session_state.get(STORED_KEY) == result.study_uid:
    st.success(f"Sent: a report and {len(result.scored)} heatmap image(s) are in the study in the PACS.")
elif st.button("Send the results to the PACS", key="pacs_send"):
    try:
        with st.spinner("Storing the report and the heatmaps in the study ..."):
            pacs.store_results(client, result, model_service().predictor)
    except pacs.PacsError as error:
        st.error(str(error))
    else:
        st.session_state[STORED_KEY] = result.study_uid
        st.session_state.pop(STUDIES_KEY, None)  # the list's "scored" column has changed
        st.rerun()
else:
    st.caption("Sending stores a DICOM Structured Report (each image's probability, the decision, the threshold and "
               "the model's version) and one secondary capture per image into this study, as two new series.")
