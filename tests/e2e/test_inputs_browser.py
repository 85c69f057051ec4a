"""Clinical input through the real server: a bad file, then DICOM with planted identifiers.

The identifiers must not reach the rendered page (text and HTML), the server's log output, or any
file: the server's temp folder, files it opened for writing (audited, `audited_server.py`), and
anything written to the system temp folder during the test.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from fracture_model.imaging import read_radiograph
from tests.bad_inputs import (
    BAD_INPUTS,
    CR_WINDOW,
    PLANTED_PATIENT,
    assert_one_sentence,
    cr_radiograph,
    dicom_bytes,
    dicom_dataset,
    files_written_since,
    find_planted,
    planted_in_files,
)
from tests.conftest import SAMPLES
from tests.e2e.conftest import (
    DROPZONE,
    SCREENSHOTS,
    WAIT_MS,
    drop_bytes,
    drop_file,
    open_app,
    probability_text,
    shown_original,
    wait_for_images,
)

pytestmark = pytest.mark.browser

def test_bad_file_shows_one_sentence_and_the_next_file_is_scored(server_url, browser):
    page = open_app(browser, server_url)
    bad = BAD_INPUTS["truncated jpeg"]
    drop_bytes(page, DROPZONE, bad.filename, bad.make(), bad.mime)
    alert = page.locator('[data-testid="stAlertContentError"]')
    alert.wait_for(timeout=WAIT_MS)
    assert alert.count() == 1
    message = alert.inner_text().strip()
    assert_one_sentence(message)
    assert bad.words in message
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stMetric"]').count() == 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "bad_input.png"), full_page=True)

    drop_file(page, DROPZONE, SAMPLES / "hand_fractured_IMG0000019.jpg", "image/jpeg")
    assert re.fullmatch(r"\d{1,3}%", probability_text(page))
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    page.close()


def test_dicom_in_the_browser_shows_body_part_and_window_and_leaks_no_identifier(server, browser):
    started = time.time() - 1
    log_before = len(server.log())
    data = cr_radiograph(1024, 768)  # 1.5 MB: Starlette would spool it to a temp file above 1 MB
    assert all(value.encode() in data for value in PLANTED_PATIENT.values())

    page = open_app(browser, server.url)
    drop_bytes(page, DROPZONE, "IM000124", data, "application/octet-stream")  # no extension, as PACS exports
    assert re.fullmatch(r"\d{1,3}%", probability_text(page))
    page.get_by_text("DICOM, body part: WRIST, view: PA").wait_for(timeout=WAIT_MS)
    wait_for_images(page, 3)
    default = shown_original(page)
    np.testing.assert_allclose(default, read_radiograph(data).pixels, atol=3 / 255)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dicom.png"), full_page=True)

    page.get_by_text("DICOM window").click()
    width = page.get_by_label("Window width")
    width.fill("1000")
    width.press("Enter")
    page.wait_for_function(
        """(before) => { const img = document.querySelector('[data-testid="stImage"] img');
                         return img && img.complete && img.naturalWidth > 0 && img.src !== before; }""",
        arg=page.locator('[data-testid="stImage"] img').first.get_attribute("src"), timeout=WAIT_MS,
    )
    narrow = shown_original(page)
    np.testing.assert_allclose(narrow, read_radiograph(data, window=(CR_WINDOW[0], 1000.0)).pixels, atol=3 / 255)
    assert narrow.std() > default.std()
    page.screenshot(path=str(SCREENSHOTS / "dicom_window.png"), full_page=True)

    report = dicom_dataset(None, Modality="SR")  # a structured report with the same identifiers
    drop_bytes(page, DROPZONE, "IM000125", dicom_bytes(report), "application/octet-stream")
    page.locator('[data-testid="stAlertContentError"]').filter(has_text="holds no image").wait_for(timeout=WAIT_MS)

    html, text = page.content(), page.locator("body").inner_text()
    page.close()
    time.sleep(1)  # let the server finish writing its log

    assert find_planted(html) == [] and find_planted(text) == []
    assert find_planted(server.log()[log_before:]) == []
    writes = server.writes_since(started)
    anonymous = [write for write in writes if write[3] == "O_TMPFILE"
                 or (write[1] == "tempfile.mkstemp" and "__autograph_generated_file" not in write[2])]
    assert anonymous == [], "the server wrote a temporary file while handling the upload"
    written = [Path(path) for _when, _event, path, _how in writes if Path(path).is_file()]
    assert planted_in_files(written) == {}
    assert planted_in_files(files_written_since(server.temp_dir, 0)) == {}
    assert planted_in_files(files_written_since(Path(tempfile.gettempdir()), started)) == {}
