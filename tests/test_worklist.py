"""The worklist core (fracture_model.worklist) on real files and the shipped model, and the predict command's
batches and progress."""

from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from fracture_model.worklist import (
    BAD_ARCHIVE,
    CSV_COLUMNS,
    csv_text,
    decode,
    expand_uploads,
    score,
    study_lines,
)
from tests.bad_inputs import colour_photograph, dicom_image, find_planted
from tests.conftest import SAMPLES


def _sample_pixels(name: str) -> np.ndarray:
    return np.asarray(Image.open(SAMPLES / name).convert("L"), dtype=np.uint8)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def uploads() -> list[tuple[str, bytes]]:
    samples = sorted(SAMPLES.glob("*.jpg"))
    study = "1.2.826.0.1.3680043.8.498.1"  # two views of one study, a third DICOM of another
    return [
        *[(path.name, path.read_bytes()) for path in samples[:3]],
        ("view_ap.dcm", dicom_image(_sample_pixels(samples[3].name), StudyInstanceUID=study)),
        ("view_lat.dcm", dicom_image(_sample_pixels(samples[4].name), StudyInstanceUID=study)),
        ("other_study.dcm", dicom_image(_sample_pixels(samples[5].name), StudyInstanceUID=study + ".2")),
        ("notes.txt", b"not an image"),
        ("cat.jpg", colour_photograph()),
        ("batch.zip", _zip({"inner/a.jpg": samples[0].read_bytes(), "__MACOSX/._a.jpg": b"junk",
                            ".hidden.jpg": b"junk", "inner/": b""})),
        ("broken.zip", b"PK\x03\x04 this is not really a zip"),
    ]


@pytest.fixture(scope="module")
def scored(uploads, shipped_predictor):
    items = [decode(item) for item in expand_uploads(uploads)]
    calls = []

    def predict_many(images):
        calls.append(len(images))
        return shipped_predictor.predict_many(images)

    progress = []
    score(items, predict_many, batch_size=3, progress=lambda done, total: progress.append((done, total)))
    return items, calls, progress


def test_archives_are_unpacked_and_hidden_members_skipped(scored):
    items, _, _ = scored
    names = [item.name for item in items]
    assert "batch.zip/inner/a.jpg" in names
    assert not any("__MACOSX" in name or ".hidden" in name for name in names)
    broken = next(item for item in items if item.name == "broken.zip")
    assert broken.problem == BAD_ARCHIVE


def test_every_readable_radiograph_is_scored_and_the_others_get_one_sentence(scored, shipped_predictor):
    items, calls, progress = scored
    by_name = {item.name: item for item in items}
    assert not by_name["notes.txt"].scored and "not an image" in by_name["notes.txt"].problem
    assert not by_name["cat.jpg"].scored and "photograph" in by_name["cat.jpg"].problem
    readable = [item for item in items if item.problem is None]
    assert len(readable) == 7 and all(item.scored for item in readable)
    assert calls == [3, 3, 1]  # batched
    assert progress == [(3, 7), (6, 7), (7, 7)]
    for item in readable:  # the same probability as the Read page's predictor, one image at a time
        expected = shipped_predictor.predict(item.radiograph.pixels)
        assert item.prediction.probability_fractured == pytest.approx(expected.probability_fractured, abs=1e-5)


def test_views_of_one_study_share_a_line_with_the_highest_probability(scored):
    items, _, _ = scored
    lines = study_lines(items)
    two_views = [line for line in lines if len(line.items) == 2]
    assert len(two_views) == 1
    study = two_views[0]
    assert {item.name for item in study.items} == {"view_ap.dcm", "view_lat.dcm"}
    assert study.probability == max(item.prediction.probability_fractured for item in study.items)
    assert study.fractured == any(item.prediction.fractured for item in study.items)
    assert len(lines) == len(items) - 1


def test_lines_are_sorted_most_suspicious_first_unscored_last(scored):
    lines = study_lines(scored[0])
    probabilities = [line.probability for line in lines if line.probability is not None]
    assert probabilities == sorted(probabilities, reverse=True)
    tail = lines[len(probabilities):]
    assert all(line.probability is None for line in tail) and len(tail) == 3


def test_hidden_names_are_numbers_in_upload_order(scored):
    items = scored[0]
    assert [item.label(hide_names=True) for item in items] == [f"Image {n}" for n in range(1, len(items) + 1)]


def test_csv_starts_with_the_predict_columns_and_holds_no_patient_identifier(scored):
    items = scored[0]
    text = csv_text(items, "abcdef123456")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0].startswith("path,probability_fractured,decision,")
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(items)
    assert find_planted(text) == []  # the DICOMs carry planted identifiers; none reaches the CSV
    scored_rows = [row for row in rows if row["status"] == "scored"]
    values = [float(row["probability_fractured"]) for row in scored_rows]
    assert max(values) == float(rows[0]["probability_fractured"])
    study_rows = [row for row in rows if row["path"] in ("view_ap.dcm", "view_lat.dcm")]
    assert {row["study"] for row in study_rows} == {study_rows[0]["study"]} and study_rows[0]["views_in_study"] == "2"
    unreadable = next(row for row in rows if row["path"] == "notes.txt")
    assert unreadable["probability_fractured"] == "" and unreadable["reason"]
    assert {row["in_distribution"] for row in scored_rows} <= {"true", "false", ""}
    assert all(row["model_version"] == "abcdef123456" for row in rows)


def test_an_archive_too_large_to_unpack_is_refused_in_one_sentence():
    items = expand_uploads([("big.zip", _zip({"a.jpg": b"x" * 5000}))], max_archive_bytes=1000)
    assert len(items) == 1 and "too much to read in memory" in items[0].problem


def test_predict_command_scores_in_batches_and_shows_progress(tmp_path, shipped_predictor, capsys):
    """In this process (``tests/test_predict_cli.py`` runs the command as a user does, in its own interpreter)."""
    from fracture_model import predict
    from fracture_model.imaging import read_radiograph

    samples = sorted(SAMPLES.glob("*.jpg"))
    for i in range(10):
        (tmp_path / f"x{i:02d}.jpg").write_bytes(samples[i % len(samples)].read_bytes())
    (tmp_path / "bad.png").write_bytes(b"junk")
    assert predict.main([str(tmp_path), "--batch-size", "4", "--progress", "always"]) == 1  # one file not scored
    result = capsys.readouterr()
    lines = result.err.splitlines()
    assert lines == [f"{tmp_path / 'bad.png'}: The file is not an image this app can read; please upload a PNG, "
                     "JPEG or DICOM radiograph.",
                     "Scored 4 of 11 file(s)", "Scored 8 of 11 file(s)", "Scored 11 of 11 file(s)",
                     "1 of 11 file(s) were not scored."]
    rows = list(csv.reader(io.StringIO(result.out)))
    assert rows[0][:3] == ["path", "probability_fractured", "decision"]
    assert [row[0] for row in rows[1:]] == [str(tmp_path / f"x{i:02d}.jpg") for i in range(10)]
    for path, probability, *_ in rows[1:]:
        expected = shipped_predictor.predict(read_radiograph(open(path, "rb").read()).pixels)
        assert float(probability) == pytest.approx(expected.probability_fractured, abs=2e-6)
