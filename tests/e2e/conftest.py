"""A real Streamlit server (audited: see `audited_server.py`) and Debian's chromium, driven by Playwright."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO
from tests.processes import free_port, stop

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DROPZONE = '[data-testid="stFileUploaderDropzone"]'
WAIT_MS = 120_000
SCREENSHOTS = Path(os.environ.get("FRACTURE_LENS_SCREENSHOTS", REPO / ".cache" / "screenshots"))



@dataclass
class Server:
    """A running ``streamlit run app.py`` (through `audited_server.py`) and what it leaves behind.

    Its output goes to ``log_path``, its temp folder (``TMPDIR``) is ``temp_dir``, a folder no other
    process uses, and every file it opens for writing from Python is listed in ``audit_path``. It runs
    with ``.streamlit/config.toml`` and the environment SECURITY.md recommends for deployment.
    """

    url: str
    process: subprocess.Popen
    log_path: Path
    temp_dir: Path
    audit_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_mib(self) -> float:
        """Resident memory of the server process (VmRSS in /proc/<pid>/status), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS line")

    def writes_since(self, since: float) -> list[tuple[float, str, str, str]]:
        """(time, audit event, path, how) for every file the server opened for writing since ``since``."""
        rows = []
        for line in self.audit_path.read_text(errors="replace").splitlines():
            when, event, path, how = line.split("\t", 3)
            if float(when) >= since:
                rows.append((float(when), event, path, how))
        return rows

    def cache_bytes(self) -> dict[str, int]:
        """Bytes held per in-memory store, from Streamlit's own /_stcore/metrics (e.g. "UploadedFileManager")."""
        with urllib.request.urlopen(f"{self.url}/_stcore/metrics", timeout=10) as response:
            text = response.read().decode()
        held: dict[str, int] = {}
        for line in text.splitlines():
            if line.startswith("cache_memory_bytes{"):
                labels, value = line.rsplit(" ", 1)
                kind = labels.split('cache_type="', 1)[1].split('"', 1)[0]
                held[kind] = held.get(kind, 0) + int(float(value))
        return held


@contextlib.contextmanager
def running_server(folder: Path) -> Iterator[Server]:
    """A fresh audited Streamlit server on app.py, its temp folder, log and audit file under ``folder``."""
    temp_dir = folder / "tmp"
    temp_dir.mkdir()
    log_path, audit_path = folder / "server.log", folder / "writes.tsv"
    port = free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("audited_server.py")), str(audit_path),
             "run", str(REPO / "app.py"), "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True,
            # MALLOC_ARENA_MAX=2: the deployment setting SECURITY.md recommends (glibc would otherwise keep
            # up to 8 memory arenas per core for the threads sessions run in, and memory creeps up).
            env={**os.environ, "TMPDIR": str(temp_dir), "MALLOC_ARENA_MAX": "2"},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("streamlit did not start:\n" + log_path.read_text(errors="replace"))
    if process.poll() is not None:
        pytest.fail("streamlit exited:\n" + log_path.read_text(errors="replace"))
    try:
        yield Server(url=url, process=process, log_path=log_path, temp_dir=temp_dir, audit_path=audit_path)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    with running_server(tmp_path_factory.mktemp("server")) as started:
        yield started
        log_path = started.log_path
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "server.log").write_text(log_path.read_text(errors="replace"))


@pytest.fixture(scope="session")
def server_url(server: Server) -> str:
    return server.url


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM}; .ci/run installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def drop_file(page, selector: str, path: Path, mime_type: str) -> None:
    """Drag a file from 'the desktop' onto ``selector``: dragenter, dragover and drop with a DataTransfer."""
    drop_bytes(page, selector, path.name, path.read_bytes(), mime_type)


def drop_bytes(page, selector: str, name: str, data: bytes, mime_type: str) -> None:
    """`drop_file` for bytes made in the test, under the file name ``name``."""
    drop_many(page, selector, [(name, data, mime_type)])


def file_transfer(page, files: list[tuple[str, bytes, str]]):
    """A DataTransfer in ``page`` holding the files (name, bytes, MIME type), as a drag from the desktop would."""
    return page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const [name, type, b64] of files) {
                const text = atob(b64), bytes = new Uint8Array(text.length);
                for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
                transfer.items.add(new File([bytes], name, { type }));
            }
            return transfer;
        }""",
        [[name, mime, base64.b64encode(data).decode()] for name, data, mime in files],
    )


def drop_transfer(page, selector: str, transfer) -> None:
    """Drag ``transfer`` (``file_transfer``) onto ``selector`` and drop it there."""
    target = page.locator(selector).first
    for event in ("dragenter", "dragover", "drop"):
        target.dispatch_event(event, {"dataTransfer": transfer})


def drop_many(page, selector: str, files: list[tuple[str, bytes, str]]) -> None:
    """Drag several files (name, bytes, MIME type) at once onto ``selector``: one DataTransfer holding them all."""
    drop_transfer(page, selector, file_transfer(page, files))


def open_app(browser, url: str):
    """A new page (its own browser context, so its own Streamlit session) showing the app."""
    return goto_app(browser.new_page(viewport={"width": 1400, "height": 1000}), url)


def goto_app(page, url: str):
    page.goto(url, wait_until="domcontentloaded")
    return wait_for_app(page)


def wait_for_app(page):
    page.get_by_text("Drop a bone radiograph here").wait_for(timeout=WAIT_MS)
    return page


def probability_text(page) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Probability of fracture")
    metric.wait_for(timeout=WAIT_MS)
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def wait_for_images(page, count: int) -> None:
    page.wait_for_function(
        """(count) => [...document.querySelectorAll('[data-testid="stImage"] img')]
                 .filter(img => img.complete && img.naturalWidth > 0).length >= count""",
        arg=count, timeout=WAIT_MS,
    )


def shown_original(page) -> np.ndarray:
    """The radiograph as the page shows it (first image, "Your upload"), fetched like the browser does."""
    source = page.locator('[data-testid="stImage"] img').first.get_attribute("src")
    if source.startswith("data:"):
        data = base64.b64decode(source.split(",", 1)[1])
    else:
        data = page.request.get(urljoin(page.url, source)).body()
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float32) / 255.0
