"""Model evaluation for reviewers: how the shipped model did on its own held-out test split."""

from __future__ import annotations

import json
import math

import altair as alt
import pandas as pd
import streamlit as st

from fracture_model import metrics, robustness
from fracture_model.explain import DEFAULT_METHOD, METHODS
from fracture_model.localisation import BRIGHTEST_SHARE, ON_METAL_RANK, POINTING_TOLERANCE_PX
from fracture_model.model_card import EVALUATION_DIR
from pages.shared import CITATION, MODEL_DIR, enter_through_app, load_card, load_evaluation, shipped_model_sha256

OUTCOME_NAMES = {"TP": "true positive", "FP": "false positive", "TN": "true negative", "FN": "false negative"}
IMPLANT_CHOICES = ("Any", "With implant", "Without implant")
CASES_PER_PAGE = 12
NUMERIC_CASE_COLUMNS = ("peak_x", "peak_y", "peak_brightness_rank", "energy_on_brightest", "fracture_boxes",
                        "pointing_hit", "energy_inside", "distance_to_box_px")

METRIC_LABELS = {
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "ppv": "PPV",
    "npv": "NPV",
    "f1": "F1",
    "accuracy": "Accuracy",
    "cohen_kappa": "Cohen's kappa",
}


def _percent(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}%}"


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


def _ci(interval: list | None, percent: bool = True) -> str:
    if not interval or any(value is None or (isinstance(value, float) and math.isnan(value)) for value in interval):
        return "n/a"
    low, high = interval
    return f"{low:.0%} to {high:.0%}" if percent else f"{low:.2f} to {high:.2f}"


def _numeric_case_columns(predictions: pd.DataFrame) -> pd.DataFrame:
    """predictions.csv is read with blanks kept as text: make the per-case heatmap columns numeric (NaN for blank)."""
    cases = predictions.copy()
    for column in NUMERIC_CASE_COLUMNS:
        if column in cases:
            cases[column] = pd.to_numeric(cases[column], errors="coerce")
    return cases


def _sanity_verdict(results: dict, method: str) -> str:
    check = results.get("sanity_check")
    if not check or method not in check["by_method"]:
        return "not run"
    return "passed" if check["by_method"][method]["passed"] else "FAILED"


def robustness_section() -> None:
    st.subheader("Beyond FracAtlas: shifted copies of the test split")
    path = MODEL_DIR / EVALUATION_DIR / robustness.ROBUSTNESS_FILE
    try:
        stored = json.loads(path.read_text())
        sets = stored["sets"]
        if not sets or not all(isinstance(found, dict) for found in sets.values()):
            raise ValueError("no sets")
    except FileNotFoundError:
        st.info("No robustness benchmark is stored for this model. Run `python bench/bench_robustness.py "
                f"--model-dir {MODEL_DIR} --normal-images 250 --json {path}` to measure it.")
        return
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        st.warning(f"The stored robustness benchmark ({path.name}) could not be read; run the benchmark again.")
        return
    if stored.get("model_version") != shipped_model_sha256()[:12]:
        st.warning(f"These figures were measured on model version {stored.get('model_version')}, not on the model "
                   "shown here: run the benchmark again before relying on them.")
    normal = stored.get("normal_images")
    drawn = f"a fixed draw of {normal} normal ones" if normal else "every normal one"
    st.markdown(
        "Radiographs from other hospitals look different: close-up crops, other angles, smaller and compressed "
        "files, burned-in side letters and arrows. The benchmark makes such copies of this model's own "
        f"**{stored.get('split', 'test')} split**, deterministically: every fractured image and {drawn}, as close-ups "
        "at 1.5x to 4x a fracture box, rotated at any angle, at 224 px with JPEG quality 75, with synthetic "
        "markers and arrows, and all of these mixed. Sensitivity and specificity are at the operating threshold; "
        "the pointing game as above; *flagged outside*: how often the app says an image lies outside what the "
        "model knows."
    )
    st.markdown(
        f"**Targets** on every shifted set: ROC AUC within {robustness.AUC_GAP:g} of the unshifted set, specificity "
        f"at least {robustness.MIN_SPECIFICITY:.2f}, and on close-ups a pointing game of at least "
        f"{robustness.MIN_ZOOM_POINTING:.2f}."
    )
    misses = robustness.target_misses(sets)
    missed = robustness.targets_in_words(misses)
    shifted = [name for name in sets if name != "unshifted"]
    met = [name for name in shifted if not misses[name]]
    reference = sets.get("unshifted", {}).get("roc_auc")
    rows = []
    for name, found in sets.items():
        auc = found.get("roc_auc")
        rows.append({
            "set": name,
            "targets missed": missed[name],
            "ROC AUC": auc, "ROC AUC 95% CI": _ci(found.get("roc_auc_ci95"), percent=False),
            "below unshifted": None if name == "unshifted" or auc is None or reference is None else reference - auc,
            "sensitivity": found.get("sensitivity"), "specificity": found.get("specificity"),
            "specificity 95% CI": _ci(found.get("specificity_ci95"), percent=False),
            "pointing game": found.get("pointing_hit_rate"),
            "flagged outside": found.get("out_of_distribution_rate"),
            "images (fractured)": f"{found.get('images')} ({found.get('fractured')})",
        })
    st.metric("Shifted sets meeting every target", f"{len(met)} of {len(shifted)}")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        column: st.column_config.NumberColumn(format="%.3f")
        for column in ("ROC AUC", "below unshifted", "sensitivity", "specificity", "pointing game")
    } | {"flagged outside": st.column_config.NumberColumn(format="percent")})
    st.caption(
        "Synthetic shifts of the kinds training saw (the marks in other fonts and words): they measure robustness "
        "to those shifts, not accuracy on another hospital's radiographs. With a few hundred images per set, a "
        "figure a little under its target may still be compatible with it: read the intervals."
    )


def localisation_section(results: dict, card: dict) -> None:
    st.subheader("Do the heatmaps point at the fracture?")
    found = results.get("localisation")
    if not found:
        st.info("This stored evaluation has no localisation figures. Run `python -m fracture_model.evaluate` "
                "to measure the heatmaps against the radiologists' boxes.")
        return
    tolerance = found.get("tolerance_px", POINTING_TOLERANCE_PX)
    st.markdown(
        f"On the **{found['images']}** fractured test radiographs, each heatmap is compared with the boxes the "
        f"FracAtlas radiologists drew around every fracture. **Pointing game**: a hit when the heatmap's peak lies "
        f"inside a box or within **{tolerance:g} px** of it (pixels of the stored radiographs, long side at most "
        "512 px; the tolerance of the original pointing game, about half the side of a typical fracture box). "
        "**Energy inside the boxes**: the share of the heatmap's total that falls inside the boxes. "
        "Chance: what a randomly placed peak or a flat heatmap would score."
    )
    supervision = card.get("box_supervision")
    if supervision:
        st.markdown(
            "**The model was taught where to look.** During training, a second loss asked the class activation "
            "map (which for this network is exactly its Grad-CAM) to peak within the pointing tolerance of the "
            f"fracture boxes (weight {supervision['weight']:g}). Only the training split's boxes were used; the "
            "test boxes measured here were never seen: epochs and models were chosen on the validation split "
            "alone."
        )
    default = found["by_method"].get(found.get("default_method", DEFAULT_METHOD))
    target = found.get("target", {})
    if default:
        cells = st.columns(3)
        cells[0].metric(f"Pointing-game hit rate ({found.get('default_method', DEFAULT_METHOD)})",
                        f"{default['pointing_hit_rate']:.0%}",
                        help=f"{default['pointing_hits']} of {default['images']} fractured images")
        chance = default["pointing_chance_mean"]
        cells[0].caption(f"95% CI {_ci(default['pointing_hit_rate_ci95'])}; chance {chance:.0%}")
        cells[1].metric("Energy inside the boxes", _percent(default["energy_inside_mean"], 0), help="mean over images")
        cells[1].caption(f"95% CI {_ci(default['energy_inside_ci95'])}; chance {default['box_area_share_mean']:.1%}")
        if target:
            cells[2].metric("Target hit rate", f"{target['pointing_hit_rate']:.0%}",
                            "met" if target["met"] else "not met", delta_color="normal" if target["met"] else "inverse")
    offered = results.get("explanation_methods", list(METHODS))
    rows = [{
        "method": method,
        "images": figures["images"],
        "flat heatmaps": figures.get("flat_heatmaps", 0),
        "pointing-game hit rate": figures["pointing_hit_rate"],
        "95% CI": _ci(figures["pointing_hit_rate_ci95"]),
        "hit rate by chance": figures["pointing_chance_mean"],
        "energy inside boxes": figures["energy_inside_mean"],
        "energy 95% CI": _ci(figures["energy_inside_ci95"]),
        "energy by chance": figures["box_area_share_mean"],
        "sanity check": _sanity_verdict(results, method),
        "offered in the app": "yes" if method in offered else "no",
    } for method, figures in found["by_method"].items()]
    percent = st.column_config.NumberColumn(format="percent")
    percent_columns = ("pointing-game hit rate", "hit rate by chance", "energy inside boxes", "energy by chance")
    st.markdown("**By method**")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config=dict.fromkeys(percent_columns, percent))

    st.markdown("**By body part and implant** (fractured test images)")
    groups = {f"body part: {part}": by_method for part, by_method in found["by_body_part"].items()}
    groups |= {name: by_method for name, by_method in found.get("by_implant", {}).items()}
    hit_tab, energy_tab = st.tabs(["Pointing-game hit rate", "Energy inside the boxes"])
    for tab, key in ((hit_tab, "pointing_hit_rate"), (energy_tab, "energy_inside_mean")):
        table = pd.DataFrame([
            {"group": name, "images": next(iter(by_method.values()))["images"],
             **{method: figures[key] for method, figures in by_method.items()}}
            for name, by_method in groups.items()
        ])
        tab.dataframe(table, hide_index=True, width="stretch",
                      column_config={method: percent for method in found["by_method"]})
    st.caption(f"{found.get('ci_note', '')}. Flat heatmaps (all zero: no region speaks for 'fractured') count as "
               "misses and are left out of the energy share. Small groups give wide intervals.")


def reviewer_section(results: dict, predictions: pd.DataFrame) -> None:
    """The reviewers' verdicts on the heatmaps (page: Review heatmaps) beside the automatic pointing game."""
    from fracture_model.reviews import ReviewStoreError
    from pages.components import show_review_figures
    from pages.shared import fractured_case_ids, review_store, shipped_model_sha256

    st.subheader("What reviewers say about the heatmaps")
    try:
        figures = review_store().figures(shipped_model_sha256(), fractured_case_ids(predictions))
    except ReviewStoreError as error:
        st.info(f"Reviewers' verdicts are not available: {error}")
        return
    found = results.get("localisation") or {}
    pointing = found.get("by_method", {}).get(found.get("default_method", DEFAULT_METHOD), {})
    show_review_figures(figures, pointing.get("pointing_hit_rate"))


def sanity_section(results: dict) -> None:
    st.subheader("Sanity check: do the heatmaps depend on what the model learned?")
    check = results.get("sanity_check")
    if not check:
        st.info("This stored evaluation has no randomisation check; every heatmap method is offered.")
        return
    stages = {stage["name"]: stage for stage in check["stages"]}
    decisive = [name for name, stage in stages.items() if stage.get("decisive", True)]
    st.markdown(
        f"Model-parameter randomisation (Adebayo et al., 2018) on **{check['images']}** fractured "
        f"{check.get('split', 'test')} images: the "
        "heatmaps of the trained model are compared with those of copies whose top weights were re-initialised. "
        "A heatmap that barely changes shows the image's structure, not the model's reasoning. "
        f"Measure: Spearman rank correlation between the two maps; a method **passes** when the median |rho| is "
        f"below **{check['bound']}** with {', '.join(stages[name]['description'] for name in decisive)}. "
        "Images whose trained heatmap is flat (all zero) have nothing to compare and are left out. "
        "Methods that fail are not offered on the reading page."
    )
    rows = []
    for method, summary in check["by_method"].items():
        row = {"method": method}
        for name, stage in summary["stages"].items():
            label = f"median |rho|, {name}" + ("" if name in decisive else " (reported)")
            row[label] = stage["median_abs_spearman"]
        row["images compared"] = max((stage.get("images_compared", check["images"])
                                      for stage in summary["stages"].values()), default=0)
        row["result"] = "passed" if summary["passed"] else "FAILED"
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={column: st.column_config.NumberColumn(format="%.2f")
                                for column in rows[0] if column.startswith("median")} if rows else None)
    passed = results.get("explanation_methods", check.get("passed", []))
    st.caption("Offered on the reading page: " + (", ".join(passed) if passed else "no heatmap method") + ". "
               + "; ".join(f"{stage['name']}: {stage['description']}" for stage in check["stages"]) + ".")


def implant_section(results: dict, predictions: pd.DataFrame) -> None:
    st.subheader("Implant images called fractured: metal or bone?")
    cases = _numeric_case_columns(predictions)
    called = cases[(cases["hardware"].astype(int) == 1) & (cases["decision"] == "fractured")]
    if "peak_brightness_rank" not in cases:
        st.info("This stored evaluation has no heatmap peaks. Run `python -m fracture_model.evaluate`.")
        return
    summary = results.get("implant_heatmaps", {})
    on_bright = called["peak_brightness_rank"] >= ON_METAL_RANK
    st.markdown(
        f"Metal implants appear almost only in fractured images, so a model can learn 'metal means fracture'. "
        f"For the **{len(called)}** implant radiographs the model called fractured, where does the "
        f"{results.get('heatmap_method', DEFAULT_METHOD)} peak sit? Measure: the **brightness rank** of the "
        "radiograph at the peak (share of the image's pixels that are darker than a 5 x 5 patch around it); metal "
        f"is the densest material, so a peak ranked at or above **{ON_METAL_RANK:.2f}** sits on the brightest "
        f"{BRIGHTEST_SHARE:.0%} of the image, most likely the implant. **Energy on the brightest pixels**: the "
        f"heatmap's share on those {BRIGHTEST_SHARE:.0%} (chance {BRIGHTEST_SHARE:.0%}). This is a proxy: bright "
        "soft tissue at the film edge and dense bone also rank high, so check each image below."
    )
    if called.empty:
        st.caption("No implant radiograph was called fractured.")
        return
    cells = st.columns(2)
    cells[0].metric("Peaks on the brightest pixels (metal?)", f"{int(on_bright.sum())} of {len(called)}")
    energy = summary.get("energy_on_brightest_mean")
    cells[1].metric("Mean energy on the brightest pixels", "n/a" if energy is None else f"{energy:.0%}",
                    help=f"chance: {BRIGHTEST_SHARE:.0%}")
    def where(rank: float) -> str:
        if pd.isna(rank):
            return "no peak (flat heatmap)"
        return "on the brightest pixels (metal?)" if rank >= ON_METAL_RANK else "on darker tissue (bone?)"

    table = called.assign(
        label=called["fractured"].astype(int).map({1: "fractured", 0: "not fractured"}),
        peak=called["peak_brightness_rank"].map(where),
    )[["image_id", "body_part", "label", "probability_fractured", "peak_brightness_rank", "energy_on_brightest",
       "peak"]]
    st.dataframe(table.sort_values("peak_brightness_rank", ascending=False), hide_index=True, width="stretch",
                 column_config={"probability_fractured": st.column_config.NumberColumn("P(fractured)", format="%.2f"),
                                "peak_brightness_rank": st.column_config.NumberColumn(format="%.3f"),
                                "energy_on_brightest": st.column_config.NumberColumn(format="percent")})
    with st.expander(f"Show the {len(called)} implant cases"):
        _case_grid(called.sort_values("peak_brightness_rank", ascending=False))


def _case_caption(case) -> str:
    label = "fractured" if int(case.fractured) else "not fractured"
    caption = (f"{case.image_id} · {case.body_part} · label: {label} · P(fractured) "
               f"{float(case.probability_fractured):.2f} · {case.outcome}")
    if int(case.hardware):
        caption += " · implant"
    hit = getattr(case, "pointing_hit", float("nan"))
    if not pd.isna(hit):
        if pd.isna(case.distance_to_box_px):
            caption += " · flat heatmap (points nowhere)"
        else:
            distance = float(case.distance_to_box_px)
            where = "inside a box" if distance == 0 else f"{distance:.0f} px from a box"
            caption += f" · peak {where} ({'hit' if int(hit) else 'miss'})"
            caption += f" · energy in boxes {float(case.energy_inside):.0%}"
    return caption


def _case_grid(cases: pd.DataFrame, columns: int = 3) -> None:
    grid = st.columns(columns)
    for i, case in enumerate(cases.itertuples()):
        image = MODEL_DIR / EVALUATION_DIR / case.case_image if case.case_image else None
        with grid[i % columns]:
            if image is not None and image.exists():
                st.image(str(image), caption=_case_caption(case), width="stretch")
            else:
                st.caption(_case_caption(case) + " (no image stored)")


def misclassified_gallery(predictions: pd.DataFrame, results: dict) -> None:
    """Every misclassified test case, false negatives and false positives apart, most confident first."""
    st.subheader("Misclassified test cases")
    st.caption(f"Each with its {results.get('heatmap_method', DEFAULT_METHOD)} heatmap and the radiologists' boxes, "
               f"at the operating threshold. {CITATION}")
    cases = _numeric_case_columns(predictions)
    tabs = st.tabs(["False negatives (missed fractures)", "False positives (false alarms)"])
    for tab, outcome in zip(tabs, ["false negative", "false positive"], strict=True):
        wrong = cases[cases["outcome"] == outcome].sort_values(
            "probability_fractured", ascending=outcome == "false negative")
        with tab:
            st.caption(f"{len(wrong)} cases")
            _case_grid(wrong)


def case_browser(predictions: pd.DataFrame, results: dict, threshold: float) -> None:
    st.subheader("Case browser")
    method = results.get("heatmap_method", DEFAULT_METHOD)
    st.caption(
        f"Every test radiograph: left the image with the radiologists' boxes (magenta), right the {method} "
        "overlay with the boxes and the heatmap's peak (white ring). Outcome at the operating threshold. "
        + CITATION
    )
    cases = _numeric_case_columns(predictions)
    filters = st.columns([3, 3, 2])
    outcomes = filters[0].multiselect(
        "Outcome", list(OUTCOME_NAMES), default=list(OUTCOME_NAMES), key="case_outcome",
        help="TP/FN: fractured radiographs found/missed; FP/TN: normal ones flagged/cleared")
    parts = sorted(cases["body_part"].unique())
    chosen_parts = filters[1].multiselect("Body part", parts, default=parts, key="case_body_part")
    implant = filters[2].radio("Implant", IMPLANT_CHOICES, horizontal=True, key="case_implant")
    shown = cases[cases["outcome"].isin([OUTCOME_NAMES[o] for o in outcomes]) & cases["body_part"].isin(chosen_parts)]
    if implant != "Any":
        shown = shown[shown["hardware"].astype(int) == (1 if implant == "With implant" else 0)]
    # errors first; within errors and within correct calls, the furthest from the threshold first
    wrong = shown["outcome"].isin(["false positive", "false negative"])
    confidence = (shown["probability_fractured"].astype(float) - threshold).abs()
    shown = shown.assign(_wrong=wrong, _confidence=confidence).sort_values(["_wrong", "_confidence"], ascending=False)
    pages = max(1, math.ceil(len(shown) / CASES_PER_PAGE))
    counts = ", ".join(f"{short} {int((shown['outcome'] == name).sum())}" for short, name in OUTCOME_NAMES.items())
    header = st.columns([3, 1])
    header[0].markdown(f"**{len(shown)}** of {len(cases)} test cases ({counts}); errors first, most confident first.")
    page = header[1].number_input("Page", min_value=1, value=1, step=1, key="case_page",
                                  help=f"{pages} pages of {CASES_PER_PAGE}")
    page = min(int(page), pages)  # the filters may have shrunk the list
    st.caption(f"Page {page} of {pages}")
    start = (page - 1) * CASES_PER_PAGE
    _case_grid(shown.iloc[start : start + CASES_PER_PAGE], columns=2)


enter_through_app("pages/evaluation.py")
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
views = card.get("test_time_views")
if views:
    shown = ["as it is"] + [f"shrunk to {factor:.0%} of its side in the middle of the square"
                            for factor in views["zoom_factors"]]
    mirrored = {"vertical": "upside down", "horizontal": "mirrored left to right"}
    shown += [mirrored[flip] for flip in views.get("flips", [])]
    st.caption(
        f"Each probability averages the network's answers on the radiograph {', '.join(shown[:-1])} and {shown[-1]} "
        "(test-time views, chosen and calibrated on validation); the heatmaps explain the radiograph as it is."
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
                     help="Recomputed live from the stored test-set predictions; "
                          "the app keeps the operating threshold.")
live = metrics.at_threshold(labels, probabilities, explored)
cells = st.columns(4)
cells[0].metric("Sensitivity", _percent(live.sensitivity))
cells[1].metric("Specificity", _percent(live.specificity))
cells[2].metric("PPV", _percent(None if pd.isna(live.ppv) else live.ppv))
cells[3].metric("NPV", _percent(None if pd.isna(live.npv) else live.npv))
st.caption(f"{live.true_positives} fractures found, {live.false_negatives} missed; "
           f"{live.false_positives} false alarms among {live.false_positives + live.true_negatives} "
           "normal radiographs.")

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

robustness_section()
localisation_section(results, card)
reviewer_section(results, predictions)
sanity_section(results)
implant_section(results, predictions)
misclassified_gallery(predictions, results)
case_browser(predictions, results, threshold)
