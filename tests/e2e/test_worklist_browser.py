"""The Worklist and the case report in chromium against the real server: drop many, sort, open, CSV, PDF."""

from __future__ import annotations

import csv
import io
import re
import time

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader

from tests.bad_inputs import cr_radiograph, dicom_image, find_planted
from tests.conftest import SAMPLES
from tests.e2e.conftest import (
    DROPZONE,
    SCREENSHOTS,
    WAIT_MS,
    drop_bytes,
    drop_many,
    goto_app,
    probability_text,
    wait_for_images,
)

pytestmark = pytest.mark.browser


def _download(page, name: str) -> bytes:
    with page.expect_download(timeout=WAIT_MS) as download:
        page.get_by_role("button", name=name).click()
    return download.value.path().read_bytes()


def _download_after_rerun(page, name: str, until: str) -> str:
    """The PDF's text once the rerun that a widget change started has finished (its text holds ``until``)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deadline, text = time.monotonic() + WAIT_MS / 1000, ""
    while until not in text and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=WAIT_MS)
        try:
            with page.expect_download(timeout=30_000) as download:
                page.get_by_role("button", name=name).click()
            text = _pdf_text(download.value.path().read_bytes())
        except PlaywrightTimeout:  # the button was replaced while the page reran
            continue
    return text


def _pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    return " ".join(reader.pages[0].extract_text().split())


def _dicom_of(path, study: str) -> bytes:
    return dicom_image(np.asarray(Image.open(path).convert("L"), dtype=np.uint8), StudyInstanceUID=study)


def test_worklist_drop_sort_open_csv_and_report(server_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server_url}/worklist", wait_until="domcontentloaded")
    page.get_by_text("Drop radiographs here").wait_for(timeout=WAIT_MS)
    samples = sorted(SAMPLES.glob("*.jpg"))
    files = [(path.name, path.read_bytes(), "image/jpeg") for path in samples[:4]]
    files += [("ap.dcm", _dicom_of(samples[4], "1.2.3.4.5"), "application/octet-stream"),
              ("lat.dcm", _dicom_of(samples[5], "1.2.3.4.5"), "application/octet-stream"),
              ("notes.txt", b"not an image", "text/plain")]
    drop_many(page, DROPZONE, files)
    # the first drop on a fresh server may wait for the model's start-up warm-up as well
    page.get_by_text(re.compile(r"7 file\(s\) in 6 line\(s\)")).wait_for(timeout=3 * WAIT_MS)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert find_planted(page.content()) == []  # the DICOMs carry planted identifiers

    rows = list(csv.DictReader(io.StringIO(_download(page, "Download CSV").decode())))
    assert list(rows[0])[:3] == ["path", "probability_fractured", "decision"]
    assert {row["path"] for row in rows} == {name for name, _, _ in files}
    scored = [float(row["probability_fractured"]) for row in rows if row["probability_fractured"]]
    assert len(scored) == 6 and _study_order_ok(rows)  # most suspicious study first
    assert rows[-1]["path"] == "notes.txt" and rows[-1]["reason"]

    page.get_by_role("combobox", name="Open a line to read it in full").click()  # most suspicious first
    options = page.locator('[role="option"]')
    options.first.wait_for(timeout=WAIT_MS)
    texts = options.all_inner_texts()
    assert len(texts) == 6 and texts[0].startswith("#1: ")
    options.first.click()
    value = probability_text(page)
    top = max(scored)
    assert value == f"{top:.0%}"
    wait_for_images(page, 3)
    page.get_by_text("Include file name in the report").wait_for(timeout=WAIT_MS)
    text = _pdf_text(_download(page, "Download report (PDF)"))
    assert f"Probability of fracture: {value}" in text
    assert "File:" not in text and find_planted(text) == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 9000})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SCREENSHOTS / "worklist.png"), full_page=True)
    page.close()


def _study_order_ok(rows: list[dict]) -> bool:
    """Rows come per study line: a line's highest probability orders it; its other views follow it."""
    best: dict[str, float] = {}
    for row in rows:
        if row["probability_fractured"]:
            best[row["study"]] = max(best.get(row["study"], 0.0), float(row["probability_fractured"]))
    order = list(dict.fromkeys(row["study"] for row in rows if row["study"] in best))
    return [best[study] for study in order] == sorted(best.values(), reverse=True)


def test_read_page_report_of_a_dicom_names_no_patient(server_url, browser):
    page = goto_app(browser.new_page(viewport={"width": 1400, "height": 1000}), server_url)
    drop_bytes(page, DROPZONE, "wrist_left.dcm", cr_radiograph(), "application/octet-stream")
    # as the first drop on a fresh server it may wait for the model's start-up warm-up as well
    page.locator('[data-testid="stMetric"]').filter(has_text="Probability of fracture").wait_for(timeout=3 * WAIT_MS)
    value = probability_text(page)
    wait_for_images(page, 3)
    text = _pdf_text(_download(page, "Download report (PDF)"))
    assert f"Probability of fracture: {value}" in text
    assert find_planted(text) == [], "a DICOM attribute reached the report"
    assert "wrist_left" not in text

    page.get_by_text("Include file name in the report").click()
    named = _download_after_rerun(page, "Download report (PDF)", until="File:")
    assert "File: wrist_left.dcm" in named and find_planted(named) == []
    page.set_viewport_size({"width": 1400, "height": 9000})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SCREENSHOTS / "read_xray_report.png"), full_page=True)
    page.close()
