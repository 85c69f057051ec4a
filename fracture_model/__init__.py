"""Fracture Lens core: reading radiographs, the fracture model and its explanations.

Nothing in this package imports Streamlit; the pages in ``pages/`` only orchestrate it.
"""
