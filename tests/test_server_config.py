"""`.streamlit/config.toml` and SECURITY.md: every setting is a real Streamlit option, commented, set to
the safe value and documented; and the in-memory upload setting really applies to Streamlit's parser."""

from __future__ import annotations

import re
import time
import tomllib

import pytest
import streamlit as st
from streamlit import config as streamlit_config

from tests.conftest import REPO

CONFIG = REPO / ".streamlit" / "config.toml"
SECURITY = REPO / "SECURITY.md"


def _settings() -> dict[str, object]:
    parsed = tomllib.loads(CONFIG.read_text())
    return {f"{section}.{key}": value for section, values in parsed.items() for key, value in values.items()}


def test_every_setting_is_a_streamlit_option():
    options = streamlit_config.get_config_options()
    assert [key for key in _settings() if key not in options] == []


def test_every_setting_has_a_comment_and_is_documented_in_security_md():
    lines = CONFIG.read_text().splitlines()
    security = SECURITY.read_text()
    section = ""
    for index, line in enumerate(lines):
        if header := re.fullmatch(r"\[(\w+)\]", line.strip()):
            section = header.group(1)
        if not (setting := re.match(r"(\w+)\s*=", line)):
            continue
        key = f"{section}.{setting.group(1)}"
        above = next(previous for previous in reversed(lines[:index]) if not re.match(r"\w+\s*=", previous))
        assert above.startswith("#"), f"{key} has no comment above it"
        assert f"| `{key}` |" in security, f"SECURITY.md's settings table omits {key}"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("browser.gatherUsageStats", False),
        ("server.enableXsrfProtection", True),
        ("server.enableCORS", True),
        ("server.address", "127.0.0.1"),
        ("server.fileWatcherType", "none"),
        ("server.runOnSave", False),
        ("server.enableStaticServing", False),
        ("server.enableAgentApi", False),
        ("client.showErrorDetails", "none"),
        ("client.showErrorLinks", False),
        ("client.toolbarMode", "viewer"),
        ("logger.level", "warning"),
        ("runner.postScriptGC", False),
    ],
)
def test_safe_value(key, value):
    assert _settings()[key] == value


def test_upload_limit_fits_radiographs_and_is_stated():
    limit = _settings()["server.maxUploadSize"]
    assert 30 <= limit <= 100  # a 4300 x 3500 16-bit detector image is 30 MB
    assert f"{limit} MB" in SECURITY.read_text()


def test_uploads_are_parsed_in_memory_up_to_the_largest_accepted_request(monkeypatch):
    from starlette.formparsers import MultiPartParser

    from pages.shared import keep_uploads_in_memory

    monkeypatch.setattr(MultiPartParser, "spool_max_size", 1024 * 1024)  # Starlette's default: 1 MB
    keep_uploads_in_memory()
    limit_bytes = st.get_option("server.maxUploadSize") * 1024 * 1024
    assert MultiPartParser.spool_max_size > limit_bytes + 1024 * 1024 - 1  # the size cap plus Streamlit's margin
    keep_uploads_in_memory()  # idempotent
    assert MultiPartParser.spool_max_size >= limit_bytes


class _SlowService:
    """Stands in for the model service: warming takes a moment, and may fail."""

    def __init__(self, calls: list, failure: Exception | None = None):
        self.calls, self.failure = calls, failure
        calls.append("started")

    def warm(self):
        time.sleep(0.3)
        if self.failure is not None:
            raise self.failure
        self.calls.append("warm")


@pytest.mark.parametrize("failure", [None, OSError("no model file")], ids=["loads", "fails to load"])
def test_the_server_opens_once_the_model_is_loaded_and_warm(monkeypatch, failure):
    import asyncio
    import importlib
    import threading
    from pathlib import Path

    from streamlit.web.server.app_discovery import discover_asgi_app

    import pages.shared

    assert discover_asgi_app(Path(REPO / "app.py")).is_asgi_app  # `streamlit run app.py` serves `app`
    calls = []
    monkeypatch.setattr(pages.shared, "model_service", lambda: _SlowService(calls, failure))
    app_module = importlib.import_module("app")  # what the server does before its lifespan starts
    assert isinstance(app_module.app, st.App)
    assert calls == []  # importing runs no page

    seen_when_serving = []

    async def server_lifespan():
        async with app_module._load_model_at_start(app_module.app):  # uvicorn serves inside this block
            seen_when_serving.extend(calls)

    # in a thread of its own: another test may have left an event loop running in this one
    failures = []
    runner = threading.Thread(target=lambda: failures.extend(_errors_of(lambda: asyncio.run(server_lifespan()))))
    runner.start()
    runner.join(60)
    assert failures == []  # a model that fails to load does not stop the server; the pages say why
    assert seen_when_serving == (["started", "warm"] if failure is None else ["started"])


def _errors_of(function) -> list[BaseException]:
    try:
        function()
    except BaseException as error:  # handed back to the test's thread
        return [error]
    return []


def test_streamlit_no_longer_clears_the_keras_session_after_every_run(monkeypatch):
    import inspect

    import keras
    from streamlit.runtime.scriptrunner import script_runner

    import pages.shared

    # Streamlit calls this module-level function, looked up at run time, after every script run
    assert "_clean_problem_modules" in inspect.getsource(script_runner.ScriptRunner._run_script)
    monkeypatch.setattr(script_runner, "_clean_problem_modules", script_runner._clean_problem_modules)
    cleared = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *args, **kwargs: cleared.append("cleared"))
    pages.shared.keep_keras_state_between_runs()
    script_runner._clean_problem_modules()
    assert cleared == []
