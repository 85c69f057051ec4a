"""Marks that radiographs from other sources carry: side letters, burned-in text, rulers, watermarks, arrows.

Drawn into a grayscale image (float in [0, 1], modified in place) at random places and sizes. Training
draws them (``data.augment_robust``) on fractured and normal images alike, so that no mark can stand
for a label; the robustness benchmark draws them with other fonts and words (``STYLES``) to test the
trained model on marks of the same kinds that it has not seen drawn exactly that way.
"""

from __future__ import annotations

import cv2
import numpy as np

STYLES = {
    "training": {
        "fonts": (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN),
        "words": ("L", "R", "LT", "RT", "AP", "LAT", "PA", "OBL", "ER", "RAD 2", "PORTABLE", "WT BEARING",
                  "12:04", "1998", "kV 55 mAs 4", "HOSPITAL", "DEPT OF RADIOLOGY", "X-RAY", "IMG 0042"),
    },
    "benchmark": {
        "fonts": (cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL),
        "words": ("L", "R", "LEFT", "RIGHT", "DX", "SIN", "CR 3", "FLEX", "EXT", "STANDING", "23/07/2019",
                  "Case 17", "Teaching file", "radiopaedia", "ED", "NORTH WING", "AXIAL"),
    },
}
KINDS = ("letter", "text", "ruler", "watermark", "arrow")


def _grey(rng: np.random.Generator) -> float:
    return float(rng.choice([rng.uniform(0.85, 1.0), rng.uniform(0.0, 0.15), rng.uniform(0.4, 0.9)], p=[0.6, 0.2, 0.2]))


def _text(plane: np.ndarray, rng: np.random.Generator, style: dict, big: bool) -> None:
    height, width_px = plane.shape[:2]
    size = min(height, width_px)
    word = str(rng.choice(style["words"][:6] if big else style["words"]))
    font = int(rng.choice(style["fonts"]))
    scale = size / 384 * (rng.uniform(1.0, 2.2) if big else rng.uniform(0.4, 1.0))
    thickness = max(1, int(round(scale * rng.uniform(1.0, 2.5))))
    (width, text_height), _ = cv2.getTextSize(word, font, scale, thickness)
    x = int(rng.uniform(0, max(1, width_px - width)))
    y = int(rng.uniform(text_height, max(text_height + 1, plane.shape[0])))
    layer = np.zeros(plane.shape[:2], dtype=np.uint8)  # OpenCV draws text into 8-bit images only
    cv2.putText(layer, word, (x, y), font, scale, 255, thickness, cv2.LINE_AA)
    alpha = layer.astype(np.float32) / 255.0
    plane[:] = plane * (1.0 - alpha) + _grey(rng) * alpha


def _ruler(plane: np.ndarray, rng: np.random.Generator) -> None:
    height, width = plane.shape[:2]
    size = min(height, width)
    length = int(size * rng.uniform(0.25, 0.7))
    vertical = rng.random() < 0.5
    x0 = int(rng.uniform(0, width - (0 if vertical else length)))
    y0 = int(rng.uniform(0, height - (length if vertical else 0)))
    colour, step = _grey(rng), max(4, int(size * rng.uniform(0.015, 0.03)))
    end = (x0, y0 + length) if vertical else (x0 + length, y0)
    cv2.line(plane, (x0, y0), end, colour, max(1, size // 300))
    for i, offset in enumerate(range(0, length, step)):
        tick = step if i % 5 == 0 else step // 2
        if vertical:
            cv2.line(plane, (x0, y0 + offset), (x0 + tick, y0 + offset), colour, 1)
        else:
            cv2.line(plane, (x0 + offset, y0), (x0 + offset, y0 - tick), colour, 1)


def _watermark(plane: np.ndarray, rng: np.random.Generator, style: dict) -> None:
    height, width = plane.shape[:2]
    layer = np.zeros_like(plane)
    _text(layer, rng, {"fonts": style["fonts"], "words": style["words"][-8:]}, big=True)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-45, 45), 1.0)
    layer = cv2.warpAffine(layer, matrix, (width, height))
    alpha = rng.uniform(0.15, 0.4)
    plane[:] = np.where(layer > 0, (1 - alpha) * plane + alpha * layer, plane)


def _arrow(plane: np.ndarray, rng: np.random.Generator, target: tuple[float, float] | None) -> None:
    height, width = plane.shape[:2]
    size = min(height, width)
    if target is None:
        target = (rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height)
    length = size * rng.uniform(0.08, 0.25)
    angle = rng.uniform(0, 2 * np.pi)
    gap = size * rng.uniform(0.02, 0.06)
    tip = (int(target[0] + gap * np.cos(angle)), int(target[1] + gap * np.sin(angle)))
    tail = (int(tip[0] + length * np.cos(angle)), int(tip[1] + length * np.sin(angle)))
    thickness = max(1, int(size / 384 * rng.uniform(1, 4)))
    cv2.arrowedLine(plane, tail, tip, _grey(rng), thickness, cv2.LINE_AA, tipLength=rng.uniform(0.2, 0.4))


def draw(plane: np.ndarray, rng: np.random.Generator, kind: str, style: str = "training",
         target: tuple[float, float] | None = None) -> None:
    """Draw one mark of ``kind`` into the float image ``plane`` (in place).

    ``target`` (x, y): where an arrow points (near it, not on it); random if None.
    """
    chosen = STYLES[style]
    if kind == "letter":
        _text(plane, rng, chosen, big=True)
    elif kind == "text":
        _text(plane, rng, chosen, big=False)
    elif kind == "ruler":
        _ruler(plane, rng)
    elif kind == "watermark":
        _watermark(plane, rng, chosen)
    elif kind == "arrow":
        _arrow(plane, rng, target)
    else:
        raise ValueError(f"unknown mark {kind!r}; one of {KINDS}")
