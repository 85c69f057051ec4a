"""Every kind of file a clinician might drop on the page, uploaded through the real file uploader (AppTest).

Bad files get exactly one sentence and the page keeps working; odd but valid files are scored;
photographs are flagged before any probability is shown; DICOM shows its body part and view, has a
working window control, and never lets an identifying tag reach the page, the log or the temp folder.
The corpus is `tests/bad_inputs.py`. Works with whatever model `assets/model/` ships.
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.runtime import memory_media_file_storage
from streamlit.testing.v1 import AppTest

from fracture_model.imaging import read_radiograph
from fracture_model.model_card import read_card
from tests.bad_inputs import (
    BAD_INPUTS,
    CR_WINDOW,
    EXIF_ROTATED_STORED_SIZE,
    ODD_BUT_VALID,
    PLANTED_PATIENT,
    assert_one_sentence,
    colour_photograph,
    cr_radiograph,
    dicom_bytes,
    dicom_dataset,
    document_photograph,
    files_written_since,
    find_planted,
    planted_in_files,
)
from tests.conftest import MODEL_DIR, REPO

TIMEOUT = 180
PROBABILITY = "Probability of fracture"
SHOWN_ATOL = 3 / 255


@pytest.fixture
def app() -> AppTest:
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()


@pytest.fixture
def shown_images(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """file id -> bytes of every image the page hands to Streamlit's (in-memory) media storage."""
    recorded: dict[str, bytes] = {}
    original = memory_media_file_storage.MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):  # type: ignore[no-untyped-def]
        file_id = original(self, path_or_data, mimetype, kind, filename)
        if isinstance(path_or_data, bytes):
            recorded[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(memory_media_file_storage.MemoryMediaFileStorage, "load_and_get_id", record)
    return recorded


def upload(at: AppTest, filename: str, data: bytes, mime: str) -> AppTest:
    at.get("file_uploader")[0].set_value((filename, data, mime))
    return at.run()


def probability_shown(at: AppTest) -> float | None:
    metrics = [m for m in at.metric if m.label == PROBABILITY]
    return float(metrics[0].value.rstrip("%")) / 100 if metrics else None


def assert_scored(at: AppTest) -> None:
    """A probability and one decision, the one the card's threshold makes, in its colour.

    The page shows the probability rounded to 1%: a probability shown more than half a point away from the
    threshold tells on which side the exact one lies (tests/test_app.py checks the sides exactly)."""
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    probability = probability_shown(at)
    assert probability is not None and 0.0 <= probability <= 1.0
    decisions = [m.value for m in at.markdown if "Fracture suspected" in m.value or "No fracture detected" in m.value]
    assert len(decisions) == 1, decisions
    threshold = float(read_card(MODEL_DIR)["operating_threshold"])
    if abs(probability - threshold) > 0.005 + 1e-9:
        expected = ":red-background[Fracture suspected]" if probability > threshold else (
            ":green-background[No fracture detected]")
        assert expected in decisions[0], (probability, threshold, decisions[0])


def original_image(at: AppTest, shown: dict[str, bytes], caption: str = "Your upload") -> np.ndarray:
    """The pixels of the image the page shows under ``caption`` (the radiograph as decoded).

    Streamlit sends arrays as JPEG at quality 100: compare with `SHOWN_ATOL`."""
    for image in at.get("image"):
        for url, image_caption in zip(image.value, image.captions, strict=True):
            if image_caption == caption:
                file_id = url.rsplit("/", 1)[-1].split(".")[0]
                return np.asarray(Image.open(io.BytesIO(shown[file_id])))
    raise AssertionError(f"no image captioned {caption!r}")


def page_text(at: AppTest) -> str:
    """Everything the page sends to the browser, as protobuf text: labels, values, captions, help."""
    parts: list[str] = []

    def walk(node: object) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------
# Bad files: one sentence, the app keeps serving, the next upload works
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_file_gets_one_sentence_and_the_next_upload_is_scored(app, name, fractured_sample):
    bad = BAD_INPUTS[name]
    upload(app, bad.filename, bad.make(), bad.mime)
    assert not app.exception
    assert len(app.error) == 1, [e.value for e in app.error]
    message = app.error[0].value
    assert_one_sentence(message)
    assert bad.words in message
    assert probability_shown(app) is None
    assert not app.get("image")  # nothing half-decoded is shown

    upload(app, fractured_sample.name, fractured_sample.read_bytes(), "image/jpeg")
    assert_scored(app)


# ----------------------------------------------------------------------------------------------
# Odd but valid files are read correctly and scored
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ODD_BUT_VALID))
def test_odd_but_valid_file_is_scored(app, shown_images, name):
    make, filename, mime = ODD_BUT_VALID[name]
    data = make()
    upload(app, filename, data, mime)
    assert_scored(app)
    # grayscale content: no "does not look like a radiograph" warning (it names the colourfulness). These
    # synthetic bone-like images may carry the out-of-distribution note, which is a different warning.
    assert not [w.value for w in app.warning if "colourfulness" in w.value]
    shown = original_image(app, shown_images)
    expected = read_radiograph(data).pixels
    assert shown.shape[:2] == expected.shape
    np.testing.assert_allclose(shown / 255.0, expected, atol=SHOWN_ATOL)


def test_exif_rotation_is_applied_before_scoring(app, shown_images):
    make, filename, mime = ODD_BUT_VALID["exif-rotated photo"]
    upload(app, filename, make(), mime)
    assert_scored(app)
    stored_width, stored_height = EXIF_ROTATED_STORED_SIZE
    assert original_image(app, shown_images).shape[:2] == (stored_width, stored_height)  # shown upright


# ----------------------------------------------------------------------------------------------
# A photograph is not a radiograph: say so, and how sure, before any probability
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [colour_photograph, document_photograph], ids=["cat", "document"])
def test_photograph_is_flagged_and_scored_only_on_request(app, make):
    upload(app, "IMG_0042.jpg", make(), "image/jpeg")
    assert not app.exception and not app.error
    assert len(app.warning) == 1
    warning = app.warning[0].value
    assert "photograph" in warning and "colourfulness" in warning and "very likely" in warning
    assert_one_sentence(warning)
    assert probability_shown(app) is None
    assert not any("Fracture suspected" in m.value or "No fracture detected" in m.value for m in app.markdown)

    override = [c for c in app.checkbox if c.label.startswith("This is a radiograph")]
    assert len(override) == 1 and override[0].value is False
    override[0].check().run()
    assert_scored(app)
    assert any("Scored on your request" in c.value for c in app.caption)


# ----------------------------------------------------------------------------------------------
# DICOM as a CR reader sends it
# ----------------------------------------------------------------------------------------------


def test_dicom_cr_without_extension_shows_body_part_view_probability_and_window(app, shown_images):
    data = cr_radiograph()
    upload(app, "IM000123", data, "application/octet-stream")  # no .dcm, as PACS exports often are
    assert_scored(app)
    assert any("body part: WRIST" in c.value and "view: PA" in c.value for c in app.caption)

    default = original_image(app, shown_images)
    np.testing.assert_allclose(default / 255.0, read_radiograph(data).pixels, atol=SHOWN_ATOL)
    middle, edge = default[:, default.shape[1] // 2].mean(), default[:, :10].mean()
    assert middle > edge + 60  # MONOCHROME1 inverted: bone (stored low) shows bright

    centre = next(n for n in app.number_input if n.label == "Window centre")
    width = next(n for n in app.number_input if n.label == "Window width")
    assert (centre.value, width.value) == CR_WINDOW
    width.set_value(1000.0).run()
    assert_scored(app)
    narrow = original_image(app, shown_images)
    expected = read_radiograph(data, window=(CR_WINDOW[0], 1000.0)).pixels
    np.testing.assert_allclose(narrow / 255.0, expected, atol=SHOWN_ATOL)
    assert narrow.std() > default.std()  # a narrower window means more contrast


def _window_control(at: AppTest) -> tuple[float, float]:
    centre = next(n for n in at.number_input if n.label == "Window centre")
    width = next(n for n in at.number_input if n.label == "Window width")
    return centre.value, width.value


def test_uniform_dicom_is_scored_with_a_usable_window(app):
    """A flat image's automatic window had width 0: the window control raised and the page showed
    Streamlit's error instead of a sentence."""
    data = dicom_bytes(dicom_dataset(np.full((256, 256), 1000, dtype=np.uint16)))
    upload(app, "IM000200", data, "application/octet-stream")
    assert_scored(app)
    centre, width = _window_control(app)
    assert width > 0 and (centre, width) == read_radiograph(data).window


@pytest.mark.parametrize("function", ["SIGMOID", "LINEAR_EXACT"])
def test_dicom_window_narrower_than_one_is_shown_and_can_be_changed(app, shown_images, function):
    stored = (np.arange(320 * 256, dtype=np.uint16).reshape(320, 256) // 256) % 4  # values 0..3 in bands
    data = dicom_bytes(dicom_dataset(stored, WindowCenter=1.5, WindowWidth=0.5, VOILUTFunction=function))
    upload(app, "IM000201", data, "application/octet-stream")
    assert_scored(app)
    assert _window_control(app) == (1.5, 0.5)
    next(n for n in app.number_input if n.label == "Window width").set_value(3.0).run()
    assert_scored(app)
    expected = read_radiograph(data, window=(1.5, 3.0)).pixels
    np.testing.assert_allclose(original_image(app, shown_images) / 255.0, expected, atol=SHOWN_ATOL)


def test_float_pixel_data_dicom_is_scored(app):
    dataset = dicom_dataset(None)
    values = np.linspace(-0.5, 0.25, 320 * 256).reshape(320, 256).astype(np.float32)
    dataset.Rows, dataset.Columns = values.shape
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation, dataset.BitsAllocated = 1, "MONOCHROME2", 32
    dataset.FloatPixelData = values.tobytes()
    upload(app, "IM000202", dicom_bytes(dataset), "application/octet-stream")
    assert_scored(app)
    assert _window_control(app)[1] < 1  # the automatic window of data spanning less than one unit


# ----------------------------------------------------------------------------------------------
# Privacy: nothing identifying reaches the page, the log or the temp folder
# ----------------------------------------------------------------------------------------------


def test_dicom_identifiers_never_reach_page_log_or_temp_folder(
    app, shown_images, caplog, capfd, monkeypatch, tmp_path
):
    system_temp = Path(tempfile.gettempdir())
    private_temp = tmp_path / "tmp"
    private_temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_temp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() now answers private_temp
    assert tempfile.gettempdir() == str(private_temp)
    caplog.set_level(logging.DEBUG)  # everything any logger would write, not only warnings
    started = time.time() - 1

    data = cr_radiograph(1024, 768)  # 1.5 MB: large enough that a spooling parser would use a file
    assert all(value.encode() in data for value in PLANTED_PATIENT.values())
    upload(app, "IM000124", data, "application/octet-stream")
    assert_scored(app)
    next(n for n in app.number_input if n.label == "Window width").set_value(900.0).run()
    assert_scored(app)
    method = app.radio(key="read_method")
    method.set_value(method.options[-1]).run()  # another heatmap method, whichever passed the sanity check
    assert_scored(app)
    no_image = dicom_dataset(None, Modality="SR")  # a structured report: refused, by class not by name
    upload(app, "IM000125", dicom_bytes(no_image), "application/octet-stream")
    assert len(app.error) == 1 and "holds no image" in app.error[0].value

    assert find_planted(page_text(app)) == []
    assert find_planted(repr(app)) == []
    assert find_planted("\n".join(record.getMessage() for record in caplog.records)) == []
    printed = capfd.readouterr()
    assert find_planted(printed.out + printed.err) == []
    for image in shown_images.values():  # PNG pixels, but check their metadata chunks too
        assert find_planted(image.decode("latin-1")) == []
    # Nothing written through tempfile but TensorFlow's autograph code (the first trace of a tf.function in
    # this process writes the generated Python source there); none of it may hold a planted value.
    written = [path for path in private_temp.rglob("*") if path.is_file()]
    assert all(path.name.startswith("__autograph_generated_file") for path in written), written
    assert planted_in_files(written) == {}
    assert planted_in_files(files_written_since(system_temp, started)) == {}
