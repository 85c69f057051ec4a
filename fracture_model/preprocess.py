"""The one preprocessing function from a decoded radiograph to the network input.

Training, evaluation, the app and Grad-CAM all call ``preprocess``; nothing else resizes or normalises
an image for the network. The radiograph is letterboxed (padded with black to a square, aspect ratio
kept) and resized to the model's input size; the model itself maps [0, 1] to what its backbone wants.
``Letterbox`` maps coordinates (fracture boxes, heatmap peaks) between the original image and the
network input, so heatmaps can be drawn over the original.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PREPROCESSING_NAME = "letterbox-black-square_resize-area_gray01"
"""Recorded in the model card; change it whenever ``preprocess`` changes meaning."""


@dataclass(frozen=True)
class Letterbox:
    """How an image of ``original_shape`` (height, width) sits inside the square network input."""

    original_shape: tuple[int, int]
    image_size: int

    @property
    def side(self) -> int:
        return max(self.original_shape)

    @property
    def scale(self) -> float:
        """Network-input pixels per original pixel."""
        return self.image_size / self.side

    @property
    def offset(self) -> tuple[int, int]:
        """(top, left) padding in original pixels."""
        height, width = self.original_shape
        return (self.side - height) // 2, (self.side - width) // 2

    def to_input(self, x: float, y: float) -> tuple[float, float]:
        """Original pixel coordinates -> network-input coordinates."""
        top, left = self.offset
        return (x + left) * self.scale, (y + top) * self.scale

    def to_original(self, x: float, y: float) -> tuple[float, float]:
        """Network-input coordinates -> original pixel coordinates."""
        top, left = self.offset
        return x / self.scale - left, y / self.scale - top

    def crop_to_original(self, input_map: np.ndarray) -> np.ndarray:
        """A map over the network input (e.g. a heatmap) cut and resized to the original image."""
        height, width = self.original_shape
        top, left = self.offset
        square = cv2.resize(input_map.astype(np.float32), (self.side, self.side), interpolation=cv2.INTER_LINEAR)
        return square[top : top + height, left : left + width]


def preprocess(pixels: np.ndarray, image_size: int) -> np.ndarray:
    """Grayscale radiograph (2-D, float in [0, 1]) -> network input of shape (image_size, image_size, 1).

    Letterbox with black padding to a centred square, then resize with area interpolation (or linear
    when enlarging). Output is float32 in [0, 1].
    """
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {pixels.shape}")
    letterbox = Letterbox((int(pixels.shape[0]), int(pixels.shape[1])), image_size)
    top, left = letterbox.offset
    square = np.zeros((letterbox.side, letterbox.side), dtype=np.float32)
    square[top : top + pixels.shape[0], left : left + pixels.shape[1]] = pixels
    interpolation = cv2.INTER_AREA if letterbox.side >= image_size else cv2.INTER_LINEAR
    resized = cv2.resize(square, (image_size, image_size), interpolation=interpolation)
    return np.clip(resized, 0.0, 1.0)[..., np.newaxis]


def zoomed_out(network_inputs: np.ndarray, factor: float) -> np.ndarray:
    """Test-time view: each network input (n, size, size, 1) shrunk to ``factor`` of its side, in the middle
    of the black square, as if the radiograph had been taken from further away (``fracture_model.views``)."""
    side = network_inputs.shape[1]
    small_side = max(1, int(round(side * factor)))
    offset = (side - small_side) // 2
    out = np.zeros_like(network_inputs)
    for i, network_input in enumerate(network_inputs):
        small = cv2.resize(network_input[..., 0], (small_side, small_side), interpolation=cv2.INTER_AREA)
        out[i, offset:offset + small_side, offset:offset + small_side, 0] = small
    return out


FLIP_AXES = {"vertical": 1, "horizontal": 2}
"""Test-time flips of a batch of network inputs (n, size, size, 1): the axis each one reverses."""


def flipped(network_inputs: np.ndarray, direction: str) -> np.ndarray:
    """Test-time view: each network input (n, size, size, 1) mirrored upside down (``"vertical"``) or left to
    right (``"horizontal"``), as a radiograph hung the other way round (``fracture_model.views``)."""
    return np.ascontiguousarray(np.flip(network_inputs, axis=FLIP_AXES[direction]))
