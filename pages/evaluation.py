"""Model evaluation for reviewers: how the shipped model did on its own held-out test split."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from fracture_model import metrics
from fracture_model.evaluate import EVALUATION_DIR
from pages.shared import CITATION, MODEL_DIR, load_card, load_evaluation

METRIC_LABELS = {
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "ppv": "PPV",
    "npv": "NPV",
    "f1": "F1",
    "accuracy": "Accuracy",
    "cohen_kappa": "Cohen's kappa",
}


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _line_chart(frame: pd.DataFrame, x: str, y: str, title: str, diagonal: bool) -> alt.Chart:
    chart = alt.Chart(frame).mark_line(interpolate="step-after" if not diagonal else "linear").encode(
        x=alt.X(x, scale=alt.Scale(domain=[0, 1])), y=alt.Y(y, scale=alt.Scale(domain=[0, 1]))
    ).properties(title=title, height=300)
    if diagonal:
        chance = pd.DataFrame({x: [0, 1], y: [0, 1]})
        chart += alt.Chart(chance).mark_line(strokeDash=[4, 4], color="gray").encode(x=x, y=y)
    return chart


def _point(chart_x: float, chart_y: float, x: str, y: str) -> alt.Chart:
    return alt.Chart(pd.DataFrame({x: [chart_x], y: [chart_y]})).mark_point(
        color="red", size=120, filled=True
    ).encode(x=x, y=y)


st.title("Model evaluation")
card = load_card()
try:
    results, predictions = load_evaluation()
except FileNotFoundError:
    st.error("No stored evaluation was found. Run `python -m fracture_model.evaluate` to create it.")
    st.stop()

labels = predictions["fractured"].to_numpy()
probabilities = predictions["probability_fractured"].to_numpy()
threshold = float(card["operating_threshold"])
st.markdown(
    f"Held-out **test split** of FracAtlas: **{results['images']}** radiographs, **{results['fractured']}** "
    "fractured. The split is group-aware (duplicates and neighbouring image IDs never straddle train, "
    "validation and test); the test split was never used for training, early stopping, calibration or "
    f"choosing the threshold. Operating threshold **{threshold:.3f}** "
    f"({card.get('operating_threshold_rule', '')}, chosen on validation)."
)

low, high = results["roc_auc_ci95"]
headline = st.columns(3)
headline[0].metric("ROC AUC", f"{results['roc_auc']:.3f}", help="95% bootstrap CI below")
headline[0].caption(f"95% CI {low:.3f} to {high:.3f} ({results['bootstrap']['resamples']} bootstrap resamples)")
headline[1].metric("Sensitivity at 90% specificity", _percent(results["sensitivity_at_specificity_0.90"]))
headline[2].metric("Expected calibration error", f"{results['expected_calibration_error']:.3f}")

st.subheader("At the operating threshold")
point = results["operating_point"]
cells = st.columns(len(METRIC_LABELS))
for cell, (key, label) in zip(cells, METRIC_LABELS.items(), strict=True):
    cell.metric(label, f"{point[key]:.3f}")

matrix = pd.DataFrame(
    [[point["true_positives"], point["false_negatives"]], [point["false_positives"], point["true_negatives"]]],
    index=["Fractured (label)", "Not fractured (label)"],
    columns=["Called fractured", "Called not fractured"],
)
st.markdown("**Confusion matrix**")
st.table(matrix)

st.subheader("Curves")
roc = metrics.roc_points(labels, probabilities)
pr = metrics.precision_recall_points(labels, probabilities)
curves = st.columns(3)
curves[0].altair_chart(
    _line_chart(roc, "false_positive_rate", "sensitivity", "ROC curve", diagonal=True)
    + _point(1 - point["specificity"], point["sensitivity"], "false_positive_rate", "sensitivity"),
    width="stretch",
)
curves[1].altair_chart(
    _line_chart(pr, "recall", "precision", "Precision-recall curve", diagonal=False)
    + _point(point["sensitivity"], point["ppv"], "recall", "precision"),
    width="stretch",
)
calibration = metrics.calibration_table(labels, probabilities)
reliability = alt.Chart(calibration).mark_line(point=True).encode(
    x=alt.X("mean_predicted", title="mean predicted probability", scale=alt.Scale(domain=[0, 1])),
    y=alt.Y("observed_fraction", title="observed fraction fractured", scale=alt.Scale(domain=[0, 1])),
    tooltip=["mean_predicted", "observed_fraction", "images"],
).properties(title="Calibration (10 bins)", height=300)
ideal = alt.Chart(pd.DataFrame({"mean_predicted": [0, 1], "observed_fraction": [0, 1]})).mark_line(
    strokeDash=[4, 4], color="gray").encode(x="mean_predicted", y="observed_fraction")
curves[2].altair_chart(reliability + ideal, width="stretch")
st.caption("Red dot: the operating threshold. Dashed: chance (ROC) and perfect calibration.")

st.subheader("Threshold explorer")
explored = st.slider("Threshold", 0.0, 1.0, round(threshold, 2), 0.01, key="threshold_explorer",
                     help="Recomputed live from the stored test-set predictions; the app keeps the operating threshold.")
live = metrics.at_threshold(labels, probabilities, explored)
cells = st.columns(4)
cells[0].metric("Sensitivity", _percent(live.sensitivity))
cells[1].metric("Specificity", _percent(live.specificity))
cells[2].metric("PPV", _percent(None if pd.isna(live.ppv) else live.ppv))
cells[3].metric("NPV", _percent(None if pd.isna(live.npv) else live.npv))
st.caption(f"{live.true_positives} fractures found, {live.false_negatives} missed; "
           f"{live.false_positives} false alarms among {live.false_positives + live.true_negatives} normal radiographs.")

st.subheader("Subgroups")
subgroups = results["subgroups"]
rows = [{"subgroup": f"body part: {name}", **values} for name, values in subgroups["by_body_part"].items()]
rows += [{"subgroup": "with implant", **subgroups["with_implant"]},
         {"subgroup": "without implant", **subgroups["without_implant"]}]
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
st.caption(
    f"ROC AUC without implant images: {results['roc_auc_without_implants']:.3f} "
    f"(95% CI {results['roc_auc_without_implants_ci95'][0]:.3f} to {results['roc_auc_without_implants_ci95'][1]:.3f}). "
    "Metal implants occur almost only in fractured images, so a model could learn 'metal means fracture'."
)

st.subheader("Misclassified test cases")
st.caption(f"Each with its {results.get('heatmap_method', 'Grad-CAM')} heatmap, at the operating threshold. {CITATION}")
tabs = st.tabs(["False negatives (missed fractures)", "False positives (false alarms)"])
for tab, outcome in zip(tabs, ["false negative", "false positive"], strict=True):
    cases = predictions[predictions["outcome"] == outcome].sort_values(
        "probability_fractured", ascending=outcome == "false negative")
    with tab:
        st.caption(f"{len(cases)} cases")
        grid = st.columns(3)
        for i, case in enumerate(cases.itertuples()):
            image = MODEL_DIR / EVALUATION_DIR / case.case_image if case.case_image else None
            caption = f"{case.image_id} · {case.body_part} · P(fractured) {case.probability_fractured:.2f}"
            if case.hardware:
                caption += " · implant"
            with grid[i % 3]:
                if image is not None and image.exists():
                    st.image(str(image), caption=caption, width="stretch")
                else:
                    st.caption(caption + " (no image stored)")
