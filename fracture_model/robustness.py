"""How the model holds on shifted copies of a split (``shifts.py``): ranking, decision, heatmap, warning.

For each shifted set: ROC AUC, sensitivity and specificity at the model's operating threshold, the
Grad-CAM pointing game on fractured images with boxes (tolerance ``shifts.tolerance_px``: 15 px per
512 px of the shifted image's long side), and how often the out-of-distribution check fires, with the
ROC AUC of the flagged and of the unflagged images.
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
from fracture_model.metrics import at_threshold, wilson_interval
from fracture_model.preprocess import Letterbox

BATCH = 8


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


def summarise(scored: pd.DataFrame, threshold: float) -> dict:
    """The figures of one set (``score_set``'s rows) at ``threshold``."""
    labels, probabilities = scored["fractured"].to_numpy(), scored["probability_fractured"].to_numpy()
    point = at_threshold(labels, probabilities, threshold)
    hits = scored["pointing_hit"].dropna().astype(int)
    summary = {
        "images": int(len(scored)), "fractured": int(labels.sum()), "roc_auc": _auc(scored),
        "sensitivity": point.sensitivity, "specificity": point.specificity,
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


def table(summaries: dict[str, dict]) -> str:
    """A Markdown table of ``summarise`` results, one row per set."""
    def number(value, digits=3):
        return "n/a" if value is None else f"{value:.{digits}f}"

    lines = ["| set | images (fractured) | ROC AUC | sensitivity | specificity | pointing game (n) | "
             "flagged outside | AUC flagged / unflagged |", "|---|---|---|---|---|---|---|---|"]
    for name, found in summaries.items():
        flagged = ("n/a" if "out_of_distribution_rate" not in found
                   else f"{found['out_of_distribution_rate']:.0%}")
        split_auc = ("n/a" if "out_of_distribution_rate" not in found
                     else f"{number(found['roc_auc_flagged'])} / {number(found['roc_auc_unflagged'])}")
        lines.append(f"| {name} | {found['images']} ({found['fractured']}) | {number(found['roc_auc'])} | "
                     f"{number(found['sensitivity'])} | {number(found['specificity'])} | "
                     f"{number(found['pointing_hit_rate'], 2)} ({found['pointing_images']}) | "
                     f"{flagged} | {split_auc} |")
    return "\n".join(lines)
