"""Tests for `fracture_model.imaging`: every fixture is generated (here or in `tests/bad_inputs.py`) or ships
inside pydicom."""

from __future__ import annotations

import struct

import numpy as np
import pydicom
import pydicom.uid
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate

from fracture_model import imaging
from fracture_model.imaging import (
    CLEARLY_COLOURFUL,
    MAX_PIXELS,
    MIN_SIDE_PX,
    InputError,
    Radiograph,
    looks_like_radiograph,
    read_radiograph,
)
from tests.bad_inputs import (
    BAD_INPUTS,
    PLANTED_PATIENT,
    assert_one_sentence,
    dicom_bytes,
    dicom_dataset,
    dicom_image,
    encode,
    png_declaring,
    ramp,
)

# ----------------------------------------------------------------------------------------------
# Fixture builders (the shared corpus lives in tests/bad_inputs.py)
# ----------------------------------------------------------------------------------------------


def shipped(name: str) -> bytes:
    """A test file inside the pydicom wheel, or skip (no downloads here)."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed")
    with open(str(path), "rb") as file:
        return file.read()


def assert_contract(radiograph: Radiograph) -> None:
    """The output contract every caller relies on."""
    pixels = radiograph.pixels
    assert isinstance(pixels, np.ndarray)
    assert pixels.dtype == np.float32
    assert pixels.ndim == 2
    assert min(pixels.shape) >= MIN_SIDE_PX
    assert pixels.flags.c_contiguous
    assert np.isfinite(pixels).all()
    assert pixels.min() >= 0.0
    assert pixels.max() <= 1.0
    assert not pixels.flags.writeable


def refusal(data: bytes, **kwargs: object) -> str:
    """The message of the `InputError` that `data` must raise."""
    with pytest.raises(InputError) as caught:
        read_radiograph(data, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert_one_sentence(message)
    return message


# ----------------------------------------------------------------------------------------------
# Bad input is refused with one clear sentence
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_refused_with_one_clear_sentence(name: str) -> None:
    bad = BAD_INPUTS[name]
    assert bad.words in refusal(bad.make())


def test_size_is_checked_before_any_pixel_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail_load(_image: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", fail_load)
    for width, height in [(50_000, 50_000), (10_000, 7_000), (20, 20)]:
        refusal(png_declaring(width, height))


def test_truncated_images_are_not_loaded_silently() -> None:
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    refusal(encode(Image.fromarray(ramp(512, 512)), "JPEG", quality=95)[:3000])


@pytest.mark.parametrize("window", [(40.0, 0.0), (40.0, -10.0), (float("nan"), 400.0), (0.0, float("inf"))])
def test_invalid_window_is_refused(window: tuple[float, float]) -> None:
    refusal(dicom_image(ramp().astype(np.uint16)), window=window)


# ----------------------------------------------------------------------------------------------
# Raster images
# ----------------------------------------------------------------------------------------------


def test_grayscale_png_is_exact_and_keeps_orientation() -> None:
    gray = ramp(80, 96)
    radiograph = read_radiograph(encode(Image.fromarray(gray), "PNG"))
    assert_contract(radiograph)
    assert radiograph.source_format == "PNG"
    assert radiograph.pixels.shape == (80, 96)
    np.testing.assert_allclose(radiograph.pixels, gray / 255.0, atol=1e-7)
    assert radiograph.colourfulness == 0.0
    assert radiograph.window is None
    assert radiograph.body_part is None
    assert radiograph.view is None


def test_grayscale_jpeg_is_close_to_the_original() -> None:
    gray = np.tile(np.linspace(0, 255, 128, dtype=np.float64), (96, 1)).astype(np.uint8)
    radiograph = read_radiograph(encode(Image.fromarray(gray), "JPEG", quality=95))
    assert_contract(radiograph)
    assert radiograph.source_format == "JPEG"
    np.testing.assert_allclose(radiograph.pixels, gray / 255.0, atol=0.02)


@pytest.mark.parametrize(
    ("image_format", "reported"),
    [
        ("PNG", "PNG"),
        ("JPEG", "JPEG"),
        ("TIFF", "TIFF"),
        ("BMP", "BMP"),
        ("GIF", "GIF"),
        ("WEBP", "WEBP"),
        ("PPM", "PPM"),
    ],
)
def test_format_is_detected_by_content(image_format: str, reported: str) -> None:
    radiograph = read_radiograph(encode(Image.fromarray(ramp()), image_format))
    assert_contract(radiograph)
    assert radiograph.source_format == reported


def test_rgb_becomes_bt601_luminance_and_gray_rgb_is_not_colourful() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(70, 90, 3), dtype=np.uint8)
    radiograph = read_radiograph(encode(Image.fromarray(rgb), "PNG"))
    expected = (rgb.astype(np.float64) @ [0.299, 0.587, 0.114]) / 255.0
    np.testing.assert_allclose(radiograph.pixels, expected, atol=0.5 / 255 + 1e-6)
    assert radiograph.colourfulness > 50

    gray_rgb = np.repeat(ramp()[..., None], 3, axis=2)
    gray = read_radiograph(encode(Image.fromarray(gray_rgb), "PNG"))
    np.testing.assert_allclose(gray.pixels, ramp() / 255.0, atol=1e-6)
    assert gray.colourfulness == pytest.approx(0.0, abs=1e-9)


def test_rgba_is_composited_on_black() -> None:
    rgba = np.zeros((64, 64, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[:, :32, 3] = 255  # opaque left half
    rgba[:, 32:, 3] = 0  # transparent right half
    pixels = read_radiograph(encode(Image.fromarray(rgba), "PNG")).pixels
    np.testing.assert_allclose(pixels[:, :32], 200 / 255, atol=1e-6)
    np.testing.assert_allclose(pixels[:, 32:], 0.0, atol=1e-6)

    gray_alpha = Image.fromarray(np.stack([ramp(), np.full((80, 96), 128, np.uint8)], axis=-1), "LA")
    pixels = read_radiograph(encode(gray_alpha, "PNG")).pixels
    np.testing.assert_allclose(pixels, ramp() / 255.0 * 128 / 255, atol=0.5 / 255 + 1e-6)


@pytest.mark.parametrize(("maximum", "depth_max"), [(4095, 4095), (65535, 65535), (1000, 1023)])
def test_16_bit_png_keeps_its_full_range(maximum: int, depth_max: int) -> None:
    values = np.linspace(0, maximum, 128 * 64).reshape(64, 128).astype(np.uint16)
    radiograph = read_radiograph(encode(Image.fromarray(values), "PNG"))
    assert_contract(radiograph)
    np.testing.assert_allclose(radiograph.pixels, values / depth_max, atol=1e-6)
    assert len(np.unique(radiograph.pixels)) > 256  # not squeezed through 8 bits
    assert radiograph.pixels.max() > 0.97  # 12-bit data in a 16-bit file is not left dark


def test_float_tiff_is_min_max_scaled() -> None:
    values = np.linspace(-3.0, 5.0, 64 * 64, dtype=np.float32).reshape(64, 64)
    pixels = read_radiograph(encode(Image.fromarray(values, "F"), "TIFF")).pixels
    np.testing.assert_allclose(pixels, (values + 3.0) / 8.0, atol=1e-6)


def test_cmyk_jpeg_converts_to_the_right_gray() -> None:
    # C=100, K=100 of 255 -> RGB (94, 155, 155) -> BT.601 luminance 136.8 / 255.
    image = Image.new("CMYK", (96, 64), (100, 0, 0, 100))
    radiograph = read_radiograph(encode(image, "JPEG", quality=100))
    expected = (0.299 * 255 * (155 / 255) ** 2 + (0.587 + 0.114) * 155) / 255
    np.testing.assert_allclose(radiograph.pixels, expected, atol=0.01)
    assert radiograph.colourfulness > 5

    black_only = read_radiograph(encode(Image.new("CMYK", (64, 64), (0, 0, 0, 128)), "JPEG", quality=100))
    np.testing.assert_allclose(black_only.pixels, 127 / 255, atol=0.01)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_exif_orientation_6_rotates_clockwise(image_format: str) -> None:
    stored = np.zeros((64, 100), dtype=np.uint8)
    stored[:16, :16] = 255  # bright marker at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(Image.fromarray(stored), image_format, exif=exif.tobytes(), quality=100)
    pixels = read_radiograph(data).pixels
    assert pixels.shape == (100, 64)
    assert pixels[:16, -16:].mean() > 0.9  # marker now top-right
    assert pixels[:16, :16].mean() < 0.1


def test_palette_images_are_read_through_their_palette() -> None:
    gray_palette = Image.fromarray(ramp()).convert("P")
    pixels = read_radiograph(encode(gray_palette, "PNG")).pixels
    np.testing.assert_allclose(pixels, ramp() / 255.0, atol=1 / 255)

    colour_palette = Image.new("P", (64, 64))
    colour_palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    colour_palette.paste(1, (0, 0, 32, 64))
    radiograph = read_radiograph(encode(colour_palette, "PNG"))
    np.testing.assert_allclose(radiograph.pixels[:, :32], 0.114, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(radiograph.pixels[:, 32:], 0.299, atol=0.5 / 255 + 1e-6)
    assert radiograph.colourfulness > CLEARLY_COLOURFUL


def test_bilevel_image() -> None:
    image = Image.fromarray(ramp() > 100)
    assert image.mode == "1"
    np.testing.assert_array_equal(
        read_radiograph(encode(image, "PNG")).pixels, (ramp() > 100).astype(np.float32)
    )


def test_camera_mpo_jpeg_uses_the_primary_image() -> None:
    primary, preview = Image.fromarray(ramp()), Image.fromarray(255 - ramp())
    data = encode(primary, "MPO", save_all=True, append_images=[preview], quality=95)
    radiograph = read_radiograph(data)
    assert radiograph.source_format == "JPEG"
    np.testing.assert_allclose(radiograph.pixels, ramp() / 255.0, atol=0.05)


# ----------------------------------------------------------------------------------------------
# Is it a radiograph at all?
# ----------------------------------------------------------------------------------------------


def _with_colourfulness(value: float) -> Radiograph:
    return Radiograph(pixels=np.zeros((64, 64), np.float32), source_format="JPEG", colourfulness=value)


@pytest.mark.parametrize(
    ("colourfulness", "ok", "words"),
    [
        (0.0, True, "grayscale"),
        (6.0, True, "nearly grayscale"),
        (20.0, False, "may be"),
        (70.0, False, "very likely"),
    ],
)
def test_looks_like_radiograph_says_how_sure(colourfulness: float, ok: bool, words: str) -> None:
    verdict, reason = looks_like_radiograph(_with_colourfulness(colourfulness))
    assert verdict is ok
    assert words in reason
    assert_one_sentence(reason)


def test_a_colour_photograph_is_flagged_and_a_radiograph_passes() -> None:
    rng = np.random.default_rng(1)
    photo = np.zeros((96, 128, 3), dtype=np.uint8)
    photo[..., 0] = rng.integers(150, 256, (96, 128))  # an orange cat on green grass
    photo[..., 1] = 100
    photo[48:, :, 0], photo[48:, :, 1] = 40, 180
    ok, reason = looks_like_radiograph(read_radiograph(encode(Image.fromarray(photo), "JPEG")))
    assert not ok
    assert "photograph" in reason

    assert looks_like_radiograph(read_radiograph(encode(Image.fromarray(ramp()), "JPEG")))[0]
    assert looks_like_radiograph(read_radiograph(dicom_image(ramp().astype(np.uint16))))[0]


# ----------------------------------------------------------------------------------------------
# DICOM
# ----------------------------------------------------------------------------------------------


def test_shipped_ct_is_read() -> None:
    radiograph = read_radiograph(shipped("CT_small.dcm"))
    assert_contract(radiograph)
    assert radiograph.source_format == "DICOM"
    assert radiograph.pixels.shape == (128, 128)
    assert radiograph.window is not None  # the automatic window, in Hounsfield units
    assert radiograph.window[1] > 0


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
    ],
)
def test_compressed_and_other_encodings_match_the_native_file(name: str) -> None:
    native = read_radiograph(shipped("MR_small.dcm"))
    other = read_radiograph(shipped(name))
    assert_contract(other)
    assert other.window == native.window
    np.testing.assert_array_equal(other.pixels, native.pixels)


def test_file_without_preamble_is_detected_by_content() -> None:
    data = shipped("MR_small.dcm")
    assert data[128:132] == b"DICM"
    np.testing.assert_array_equal(read_radiograph(data[132:]).pixels, read_radiograph(data).pixels)


def test_monochrome1_is_inverted() -> None:
    stored = ramp().astype(np.uint16) * 16  # 12-bit values
    mono2 = read_radiograph(dicom_image(stored, bits_stored=12))
    mono1 = read_radiograph(dicom_image(stored, bits_stored=12, photometric="MONOCHROME1"))
    assert_contract(mono1)
    np.testing.assert_allclose(mono1.pixels, 1.0 - mono2.pixels, atol=1e-6)
    assert mono1.pixels[0, 0] == pytest.approx(1.0)  # stored minimum shows white


def test_rescale_slope_and_intercept_are_applied_before_the_window() -> None:
    stored = np.linspace(0, 1000, 64 * 64).reshape(64, 64).astype(np.uint16)
    # Modality values = 2 * stored - 1000, spanning -1000..1000; window -1000..+1000.
    data = dicom_image(stored, RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=0, WindowWidth=2000)
    radiograph = read_radiograph(data, window=(0.0, 2000.0))
    np.testing.assert_allclose(radiograph.pixels, stored / 1000.0, atol=1e-5)
    assert radiograph.window == (0.0, 2000.0)


def test_file_window_uses_the_dicom_linear_formula() -> None:
    stored = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 512
    radiograph = read_radiograph(dicom_image(stored, WindowCenter=256, WindowWidth=257))
    expected = np.clip((stored - 255.5) / 256 + 0.5, 0, 1)
    np.testing.assert_allclose(radiograph.pixels, expected, atol=1e-6)
    assert radiograph.window == (256.0, 257.0)


def test_window_argument_overrides_the_file_window() -> None:
    stored = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 512
    data = dicom_image(stored, WindowCenter=256, WindowWidth=512)
    default = read_radiograph(data)
    narrow = read_radiograph(data, window=(100.0, 50.0))
    assert not np.allclose(default.pixels, narrow.pixels)
    assert narrow.window == (100.0, 50.0)
    np.testing.assert_allclose(narrow.pixels[stored == 100], 0.5, atol=1e-6)
    assert (narrow.pixels[stored <= 75] == 0).all()
    assert (narrow.pixels[stored >= 125] == 1).all()


@pytest.mark.parametrize("intercept", [0, 100])
def test_voi_lut_sequence_is_applied_to_rescaled_values(intercept: int) -> None:
    stored = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 256
    lut_item = Dataset()
    lut_item.LUTDescriptor = [256, intercept, 8]  # first entry maps the modality value `intercept`
    lut_item.add_new("LUTData", "US", list(range(255, -1, -1)))  # an inverting LUT
    dataset = dicom_dataset(
        stored, WindowCenter=128, WindowWidth=256, RescaleSlope=1, RescaleIntercept=intercept
    )
    dataset.VOILUTSequence = [lut_item]
    radiograph = read_radiograph(dicom_bytes(dataset))
    np.testing.assert_allclose(radiograph.pixels, (255 - stored) / 255.0, atol=1e-6)
    assert radiograph.window is None


def test_sigmoid_voi_function_is_honoured() -> None:
    stored = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 512
    data = dicom_image(stored, WindowCenter=256, WindowWidth=100, VOILUTFunction="SIGMOID")
    pixels = read_radiograph(data).pixels
    np.testing.assert_allclose(pixels, 1 / (1 + np.exp(-4 * (stored - 256.0) / 100)), atol=1e-6)


@pytest.mark.parametrize(
    ("dtype", "bits_stored", "low", "high"),
    [
        (np.uint8, 8, 0, 255),
        (np.uint16, 12, 0, 4095),
        (np.uint16, 16, 0, 65535),
        (np.int16, 16, -2000, 3000),
        (np.int16, 12, -2048, 2047),
    ],
)
def test_bit_depths_and_signedness_without_a_window(
    dtype: type, bits_stored: int, low: int, high: int
) -> None:
    stored: np.ndarray = np.linspace(low, high, 64 * 80).reshape(64, 80).astype(dtype)
    radiograph = read_radiograph(dicom_image(stored, bits_stored=bits_stored))
    assert_contract(radiograph)
    pixels = radiograph.pixels.ravel()
    assert np.all(np.diff(pixels) >= 0)  # monotonic in the stored value
    assert pixels[0] == 0.0
    assert pixels[-1] == 1.0
    centre, width = radiograph.window or (np.nan, np.nan)
    assert low <= centre <= high
    assert 0 < width <= high - low


def test_body_part_and_view_are_exposed_and_patient_tags_never_are() -> None:
    data = dicom_image(ramp().astype(np.uint16), BodyPartExamined="WRIST", ViewPosition="PA")
    radiograph = read_radiograph(data)
    assert (radiograph.body_part, radiograph.view) == ("WRIST", "PA")
    text = repr(radiograph) + repr(vars(radiograph))
    for value in PLANTED_PATIENT.values():
        assert value not in text
    parsed = imaging._parse_dicom(data)
    assert not any(keyword in parsed for keyword in PLANTED_PATIENT)


@pytest.mark.parametrize(
    ("sop_class", "modality", "words"),
    [
        (pydicom.uid.RTPlanStorage, "RTPLAN", "an RT Plan object"),
        (pydicom.uid.BasicTextSRStorage, "SR", "a Basic Text SR object"),
        ("1.2.3.4.5", "SR", "an SR object"),
    ],
)
def test_dicom_without_pixel_data_is_refused_without_patient_details(
    sop_class: str, modality: str, words: str
) -> None:
    dataset = dicom_dataset(None, Modality=modality)
    dataset.SOPClassUID = sop_class
    message = refusal(dicom_bytes(dataset))
    assert message == f"This DICOM file holds no image (it is {words})."
    for value in PLANTED_PATIENT.values():
        assert value not in message


def test_shipped_rt_plan_is_refused() -> None:
    assert "holds no image" in refusal(shipped("rtplan.dcm"))


def test_multi_frame_dicom_is_refused() -> None:
    frames = np.stack([ramp().astype(np.uint16)] * 3)
    dataset = dicom_dataset(None)
    dataset.set_pixel_data(frames, "MONOCHROME2", 16)
    assert "3 frames" in refusal(dicom_bytes(dataset))


def test_colour_dicom_is_refused_as_not_a_radiograph() -> None:
    rgb = np.zeros((64, 64, 3), dtype=np.uint8)
    assert "not a radiograph" in refusal(dicom_image(rgb, photometric="RGB"))
    assert "not a radiograph" in refusal(shipped("examples_rgb_color.dcm"))
    assert "not a radiograph" in refusal(shipped("examples_palette.dcm"))


def test_segmentation_dicom_is_refused() -> None:
    assert "not a radiograph" in refusal(shipped("liver_1frame.dcm"))


def test_dicom_too_small_or_declaring_too_many_pixels_is_refused() -> None:
    assert "at least 64" in refusal(shipped("JPEGLSNearLossless_16.dcm"))
    dataset = dicom_dataset(ramp().astype(np.uint16))
    dataset.Rows = dataset.Columns = 10_000  # the pixel data is tiny; only the header lies
    assert f"{MAX_PIXELS:,}" in refusal(dicom_bytes(dataset))


def test_undecodable_compression_is_refused_clearly() -> None:
    dataset = dicom_dataset(None)
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.MPEG2MPML
    dataset.Rows, dataset.Columns, dataset.SamplesPerPixel = 64, 64, 1
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 8, 8, 7, 0
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])
    message = refusal(dicom_bytes(dataset))
    assert "MPEG2" in message
    assert "cannot decode" in message


def rle_dicom_with_overlong_segment() -> bytes:
    """16-bit RLE whose first segment decodes 300 bytes too many (pylibjpeg-rle panics on it)."""
    pixel_count = 64 * 64

    def segment(length: int) -> bytes:
        runs = b""
        while length > 0:
            run = min(128, length)
            runs += bytes([257 - run, 7]) if run > 1 else b"\x00\x07"
            length -= run
        return runs

    high_bytes, low_bytes = segment(pixel_count + 300), segment(pixel_count)
    header = struct.pack("<16I", 2, 64, 64 + len(high_bytes), *[0] * 13)
    dataset = dicom_dataset(None)
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.RLELossless
    dataset.Rows, dataset.Columns, dataset.SamplesPerPixel = 64, 64, 1
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 0
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.PixelData = encapsulate([header + high_bytes + low_bytes])
    return dicom_bytes(dataset)


def test_corrupt_rle_never_escapes_as_a_decoder_panic() -> None:
    _read_or_refuse(rle_dicom_with_overlong_segment())


def test_dicom_with_truncated_pixel_data_is_refused() -> None:
    data = dicom_image(ramp().astype(np.uint16))
    assert "damaged" in refusal(data[:-1000])


# ----------------------------------------------------------------------------------------------
# Fuzzing: any bytes give a valid Radiograph or an InputError, never anything else
# ----------------------------------------------------------------------------------------------

_SEEDS = [
    encode(Image.fromarray(ramp(64, 64)), "PNG"),
    encode(Image.fromarray(ramp(64, 64)), "JPEG", quality=80),
    encode(Image.fromarray(np.repeat(ramp(64, 64)[..., None], 3, axis=2)), "JPEG", quality=80),
    encode(Image.fromarray(ramp(64, 64).astype(np.uint16) * 200), "PNG"),
    dicom_image(ramp(64, 64).astype(np.uint16) * 16, bits_stored=12, WindowCenter=2000, WindowWidth=4000),
]


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    """A valid seed file with some bytes overwritten, a slice cut out, or its tail chopped off."""
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        start = draw(st.integers(0, len(data) - 1))
        del data[start : start + draw(st.integers(1, 64))]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _read_or_refuse(data: bytes) -> None:
    try:
        radiograph = read_radiograph(data)
    except InputError as error:
        assert_one_sentence(str(error))
    else:
        assert_contract(radiograph)


_FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@_FUZZ
@given(st.binary(max_size=2048) | st.binary(max_size=512).map(lambda tail: b"\x00" * 128 + b"DICM" + tail))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    _read_or_refuse(data)


@_FUZZ
@given(mutated_files())
def test_mutated_files_never_crash(data: bytes) -> None:
    _read_or_refuse(data)


# ----------------------------------------------------------------------------------------------
# Windows the Read page's window control must be able to show, and the less common DICOM paths
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1000, -1024])
def test_flat_dicom_gets_a_positive_window_that_reproduces_its_pixels(value: int) -> None:
    # The automatic window of a uniform image had width 0, which crashed the Read page's window control.
    data = dicom_image(np.full((256, 256), value, dtype=np.int16))
    radiograph = read_radiograph(data)
    assert_contract(radiograph)
    assert (radiograph.pixels == 0).all()
    centre, width = radiograph.window or (np.nan, np.nan)
    assert width > 0
    np.testing.assert_array_equal(read_radiograph(data, window=(centre, width)).pixels, radiograph.pixels)


def float_dicom(values: np.ndarray, keyword: str = "FloatPixelData") -> bytes:
    """A DICOM holding ``values`` as 32-bit Float Pixel Data or 64-bit Double Float Pixel Data."""
    dataset = dicom_dataset(None)
    dataset.Rows, dataset.Columns = values.shape
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
    dtype = np.float32 if keyword == "FloatPixelData" else np.float64
    dataset.BitsAllocated = dtype().itemsize * 8
    setattr(dataset, keyword, values.astype(dtype).tobytes())
    return dicom_bytes(dataset)


@pytest.mark.parametrize("keyword", ["FloatPixelData", "DoubleFloatPixelData"])
def test_float_pixel_data_gets_its_percentile_window(keyword: str) -> None:
    values = np.linspace(-0.5, 0.25, 64 * 80).reshape(64, 80)
    radiograph = read_radiograph(float_dicom(values, keyword))
    assert_contract(radiograph)
    low, high = np.percentile(values.astype(np.float32 if keyword == "FloatPixelData" else np.float64), (0.5, 99.5))
    centre, width = radiograph.window or (np.nan, np.nan)
    assert (centre, width) == pytest.approx(((low + high) / 2, high - low), rel=1e-6)
    assert width < 1  # narrower than the page's old minimum width of 1
    np.testing.assert_allclose(radiograph.pixels, np.clip((values - low) / (high - low), 0, 1), atol=1e-6)


def test_float_pixel_data_with_nan_and_infinity_is_windowed_on_its_finite_values() -> None:
    values = np.linspace(0.0, 1.0, 64 * 80).reshape(64, 80)
    values[0, :5], values[1, :3] = np.nan, np.inf
    radiograph = read_radiograph(float_dicom(values))
    assert_contract(radiograph)
    assert np.isfinite(radiograph.window).all()
    assert (radiograph.pixels[0, :5] == 0).all() and (radiograph.pixels[1, :3] == 1).all()
    all_nan = read_radiograph(float_dicom(np.full((64, 64), np.nan)))
    assert (all_nan.pixels == 0).all() and all_nan.window is not None and all_nan.window[1] > 0


def test_narrow_sigmoid_and_linear_exact_windows_are_kept() -> None:
    stored = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4
    for function in ("SIGMOID", "LINEAR_EXACT"):
        radiograph = read_radiograph(dicom_image(stored, WindowCenter=1.5, WindowWidth=0.5, VOILUTFunction=function))
        assert radiograph.window == (1.5, 0.5)
    # a LINEAR window must be wider than 1 (its formula divides by width - 1): the automatic window is used
    assert read_radiograph(dicom_image(stored, WindowCenter=1.5, WindowWidth=1)).window != (1.5, 1.0)


def test_modality_lut_sequence_is_applied_before_the_window() -> None:
    stored = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 256
    lut_item = Dataset()
    lut_item.LUTDescriptor = [256, 0, 16]
    lut_item.ModalityLUTType = "OD"
    lut_item.add_new("LUTData", "US", [1000 + 2 * value for value in range(256)])
    dataset = dicom_dataset(stored)
    dataset.ModalityLUTSequence = [lut_item]
    # modality values 1000 + 2 * stored; the window 1255 +- 255 maps them back onto stored / 255
    radiograph = read_radiograph(dicom_bytes(dataset), window=(1255.0, 510.0))
    np.testing.assert_allclose(radiograph.pixels, stored / 255.0, atol=1e-6)
    centre, width = read_radiograph(dicom_bytes(dataset)).window or (np.nan, np.nan)
    assert 1000 <= centre - width / 2 and centre + width / 2 <= 1510  # the automatic window is in modality units


def test_unusable_voi_lut_sequence_falls_back_to_the_file_window() -> None:
    stored = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 512
    lut_item = Dataset()
    lut_item.LUTDescriptor = [256, 0, 8]  # and no LUT Data
    with_lut = dicom_dataset(stored, WindowCenter=256, WindowWidth=257)
    with_lut.VOILUTSequence = [lut_item]
    radiograph = read_radiograph(dicom_bytes(with_lut))
    plain = read_radiograph(dicom_image(stored, WindowCenter=256, WindowWidth=257))
    assert radiograph.window == plain.window == (256.0, 257.0)
    np.testing.assert_array_equal(radiograph.pixels, plain.pixels)


def _with_first_frame(name: str, change) -> bytes:  # noqa: ANN001 - bytes -> bytes
    """A shipped compressed file with its (single) frame's compressed bytes changed."""
    dataset = pydicom.dcmread(get_testdata_file(name, download=False) or pytest.skip(f"{name} not installed"))
    frame = next(pydicom.encaps.generate_frames(dataset.PixelData, number_of_frames=1))
    dataset.PixelData = encapsulate([change(bytearray(frame))])
    buffer = pydicom.filebase.DicomBytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


def _cut_in_half(frame: bytearray) -> bytes:
    return bytes(frame[: len(frame) // 2])


def _overwrite_a_third_in(frame: bytearray) -> bytes:
    frame[len(frame) // 3 : len(frame) // 3 + 200] = b"\xff" * 200
    return bytes(frame)


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("MR_small_RLE.dcm", _cut_in_half),  # pydicom's RLE decoder: too little data
        ("MR_small_jpeg_ls_lossless.dcm", _overwrite_a_third_in),  # libjpeg: a broken marker
        ("MR_small_jp2klossless.dcm", _cut_in_half),  # openjpeg: a truncated code stream
    ],
)
def test_corrupt_compressed_pixel_data_is_refused(name: str, change) -> None:  # noqa: ANN001
    assert refusal(_with_first_frame(name, change)) == imaging._DAMAGED_DICOM


def test_a_decoder_panic_is_refused_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    # pylibjpeg-rle (Rust) panics on an overlong segment; pyo3's PanicException is a BaseException. Let the
    # reader use that decoder, as pydicom would by default, and the panic must still become a refusal.
    original = Dataset.pixel_array_options

    def with_pylibjpeg(self: Dataset, **options: object) -> None:
        original(self, **{**options, "decoding_plugin": "pylibjpeg"})

    monkeypatch.setattr(Dataset, "pixel_array_options", with_pylibjpeg)
    with pytest.raises(InputError) as caught:
        read_radiograph(rle_dicom_with_overlong_segment())
    assert str(caught.value) == imaging._DAMAGED_DICOM
    assert type(caught.value.__cause__).__name__ == "PanicException"
    assert not imaging._is_decoder_failure(KeyboardInterrupt())
