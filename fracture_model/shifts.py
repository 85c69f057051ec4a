"""Deterministic shifted copies of radiographs: what images from other sources look like.

Each shift takes a decoded radiograph (2-D float in [0, 1], as ``imaging.read_radiograph`` gives it)
with its fracture boxes and returns the shifted image with the boxes moved along. The image then goes
through the one preprocessing like any upload. Used by ``bench/bench_robustness.py`` on the test split
and by training to watch a shifted copy of the validation split.

- ``zoom``: a close-up crop around one fracture box, ``factor`` times the box's longer side (jittered so
  the fracture is not always in the middle), enlarged to a long side of ``CLOSE_UP_SIDE`` px as a
  teaching-file image would be; normal images get crops of the same relative sizes centred on bone.
- ``rotation``: any angle, on a canvas large enough to keep the whole image (black corners).
- ``downscale_jpeg``: long side 224 px, then JPEG quality 75.
- ``markers``: side letters, burned-in text, rulers, watermarks and arrows drawn in the benchmark's
  style (other fonts and words than training's, ``overlays.STYLES``).
- ``mix``: each of zoom, rotation, markers and down-scaling with JPEG, each with probability 0.5.

Pointing-game tolerance on a shifted image is ``tolerance_px``: 15 px per 512 px of its long side,
the working copy's own proportion.
"""

from __future__ import annotations

import cv2
import numpy as np

from fracture_model import overlays
from fracture_model.localisation import POINTING_TOLERANCE_PX, Box

SHIFTS = ("zoom", "rotation", "downscale_jpeg", "markers", "mix")
ZOOM_FACTORS = (1.5, 2.0, 3.0, 4.0)
CLOSE_UP_SIDE = 512
REFERENCE_SIDE = 512
SMALL_SIDE = 224
JPEG_QUALITY = 75


def tolerance_px(shape: tuple[int, int]) -> float:
    """Pointing tolerance on an image of ``shape``: ``POINTING_TOLERANCE_PX`` per 512 px of its long side."""
    return POINTING_TOLERANCE_PX * max(shape) / REFERENCE_SIDE


def _resize(pixels: np.ndarray, boxes: tuple[Box, ...], long_side: int) -> tuple[np.ndarray, tuple[Box, ...]]:
    height, width = pixels.shape
    factor = long_side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(pixels.astype(np.float32), size, interpolation=interpolation)
    fx, fy = size[0] / width, size[1] / height
    return np.clip(resized, 0.0, 1.0), tuple(Box(b.left * fx, b.top * fy, b.width * fx, b.height * fy) for b in boxes)


def crop(pixels: np.ndarray, boxes: tuple[Box, ...], centre: tuple[float, float], side: float):
    """A square crop of ``side`` px at ``centre`` (moved inside the image where it can be), enlarged to
    ``CLOSE_UP_SIDE``; boxes clipped to the crop (those left outside dropped)."""
    height, width = pixels.shape
    side = float(min(max(side, 8.0), max(height, width)))
    left = float(np.clip(centre[0] - side / 2, 0, max(0.0, width - side)))
    top = float(np.clip(centre[1] - side / 2, 0, max(0.0, height - side)))
    x0, y0 = int(round(left)), int(round(top))
    x1, y1 = min(width, int(round(left + side))), min(height, int(round(top + side)))
    cut = pixels[y0:y1, x0:x1]
    moved = []
    for box in boxes:
        bl, bt = max(box.left, x0) - x0, max(box.top, y0) - y0
        br, bb = min(box.right, x1) - x0, min(box.bottom, y1) - y0
        if br > bl and bb > bt:
            moved.append(Box(bl, bt, br - bl, bb - bt))
    return _resize(cut, tuple(moved), CLOSE_UP_SIDE)


def zoom_on_box(pixels: np.ndarray, boxes: tuple[Box, ...], factor: float, rng: np.random.Generator):
    """Close-up of ``factor`` times one (random) box's longer side, the box inside at a random place."""
    box = boxes[int(rng.integers(len(boxes)))]
    side = factor * max(box.width, box.height)
    room = (side - np.array([box.width, box.height])) / 2
    jitter = rng.uniform(-0.8, 0.8, size=2) * np.maximum(room, 0)
    centre = (box.left + box.width / 2 + jitter[0], box.top + box.height / 2 + jitter[1])
    return crop(pixels, boxes, centre, side)


def bone_pixels(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the bright pixels, bone more than soft tissue: above Otsu's threshold of the
    non-black pixels (all non-black pixels if the image is flat; the centre pixel if it is all black)."""
    content = pixels[pixels > 0]
    if content.size == 0:
        return np.array([pixels.shape[0] // 2]), np.array([pixels.shape[1] // 2])
    grey = np.round(np.clip(content, 0, 1) * 255).astype(np.uint8).reshape(-1, 1)
    threshold, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    rows, columns = np.nonzero(pixels * 255 > threshold)
    return (rows, columns) if len(rows) else np.nonzero(pixels > 0)


def zoom_on_bone(pixels: np.ndarray, relative_side: float, rng: np.random.Generator):
    """Close-up of ``relative_side`` times the long side, centred on a random bright (bone) pixel."""
    rows, columns = bone_pixels(pixels)
    pick = int(rng.integers(len(rows)))
    return crop(pixels, (), (columns[pick] + 0.5, rows[pick] + 0.5), relative_side * max(pixels.shape))


def close_up_on_bone(pixels: np.ndarray, relative_side: float) -> np.ndarray:
    """Close-up of ``relative_side`` times the long side around the middle bone pixel (the median one of
    ``bone_pixels`` in reading order): deterministic, the crop a teaching file takes (a sixth: 1 / 6)."""
    rows, columns = bone_pixels(pixels)
    return crop(pixels, (), (columns[len(columns) // 2], rows[len(rows) // 2]), relative_side * max(pixels.shape))[0]


def rotate(pixels: np.ndarray, boxes: tuple[Box, ...], angle: float):
    """Rotate by ``angle`` degrees on an enlarged canvas; each box becomes the box around its turned corners."""
    height, width = pixels.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width, new_height = int(np.ceil(height * sin + width * cos)), int(np.ceil(height * cos + width * sin))
    matrix[0, 2] += new_width / 2 - width / 2
    matrix[1, 2] += new_height / 2 - height / 2
    turned = cv2.warpAffine(pixels.astype(np.float32), matrix, (new_width, new_height), flags=cv2.INTER_LINEAR,
                            borderValue=0.0)
    moved = []
    for box in boxes:
        # OpenCV maps pixel indices (pixel centres at integers); boxes use continuous coordinates
        # (centres at +0.5): shift in and out around the map.
        corners = np.array([[box.left, box.top], [box.right, box.top], [box.left, box.bottom],
                            [box.right, box.bottom]]) - 0.5
        corners = corners @ matrix[:, :2].T + matrix[:, 2] + 0.5
        (left, top), (right, bottom) = corners.min(axis=0), corners.max(axis=0)
        moved.append(Box(float(left), float(top), float(right - left), float(bottom - top)))
    return np.clip(turned, 0.0, 1.0), tuple(moved)


def downscale_jpeg(pixels: np.ndarray, boxes: tuple[Box, ...]):
    """Long side ``SMALL_SIDE`` px, JPEG at ``JPEG_QUALITY``, decoded again."""
    small, moved = _resize(pixels, boxes, SMALL_SIDE)
    encoded = cv2.imencode(".jpg", np.round(small * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1]
    return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0, moved


def add_markers(pixels: np.ndarray, boxes: tuple[Box, ...], rng: np.random.Generator):
    """Two to four marks in the benchmark's style; half the images get an arrow, pointing near a box on
    fractured images and near random bone on normal ones (the same rate for both)."""
    marked = pixels.astype(np.float32).copy()
    for kind in rng.choice(("letter", "text", "ruler", "watermark"), size=int(rng.integers(2, 5))):
        overlays.draw(marked, rng, str(kind), "benchmark")
    if rng.random() < 0.5:
        if boxes:
            box = boxes[int(rng.integers(len(boxes)))]
            target = (box.left + box.width / 2, box.top + box.height / 2)
        else:
            rows, columns = bone_pixels(pixels)
            pick = int(rng.integers(len(rows)))
            target = (float(columns[pick]), float(rows[pick]))
        overlays.draw(marked, rng, "arrow", "benchmark", target=target)
    return np.clip(marked, 0.0, 1.0), boxes


def shift(pixels: np.ndarray, boxes: tuple[Box, ...], kind: str, rng: np.random.Generator, *,
          label: int, zoom_factor: float | None = None, relative_side: float | None = None):
    """One shifted copy: ``(pixels, boxes)``, or None when the shift cannot honestly apply (a zoom crop of
    a fractured image without a box). For ``zoom``: ``zoom_factor`` for fractured images with boxes,
    ``relative_side`` (crop side over the long side) for normal ones."""
    if kind == "zoom":
        if label == 1:
            return zoom_on_box(pixels, boxes, zoom_factor, rng) if boxes else None
        return zoom_on_bone(pixels, relative_side, rng)
    if kind == "rotation":
        return rotate(pixels, boxes, float(rng.uniform(0.0, 360.0)))
    if kind == "downscale_jpeg":
        return downscale_jpeg(pixels, boxes)
    if kind == "markers":
        return add_markers(pixels, boxes, rng)
    if kind == "mix":
        if rng.random() < 0.5 and (label == 0 or boxes):
            factor = float(rng.choice(ZOOM_FACTORS))
            if label == 1:
                pixels, boxes = zoom_on_box(pixels, boxes, factor, rng)
            else:
                pixels, boxes = zoom_on_bone(pixels, float(rng.uniform(0.1, 0.4)), rng)
        if rng.random() < 0.5:
            pixels, boxes = rotate(pixels, boxes, float(rng.uniform(0.0, 360.0)))
        if rng.random() < 0.5:
            pixels, boxes = add_markers(pixels, boxes, rng)
        if rng.random() < 0.5:
            pixels, boxes = downscale_jpeg(pixels, boxes)
        return pixels, boxes
    raise ValueError(f"unknown shift {kind!r}; one of {SHIFTS}")


def shifted_images(rows: list[tuple[int, tuple[Box, ...]]], load, kind: str, seed: int,
                   zoom_factor: float | None = None):
    """Shifted copies of a list of images, deterministically: yields ``(index, pixels, boxes)``.

    ``rows``: (label, boxes) per image; ``load(index)`` decodes image ``index``. Each image gets its own
    random stream from (``seed``, index, kind), so a copy does not depend on which other images are in
    the list. For ``zoom``, fractured images (with boxes) come first; the normal images' crops then take
    their relative sizes from those fractured crops (the same size distribution). Images the shift
    cannot honestly apply to (a zoom crop of a fractured image without a box) are left out.
    """
    kind_number = SHIFTS.index(kind)
    relative_sides: list[float] = []
    order = sorted(range(len(rows)), key=lambda index: rows[index][0] == 0) if kind == "zoom" else range(len(rows))
    for index in order:
        label, boxes = rows[index]
        rng = np.random.default_rng([seed, index, kind_number])
        pixels = load(index)
        relative = None
        if kind == "zoom" and label == 1 and boxes:
            relative_sides.append(zoom_factor * max(max(b.width, b.height) for b in boxes) / max(pixels.shape))
        elif kind == "zoom" and label == 0:
            if not relative_sides:
                raise ValueError("zoom crops of normal images need fractured images with boxes in the same list")
            relative = float(min(1.0, rng.choice(relative_sides)))
        found = shift(pixels, boxes, kind, rng, label=label, zoom_factor=zoom_factor, relative_side=relative)
        if found is not None:
            yield index, found[0], found[1]
