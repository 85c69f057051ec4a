"""Cached resources shared by the pages: the model, its explainer and the stored evaluation.

Loaded once per server process (the model service, ``st.cache_resource``) or per file version
(``st.cache_data``).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from fracture_model.localisation import POINTING_TOLERANCE_PX
from fracture_model.model_card import (
    CARD_FILE,
    DEFAULT_MODEL_DIR,
    EVALUATION_DIR,
    METRICS_FILE,
    MODEL_FILE,
    PREDICTIONS_FILE,
    read_card,
)

MODEL_DIR = Path(DEFAULT_MODEL_DIR)
SAMPLES_DIR = MODEL_DIR.parent / "samples"
CITATION = (
    "Sample and evaluation images: FracAtlas, Abedeen et al., *Scientific Data* 10, 521 (2023), "
    "doi:10.1038/s41597-023-02432-4, CC BY 4.0."
)
DISCLAIMER = (
    "**Decision support, not a diagnosis.** Fracture Lens is a research and teaching tool. "
    "A clinician reads the radiograph and decides; the model can miss fractures and can flag normal bone."
)


@functools.cache
def model_service():
    """The model and its explainer on one long-lived thread (``fracture_model.serving``), one per process.

    The server calls this as it starts (app.py's lifespan), so the model loads and warms in the background
    before the first page is drawn; the first call that needs the model waits for it. A plain process-wide
    cache rather than ``st.cache_resource``: the first call comes from outside any page run.
    """
    from fracture_model.serving import ModelService

    return ModelService(MODEL_DIR)


@st.cache_data
def load_card() -> dict:
    return read_card(MODEL_DIR)


@st.cache_data
def load_evaluation() -> tuple[dict, pd.DataFrame]:
    """The stored test-set metrics and per-image predictions written by ``python -m fracture_model.evaluate``."""
    folder = MODEL_DIR / EVALUATION_DIR
    metrics = json.loads((folder / METRICS_FILE).read_text())
    predictions = pd.read_csv(folder / PREDICTIONS_FILE, keep_default_na=False)
    return metrics, predictions


def fractured_case_ids(predictions: pd.DataFrame) -> set[str]:
    """The image IDs of the fractured test cases in the stored ``predictions`` (the reviewers' heatmap
    figures count those only, as the pointing game does)."""
    return set(predictions.loc[predictions["fractured"].astype(int) == 1, "image_id"])


def stored_results() -> dict:
    """The stored test-set metrics (``metrics.json``); empty when no evaluation has been run yet."""
    try:
        results, _ = load_evaluation()
    except FileNotFoundError:
        return {}
    return results


def pointing_sentence(method: str) -> str | None:
    """How often ``method``'s peak fell on a radiologist's fracture box on the test split, in words.

    None when the stored evaluation has no localisation figures for it.
    """
    found = stored_results().get("localisation") or {}
    figures = found.get("by_method", {}).get(method)
    if not figures:
        return None
    return (
        f"How far to trust the map: on the {figures['images']} fractured test radiographs, the {method} peak lay "
        f"within {found.get('tolerance_px', POINTING_TOLERANCE_PX):g} px of a radiologist's fracture box in "
        f"{figures['pointing_hit_rate']:.0%} of them ({figures['pointing_hits']} images), and missed it in the "
        "others (see Model evaluation)."
    )


def explanation_methods() -> tuple[str, ...]:
    """The heatmap methods the reading page offers: those that passed the stored weight-randomisation check.

    ``metrics.json`` lists them under ``explanation_methods`` (``python -m fracture_model.evaluate`` writes it).
    Without a stored check (no evaluation yet, or one from before the check existed) every method is offered.
    """
    from fracture_model.explain import METHODS

    passed = stored_results().get("explanation_methods")
    return METHODS if passed is None else tuple(method for method in METHODS if method in passed)


def keep_uploads_in_memory() -> None:
    """Make the server parse every accepted upload in memory, never in a temporary file.

    Streamlit's server (Starlette) parses an upload with a ``SpooledTemporaryFile`` that moves to an
    anonymous file in the temp folder once it passes 1 MB, so a DICOM of a few MB would reach the disk
    for the length of the request. Raising the spool size above the largest request the server
    accepts (``server.maxUploadSize`` plus Streamlit's 1 MB multipart margin) keeps it in memory;
    Streamlit reads the whole file into memory right after parsing anyway. Process-wide and
    idempotent: call it before any upload can arrive (app.py does, on every run).
    """
    try:
        from starlette.formparsers import MultiPartParser
    except ImportError:  # a Streamlit without Starlette has no spooling parser to adjust
        return
    largest_request = (int(st.get_option("server.maxUploadSize")) + 1) * 1024 * 1024
    if getattr(MultiPartParser, "spool_max_size", largest_request) < largest_request:
        MultiPartParser.spool_max_size = largest_request


def _close_pyplot_figures() -> None:
    """What Streamlit does after every script run, less clearing the Keras session."""
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def keep_keras_state_between_runs() -> None:
    """Stop Streamlit from clearing Keras' global state after every script run.

    Streamlit's script runner calls ``keras.backend.clear_session()`` after each run of each session
    (``script_runner._clean_problem_modules``), for scripts that build a model on every run. Ours is built
    once, on the model's own thread (``fracture_model.serving``); clearing the session empties
    TensorFlow's kernel cache, so the next prediction and heatmap rebuild it, and the clearing itself
    takes a few hundred milliseconds of every rerun (py-spy on a live server: about half of the time from
    a drop to the heatmap). Matplotlib figures are still closed. Process-wide and idempotent.
    """
    from streamlit.runtime.scriptrunner import script_runner

    script_runner._clean_problem_modules = _close_pyplot_figures


ROUTED_KEY = "fracture_lens_routed"
"""Set in the session by app.py before it runs a page through ``st.navigation``."""
REQUESTED_KEY = "fracture_lens_requested_page"
"""The page a deep link asked for, kept while ``enter_through_app`` goes round through app.py."""
REQUESTED_QUERY_KEY = "fracture_lens_requested_query"
"""The deep link's query parameters (``st.switch_page`` drops them), handed back to the page by app.py."""


def enter_through_app(page: str) -> None:
    """Call first in every page (``page``: its path, as app.py names it): pages run inside app.py only.

    While no session has run app.py since the server started, Streamlit still routes by the ``pages/``
    folder, so a deep link (``/read_xray``) as the first request runs the page file directly: without
    app.py's upload guard, sidebar and navigation (which then lists ``shared`` as a page). Such a run
    stops here, before it draws an uploader, and goes round through app.py, which applies the upload
    guard, takes over the routing and opens the page that was asked for, with the link's query
    parameters (e.g. a quiz's ``/teach?quiz=7&cases=10``).
    """
    if not st.session_state.get(ROUTED_KEY):
        st.session_state[REQUESTED_KEY] = page
        st.session_state[REQUESTED_QUERY_KEY] = {name: st.query_params.get_all(name) for name in st.query_params}
        st.switch_page("app.py")


def sample_files() -> list[Path]:
    return sorted(SAMPLES_DIR.glob("*.jpg")) + sorted(SAMPLES_DIR.glob("*.png")) + sorted(SAMPLES_DIR.glob("*.dcm"))


def sample_label(path: Path) -> str:
    """'hand_fractured_IMG0000019.jpg' -> 'Hand, fractured'."""
    words = path.stem.rsplit("_", 1)[0].replace("_", " ")
    part, _, label = words.partition(" ")
    return f"{part.capitalize()}, {label}"


DICOMWEB_URL_ENV = "FRACTURE_LENS_DICOMWEB_URL"
"""``fracture_model.pacs.ENV_URL`` (tests/test_pacs.py checks that they agree)."""


@dataclass(frozen=True)
class DicomwebSettings:
    url: str
    credentials: object  # fracture_model.pacs.Credentials
    ca_bundle: str | None = None


def dicomweb_settings() -> DicomwebSettings | None:
    """The PACS's DICOMweb address and credentials, or None when none is configured (the PACS page is hidden).

    Environment variables (``FRACTURE_LENS_DICOMWEB_URL``, ``_USER``, ``_PASSWORD``, ``_TOKEN``, ``_CA_BUNDLE``)
    win over a ``[dicomweb]`` table in ``.streamlit/secrets.toml`` (``url``, ``username``, ``password``,
    ``token``, ``ca_bundle``).
    """
    try:
        secrets = dict(st.secrets.get("dicomweb") or {})
    except Exception:  # no secrets file, or one that does not parse
        secrets = {}
    url = os.environ.get(DICOMWEB_URL_ENV) or secrets.get("url")
    if not url:
        return None  # checked before importing fracture_model.pacs (highdicom takes seconds to import)
    from fracture_model.pacs import ENV_CA_BUNDLE, Credentials

    credentials = Credentials.from_environment()
    if not credentials.given:
        credentials = Credentials(secrets.get("username"), secrets.get("password"), secrets.get("token"))
    return DicomwebSettings(str(url), credentials, os.environ.get(ENV_CA_BUNDLE) or secrets.get("ca_bundle"))


def _configured_reviews_db() -> str | None:
    """``reviews_db`` from ``.streamlit/secrets.toml``; None without a secrets file or without the key."""
    try:
        value = st.secrets.get("reviews_db")
    except Exception:  # no secrets file, or one that does not parse: the default path applies
        return None
    return str(value) if value else None


@st.cache_resource(show_spinner=False)
def _open_review_store(path: str):
    from fracture_model.reviews import ReviewStore

    return ReviewStore(path)


def review_store():
    """The reviewers' verdict database (``fracture_model.reviews``); raises ``ReviewStoreError`` with a sentence."""
    from fracture_model.reviews import database_path

    return _open_review_store(str(database_path(_configured_reviews_db())))


@st.cache_data(show_spinner=False)
def _model_sha256(model_dir: str, versions: tuple) -> str:
    from fracture_model.model_card import model_sha256

    return model_sha256(model_dir)


def shipped_model_sha256() -> str:
    """The shipped model's version (``Predictor.model_sha256``: its file and its card's scoring entries), hashed
    once per version of the two files, without TensorFlow."""
    files = [MODEL_DIR / MODEL_FILE, MODEL_DIR / CARD_FILE]
    return _model_sha256(str(MODEL_DIR), tuple((stat.st_size, stat.st_mtime_ns) for stat in map(Path.stat, files)))
