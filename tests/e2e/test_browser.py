"""One real user: open the app in chromium, drag a radiograph onto the uploader, read the probability."""

import re

import pytest

from tests.conftest import SAMPLES
from tests.e2e.conftest import SCREENSHOTS, drop_file, running_server

pytestmark = pytest.mark.browser


def test_drag_and_drop_radiograph_shows_probability_and_heatmap(server_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server_url, wait_until="domcontentloaded")
    page.get_by_text("Drop a bone radiograph here").wait_for(timeout=120_000)

    drop_file(page, '[data-testid="stFileUploaderDropzone"]', SAMPLES / "leg_fractured_IMG0001191.jpg", "image/jpeg")

    probability = page.locator('[data-testid="stMetric"]').filter(has_text="Probability of fracture")
    probability.wait_for(timeout=120_000)
    value = probability.locator('[data-testid="stMetricValue"]').inner_text()
    assert re.fullmatch(r"\d{1,3}%", value.strip()), value
    assert 0 <= int(value.strip().rstrip("%")) <= 100
    page.get_by_text(re.compile("Fracture suspected|No fracture detected")).first.wait_for()
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stImage"] img')]
                 .filter(img => img.complete && img.naturalWidth > 0).length >= 3""",
        timeout=60_000,
    )
    assert page.locator('[data-testid="stException"]').count() == 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "read_xray.png"), full_page=True)
    page.close()


def test_evaluation_page_in_the_browser(server_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server_url}/evaluation", wait_until="domcontentloaded")
    page.get_by_text("ROC AUC").first.wait_for(timeout=120_000)
    page.get_by_text("Misclassified test cases").wait_for(timeout=60_000)
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=60_000)
    page.get_by_text("Shifted sets meeting every target").wait_for(timeout=60_000)  # the shipped benchmark
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text("measured on model version").count() == 0  # stored for the shipped model itself
    page.wait_for_timeout(2000)
    page.screenshot(path=str(SCREENSHOTS / "evaluation.png"), full_page=True)
    page.close()


def test_a_deep_link_as_a_fresh_servers_first_request_goes_through_the_app(browser, tmp_path):
    """Until app.py has run once, Streamlit routes by the pages/ folder: /evaluation would run the page file
    alone, without the app's upload guard and navigation (which would list 'shared' as a page)."""
    with running_server(tmp_path) as fresh:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{fresh.url}/evaluation", wait_until="domcontentloaded")
        page.get_by_text("Do the heatmaps point at the fracture?").wait_for(timeout=120_000)  # the page asked for
        page.get_by_text("Decision support, not a diagnosis.").first.wait_for(timeout=60_000)  # app.py's sidebar
        links = page.locator('[data-testid="stSidebarNav"] a')
        links.first.wait_for(timeout=60_000)
        names = [" ".join(text.split()) for text in links.all_inner_texts()]
        assert any(name.endswith("Read an X-ray") for name in names), names
        assert any(name.endswith("Model evaluation") for name in names), names
        assert not any(name.endswith("shared") for name in names), names
        assert page.url.rstrip("/").endswith("/evaluation")
        assert page.locator('[data-testid="stException"]').count() == 0
        page.close()
