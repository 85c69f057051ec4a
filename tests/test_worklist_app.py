"""The Worklist page through AppTest on the shipped model, and: the server's pages import no training code."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.bad_inputs import dicom_image, encode, find_planted
from tests.conftest import REPO, SAMPLES

TIMEOUT = 600  # the first run in a process waits for the model to load and warm (minutes on a busy CPU)


def _dicom_of(path, study: str) -> bytes:
    return dicom_image(np.asarray(Image.open(path).convert("L"), dtype=np.uint8), StudyInstanceUID=study)


@pytest.fixture(scope="module")
def worklist() -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/worklist.py").run()
    samples = sorted(SAMPLES.glob("*.jpg"))
    files = [(path.name, path.read_bytes(), "image/jpeg") for path in samples[:4]]
    files += [("ap.dcm", _dicom_of(samples[4], "1.2.3.4"), "application/octet-stream"),
              ("lat.dcm", _dicom_of(samples[5], "1.2.3.4"), "application/octet-stream"),
              ("report.pdf", b"%PDF-1.4 not an image", "application/pdf"),
              ("blank.png", encode(Image.fromarray(np.full((300, 400), 128, np.uint8)), "PNG"), "image/png")]
    at.get("file_uploader")[0].set_value(files)
    return at.run()


def _table(at: AppTest):
    return at.dataframe[0].value


def test_files_are_scored_and_listed_most_suspicious_first(worklist):
    assert not worklist.exception
    table = _table(worklist)
    assert len(table) == 7  # 4 images, one study of two DICOM views, a blank image, one unreadable file
    scored = table["P(fractured)"].dropna().tolist()
    assert scored == sorted(scored, reverse=True) and len(scored) == 6
    assert table["decision"].iloc[-1] == "Not scored" and "not an image" in table["note"].iloc[-1]
    study = table[table["views"] == 2]
    assert len(study) == 1 and "more view" in study["study / file"].iloc[0]
    assert all(value.startswith("data:image/jpeg;base64,") for value in table["image"].iloc[:6])
    assert any("**8** file(s) in **7** line(s)" in markdown.value for markdown in worklist.markdown)
    # the blank image is scored, and its line says there is nothing of a radiograph in it
    blank = table[table["study / file"] == "blank.png"]
    assert blank["note"].tolist() == ["Nothing of a radiograph in this image: its probability means nothing."]
    assert not blank["P(fractured)"].isna().any()
    assert not any("Nothing of a radiograph" in note for note in table[table["study / file"] != "blank.png"]["note"])
    shown = " ".join(str(value) for value in table.to_numpy().ravel())
    assert find_planted(shown) == []


def test_hide_names_shows_image_numbers_only(worklist):
    worklist.toggle(key="hide_names").set_value(True).run()
    labels = " ".join(_table(worklist)["study / file"])
    assert ".jpg" not in labels and ".dcm" not in labels and "Image " in labels
    worklist.toggle(key="hide_names").set_value(False).run()


def test_suspected_only_filters(worklist):
    worklist.toggle(key="suspected_only").set_value(True).run()
    decisions = set(_table(worklist)["decision"]) if worklist.dataframe else set()
    worklist.toggle(key="suspected_only").set_value(False).run()
    assert decisions <= {"Fracture suspected"}


def test_opening_a_line_reads_it_in_full_with_its_heatmap(worklist):
    worklist.selectbox(key="worklist_open").set_value(1).run()
    assert not worklist.exception and not worklist.error
    metric = next(m for m in worklist.metric if m.label == "Probability of fracture")
    top = _table(worklist)["P(fractured)"].iloc[0]
    assert metric.value == f"{top / 100:.0%}"
    assert len(worklist.image) >= 3  # radiograph, overlay, heatmap
    assert worklist.checkbox[0].label == "Include file name in the report"


def test_opening_a_study_offers_its_views(worklist):
    rank = int(_table(worklist).query("views == 2")["#"].iloc[0])
    worklist.selectbox(key="worklist_open").set_value(rank).run()
    assert not worklist.exception
    views = [radio for radio in worklist.radio if radio.label == "View"]
    assert len(views) == 1 and len(views[0].options) == 2


SERVER_IMPORTS = textwrap.dedent("""
    import sys
    from pathlib import Path
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("app.py", default_timeout=300).run()
    at.button[0].click().run()                         # Read page: a sample, its probability and heatmap
    assert not at.exception and at.metric, at.exception
    at.switch_page("pages/worklist.py").run()
    sample = sorted(Path("assets/samples").glob("*.jpg"))[0]
    at.get("file_uploader")[0].set_value([(sample.name, sample.read_bytes(), "image/jpeg")])
    at.run()
    at.selectbox(key="worklist_open").set_value(1).run()
    assert not at.exception and at.metric, at.exception
    at.switch_page("pages/evaluation.py").run()
    assert not at.exception
    print(" ".join(sorted(name for name in sys.modules if name.startswith("fracture_model"))))
""")


def test_the_app_imports_no_training_code():
    """The pages (Read with a heatmap, Worklist with an opened line, Evaluation) run in a fresh interpreter
    without importing fracture_model.evaluate, train or data."""
    result = subprocess.run([sys.executable, "-c", SERVER_IMPORTS], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    imported = result.stdout.split()
    assert "fracture_model.predictor" in imported and "fracture_model.worklist" in imported  # the check ran
    for training in ("fracture_model.evaluate", "fracture_model.train", "fracture_model.data"):
        assert training not in imported
