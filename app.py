"""Fracture Lens: read a bone radiograph, see the fracture probability and what the network looked at.

    streamlit run app.py

This file is two things. To the server it is an ASGI app (``app``, an ``st.App`` that ``streamlit run``
finds and serves): its lifespan loads and warms the model on the model's own thread as the server starts,
and the server opens its port once that is done, so the first radiograph dropped never waits for
TensorFlow (and the page is not drawn while TensorFlow's import competes with it for the CPU). To every
page run it is the script that routes to the pages (``main``), which runs only inside a script run, not
when the server imports this module.
"""

import asyncio
import logging
from contextlib import asynccontextmanager

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx


@asynccontextmanager
async def _load_model_at_start(_app):
    from pages.shared import keep_keras_state_between_runs, model_service

    keep_keras_state_between_runs()
    service = model_service()  # loads and warms on its own thread (fracture_model.serving)
    try:
        await asyncio.to_thread(service.warm)  # uvicorn accepts connections after this
    except Exception as error:  # the server still starts: the page shows why the model is unavailable
        logging.getLogger("fracture_lens").error("the model did not load at start: %s", type(error).__name__)
    yield


app = st.App("app.py", lifespan=_load_model_at_start)


def main() -> None:
    from pages.shared import (
        CITATION,
        REQUESTED_KEY,
        REQUESTED_QUERY_KEY,
        ROUTED_KEY,
        dicomweb_settings,
        keep_keras_state_between_runs,
        keep_uploads_in_memory,
        load_card,
        model_service,
    )

    keep_uploads_in_memory()  # before any upload: the server must not spool uploads to a temp file
    keep_keras_state_between_runs()  # done at server start already; again here for AppTest
    # An emoji favicon is drawn in the browser; a ":material/...:" one would be fetched from fonts.gstatic.com,
    # telling Google who uses the app (tests/e2e/test_server_security.py).
    st.set_page_config(page_title="Fracture Lens", page_icon="🦴", layout="wide")
    model_service()  # started by the server already; under AppTest, the first run starts it

    navigation = st.navigation([
        st.Page("pages/read_xray.py", title="Read an X-ray", icon=":material/radiology:", default=True),
        st.Page("pages/evaluation.py", title="Model evaluation", icon=":material/analytics:"),
        st.Page("pages/worklist.py", title="Worklist", icon=":material/lists:", url_path="worklist"),
        st.Page("pages/teach.py", title="Teach: class quiz", icon=":material/school:", url_path="teach"),
        st.Page("pages/review.py", title="Review heatmaps", icon=":material/rate_review:", url_path="review"),
        *([st.Page("pages/pacs.py", title="PACS", icon=":material/cloud_sync:", url_path="pacs")]
          if dicomweb_settings() is not None else []),  # only where a DICOMweb server is configured
    ])

    with st.sidebar:
        st.markdown("## Fracture Lens")
        st.caption("Decision support, not a diagnosis.")
        card = load_card()
        st.caption(f"Model: {card['name']}, {card['input_size']} px input, "
                   f"threshold {card['operating_threshold']:.2f}.")
        st.caption(CITATION)

    st.session_state[ROUTED_KEY] = True  # pages check it (pages.shared.enter_through_app)
    if (requested := st.session_state.pop(REQUESTED_KEY, None)) is not None:
        # a deep link that arrived before app.py had routed anything, with its query parameters
        st.switch_page(requested, query_params=st.session_state.pop(REQUESTED_QUERY_KEY, None) or None)
    navigation.run()


if get_script_run_ctx(suppress_warning=True) is not None:  # a page run, not the server importing this for ``app``
    main()
