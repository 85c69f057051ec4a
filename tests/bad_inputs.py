"""The input corpus for every layer that reads a user's file: generated, small, deterministic.

`tests/test_imaging.py` checks the decoder on it, `tests/test_app_inputs.py` uploads it through the
page, `tests/test_predict_cli.py` feeds it to the command line, and `tests/e2e/` drags some of it
into a real browser. Nothing here is written to disk unless a test asks for it (`write_corpus`).

* `BAD_INPUTS`: files the app must refuse with one sentence (and the words that sentence contains).
* `ODD_BUT_VALID`: unusual files that are real images and must be scored (16-bit, CMYK, EXIF).
* `colour_photograph` / `document_photograph`: real-looking photos that are not radiographs.
* `dicom_dataset` / `dicom_bytes` / `dicom_image` / `cr_radiograph`: DICOM built with pydicom, every
  one carrying the planted identifiers in `PLANTED_PATIENT`, which must never surface anywhere.
"""

from __future__ import annotations

import io
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pydicom.uid
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset

from fracture_model.imaging import MIN_SIDE_PX

# Identifying elements planted in every generated DICOM. Values are deliberately unusual so that a
# search for them cannot hit by chance; none of them may reach a page, a log, a message or a file.
PLANTED_PATIENT: dict[str, str] = {
    "PatientName": "Quixleyfarn^Marguerite",
    "PatientID": "MRN-0042-SECRET",
    "PatientBirthDate": "19381207",
    "PatientAddress": "17 Wrenfold Lane, Kettleby",
    "PatientTelephoneNumbers": "555-0199-372",
    "OtherPatientIDs": "OPID-77-HIDDEN",
    "InstitutionName": "Saint Oswaldkirk Infirmary",
    "InstitutionAddress": "1 Oswaldkirk Row",
    "ReferringPhysicianName": "Zabrowskiold^Otto",
    "AccessionNumber": "ACC7731PLANT",
    "StudyID": "STUDYPLANT9",
    "StudyDescription": "Plantedstudy wrist series",
}


_PLANTED_WORDS = ("Quixleyfarn", "Marguerite", "Zabrowskiold", "Oswaldkirk", "Wrenfold", "Kettleby", "Plantedstudy")


def planted_strings() -> list[str]:
    """Every planted value, the distinctive words in them (a page may render ``^`` as a space or
    split an address), and the birth date as a page might format it."""
    return sorted({*PLANTED_PATIENT.values(), *_PLANTED_WORDS, "1938-12-07"})


def find_planted(text: str) -> list[str]:
    """The planted strings that occur in ``text`` (case-insensitive); empty means clean."""
    lowered = text.lower()
    return [needle for needle in planted_strings() if needle.lower() in lowered]


def files_written_since(folder: Path, since: float) -> list[Path]:
    """Regular files (not links) under ``folder`` modified at or after ``since`` (a time.time() value)."""
    found = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            try:
                if path.is_file() and not path.is_symlink() and path.stat().st_mtime >= since:
                    found.append(path)
            except OSError:  # vanished while we looked (other processes use the temp folder too)
                continue
    return found


def planted_in_files(paths: list[Path]) -> dict[str, list[str]]:
    """For each file that holds a planted identifier (first 50 MB read), the identifiers found in it."""
    hits = {}
    for path in paths:
        try:
            with path.open("rb") as file:
                text = file.read(50_000_000).decode("latin-1")
        except OSError:
            continue
        if found := find_planted(text):
            hits[str(path)] = found
    return hits


def assert_one_sentence(message: str) -> None:
    """A clinician-facing message: one sentence, no stack-trace wording."""
    assert "Traceback" not in message
    assert "Error" not in message
    assert "\n" not in message
    assert message[0].isupper()
    assert message.endswith(".")
    assert re.search(r"[.!?]\s+[A-Z]", message[:-1]) is None, message


# ----------------------------------------------------------------------------------------------
# Raster builders
# ----------------------------------------------------------------------------------------------


def ramp(height: int = 80, width: int = 96) -> np.ndarray:
    """An 8-bit diagonal gradient: no two rows or columns alike, so flips and transposes show."""
    rows, columns = np.mgrid[0:height, 0:width]
    gradient: np.ndarray = ((rows * 2 + columns) % 256).astype(np.uint8)
    return gradient


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    """Save a Pillow image to bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header declares width x height 1-bit pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def animated_gif() -> bytes:
    frames = [Image.fromarray(ramp()), Image.fromarray(255 - ramp())]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def animated_png() -> bytes:
    frames = [Image.fromarray(ramp()), Image.fromarray(255 - ramp())]
    return encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100)


def multipage_tiff() -> bytes:
    pages = [Image.fromarray(ramp()) for _ in range(3)]
    return encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def bone_like(height: int = 320, width: int = 256, seed: int = 0) -> np.ndarray:
    """An 8-bit grayscale 'radiograph': dark background, a bright bone-like bar with a cortex, noise."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float64)
    image = 25 + 10 * rng.standard_normal((height, width))
    distance = np.abs(columns - width / 2 - 0.08 * (rows - height / 2))
    image += np.where(distance < width / 8, 120 + 60 * (distance / (width / 8)) ** 4, 0)
    image[: height // 10] += 40  # a brighter 'soft tissue' band along the top, so it is not symmetric
    return np.clip(image, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Files that must be refused, each with one sentence
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadInput:
    """A file the app must refuse: how to make it, words its one-sentence refusal contains, and how
    a browser would hand it over (file name and MIME type as Streamlit receives them)."""

    make: Callable[[], bytes]
    words: str
    filename: str
    mime: str


BAD_INPUTS: dict[str, BadInput] = {
    "empty": BadInput(lambda: b"", "empty", "empty.png", "image/png"),
    "text": BadInput(
        lambda: b"Patient seen in clinic, wrist pain after fall.\n" * 20, "not an image", "notes.png", "image/png"
    ),
    "pdf renamed png": BadInput(
        lambda: b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" * 10, "not an image", "report.png", "image/png"
    ),
    "truncated png": BadInput(
        lambda: encode(Image.fromarray(ramp(256, 256)), "PNG")[:-400], "damaged", "cut.png", "image/png"
    ),
    "truncated jpeg": BadInput(
        lambda: encode(Image.fromarray(ramp(256, 256)), "JPEG")[:-600], "damaged", "cut.jpg", "image/jpeg"
    ),
    "1x1 png": BadInput(lambda: encode(Image.new("L", (1, 1)), "PNG"), "at least 64", "dot.png", "image/png"),
    "20x20 jpeg": BadInput(
        lambda: encode(Image.new("L", (20, 20)), "JPEG"), "at least 64", "thumb.jpg", "image/jpeg"
    ),
    "one side too short": BadInput(
        lambda: encode(Image.new("L", (500, MIN_SIDE_PX - 1)), "PNG"), "at least 64", "strip.png", "image/png"
    ),
    "bomb 50000x50000": BadInput(lambda: png_declaring(50_000, 50_000), "60,000,000", "bomb.png", "image/png"),
    "bomb just over limit": BadInput(lambda: png_declaring(10_000, 7_000), "60,000,000", "big.png", "image/png"),
    "animated gif": BadInput(animated_gif, "2 images", "moving.gif", "image/gif"),
    "animated png": BadInput(animated_png, "2 images", "moving.png", "image/png"),
    "multi-page tiff": BadInput(multipage_tiff, "3 images", "pages.tif", "image/tiff"),
}


# ----------------------------------------------------------------------------------------------
# Unusual files that are real images and must be scored
# ----------------------------------------------------------------------------------------------


def sixteen_bit_png() -> bytes:
    """A 12-bit radiograph in a 16-bit grayscale PNG (as many exporters write them)."""
    values = bone_like(seed=1).astype(np.uint16) * 16
    return encode(Image.fromarray(values), "PNG")


def cmyk_jpeg() -> bytes:
    """A grayscale radiograph saved as a CMYK JPEG (print workflows, some scanners)."""
    gray = bone_like(seed=2)
    cmyk = np.stack([np.zeros_like(gray)] * 3 + [255 - gray], axis=-1)
    return encode(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=95)


EXIF_ROTATED_STORED_SIZE = (320, 240)
"""(width, height) of the pixels stored in `exif_rotated_photo`; they display as 240 x 320."""


def exif_rotated_photo() -> bytes:
    """A phone photo of a radiograph: stored landscape, EXIF orientation 6 says 'rotate 90 degrees clockwise'."""
    width, height = EXIF_ROTATED_STORED_SIZE
    stored = np.rot90(bone_like(width, height, seed=3))  # the display image turned 90 degrees anticlockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.fromarray(np.ascontiguousarray(stored)), "JPEG", exif=exif.tobytes(), quality=92)


ODD_BUT_VALID: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "16-bit png": (sixteen_bit_png, "xray16.png", "image/png"),
    "cmyk jpeg": (cmyk_jpeg, "scan_cmyk.jpg", "image/jpeg"),
    "exif-rotated photo": (exif_rotated_photo, "IMG_2041.jpg", "image/jpeg"),
}
"""name -> (make, file name, MIME type)."""


# ----------------------------------------------------------------------------------------------
# Photographs that are not radiographs
# ----------------------------------------------------------------------------------------------


def colour_photograph(height: int = 240, width: int = 320) -> bytes:
    """A colourful 'cat on grass in the sun' photo: orange fur, green grass, blue sky, with texture."""
    rng = np.random.default_rng(11)
    photo = np.zeros((height, width, 3), dtype=np.float64)
    photo[: height // 3] = (90, 150, 235)  # sky
    photo[height // 3 :] = (60, 160, 50)  # grass
    rows, columns = np.mgrid[0:height, 0:width]
    cat = ((rows - height * 0.6) / (height * 0.25)) ** 2 + ((columns - width * 0.5) / (width * 0.22)) ** 2 < 1
    stripes = (np.sin(columns / 6.0) > 0.3)[..., None]
    photo[cat] = np.where(stripes[cat], (230, 130, 40), (200, 100, 30))
    photo += rng.normal(0, 12, photo.shape)
    return encode(Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)), "JPEG", quality=90)


def document_photograph(height: int = 240, width: int = 320) -> bytes:
    """A phone photo of a printed page lying on a wooden desk under warm light."""
    rng = np.random.default_rng(12)
    photo = np.zeros((height, width, 3), dtype=np.float64)
    grain = 20 * np.sin(np.mgrid[0:height, 0:width][1] / 3.0 + rng.normal(0, 0.3, (height, width)))
    photo[...] = np.stack([150 + grain, 90 + grain * 0.6, 40 + grain * 0.3], axis=-1)  # wood
    top, bottom, left, right = height // 8, height - height // 8, width // 5, width - width // 5
    photo[top:bottom, left:right] = (250, 238, 205)  # warm-lit paper
    for line in range(top + 15, bottom - 10, 12):  # lines of 'text'
        photo[line : line + 4, left + 15 : right - 15 - (line % 40)] = (40, 35, 30)
    photo += rng.normal(0, 6, photo.shape)
    return encode(Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)), "JPEG", quality=90)


# ----------------------------------------------------------------------------------------------
# DICOM builders (pydicom)
# ----------------------------------------------------------------------------------------------


def dicom_dataset(
    pixels: np.ndarray | None,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    **elements: object,
) -> Dataset:
    """A minimal Secondary Capture dataset with the planted patient identifiers."""
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset.SOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = pydicom.uid.generate_uid()
    dataset.Modality = "DX"
    for keyword, value in PLANTED_PATIENT.items():
        setattr(dataset, keyword, value)
    if pixels is not None:
        default_bits = pixels.dtype.itemsize * 8
        dataset.set_pixel_data(pixels, photometric, bits_stored or default_bits)
    for keyword, element_value in elements.items():
        setattr(dataset, keyword, element_value)
    return dataset


def dicom_bytes(dataset: Dataset) -> bytes:
    """Write a dataset as a DICOM Part 10 file (preamble + DICM)."""
    buffer = io.BytesIO()
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dicom_image(pixels: np.ndarray, **kwargs: object) -> bytes:
    """Shorthand: a DICOM file holding `pixels`."""
    return dicom_bytes(dicom_dataset(pixels, **kwargs))  # type: ignore[arg-type]


CR_WINDOW = (2048.0, 4096.0)
"""(centre, width) stored in `cr_radiograph`'s file, in modality units."""


def cr_radiograph(height: int = 320, width: int = 256, *, body_part: str = "WRIST", view: str = "PA") -> bytes:
    """A Computed Radiography image as a CR plate reader sends it: 12-bit, ``MONOCHROME1`` (high
    stored values are dark), a window in the file, body part and view, and the planted identifiers.

    ``height=1024, width=768`` gives a 1.5 MB file, larger than the 1 MB at which Starlette's
    multipart parser would spill an upload to a temporary file.
    """
    display = bone_like(height, width, seed=4).astype(np.float64) / 255.0  # bright bone
    stored = np.rint((1.0 - display) * 4095).astype(np.uint16)  # MONOCHROME1: bone stored low
    dataset = dicom_dataset(
        stored, photometric="MONOCHROME1", bits_stored=12,
        Modality="CR", BodyPartExamined=body_part, ViewPosition=view,
        WindowCenter=CR_WINDOW[0], WindowWidth=CR_WINDOW[1],
    )
    dataset.SOPClassUID = pydicom.uid.ComputedRadiographyImageStorage
    return dicom_bytes(dataset)


# ----------------------------------------------------------------------------------------------
# On disk, for the command line and the browser
# ----------------------------------------------------------------------------------------------


def write_corpus(folder: Path, names: Iterable[str] | None = None) -> dict[str, Path]:
    """Write `BAD_INPUTS` (all, or ``names``) into ``folder`` under their file names; name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in names if names is not None else BAD_INPUTS:
        bad = BAD_INPUTS[name]
        path = folder / f"{re.sub(r'[^a-z0-9]+', '_', name)}_{bad.filename}"
        path.write_bytes(bad.make())
        written[name] = path
    return written
