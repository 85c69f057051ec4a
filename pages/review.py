"""Review heatmaps: a reviewer records, for any test case, whether the Grad-CAM is on the fracture and whether
they agree with the model's call, with a short comment, under the name they type.

Verdicts go to the SQLite database of ``fracture_model.reviews`` (see SECURITY.md for what is stored and
where), tagged with the model version (``model_card.model_sha256``: the model file and its card's threshold
and views): a new model or operating point starts a fresh review. The model is not loaded.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from fracture_model.model_card import EVALUATION_DIR
from fracture_model.reviews import CHOICES, MAX_COMMENT, MAX_REVIEWER, ReviewStoreError, Verdict, verdicts_csv
from pages.components import show_review_figures
from pages.shared import (
    CITATION,
    MODEL_DIR,
    enter_through_app,
    fractured_case_ids,
    load_evaluation,
    review_store,
    shipped_model_sha256,
    stored_results,
)

QUESTIONS = {
    "heatmap_on_fracture": "Is the heatmap on the fracture?",
    "agrees_with_model": "Do you agree with the model's call?",
}


def _label(case) -> str:
    label = "fractured" if int(case.fractured) else "not fractured"
    return f"{case.image_id} · {case.body_part} · label {label} · model: {case.decision} ({case.outcome})"


def _record(store, model_sha256: str, image_id: str) -> None:
    """The form's submit: store the verdict, or say in one sentence why not."""
    try:
        verdict = Verdict(
            model_sha256=model_sha256, image_id=image_id, reviewer=st.session_state.get("review_name", ""),
            heatmap_on_fracture=st.session_state.get("review_heatmap") or "",
            agrees_with_model=st.session_state.get("review_agree") or "",
            comment=st.session_state.get("review_comment", ""),
        )
        store.record(verdict)
    except ReviewStoreError as error:
        st.session_state["review_message"] = ("error", str(error))
        return
    st.session_state["review_message"] = ("success", f"Verdict on {image_id} recorded.")
    st.session_state["review_comment"] = ""


def figures_section(store, model_sha256: str, predictions: pd.DataFrame) -> None:
    st.subheader("Reviewers' figures for this model")
    found = stored_results().get("localisation") or {}
    pointing = found.get("by_method", {}).get(found.get("default_method", "Grad-CAM"), {})
    show_review_figures(store.figures(model_sha256, fractured_case_ids(predictions)),
                        pointing.get("pointing_hit_rate"))


enter_through_app("pages/review.py")
st.title("Review heatmaps")
try:
    _, predictions = load_evaluation()
except FileNotFoundError:
    st.error("No stored evaluation was found. Run `python -m fracture_model.evaluate` to create it.")
    st.stop()
try:
    store = review_store()
except ReviewStoreError as error:
    st.error(str(error))
    st.stop()
model_sha256 = shipped_model_sha256()
st.markdown(
    "Judge the model's Grad-CAM on any test case: is it on the fracture, and do you agree with the model's call? "
    f"Verdicts are kept with the model version (`{model_sha256[:12]}`), so a new model starts a fresh review; "
    "see SECURITY.md for what is stored and where."
)

st.text_input("Your name", key="review_name", max_chars=MAX_REVIEWER,
              placeholder="as it should appear beside your verdicts")
cases = predictions.sort_values("image_id").reset_index(drop=True)
choice = st.columns([2, 1])
outcomes = sorted(cases["outcome"].unique())
shown_outcomes = choice[1].multiselect("Outcome", outcomes, key="review_outcomes", placeholder="Every outcome")
if shown_outcomes:
    cases = cases[cases["outcome"].isin(shown_outcomes)].reset_index(drop=True)
if cases.empty:
    st.warning("No test case has these outcomes.")
    st.stop()
labels = {row.image_id: _label(row) for row in cases.itertuples()}
image_id = choice[0].selectbox("Test case", list(labels), format_func=labels.get, key="review_case")
case = cases[cases["image_id"] == image_id].iloc[0]

picture, form = st.columns([3, 2])
with picture:
    image = MODEL_DIR / EVALUATION_DIR / case["case_image"] if case["case_image"] else None
    if image is not None and image.exists():
        st.image(str(image), width="stretch",
                 caption="Left: the radiologists' boxes (magenta). Right: Grad-CAM, its peak ringed. " + CITATION)
    else:
        st.caption("No image is stored for this case.")
    st.caption(f"P(fractured) {float(case['probability_fractured']):.2f}; model's call: {case['decision']}.")
    if not int(case["fractured"]):
        st.caption("This radiograph is labelled not fractured: its heatmap answer is kept but not counted in the "
                   "share of heatmaps on the fracture.")
with form:
    with st.form("verdict", clear_on_submit=False, border=True):
        st.radio(QUESTIONS["heatmap_on_fracture"], CHOICES, index=None, horizontal=True, key="review_heatmap")
        st.radio(QUESTIONS["agrees_with_model"], CHOICES, index=None, horizontal=True, key="review_agree")
        st.text_area(f"Comment (at most {MAX_COMMENT} characters)", max_chars=MAX_COMMENT, key="review_comment")
        st.form_submit_button("Record verdict", type="primary", on_click=_record, args=(store, model_sha256, image_id))
    kind, message = st.session_state.pop("review_message", (None, None))
    if kind == "error":
        st.error(message)
    elif kind == "success":
        st.success(message)

earlier = [row for row in store.verdicts(model_sha256) if row["image_id"] == image_id]
if earlier:
    st.markdown(f"**Verdicts on {image_id}**")
    st.dataframe(pd.DataFrame(earlier)[["recorded_at", "reviewer", "heatmap_on_fracture", "agrees_with_model",
                                        "comment"]], hide_index=True, width="stretch")

figures_section(store, model_sha256, predictions)
every = store.verdicts(model_sha256)
st.download_button("Download verdicts (CSV)", verdicts_csv(every), file_name=f"verdicts_{model_sha256[:12]}.csv",
                   mime="text/csv", disabled=not every)
