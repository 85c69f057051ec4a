"""The running server's protections, probed over HTTP and from a browser page (no mocks)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.conftest import SAMPLES
from tests.e2e.conftest import DROPZONE, drop_file, open_app, probability_text

pytestmark = pytest.mark.browser


def _put(url: str, headers: dict[str, str]) -> int:
    body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n\r\nxx\r\n--b--\r\n"
    request = urllib.request.Request(url, data=body, method="PUT",
                                     headers={"Content-Type": "multipart/form-data; boundary=b", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_upload_without_the_xsrf_token_is_refused(server):
    url = f"{server.url}/_stcore/upload_file/some-session/some-file"
    assert _put(url, {}) == 403
    assert _put(url, {"X-Xsrftoken": "forged", "Cookie": "_streamlit_xsrf=forged"}) == 403


def test_the_page_talks_to_no_one_but_its_server(server, browser):
    """No telemetry, fonts, CDNs or anything else outside the server, on either page."""
    page = open_app(browser, server.url)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.reload(wait_until="domcontentloaded")
    page.get_by_text("Drop a bone radiograph here").wait_for(timeout=120_000)
    drop_file(page, DROPZONE, SAMPLES / "hand_not_fractured_IMG0000006.jpg", "image/jpeg")
    probability_text(page)
    page.wait_for_timeout(1000)
    page.goto(f"{server.url}/evaluation", wait_until="domcontentloaded")
    page.get_by_text("ROC AUC").first.wait_for(timeout=120_000)
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=60_000)
    page.wait_for_timeout(2000)
    page.close()
    assert requested, "no request was seen"
    elsewhere = [url for url in requested if not url.startswith((server.url, "data:", "blob:"))]
    assert elsewhere == []
