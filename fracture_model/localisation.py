"""Does a heatmap point at the fracture? The radiologists' boxes measured against the heatmap.

Coordinates are pixels of the radiograph as stored in the FracAtlas working copy (long side at most
512 px), the size the COCO annotations are written in. They are continuous: pixel (row ``r``, column
``c``) covers ``[c, c + 1) x [r, r + 1)`` and its centre is ``(c + 0.5, r + 0.5)``. COCO boxes, the
``Letterbox`` mapping and ``cv2.resize`` all use this convention, so a box maps through the letterbox
exactly as the image does.

Two figures per image, for a heatmap over the original radiograph:

- **Pointing game** (Zhang et al., 2016): a hit when the centre of the heatmap's peak pixel lies within
  ``POINTING_TOLERANCE_PX`` of a radiologist's box (inside it, or at most that far from its edge).
- **Energy inside the boxes**: the sum of the heatmap over the pixels whose centres lie in the union of
  the boxes, divided by the sum over the whole image. A uniform heatmap scores the boxes' share of the
  image area (``box_area_share``), which is the chance level to compare against.

And two for the implant shortcut (is the heatmap on the metal?), stated as what they are, a proxy:
metal is the densest material in a radiograph, so it is among the brightest pixels of its image.
``brightness_rank_at`` gives the share of the image's pixels that are darker than the radiograph under
the heatmap's peak; ``energy_on_brightest`` the heatmap's share on the image's brightest pixels.
Bright soft tissue at the film edge and dense cortical bone can also rank high, so the picture is shown
beside the number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fracture_model.preprocess import Letterbox

ANNOTATIONS_FILE = Path("annotations") / "coco_fractures.json"
"""Where the boxes live inside the FracAtlas folder."""

POINTING_TOLERANCE_PX = 15.0
"""Pointing-game tolerance in pixels of the original image, at this copy's scale (long side <= 512 px).

15 px is the tolerance of the original pointing game (Zhang et al., 2016). Here it is about 3% of the
long side and about half the side of a median FracAtlas fracture box (25 x 28 px), so a peak on the
fracture line next to a tight box counts, a peak on the neighbouring bone does not.
"""

BRIGHTEST_SHARE = 0.03
"""``energy_on_brightest`` counts the heatmap on this share of the image's brightest pixels."""

ON_METAL_RANK = 1.0 - BRIGHTEST_SHARE
"""A peak at or above this brightness rank is on the brightest ``BRIGHTEST_SHARE`` of the image."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in continuous pixel coordinates (COCO: left, top, width, height)."""

    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @classmethod
    def from_coco(cls, bbox: Sequence[float]) -> Box:
        left, top, width, height = (float(value) for value in bbox)
        return cls(left, top, width, height)

    def distance_to(self, x: float, y: float) -> float:
        """Euclidean distance from the point (x, y) to the box: 0 inside or on its edge."""
        dx = max(self.left - x, 0.0, x - self.right)
        dy = max(self.top - y, 0.0, y - self.bottom)
        return math.hypot(dx, dy)


def load_boxes(annotations_path: Path | str) -> dict[str, tuple[Box, ...]]:
    """The fracture boxes of a COCO file, keyed by image file name (e.g. ``IMG0000019.jpg``).

    Images listed without annotations get an empty tuple; the coordinates stay as written (for
    FracAtlas' working copy: its own pixel size).
    """
    coco = json.loads(Path(annotations_path).read_text())
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    boxes: dict[str, list[Box]] = {name: [] for name in names.values()}
    for annotation in coco["annotations"]:
        boxes[names[annotation["image_id"]]].append(Box.from_coco(annotation["bbox"]))
    return {name: tuple(found) for name, found in boxes.items()}


def _pixel_centres(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    height, width = shape
    return np.arange(width, dtype=np.float64) + 0.5, np.arange(height, dtype=np.float64) + 0.5


def boxes_mask(boxes: Iterable[Box], shape: tuple[int, int]) -> np.ndarray:
    """Boolean (height, width) mask of the pixels whose centres lie in the union of the boxes."""
    columns, rows = _pixel_centres(shape)
    mask = np.zeros(shape, dtype=bool)
    for box in boxes:
        inside_x = (columns >= box.left) & (columns < box.right)
        inside_y = (rows >= box.top) & (rows < box.bottom)
        mask |= inside_y[:, np.newaxis] & inside_x[np.newaxis, :]
    return mask


def near_boxes_mask(
    boxes: Iterable[Box], shape: tuple[int, int], tolerance: float = POINTING_TOLERANCE_PX
) -> np.ndarray:
    """Boolean mask of the pixels whose centres lie within ``tolerance`` of a box: where a peak would hit."""
    columns, rows = _pixel_centres(shape)
    mask = np.zeros(shape, dtype=bool)
    for box in boxes:
        dx = np.maximum(np.maximum(box.left - columns, 0.0), columns - box.right)
        dy = np.maximum(np.maximum(box.top - rows, 0.0), rows - box.bottom)
        mask |= dy[:, np.newaxis] ** 2 + dx[np.newaxis, :] ** 2 <= tolerance**2
    return mask


def distance_to_boxes(peak: tuple[int, int], boxes: Iterable[Box]) -> float:
    """Distance in pixels from the centre of the peak pixel (column, row) to the nearest box (inf: no box)."""
    x, y = peak[0] + 0.5, peak[1] + 0.5
    return min((box.distance_to(x, y) for box in boxes), default=math.inf)


def pointing_hit(peak: tuple[int, int], boxes: Iterable[Box], tolerance: float = POINTING_TOLERANCE_PX) -> bool:
    """Pointing game: does the heatmap's peak pixel (column, row) lie within ``tolerance`` px of a box?"""
    return distance_to_boxes(peak, boxes) <= tolerance


def energy_inside(heatmap: np.ndarray, boxes: Iterable[Box]) -> float:
    """Share of the heatmap's total inside the union of the boxes (NaN for an all-zero heatmap)."""
    heatmap = np.asarray(heatmap, dtype=np.float64)
    total = float(heatmap.sum())
    if total <= 0.0:
        return math.nan
    return float(heatmap[boxes_mask(boxes, heatmap.shape)].sum() / total)


def heatmap_peak(heatmap: np.ndarray) -> tuple[int, int] | None:
    """(column, row) of the heatmap's maximum (``Explanation.peak``); None for a flat map (no peak).

    Grad-CAM draws an all-zero map when no region speaks for the explained class; such a map points
    nowhere, and the pointing game counts it as a miss.
    """
    if not np.ptp(heatmap) > 0:
        return None
    row, column = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return int(column), int(row)


@dataclass(frozen=True)
class LocalisationScore:
    """How one heatmap sits against one image's fracture boxes."""

    peak: tuple[int, int] | None
    """None: a flat heatmap, which points nowhere (a miss, at infinite distance)."""
    distance_px: float
    pointing_hit: bool
    energy_inside: float
    box_area_share: float
    """Share of the image inside the boxes: the energy share of a uniform heatmap (chance)."""
    pointing_chance: float
    """Share of the image where a peak would count as a hit: the hit rate of a random peak."""


def score_heatmap(
    heatmap: np.ndarray, boxes: Sequence[Box], tolerance: float = POINTING_TOLERANCE_PX
) -> LocalisationScore:
    """Pointing game and energy share of ``heatmap`` (over the original image) against ``boxes``."""
    peak = heatmap_peak(heatmap)
    distance = math.inf if peak is None else distance_to_boxes(peak, boxes)
    return LocalisationScore(
        peak=peak,
        distance_px=distance,
        pointing_hit=distance <= tolerance,
        energy_inside=energy_inside(heatmap, boxes),
        box_area_share=float(boxes_mask(boxes, heatmap.shape).mean()),
        pointing_chance=float(near_boxes_mask(boxes, heatmap.shape, tolerance).mean()),
    )


def box_to_input(box: Box, letterbox: Letterbox) -> Box:
    """The same box in network-input coordinates: through the letterbox and resize the image went through."""
    left, top = letterbox.to_input(box.left, box.top)
    right, bottom = letterbox.to_input(box.right, box.bottom)
    return Box(left, top, right - left, bottom - top)


def scale_box(box: Box, factor: float) -> Box:
    """The box on an image resized by ``factor`` (e.g. a thumbnail)."""
    return Box(box.left * factor, box.top * factor, box.width * factor, box.height * factor)


def draw_boxes(image_rgb: np.ndarray, boxes: Iterable[Box], colour: tuple[int, int, int] = (0, 255, 0),
               thickness: int = 1) -> np.ndarray:
    """A copy of ``image_rgb`` with each box outlined (the outline covers the box's edge pixels)."""
    drawn = image_rgb.copy()
    for box in boxes:
        top_left = (int(math.floor(box.left)), int(math.floor(box.top)))
        right, bottom = int(math.ceil(box.right)) - 1, int(math.ceil(box.bottom)) - 1
        bottom_right = (max(top_left[0], right), max(top_left[1], bottom))
        cv2.rectangle(drawn, top_left, bottom_right, colour, thickness, lineType=cv2.LINE_8)
    return drawn


def bootstrap_mean_interval(values: Sequence[float], resamples: int = 2000, seed: int = 0,
                            level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaNs dropped; NaN, NaN when none are left)."""
    finite = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if len(finite) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = finite[rng.integers(0, len(finite), (resamples, len(finite)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def brightness_rank_at(pixels: np.ndarray, point: tuple[int, int], radius: int = 2) -> float:
    """Share of the image's pixels darker than the radiograph at ``point`` (column, row).

    The brightness at the point is the mean over a (2 * radius + 1) square around it, so a single noisy
    pixel does not decide. 1.0: the brightest spot of the image; metal implants rank near the top.
    """
    column, row = point
    height, width = pixels.shape
    rows = slice(max(0, row - radius), min(height, row + radius + 1))
    patch = pixels[rows, max(0, column - radius) : min(width, column + radius + 1)]
    return float((pixels < float(patch.mean())).mean())


def brightest_mask(pixels: np.ndarray, share: float = BRIGHTEST_SHARE) -> np.ndarray:
    """Boolean mask of the image's brightest ``share`` of pixels (ties at the threshold included)."""
    return pixels >= np.quantile(pixels, 1.0 - share)


def energy_on_brightest(heatmap: np.ndarray, pixels: np.ndarray, share: float = BRIGHTEST_SHARE) -> float:
    """Share of the heatmap's total on the image's brightest ``share`` of pixels (chance: about ``share``)."""
    heatmap = np.asarray(heatmap, dtype=np.float64)
    total = float(heatmap.sum())
    if total <= 0.0:
        return math.nan
    return float(heatmap[brightest_mask(pixels, share)].sum() / total)
