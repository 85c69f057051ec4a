"""Fracture Lens: read a bone radiograph, see the fracture probability and what the network looked at.

    streamlit run app.py
"""

import streamlit as st

from pages.shared import (
    CITATION,
    REQUESTED_KEY,
    REQUESTED_QUERY_KEY,
    ROUTED_KEY,
    dicomweb_settings,
    keep_uploads_in_memory,
    load_card,
    model_service,
)

keep_uploads_in_memory()  # before any upload: the server must not spool uploads to a temp file
# An emoji favicon is drawn in the browser; a ":material/...:" one would be fetched from fonts.gstatic.com,
# telling Google who uses the app (tests/e2e/test_server_security.py).
st.set_page_config(page_title="Fracture Lens", page_icon="🦴", layout="wide")
model_service()  # the first run starts loading and warming the model in the background (pages.shared)

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
    st.caption(f"Model: {card['name']}, {card['input_size']} px input, threshold {card['operating_threshold']:.2f}.")
    st.caption(CITATION)

st.session_state[ROUTED_KEY] = True  # pages check it (pages.shared.enter_through_app)
if (requested := st.session_state.pop(REQUESTED_KEY, None)) is not None:
    # a deep link that arrived before app.py had routed anything, with its query parameters
    st.switch_page(requested, query_params=st.session_state.pop(REQUESTED_QUERY_KEY, None) or None)
navigation.run()
