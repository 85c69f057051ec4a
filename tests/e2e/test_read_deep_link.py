"""A deep link to the Read page, as a fresh server's first request and once the app is routing, in chromium.

Until app.py has run once, Streamlit routes by the pages/ folder and /read_xray would run the page file
alone; `pages.shared.enter_through_app` sends it round through app.py. The decision shown is checked
against the card's threshold from the probability shown (rounded to 1%).
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import MODEL_DIR, SAMPLES
from tests.e2e.conftest import DROPZONE, WAIT_MS, drop_file, running_server

pytestmark = pytest.mark.browser


def _open_read_page(url: str, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/read_xray", wait_until="domcontentloaded")
    page.get_by_text("Drop a bone radiograph here").wait_for(timeout=WAIT_MS)
    page.get_by_text("Decision support, not a diagnosis.").first.wait_for(timeout=WAIT_MS)  # app.py's sidebar
    links = page.locator('[data-testid="stSidebarNav"] a')
    links.first.wait_for(timeout=WAIT_MS)
    names = [" ".join(text.split()) for text in links.all_inner_texts()]
    assert any(name.endswith("Read an X-ray") for name in names), names
    assert not any(name.endswith("shared") for name in names), names
    return page


def _read_a_sample(page) -> None:
    drop_file(page, DROPZONE, SAMPLES / "leg_fractured_IMG0001191.jpg", "image/jpeg")
    probability = page.locator('[data-testid="stMetric"]').filter(has_text="Probability of fracture")
    probability.wait_for(timeout=WAIT_MS)
    shown = int(probability.locator('[data-testid="stMetricValue"]').inner_text().strip().rstrip("%")) / 100
    threshold = json.loads((MODEL_DIR / "model_card.json").read_text())["operating_threshold"]
    suspected = page.get_by_text("Fracture suspected", exact=True)
    cleared = page.get_by_text("No fracture detected", exact=True)
    (suspected.or_(cleared)).first.wait_for(timeout=WAIT_MS)
    assert suspected.count() + cleared.count() == 1
    if abs(shown - threshold) > 0.005 + 1e-9:
        assert (suspected.count() == 1) == (shown > threshold), (shown, threshold)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_deep_link_to_the_read_page_as_a_fresh_servers_first_request(browser, tmp_path):
    with running_server(tmp_path) as fresh:
        page = _open_read_page(fresh.url, browser)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.close()


def test_a_deep_link_to_the_read_page_reads_a_radiograph(server_url, browser):
    page = _open_read_page(server_url, browser)  # this server already routes through app.py's navigation
    _read_a_sample(page)
    page.close()
