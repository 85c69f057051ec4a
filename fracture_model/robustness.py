"""How the model holds on shifted copies of a split (``shifts.py``): ranking, decision, heatmap, warning.

For each shifted set: ROC AUC, sensitivity and specificity at the model's operating threshold, the
Grad-CAM pointing game on fractured images with boxes (tolerance ``shifts.tolerance_px``: 15 px per
512 px of the shifted image's long side), and how often the out-of-distribution check fires, with the
ROC AUC of the flagged and of the unflagged images; each figure with its 95% interval (percentile bootstrap
for ROC AUC, Wilson for proportions), and which of the issue's robustness targets a set misses.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from fracture_model import localisation, shifts
from fracture_model.imaging import read_radiograph
from fracture_model.metrics import at_threshold, bootstrap_roc_auc, wilson_interval
from fracture_model.preprocess import Letterbox

BATCH = 8
ROBUSTNESS_FILE = "robustness.json"
"""Inside the model's ``evaluation`` folder: ``bench/bench_robustness.py --json`` on the test split."""
AUC_GAP = 0.05
"""Target: every shifted set's ROC AUC within this of the unshifted set's."""
MIN_SPECIFICITY = 0.70
"""Target: specificity at the model's own threshold on every shifted set."""
MIN_ZOOM_POINTING = 0.60
"""Target: the Grad-CAM pointing game on every close-up (zoom) set."""


@dataclass(frozen=True)
class ShiftedSet:
    name: str
    kind: str
    zoom_factor: float | None = None


def benchmark_sets() -> list[ShiftedSet]:
    """The benchmark's sets, in the README's order: unshifted, four zooms, rotation, 224 px + JPEG, marks, mix."""
    return ([ShiftedSet("unshifted", "none")]
            + [ShiftedSet(f"zoom {factor:g}x box", "zoom", factor) for factor in shifts.ZOOM_FACTORS]
            + [ShiftedSet("rotation 0-360", "rotation"), ShiftedSet("224 px + JPEG 75", "downscale_jpeg"),
               ShiftedSet("markers and arrows", "markers"), ShiftedSet("mix of all", "mix")])


def benchmark_frame(split: pd.DataFrame, split_name: str, normal_images: int | None = None, seed: int = 0,
                    limit: int | None = None) -> pd.DataFrame:
    """The benchmark's images of ``split_name`` (rows of ``split.csv``), by image ID: the first ``limit``, then
    every fractured one and a fixed draw (``seed``) of ``normal_images`` normal ones where there are more."""
    frame = split[split["split"] == split_name].sort_values("image_id").reset_index(drop=True)
    if limit:
        frame = frame.head(limit)
    if normal_images is not None and (frame["fractured"] == 0).sum() > normal_images:
        normals = frame[frame["fractured"] == 0].sample(normal_images, random_state=seed)
        frame = pd.concat([frame[frame["fractured"] == 1], normals]).sort_values("image_id").reset_index(drop=True)
    return frame


def set_images(frame: pd.DataFrame, images_dir: Path, boxes: dict, shifted: ShiftedSet, seed: int) -> Iterator:
    """The shifted set's images of ``frame``: ``(row index, pixels, boxes)``, deterministically (``seed``)."""
    paths, labels = list(frame["path"]), frame["fractured"].astype(int).tolist()
    own_boxes = [boxes.get(image_id, ()) if label else ()
                 for image_id, label in zip(frame["image_id"], labels, strict=True)]

    def load(index: int) -> np.ndarray:
        return read_radiograph((images_dir / paths[index]).read_bytes()).pixels

    if shifted.kind == "none":
        for index in range(len(paths)):
            yield index, load(index), own_boxes[index]
        return
    rows = list(zip(labels, own_boxes, strict=True))
    yield from shifts.shifted_images(rows, load, shifted.kind, seed, shifted.zoom_factor)


def score_set(predictor, explainer, frame: pd.DataFrame, images_dir: Path, boxes: dict, shifted: ShiftedSet,
              seed: int = 0, method: str = "Grad-CAM") -> pd.DataFrame:
    """One row per image of the shifted set: label, probability, in_distribution, pointing_hit (fractured
    images with boxes; NA otherwise)."""
    rows: list[dict] = []
    pending: list[tuple[int, np.ndarray, tuple]] = []

    def flush() -> None:
        inputs = np.concatenate([predictor.network_input(pixels) for _, pixels, _ in pending])
        predictions = predictor.predictions(inputs)
        boxed = [i for i, (_, _, found) in enumerate(pending) if found]
        maps = dict(zip(boxed, explainer.input_heatmaps(inputs[boxed], method), strict=True)) if boxed else {}
        for i, ((index, pixels, found), prediction) in enumerate(zip(pending, predictions, strict=True)):
            hit = pd.NA
            if i in maps:
                heatmap = Letterbox(pixels.shape, inputs.shape[1]).crop_to_original(maps[i])
                peak = localisation.heatmap_peak(heatmap)
                tolerance = shifts.tolerance_px(pixels.shape)
                hit = int(peak is not None and localisation.pointing_hit(peak, found, tolerance))
            rows.append({"image_id": frame["image_id"].iloc[index], "fractured": int(frame["fractured"].iloc[index]),
                         "probability_fractured": prediction.probability_fractured,
                         "in_distribution": prediction.in_distribution, "pointing_hit": hit})
        pending.clear()

    for item in set_images(frame, images_dir, boxes, shifted, seed):
        pending.append(item)
        if len(pending) == BATCH:
            flush()
    if pending:
        flush()
    return pd.DataFrame(rows)


def _auc(scored: pd.DataFrame) -> float | None:
    labels = scored["fractured"]
    return float(roc_auc_score(labels, scored["probability_fractured"])) if labels.nunique() == 2 else None


def _interval(bounds) -> list[float] | None:
    """A 95% interval as a JSON list, None where it is undefined (no image of that kind)."""
    return None if any(np.isnan(bound) for bound in bounds) else [float(bound) for bound in bounds]


def summarise(scored: pd.DataFrame, threshold: float) -> dict:
    """The figures of one set (``score_set``'s rows) at ``threshold``, with 95% intervals."""
    labels, probabilities = scored["fractured"].to_numpy(), scored["probability_fractured"].to_numpy()
    point = at_threshold(labels, probabilities, threshold)
    hits = scored["pointing_hit"].dropna().astype(int)
    auc = _auc(scored)
    summary = {
        "images": int(len(scored)), "fractured": int(labels.sum()), "roc_auc": auc,
        "roc_auc_ci95": list(bootstrap_roc_auc(labels, probabilities)[1:]) if auc is not None else None,
        "sensitivity": point.sensitivity, "specificity": point.specificity,
        "sensitivity_ci95": _interval(point.sensitivity_ci95), "specificity_ci95": _interval(point.specificity_ci95),
        "pointing_hit_rate": float(hits.mean()) if len(hits) else None, "pointing_images": int(len(hits)),
        "pointing_ci95": list(wilson_interval(int(hits.sum()), int(len(hits)))) if len(hits) else None,
    }
    flags = scored["in_distribution"]
    if flags.notna().all() and len(flags):
        flagged = scored[~flags.astype(bool)]
        unflagged = scored[flags.astype(bool)]
        summary |= {"out_of_distribution_rate": float(len(flagged) / len(scored)),
                    "roc_auc_flagged": _auc(flagged), "roc_auc_unflagged": _auc(unflagged)}
    return summary


def target_misses(summaries: dict[str, dict]) -> dict[str, list[str]]:
    """For each set of ``summarise`` results, the issue's robustness targets it misses, in words (empty: all met).

    Shifted sets only (the unshifted set is the reference): ROC AUC within ``AUC_GAP`` of the unshifted set's,
    specificity at least ``MIN_SPECIFICITY``, and on close-ups a pointing game of at least ``MIN_ZOOM_POINTING``.
    """
    kinds = {shifted.name: shifted.kind for shifted in benchmark_sets()}
    reference = summaries.get("unshifted", {}).get("roc_auc")
    misses = {}
    for name, found in summaries.items():
        missed = []
        if name != "unshifted":
            auc, specificity = found.get("roc_auc"), found.get("specificity")
            if reference is not None and auc is not None and reference - auc > AUC_GAP:
                missed.append(f"ROC AUC {reference - auc:.3f} below the unshifted set's")
            if specificity is not None and pd.notna(specificity) and specificity < MIN_SPECIFICITY:
                missed.append(f"specificity under {MIN_SPECIFICITY:.2f}")
            pointing = found.get("pointing_hit_rate")
            if kinds.get(name) == "zoom" and pointing is not None and pointing < MIN_ZOOM_POINTING:
                missed.append(f"pointing game under {MIN_ZOOM_POINTING:.2f}")
        misses[name] = missed
    return misses


def targets_in_words(misses: dict[str, list[str]]) -> dict[str, str]:
    """Per set, ``target_misses``' result as one table cell: "(reference)" for the unshifted set, else the misses
    or "none"."""
    return {name: "(reference)" if name == "unshifted" else "; ".join(missed) or "none"
            for name, missed in misses.items()}


def table(summaries: dict[str, dict]) -> str:
    """A Markdown table of ``summarise`` results, one row per set, with 95% intervals where stored."""
    def number(value, digits=3):
        return "n/a" if value is None else f"{value:.{digits}f}"

    def with_interval(value, interval):
        return number(value) + ("" if not interval else f" ({interval[0]:.2f} to {interval[1]:.2f})")

    missed = targets_in_words(target_misses(summaries))
    lines = ["| set | images (fractured) | ROC AUC (95% CI) | sensitivity | specificity (95% CI) | pointing game (n) | "
             "flagged outside | AUC flagged / unflagged | targets missed |", "|---|---|---|---|---|---|---|---|---|"]
    for name, found in summaries.items():
        flagged = ("n/a" if "out_of_distribution_rate" not in found
                   else f"{found['out_of_distribution_rate']:.0%}")
        split_auc = ("n/a" if "out_of_distribution_rate" not in found
                     else f"{number(found['roc_auc_flagged'])} / {number(found['roc_auc_unflagged'])}")
        lines.append(f"| {name} | {found['images']} ({found['fractured']}) | "
                     f"{with_interval(found['roc_auc'], found.get('roc_auc_ci95'))} | "
                     f"{number(found['sensitivity'])} | "
                     f"{with_interval(found['specificity'], found.get('specificity_ci95'))} | "
                     f"{number(found['pointing_hit_rate'], 2)} ({found['pointing_images']}) | "
                     f"{flagged} | {split_auc} | {missed[name]} |")
    return "\n".join(lines)
