"""Several people at once: browser contexts (separate Streamlit sessions) on one server, each dropping
a different radiograph at the same moment, twice over.

Each page must show its own image and its own probability: the one `Predictor` gives for that image
in this process (the page rounds to whole percent). The server's memory must stay bounded: after a
second round with new sessions, its resident memory may not have grown by more than
`RSS_GROWTH_BOUND_MIB`, and Streamlit's upload store may hold no more than the files of the sessions
still inside their reconnect window (`server.disconnectedSessionTTL`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from fracture_model.imaging import read_radiograph
from tests.conftest import SAMPLES
from tests.e2e.conftest import (
    DROPZONE,
    SCREENSHOTS,
    drop_file,
    probability_text,
    shown_original,
    wait_for_app,
    wait_for_images,
)

pytestmark = pytest.mark.browser

SESSIONS = 8
RSS_GROWTH_BOUND_MIB = 250
"""Allowed growth of the server's resident memory from the end of round 1 to the end of round 2.

Round 1 also warms the server up (TensorFlow's buffers for several concurrent Grad-CAMs), and a
closed session's state (upload, heatmap, page images: about 2 MB for these images) is kept for
`server.disconnectedSessionTTL` (120 s) in case the browser reconnects, so round 2 legitimately adds
some memory. Measured on a 2-core CPU with MALLOC_ARENA_MAX=2 (as SECURITY.md recommends): 57 to
170 MiB. A leak of every decoded image or a session that is never released would exceed this
within a few rounds; the store checks below catch it exactly for what Streamlit holds."""


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """The six samples plus flipped and cropped copies, so that every session gets a different image."""
    folder = tmp_path_factory.mktemp("variants")
    samples = sorted(SAMPLES.glob("*.jpg"))
    variants = []
    for index, sample in enumerate(samples[: SESSIONS - len(samples)]):
        image = ImageOps.mirror(Image.open(sample))
        width, height = image.size
        image = image.crop((width // 10, height // 12 * (index % 3), width - width // 12, height))
        path = folder / f"variant{index}_{sample.stem}.png"
        image.save(path)
        variants.append(path)
    chosen = (samples + variants)[:SESSIONS]
    assert len({path.read_bytes() for path in chosen}) == SESSIONS
    return chosen


@pytest.fixture(scope="module")
def expected(images, shipped_predictor) -> dict[Path, tuple[float, np.ndarray]]:
    """image -> (P(fractured) from the Predictor in this process, decoded pixels)."""
    results = {}
    for path in images:
        pixels = read_radiograph(path.read_bytes()).pixels
        results[path] = (shipped_predictor.predict(pixels).probability_fractured, pixels)
    return results


def _round(browser, url: str, assignment: list[Path], expected) -> float:
    """Open one context per image, drop them all at once, check every page; returns seconds taken."""
    contexts = [browser.new_context(viewport={"width": 1200, "height": 900}) for _ in assignment]
    try:
        pages = [context.new_page() for context in contexts]
        for page in pages:  # all load at once
            page.goto(url, wait_until="commit")
        for page in pages:
            wait_for_app(page)
        started = time.perf_counter()
        for page, image in zip(pages, assignment, strict=True):
            drop_file(page, DROPZONE, image, "image/png" if image.suffix == ".png" else "image/jpeg")
        for page, image in zip(pages, assignment, strict=True):
            shown = int(probability_text(page).rstrip("%"))
            wait_for_images(page, 3)
            elapsed = time.perf_counter() - started
            probability, pixels = expected[image]
            assert abs(shown - 100 * probability) <= 0.5 + 0.05, (image.name, shown, probability)
            original = shown_original(page)
            assert original.shape == pixels.shape, image.name  # this session's own image ...
            assert np.abs(original - pixels).mean() < 0.02, image.name  # ... and not another's
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.locator('[data-testid="stAlertContentError"]').count() == 0
        pages[0].screenshot(path=str(SCREENSHOTS / "concurrent_session.png"), full_page=True)
        return elapsed
    finally:
        for context in contexts:
            context.close()


def test_concurrent_sessions_get_their_own_results_and_memory_stays_bounded(server, browser, images, expected):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log_before = len(server.log())
    held_before = server.cache_bytes().get("UploadedFileManager", 0)  # other tests' recent sessions
    first = _round(browser, server.url, images, expected)
    time.sleep(2)
    rss_after_first = server.rss_mib()

    rotated = images[1:] + images[:1]  # new sessions, and every image in a different one than before
    second = _round(browser, server.url, rotated, expected)
    time.sleep(2)
    rss_after_second = server.rss_mib()

    stores = server.cache_bytes()
    held = stores.get("UploadedFileManager", 0) - held_before
    uploaded = sum(path.stat().st_size for path in images)
    # Page images: original, overlay and heatmap per session, never more than raw RGB of the image.
    media_bound = 2 * sum(3 * 3 * pixels.size for _probability, pixels in expected.values())
    media = stores.get("st_memory_media_file_storage", 0)
    report = (
        f"{SESSIONS} sessions per round; round 1 {first:.1f} s, round 2 {second:.1f} s; server RSS "
        f"{rss_after_first:.0f} MiB after round 1, {rss_after_second:.0f} MiB after round 2; "
        f"uploads held {held / 1e6:.2f} MB more than before (two rounds uploaded {2 * uploaded / 1e6:.2f} MB); "
        f"page images held {media / 1e6:.2f} MB (bound {media_bound / 1e6:.1f} MB)"
    )
    (SCREENSHOTS / "concurrency.txt").write_text(report + "\n")
    print(report)
    assert rss_after_second - rss_after_first <= RSS_GROWTH_BOUND_MIB, report
    assert held <= 2 * uploaded, report  # nothing kept beyond the (recently closed) sessions' own files
    assert media <= media_bound, report
    new_log = server.log()[log_before:]
    assert "Traceback" not in new_log and "unexpected" not in new_log, new_log
