"""What a user waits for, measured in chromium (Playwright) against a real `streamlit run app.py`.

    python bench/bench_browser.py [--drops 10] [--worklist-files 100] [--chromium /usr/bin/chromium]

1. Fresh server: seconds from starting the server until the page is up (the uploader is visible), then
   one radiograph dropped at once: seconds until its probability and its heatmap are on the screen.
2. Warm server: ``--drops`` radiographs, each dropped in a new tab (a new session) on the Read page:
   median and worst seconds from the drop to the probability and to the heatmap (three images).
3. Worklist: ``--worklist-files`` radiographs (the shipped test cases' radiograph panels) dropped at once:
   seconds from the drop until all are scored and listed.

Times from a drop are taken inside the page: the files are put in a DataTransfer first (as if on the
desktop), then dragged in and dropped by the page's own script, and the page checks on every frame (every
50 ms for the worklist's 100 rows) until the result is there. So they hold the upload, the server's work and
the browser's drawing, and none of Playwright's round trips between Python and chromium.

Prints the machine's conditions (cores, load average) beside the numbers: on a shared CPU they are
pessimistic. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.e2e.conftest import file_transfer  # noqa: E402  the browser tests' drag and drop
from tests.processes import free_port, stop  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DROPZONE = '[data-testid="stFileUploaderDropzone"]'
WAIT_MS = 600_000
SAMPLES = sorted((REPO / "assets" / "samples").glob("*.jpg"))
CASES = REPO / "assets" / "model" / "evaluation" / "cases"


def _conditions() -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average (1/5/15 min) {load}"


def _wait_for_text(page, text: str) -> None:
    """Until ``text`` is on the page, checked every 50 ms (a locator's wait_for polls at up to 500 ms
    intervals, which would round a time up by as much; checking on every frame slows a page of 100 rows)."""
    page.wait_for_function("text => document.body.textContent.includes(text)", arg=text, polling=50,
                           timeout=WAIT_MS)


# Timed inside the page, from the drop event to the check's first success, so that the figures hold no
# Playwright round trips (each event sent from Python, and the answer back, costs tens of milliseconds here).
# Each check is a function body returning true once its step is on the screen; they are met in order.
# On every animation frame ("raf": the frame that follows is painted) or every ``interval`` milliseconds.
_DROP_AND_TIME = """async ([selector, transfer, checks, interval]) => {
    const target = document.querySelector(selector);
    const drag = type => target.dispatchEvent(
        new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true, composed: true }));
    const tests = checks.map(body => new Function(body));
    const nextTick = () => new Promise(resolve =>
        interval === "raf" ? requestAnimationFrame(resolve) : setTimeout(resolve, interval));
    drag("dragenter");
    drag("dragover");
    const start = performance.now();
    drag("drop");
    const seconds = [];
    for (const test of tests) {
        while (!test()) {
            if (performance.now() - start > __WAIT_MS__) throw new Error("not on the screen in time");
            await nextTick();
        }
        seconds.push((performance.now() - start) / 1000);
    }
    return seconds;
}""".replace("__WAIT_MS__", str(WAIT_MS))
PROBABILITY_SHOWN = """return [...document.querySelectorAll('[data-testid="stMetric"]')]
    .some(metric => metric.textContent.includes("Probability of fracture"));"""
HEATMAP_SHOWN = """return [...document.querySelectorAll('[data-testid="stImage"] img')]
    .filter(img => img.complete && img.naturalWidth > 0).length >= 3;"""


def _drop_and_time(page, transfer, checks: list[str], interval: str | int = "raf") -> list[float]:
    """Drop ``transfer`` on the uploader; seconds from the drop until each of ``checks`` is met."""
    return page.evaluate(_DROP_AND_TIME, [DROPZONE, transfer, checks, interval])


def _probability_and_heatmap(page, sample: Path) -> tuple[float, float]:
    """Drop ``sample`` on the Read page; seconds until the probability, then until the three heatmap images."""
    transfer = file_transfer(page, [(sample.name, sample.read_bytes(), "image/jpeg")])  # the file on the "desktop"
    probability, heatmap = _drop_and_time(page, transfer, [PROBABILITY_SHOWN, HEATMAP_SHOWN])
    return probability, heatmap


def _open_read_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="domcontentloaded")
    _wait_for_text(page, "Drop a bone radiograph here")
    return page


def _worklist_files(count: int) -> list[tuple[str, bytes, str]]:
    """The radiograph panel (left half) of the first ``count`` shipped test cases, as JPEGs."""
    files = []
    for path in sorted(CASES.glob("*.jpg"))[:count]:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        ok, encoded = cv2.imencode(".jpg", image[:, : image.shape[1] // 2], [cv2.IMWRITE_JPEG_QUALITY, 92])
        files.append((path.name, encoded.tobytes(), "image/jpeg"))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drops", type=int, default=10, help="warm drops on the Read page")
    parser.add_argument("--worklist-files", type=int, default=100)
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    print(f"Conditions at start: {_conditions()}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as temp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
        started = time.perf_counter()
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.port", str(port),
             "--server.headless", "true"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "TMPDIR": temp})
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                        break
                except OSError:
                    if server.poll() is not None or time.perf_counter() - started > 300:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.2)
            health = time.perf_counter() - started
            page = _open_read_page(browser, url)
            page_up = time.perf_counter() - started
            probability, heatmap = _probability_and_heatmap(page, SAMPLES[0])
            page.close()
            print(f"fresh server: health {health:.1f} s, page up {page_up:.1f} s after start; first drop: probability "
                  f"{probability:.2f} s, heatmap {heatmap:.2f} s after the drop "
                  f"({page_up + heatmap:.1f} s after the server started)")

            probabilities, heatmaps = [], []
            for i in range(args.drops):
                page = _open_read_page(browser, url)
                seconds = _probability_and_heatmap(page, SAMPLES[(i + 1) % len(SAMPLES)])
                probabilities.append(seconds[0])
                heatmaps.append(seconds[1])
                page.close()
            if args.drops:
                print(f"warm server, {args.drops} drops (each in a new tab): probability median "
                      f"{np.median(probabilities):.2f} s (worst {max(probabilities):.2f} s), heatmap median "
                      f"{np.median(heatmaps):.2f} s (worst {max(heatmaps):.2f} s)")

            if args.worklist_files:
                files = _worklist_files(args.worklist_files)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{url}/worklist", wait_until="domcontentloaded")
                _wait_for_text(page, "Drop radiographs here")
                transfer = file_transfer(page, files)  # the files on the "desktop", before the clock starts
                listed = f"return document.body.textContent.includes({f'{len(files)} file(s) in'!r});"
                # textContent of 100 rows: every 50 ms, not every frame
                (seconds,) = _drop_and_time(page, transfer, [listed], interval=50)
                print(f"worklist: {len(files)} files dropped at once, all scored and listed "
                      f"{seconds:.1f} s after the drop")
                page.close()
        finally:
            stop(server, timeout=30)
            browser.close()
    print(f"Conditions at end: {_conditions()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
