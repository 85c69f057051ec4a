"""Reading radiographs: file bytes -> a validated 2-D grayscale image, or `InputError`.

Everything the app, training and evaluation know about an image enters through `read_radiograph`,
so the same bytes always become the same pixels. The format is detected from the content, never
from a file name: DICOM by its ``DICM`` marker (or, without the 128-byte preamble, by a plausible
first element), everything else by Pillow from an allow-list of raster formats.

Output contract (`Radiograph.pixels`): 2-D ``float32``, C-contiguous, finite, in [0, 1], 0 = black,
in display orientation (EXIF orientation applied, DICOM ``MONOCHROME1`` inverted). The array is
read-only, like the frozen dataclass that holds it; copy it before changing it in place.

Decisions worth knowing:

* Colour raster images become luminance with the ITU-R BT.601 weights Pillow uses for mode ``L``.
  Transparent pixels are composited on black (air on a radiograph is black).
* Raster images deeper than 8 bits (16-bit PNG/TIFF) are divided by ``2**bits - 1``, where ``bits``
  is the smallest depth that holds the brightest pixel (at least 8), so 12-bit data in a 16-bit
  container is not left nearly black and nothing is clipped. Signed or float data are min-max scaled.
* DICOM: stored values -> Modality LUT (rescale slope/intercept or LUT) -> VOI: the caller's
  ``window`` (linear, exact), else the file's VOI LUT Sequence, else its first Window Centre/Width
  (with its VOI LUT Function), else the 0.5th-99.5th percentile of the image -> ``MONOCHROME1``
  inverted. Only the tags needed for that are read from the file (`_DICOM_KEYWORDS`), so patient
  identifiers are never parsed, returned, logged or shown in a message.
* ``colourfulness`` is the Hasler-Süsstrunk (2003) colourfulness metric on 0-255 sRGB values:
  0 for grayscale, about 15 "slightly", 33 "moderately", 59 "quite" and 82+ "highly" colourful.
* Nothing is written to disk.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
import pydicom.uid
from PIL import Image, ImageOps, UnidentifiedImageError
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.pixels.processing import apply_modality_lut, apply_voi

__all__ = [
    "MAX_PIXELS",
    "MIN_SIDE_PX",
    "InputError",
    "Radiograph",
    "looks_like_radiograph",
    "read_radiograph",
]

MIN_SIDE_PX = 64
"""Images with a side shorter than this (in pixels) are refused."""

MAX_PIXELS = 60_000_000
"""Images declaring more pixels than this are refused before any pixel is decoded."""

SLIGHTLY_COLOURFUL = 15.0
"""Hasler-Süsstrunk colourfulness from which an image no longer passes as a grayscale radiograph."""

CLEARLY_COLOURFUL = 33.0
"""Hasler-Süsstrunk colourfulness of a "moderately colourful" image: almost surely a photograph."""

RASTER_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP", "JPEG2000", "PPM")
"""Pillow formats we decode. An allow-list keeps out plugins that shell out (EPS via Ghostscript)
or are rarely exercised on untrusted input. Camera JPEGs that Pillow opens as MPO count as JPEG."""

AUTO_WINDOW_PERCENTILES = (0.5, 99.5)
"""Percentiles of a DICOM image's values that span the window when the file defines none."""

_COLOURFULNESS_SAMPLE_PIXELS = 250_000
_HIGH_BIT_DEPTH_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "I;16S"})
_MONOCHROME = frozenset({"MONOCHROME1", "MONOCHROME2"})
_DICOM_MAGIC_OFFSET = 128
_DICOM_MAGIC = b"DICM"
_DICOM_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR "
    b"US UT UV".split()
)
_SAFE_CODE = re.compile(r"[A-Za-z0-9_ -]{1,32}")

# The only DICOM elements ever parsed. No patient, study or institution element is in this list.
_DICOM_KEYWORDS: tuple[str, ...] = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "Modality",
    "BodyPartExamined",
    "ViewPosition",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "RescaleIntercept",
    "RescaleSlope",
    "RescaleType",
    "ModalityLUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "VOILUTSequence",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "PixelData",
)
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

_NOT_AN_IMAGE = "The file is not an image this app can read; please upload a PNG, JPEG or DICOM radiograph."
_DAMAGED_IMAGE = "The image file is damaged or incomplete, for example cut off during upload or copying."
_DAMAGED_DICOM = "The DICOM file is damaged or incomplete, so its image cannot be read."


class InputError(ValueError):
    """A problem with the user's file, worded for a clinician (one clear sentence)."""


@dataclass(frozen=True)
class Radiograph:
    """A decoded, validated grayscale image ready for `fracture_model.preprocess`.

    Attributes:
        pixels: 2-D float32 in [0, 1], 0 = black, display orientation (EXIF applied,
            ``MONOCHROME1`` inverted); C-contiguous and read-only.
        source_format: What was decoded, by content: "PNG", "JPEG", "DICOM", "TIFF", "BMP", ...
        body_part: DICOM Body Part Examined, if present.
        view: DICOM View Position, if present.
        colourfulness: Hasler-Süsstrunk colourfulness of the original on 0-255 sRGB values;
            0 for grayscale images and all DICOM images (colour DICOM is refused).
        window: DICOM (centre, width) applied, in modality units (after rescale), width always > 0
            (it may be below 1: float data, SIGMOID or LINEAR_EXACT); ``None`` for raster images and
            when a non-linear VOI LUT Sequence was applied.
    """

    pixels: np.ndarray
    source_format: str
    body_part: str | None = None
    view: str | None = None
    colourfulness: float = 0.0
    window: tuple[float, float] | None = None


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def read_radiograph(data: bytes, *, window: tuple[float, float] | None = None) -> Radiograph:
    """Decode an uploaded file by content (never trust the file name).

    Args:
        data: The whole file.
        window: DICOM (centre, width) in modality units (after rescale), applied as an exact linear
            window instead of the file's VOI. Ignored for raster images.

    Raises:
        InputError: The file is empty, not a supported image, damaged, too small, too large,
            has several frames, holds no image or a colour image (DICOM), or ``window`` is invalid.
    """
    if window is not None:
        _check_window(window)
    if not data:
        raise InputError("The file is empty.")
    if _looks_like_dicom(data):
        return _read_dicom(data, window)
    return _read_raster(data)


def looks_like_radiograph(radiograph: Radiograph) -> tuple[bool, str]:
    """Judge from the original's colour whether this is plausibly a radiograph.

    Radiographs are grayscale; a photograph of a cat or a document is colourful. Returns
    ``(ok, reason)``, where ``reason`` is one sentence saying how sure the judgement is.
    """
    colourfulness = radiograph.colourfulness
    if colourfulness < 1.0:
        return True, "The image is grayscale, as a radiograph should be."
    if colourfulness < SLIGHTLY_COLOURFUL:
        return True, (
            f"The image is nearly grayscale (colourfulness {colourfulness:.0f}), "
            "consistent with a radiograph or a photograph of one."
        )
    if colourfulness < CLEARLY_COLOURFUL:
        return False, (
            f"The image has noticeable colour (colourfulness {colourfulness:.0f}, radiographs are "
            "near 0), so it may be a photograph rather than a radiograph and the result may not apply."
        )
    return False, (
        f"The image is clearly colourful (colourfulness {colourfulness:.0f}, radiographs are "
        "near 0), so it is very likely a photograph, not a radiograph, and the result does not apply."
    )


# ----------------------------------------------------------------------------------------------
# Shared checks and output
# ----------------------------------------------------------------------------------------------


def _check_window(window: tuple[float, float]) -> None:
    """Refuse a window that cannot be applied."""
    try:
        centre, width = (float(value) for value in window)
    except (TypeError, ValueError):
        raise InputError("The window must be two numbers, a centre and a width.") from None
    if not (math.isfinite(centre) and math.isfinite(width) and width > 0):
        raise InputError("The window centre must be a number and its width a positive number.")


def _check_dimensions(width: int, height: int) -> None:
    """Refuse images too large to decode safely or too small to read."""
    if width * height > MAX_PIXELS:
        raise InputError(
            f"The image declares {width:,} x {height:,} pixels, more than the "
            f"{MAX_PIXELS:,} pixels this app accepts."
        )
    if min(width, height) < MIN_SIDE_PX:
        raise InputError(
            f"The image is only {width} x {height} pixels; it must be at least "
            f"{MIN_SIDE_PX} pixels on each side."
        )


def _display_pixels(values: np.ndarray) -> np.ndarray:
    """Enforce the output contract: 2-D float32, finite, in [0, 1], C-contiguous, read-only."""
    pixels = np.array(values, dtype=np.float32, order="C")  # our own copy, safe to freeze
    if not np.isfinite(pixels).all():
        np.nan_to_num(pixels, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    np.clip(pixels, 0.0, 1.0, out=pixels)
    pixels.setflags(write=False)
    return pixels


def _rescale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] linearly onto [0, 1], clipping outside; a flat range gives zeros."""
    if not high > low:
        return np.zeros(values.shape, dtype=np.float64)
    return np.clip((values.astype(np.float64) - low) / (high - low), 0.0, 1.0)


def _finite_range(values: np.ndarray) -> tuple[float, float]:
    """(min, max) over the finite values, or (0, 0) when there are none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 0.0
    return float(finite.min()), float(finite.max())


# ----------------------------------------------------------------------------------------------
# Raster images (Pillow)
# ----------------------------------------------------------------------------------------------


def _read_raster(data: bytes) -> Radiograph:
    """Decode a raster image with Pillow, checking its declared size before decoding."""
    image = _open_raster(data)
    source_format = "JPEG" if image.format == "MPO" else str(image.format)
    _check_dimensions(*image.size)
    _check_single_frame(image)
    image = _decode_raster(image)
    gray, colourfulness = _raster_to_gray(image)
    return Radiograph(pixels=_display_pixels(gray), source_format=source_format, colourfulness=colourfulness)


def _open_raster(data: bytes) -> Image.Image:
    """Identify the format and read the header only (no pixels yet)."""
    try:
        return Image.open(io.BytesIO(data), formats=RASTER_FORMATS)
    except Image.DecompressionBombError:
        raise InputError(
            f"The image declares more than {MAX_PIXELS:,} pixels, more than this app accepts."
        ) from None
    except UnidentifiedImageError:
        raise InputError(_NOT_AN_IMAGE) from None
    except Exception as error:  # any header-parser failure is a damaged file.
        raise InputError(_DAMAGED_IMAGE) from error


def _check_single_frame(image: Image.Image) -> None:
    """Refuse animations and multi-page files; an MPO's extra frames are previews, not pages."""
    if image.format == "MPO":
        return
    try:
        frame_count = int(getattr(image, "n_frames", 1))
    except Exception as error:  # counting frames parses the whole file.
        raise InputError(_DAMAGED_IMAGE) from error
    if frame_count > 1:
        raise InputError(
            f"The file holds {frame_count} images (an animation or a multi-page document); "
            "please upload a single radiograph."
        )


def _decode_raster(image: Image.Image) -> Image.Image:
    """Decode every pixel (a truncated file fails here) and apply the EXIF orientation."""
    try:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        return image
    except Image.DecompressionBombError:
        raise InputError(
            f"The image declares more than {MAX_PIXELS:,} pixels, more than this app accepts."
        ) from None
    except Exception as error:  # third-party decoders fed untrusted bytes.
        raise InputError(_DAMAGED_IMAGE) from error


def _raster_to_gray(image: Image.Image) -> tuple[np.ndarray, float]:
    """(gray values in [0, 1], colourfulness) for any Pillow mode we support."""
    mode = image.mode
    if mode in _HIGH_BIT_DEPTH_MODES:
        return _scale_high_bit_depth(np.asarray(image)), 0.0
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        return _rescale(values, *_finite_range(values)), 0.0
    if mode in ("1", "L"):
        return _unit_gray(image if mode == "L" else image.convert("L")), 0.0
    try:
        if image.has_transparency_data:
            rgb = _composite_on_black(image.convert("RGBA"))
        else:
            rgb = image if mode == "RGB" else image.convert("RGB")
    except ValueError:
        raise InputError(f"The image uses a colour format ({mode}) that this app cannot read.") from None
    return _unit_gray(rgb.convert("L")), _colourfulness(np.asarray(_subsample(rgb)))


def _unit_gray(image: Image.Image) -> np.ndarray:
    """An 8-bit "L" image (BT.601 luma for converted colour) as float32 in [0, 1]."""
    gray = np.asarray(image, dtype=np.float32)
    gray /= 255.0
    return gray


def _scale_high_bit_depth(values: np.ndarray) -> np.ndarray:
    """Integer data deeper than 8 bits -> [0, 1] by its effective bit depth (min-max if signed)."""
    values = values.astype(np.float64)
    low, high = _finite_range(values)
    if low < 0:
        return _rescale(values, low, high)
    bits = max(8, int(high).bit_length())
    return values / float(2**bits - 1)


def _composite_on_black(rgba: Image.Image) -> Image.Image:
    """RGBA -> RGB with transparent pixels composited on black (colour x alpha)."""
    black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return Image.alpha_composite(black, rgba).convert("RGB")


def _subsample(image: Image.Image) -> Image.Image:
    """Every n-th pixel in each direction, keeping about `_COLOURFULNESS_SAMPLE_PIXELS` at most.

    Colourfulness on this regular sample differs from the full image's by far less than the gap
    between the metric's perceptual categories, at a fraction of the cost.
    """
    width, height = image.size
    step = max(1, math.ceil(math.sqrt(width * height / _COLOURFULNESS_SAMPLE_PIXELS)))
    if step == 1:
        return image
    return image.resize((max(1, width // step), max(1, height // step)), Image.Resampling.NEAREST)


def _colourfulness(rgb: np.ndarray) -> float:
    """Hasler-Süsstrunk colourfulness of an (H, W, 3) sRGB array on 0-255 (0 for gray)."""
    sample = rgb.astype(np.float64)
    red, green, blue = sample[..., 0], sample[..., 1], sample[..., 2]
    red_green = red - green
    yellow_blue = 0.5 * (red + green) - blue
    spread = math.hypot(float(red_green.std()), float(yellow_blue.std()))
    mean = math.hypot(float(red_green.mean()), float(yellow_blue.mean()))
    return spread + 0.3 * mean


# ----------------------------------------------------------------------------------------------
# DICOM (pydicom)
# ----------------------------------------------------------------------------------------------


def _looks_like_dicom(data: bytes) -> bool:
    """DICOM Part 10 (``DICM`` at byte 128), or a bare little-endian dataset without preamble.

    A bare dataset must start with a group 0002 or 0008 element followed by either an explicit
    VR or a plausible implicit length; no raster format Pillow reads starts like that.
    """
    if data[_DICOM_MAGIC_OFFSET : _DICOM_MAGIC_OFFSET + len(_DICOM_MAGIC)] == _DICOM_MAGIC:
        return True
    if len(data) < 8 or data[0:2] not in (b"\x02\x00", b"\x08\x00") or data[3] != 0:
        return False
    return data[4:6] in _DICOM_VRS or int.from_bytes(data[4:8], "little") < len(data)


def _read_dicom(data: bytes, window: tuple[float, float] | None) -> Radiograph:
    """Decode a single-frame grayscale DICOM image into display values."""
    dataset = _parse_dicom(data)
    _check_dicom_holds_a_radiograph(dataset)
    stored = _decode_dicom_pixels(dataset)
    try:
        values = np.asarray(apply_modality_lut(stored, dataset), dtype=np.float64)
    except Exception as error:  # malformed rescale or LUT elements.
        raise InputError(_DAMAGED_DICOM) from error
    pixels, applied_window = _apply_voi(values, dataset, window)
    if _dicom_code(dataset, "PhotometricInterpretation") == "MONOCHROME1":
        pixels = 1.0 - pixels
    return Radiograph(
        pixels=_display_pixels(pixels),
        source_format="DICOM",
        body_part=_dicom_code(dataset, "BodyPartExamined"),
        view=_dicom_code(dataset, "ViewPosition"),
        window=applied_window,
    )


def _parse_dicom(data: bytes) -> Dataset:
    """Parse only `_DICOM_KEYWORDS`: patient-identifying elements are skipped, never decoded."""
    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=True, specific_tags=list(_DICOM_KEYWORDS))
        for _ in dataset.iterall():  # convert every parsed value now, so later reads cannot fail
            pass
    except Exception as error:  # the parser is fed untrusted bytes.
        raise InputError(_DAMAGED_DICOM) from error
    _ensure_transfer_syntax(dataset)
    return dataset


def _ensure_transfer_syntax(dataset: Dataset) -> None:
    """A dataset without file meta gets the transfer syntax it was actually read with."""
    if "TransferSyntaxUID" in dataset.file_meta:
        return
    is_implicit, is_little_endian = dataset.original_encoding
    if is_implicit:
        dataset.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    elif is_little_endian is False:
        dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian
    else:
        dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian


def _check_dicom_holds_a_radiograph(dataset: Dataset) -> None:
    """Refuse, before decoding, anything but one grayscale frame of a sensible size."""
    if not any(keyword in dataset for keyword in _PIXEL_KEYWORDS):
        if "SOPClassUID" not in dataset and "Modality" not in dataset:
            raise InputError(_NOT_AN_IMAGE)
        raise InputError(f"This DICOM file holds no image (it is {_describe_object(dataset)} object).")
    photometric = _dicom_code(dataset, "PhotometricInterpretation")
    if photometric is None:
        raise InputError(_DAMAGED_DICOM)
    if _dicom_int(dataset, "SamplesPerPixel", 1) != 1 or photometric not in _MONOCHROME:
        raise InputError(f"This DICOM file holds a colour image ({photometric}), which is not a radiograph.")
    if _dicom_int(dataset, "BitsAllocated", 16) == 1:
        raise InputError("This DICOM file holds a 1-bit mask (such as a segmentation), not a radiograph.")
    frame_count = _dicom_int(dataset, "NumberOfFrames", 1)
    if frame_count > 1:
        raise InputError(
            f"This DICOM file holds {frame_count} frames (a cine loop or a volume); "
            "please export a single image."
        )
    rows, columns = _dicom_int(dataset, "Rows", 0), _dicom_int(dataset, "Columns", 0)
    if rows <= 0 or columns <= 0:
        raise InputError(_DAMAGED_DICOM)
    _check_dimensions(columns, rows)


def _decode_dicom_pixels(dataset: Dataset) -> np.ndarray:
    """Stored values of the single frame, decompressing with the installed pylibjpeg plugins."""
    transfer_syntax = pydicom.uid.UID(str(dataset.file_meta.TransferSyntaxUID))
    if not _has_decoder(transfer_syntax):
        name = transfer_syntax.name if transfer_syntax.is_transfer_syntax else "an unknown format"
        raise InputError(f"This DICOM file is encoded as {name}, which this app cannot decode.")
    if transfer_syntax == pydicom.uid.RLELossless:
        # pydicom's own NumPy RLE decoder: pylibjpeg-rle panics (and prints a backtrace) on corrupt data.
        dataset.pixel_array_options(decoding_plugin="pydicom")
    try:
        stored = dataset.pixel_array
    except BaseException as error:
        if not _is_decoder_failure(error):
            raise
        raise InputError(_DAMAGED_DICOM) from error
    if stored.ndim != 2:
        raise InputError(_DAMAGED_DICOM)
    return stored


def _is_decoder_failure(error: BaseException) -> bool:
    """Whether a decoder failure means a damaged file: any exception, or a Rust panic.

    pyo3's ``PanicException`` derives from BaseException, so ``except Exception`` alone would let
    a corrupt file crash the app through a Rust decoder such as pylibjpeg-rle.
    """
    return isinstance(error, Exception) or type(error).__name__ == "PanicException"


def _has_decoder(transfer_syntax: pydicom.uid.UID) -> bool:
    """Whether an installed plugin (or pydicom itself, for native data) decodes this syntax."""
    if not transfer_syntax.is_transfer_syntax:
        return False
    try:
        return bool(get_decoder(transfer_syntax).is_available)
    except NotImplementedError:
        return False


def _apply_voi(
    values: np.ndarray, dataset: Dataset, window: tuple[float, float] | None
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Modality values -> [0, 1] by the caller's window, the file's VOI, or the data's range."""
    if window is not None:
        centre, width = float(window[0]), float(window[1])
        return _linear_exact_window(values, centre, width), (centre, width)
    if dataset.get("VOILUTSequence"):
        lut_output = _apply_voi_lut_sequence(values, dataset)
        if lut_output is not None:
            return lut_output, None
    file_window = _file_window(dataset)
    if file_window is not None:
        centre, width, function = file_window
        return _window_by_function(values, centre, width, function), (centre, width)
    low, high = _finite_percentiles(values, AUTO_WINDOW_PERCENTILES)
    if not high > low:  # a flat image: a window with the value at its lower edge keeps it black, as before
        high = low + max(1.0, abs(low))
    return _rescale(values, low, high), ((low + high) / 2.0, high - low)


def _finite_percentiles(values: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """Percentiles of the finite values (float pixel data may hold NaN or infinity); (0, 0) if none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 0.0
    low, high = np.percentile(finite, percentiles)
    return float(low), float(high)


def _apply_voi_lut_sequence(values: np.ndarray, dataset: Dataset) -> np.ndarray | None:
    """First VOI LUT, scaled by the LUT's own output range; ``None`` if the LUT is unusable."""
    lut_input = np.rint(values).astype(np.int64)  # the VOI LUT indexes Modality LUT output
    try:
        descriptor = dataset.VOILUTSequence[0].LUTDescriptor
        entries, first_mapped = int(descriptor[0]) or 2**16, int(descriptor[1])
        table = apply_voi(np.arange(first_mapped, first_mapped + entries, dtype=np.int64), dataset)
        mapped = apply_voi(lut_input, dataset)
    except Exception:  # noqa: BLE001 - a malformed optional LUT falls back to the window.
        return None
    return _rescale(np.asarray(mapped), float(np.min(table)), float(np.max(table)))


def _file_window(dataset: Dataset) -> tuple[float, float, str] | None:
    """The file's first (centre, width, VOI LUT Function), or ``None`` if absent or invalid."""
    if "WindowCenter" not in dataset or "WindowWidth" not in dataset:
        return None
    try:
        centre = float(_first_value(dataset.WindowCenter))
        width = float(_first_value(dataset.WindowWidth))
    except (TypeError, ValueError, IndexError):
        return None
    function = _dicom_code(dataset, "VOILUTFunction") or "LINEAR"
    minimum_width = 1.0 if function == "LINEAR" else 0.0
    if not (math.isfinite(centre) and math.isfinite(width) and width > minimum_width):
        return None
    return centre, width, function


def _first_value(value: Any) -> Any:
    """First item of a multi-valued element, or the value itself."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return value[0]
    return value


def _window_by_function(values: np.ndarray, centre: float, width: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 / C.11.2.1.3 windowing onto [0, 1]."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(np.clip(-4.0 * (values - centre) / width, -700.0, 700.0)))
    if function == "LINEAR_EXACT":
        return _linear_exact_window(values, centre, width)
    # LINEAR (the default, also used for unknown functions): centre - 0.5, width - 1.
    return np.clip((values - (centre - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _linear_exact_window(values: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Linear window: centre - width/2 -> 0, centre + width/2 -> 1, clipped."""
    return np.clip((values - centre) / width + 0.5, 0.0, 1.0)


def _describe_object(dataset: Dataset) -> str:
    """'an RT Plan' / 'a CT Image': the SOP class name (from pydicom's dictionary) or the modality."""
    what = ""
    sop_class = dataset.get("SOPClassUID")
    if sop_class is not None:
        uid = pydicom.uid.UID(str(sop_class))
        if uid.name != str(uid):
            what = uid.name.removesuffix(" Storage")
    if not what:
        what = _dicom_code(dataset, "Modality") or "non-image"
    return f"{_indefinite_article(what)} {what}"


def _indefinite_article(phrase: str) -> str:
    """'an' before a vowel sound: 'an RT Plan', 'an SR', 'a Basic Text SR', 'an Encapsulated PDF'."""
    first_word = phrase.split(" ", 1)[0]
    is_spelled_out = len(first_word) > 1 and first_word.isupper()  # acronyms are read letter by letter
    return "an" if first_word[:1].upper() in ("AEFHILMNORSX" if is_spelled_out else "AEIOU") else "a"


def _dicom_int(dataset: Dataset, keyword: str, default: int) -> int:
    """An integer element, its default when absent, `InputError` when unreadable."""
    value = dataset.get(keyword)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(_DAMAGED_DICOM) from None


def _dicom_code(dataset: Dataset, keyword: str) -> str | None:
    """A code string (CS) element made safe to show: upper case, plain characters, else ``None``."""
    try:
        value = dataset.get(keyword)
    except Exception:  # noqa: BLE001 - an unreadable optional element is treated as absent.
        return None
    if value is None:
        return None
    text = str(_first_value(value)).strip().upper()
    return text if _SAFE_CODE.fullmatch(text) else None
