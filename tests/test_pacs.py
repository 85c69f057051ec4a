"""fracture_model.pacs against a real Orthanc: search, fetch, score, store an SR and secondary captures, read them back.

One Orthanc (and one with authentication) per module; the command runs once as a real process and then
in this process. Every value read back is compared with ``python -m fracture_model.predict`` on the
bytes the PACS holds, and nothing printed may contain a planted patient identifier.
"""

from __future__ import annotations

import csv
import datetime
import io
import subprocess
import sys

import highdicom as hd
import numpy as np
import pydicom
import pytest

from fracture_model import pacs
from fracture_model.model_card import model_sha256, read_card
from tests.conftest import MODEL_DIR, REPO
from tests.orthanc import (
    OTHER_IDENTIFIERS,
    PLANTED,
    REQUIRED_IDENTIFIERS,
    running_orthanc,
    upload_full_study,
    upload_small_study,
)

TODAY = datetime.date.today()


def rows(stdout: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(stdout)))


def assert_nothing_planted(*texts: str) -> None:
    for text in texts:
        for planted in PLANTED:
            assert planted.lower() not in text.lower(), f"a planted identifier ({planted}) was printed"


def one_sentence_lines(stderr: str) -> list[str]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    for line in lines:
        assert line.endswith("."), line
    return lines


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


@pytest.fixture(scope="module")
def studies(orthanc):
    return upload_full_study(orthanc, TODAY), upload_small_study(orthanc, TODAY - datetime.timedelta(days=3))


@pytest.fixture(scope="module")
def first_run(orthanc, studies):
    """``python -m fracture_model.pacs --url URL score STUDY_UID`` as a real process, on the full study."""
    full, _ = studies
    before = orthanc.instance_count()
    finished = subprocess.run(
        [sys.executable, "-m", "fracture_model.pacs", "--url", orthanc.dicomweb, "score", full.study_uid],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    return finished, before, orthanc.instance_count()


@pytest.fixture(scope="module")
def results(orthanc, studies, first_run):
    """(report, captures) Fracture Lens stored in the full study, as pydicom datasets."""
    full, _ = studies
    stored = orthanc.study_instances(full.study_uid)
    reports = [item for item in stored if item.get("SeriesDescription") == pacs.REPORT_SERIES_DESCRIPTION]
    captures = [item for item in stored if item.get("SeriesDescription") == pacs.HEATMAP_SERIES_DESCRIPTION]
    assert len(reports) == 1
    return reports[0], captures


def test_the_first_run_scores_each_radiograph_and_says_why_it_left_the_others(first_run, studies):
    finished, before, after = first_run
    full, _ = studies
    assert finished.returncode == 1, finished.stderr  # the DX object without pixels could not be scored
    found = rows(finished.stdout)
    assert list(found[0]) == ["study_uid", "sop_instance_uid", "probability_fractured", "decision"]
    assert sorted(row["sop_instance_uid"] for row in found) == full.images
    assert {row["study_uid"] for row in found} == {full.study_uid}
    lines = one_sentence_lines(finished.stderr)
    about_empty = [line for line in lines if full.no_pixels in line]
    assert len(about_empty) == 1 and "holds no image" in about_empty[0]
    assert any("(modality SR)" in line and "not scored" in line for line in lines)  # the text report's series
    assert after - before == 1 + len(full.images)  # one report and one capture per image
    assert_nothing_planted(finished.stdout, finished.stderr)


def test_the_probabilities_equal_the_predict_command_on_the_bytes_the_pacs_holds(first_run, studies, orthanc,
                                                                                tmp_path, capfd):
    from fracture_model import predict

    full, _ = studies
    for sop_uid in full.images:
        (tmp_path / f"{sop_uid}.dcm").write_bytes(orthanc.stored_file(sop_uid))
    capfd.readouterr()
    assert predict.main([str(tmp_path)]) == 0
    expected = {row["path"].rsplit("/", 1)[1].removesuffix(".dcm"): row for row in rows(capfd.readouterr().out)}
    for row in rows(first_run[0].stdout):
        assert row["probability_fractured"] == expected[row["sop_instance_uid"]]["probability_fractured"]
        assert row["decision"] == expected[row["sop_instance_uid"]]["decision"]


def test_the_three_kinds_of_stored_radiograph_come_back_byte_for_byte(orthanc, studies):
    full, _ = studies
    client = pacs.connect(orthanc.dicomweb)
    for sop_uid in (full.no_preamble, full.jpeg_lossless, full.monochrome1):
        held = orthanc.stored_file(sop_uid)
        series = pydicom.dcmread(io.BytesIO(held), force=True, stop_before_pixels=True).SeriesInstanceUID
        assert client.retrieve_instance_bytes(full.study_uid, series, sop_uid) == held
    assert orthanc.stored_file(full.no_preamble)[128:132] != b"DICM"
    jpeg = pydicom.dcmread(io.BytesIO(orthanc.stored_file(full.jpeg_lossless)))
    assert jpeg.file_meta.TransferSyntaxUID == pydicom.uid.JPEGLosslessSV1
    assert pydicom.dcmread(io.BytesIO(orthanc.stored_file(full.monochrome1))).PhotometricInterpretation == "MONOCHROME1"


def test_the_report_holds_each_images_reading_with_the_model_and_a_reference(results, first_run, studies):
    report, _ = results
    full, _ = studies
    card = read_card(MODEL_DIR)
    version = model_sha256(MODEL_DIR)[:12]
    readings = {reading.sop_instance_uid: reading for reading in pacs.read_report(report)}
    assert sorted(readings) == full.images
    for row in rows(first_run[0].stdout):
        reading = readings[row["sop_instance_uid"]]
        assert f"{reading.probability_fractured:.6f}" == row["probability_fractured"]
        assert ("fractured" if reading.fractured else "not fractured") == row["decision"]
        assert reading.fractured == (reading.probability_fractured >= card["operating_threshold"])
        assert reading.operating_threshold == pytest.approx(card["operating_threshold"])
        assert (reading.model_name, reading.model_version) == (card["name"], version)
    # A standard TID 1500 report that highdicom reads back, filed in the source's study.
    document = hd.sr.ComprehensiveSR.from_dataset(report)
    assert document.content.get_image_measurement_groups()[0].finding_type == pacs.FRACTURE
    assert report.StudyInstanceUID == full.study_uid and report.Modality == "SR"
    evidence = {item.ReferencedSOPInstanceUID for series in report.CurrentRequestedProcedureEvidenceSequence
                for sequence in series.ReferencedSeriesSequence for item in sequence.ReferencedSOPSequence}
    assert sorted(evidence) == full.images
    assert (report.Manufacturer, report.ManufacturerModelName) == ("Fracture Lens", card["name"])
    assert f"model {version}" in report.SoftwareVersions
    assert report.PreliminaryFlag == "PRELIMINARY" and report.VerificationFlag == "UNVERIFIED"


def test_each_capture_shows_the_heatmap_under_a_banner_and_refers_to_its_image(
    results, first_run, orthanc, shipped_predictor, shipped_explainer
):
    from fracture_model.imaging import read_radiograph

    _, captures = results
    probabilities = {row["sop_instance_uid"]: row for row in rows(first_run[0].stdout)}
    assert len(captures) == len(probabilities)
    for capture in captures:
        (source,) = capture.SourceImageSequence
        assert source.ReferencedSOPInstanceUID in probabilities
        assert capture.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
        assert (capture.BurnedInAnnotation, capture.PhotometricInterpretation) == ("YES", "RGB")
        assert capture.Manufacturer == "Fracture Lens" and capture.SeriesDescription == pacs.HEATMAP_SERIES_DESCRIPTION
        # The same picture as the app's path gives for the bytes the PACS holds.
        radiograph = read_radiograph(orthanc.stored_file(source.ReferencedSOPInstanceUID))
        network_input = shipped_predictor.network_input(radiograph.pixels)
        prediction = shipped_predictor.predictions(network_input)[0]
        heatmap = shipped_explainer.explain(network_input, radiograph.pixels.shape).heatmap
        expected = pacs.result_capture(radiograph.pixels, heatmap, prediction)
        stored = capture.pixel_array
        assert stored.shape == expected.shape
        assert np.abs(stored.astype(float) - expected).mean() < 1.0
        assert min(stored.shape[:2]) >= 200 and max(stored.shape[:2]) <= pacs.MAX_CAPTURE_SIDE + 200


def test_results_copy_only_the_patient_and_study_attributes_dicom_requires(results, orthanc):
    report, captures = results
    for result in (report, *captures):
        for keyword, value in REQUIRED_IDENTIFIERS.items():
            assert str(result.get(keyword)) == value, keyword
        stored = orthanc.stored_file(result.SOPInstanceUID)
        for keyword, value in OTHER_IDENTIFIERS.items():
            assert keyword not in result and value.encode() not in stored, keyword


def test_a_second_run_stores_nothing_and_unscored_finds_only_new_studies(first_run, studies, orthanc, capfd):
    full, small = studies
    capfd.readouterr()
    assert pacs.main(["--url", orthanc.dicomweb, "find", "--unscored"]) == 0
    listed = rows(capfd.readouterr().out)
    assert [row["study_uid"] for row in listed] == [small.study_uid]
    assert listed[0]["body_parts"] == "SHOULDER" and listed[0]["images"] == "1" and listed[0]["scored"] == "no"

    before = orthanc.instance_count()
    assert pacs.main(["--url", orthanc.dicomweb, "score", "--unscored"]) == 0
    scored = capfd.readouterr()
    assert [row["sop_instance_uid"] for row in rows(scored.out)] == small.images
    assert orthanc.instance_count() == before + 2

    before = orthanc.instance_count()
    assert pacs.main(["--url", orthanc.dicomweb, "score", full.study_uid, small.study_uid]) == 1
    again = capfd.readouterr()
    assert rows(again.out) == []
    assert orthanc.instance_count() == before
    lines = one_sentence_lines(again.err)
    assert f"{len(full.images) + 1} image(s) already had a Fracture Lens report" in again.err
    assert sum(full.no_pixels in line for line in lines) == 1  # still unreadable, still said once

    assert pacs.main(["--url", orthanc.dicomweb, "find", "--since", f"{TODAY:%Y%m%d}"]) == 0
    listed = rows(capfd.readouterr().out)
    assert [(row["study_uid"], row["scored"]) for row in listed] == [(full.study_uid, "yes")]
    assert_nothing_planted(scored.out, scored.err, again.out, again.err)


def test_a_study_the_pacs_does_not_hold_is_one_sentence_and_exit_code_1(orthanc, capfd):
    assert pacs.main(["--url", orthanc.dicomweb, "score", "1.2.3.4.5.6.7.8.9"]) == 1
    captured = capfd.readouterr()
    assert rows(captured.out) == []
    assert one_sentence_lines(captured.err)[0] == "Study 1.2.3.4.5.6.7.8.9: the PACS holds no series for this study."


# ----------------------------------------------------------------------------------------------
# Credentials
# ----------------------------------------------------------------------------------------------

USER, PASSWORD = "radiology", "Plantedpassword-314"


@pytest.fixture(scope="module")
def guarded_orthanc(tmp_path_factory):
    with running_orthanc(tmp_path_factory.mktemp("guarded"), users={USER: PASSWORD}) as server:
        upload_small_study(server, TODAY)
        yield server


@pytest.mark.parametrize("password, answer", [(PASSWORD, 0), ("wrong-Plantedpassword", 1), (None, 1)])
def test_credentials_come_from_the_environment_and_are_never_printed(guarded_orthanc, monkeypatch, capfd,
                                                                     password, answer):
    monkeypatch.delenv(pacs.ENV_TOKEN, raising=False)
    if password is None:
        monkeypatch.delenv(pacs.ENV_USER, raising=False)
        monkeypatch.delenv(pacs.ENV_PASSWORD, raising=False)
    else:
        monkeypatch.setenv(pacs.ENV_USER, USER)
        monkeypatch.setenv(pacs.ENV_PASSWORD, password)
    capfd.readouterr()
    assert pacs.main(["--url", guarded_orthanc.dicomweb, "find"]) == answer
    captured = capfd.readouterr()
    if answer == 0:
        assert len(rows(captured.out)) == 1 and captured.err == ""
    else:
        (line,) = one_sentence_lines(captured.err)
        assert line.startswith("The PACS refused access (HTTP 401) while searching for studies")
    assert "Plantedpassword" not in captured.out + captured.err
    assert_nothing_planted(captured.out, captured.err)


def test_a_bearer_token_is_sent_as_an_authorization_header():
    client = pacs.connect("https://pacs.example/dicom-web", pacs.Credentials(token="Plantedtoken"))
    assert client._session.headers["Authorization"] == "Bearer Plantedtoken"
    assert "Plantedtoken" not in repr(pacs.Credentials(token="Plantedtoken"))


@pytest.mark.parametrize("url, credentials, says", [
    ("http://pacs.example/dicom-web", pacs.Credentials("user", "Plantedpassword"), "only over https://"),
    ("http://pacs.example/dicom-web", pacs.Credentials(token="Plantedtoken"), "only over https://"),
    ("https://user:Plantedpassword@pacs.example/dicom-web", None, "not in the address"),
    ("pacs.example/dicom-web", None, "must start with http:// or https://"),
    ("https://pacs.example/dicom-web", pacs.Credentials("user", None), "Set both"),
])
def test_unsafe_or_incomplete_settings_are_refused_in_one_sentence(url, credentials, says):
    with pytest.raises(pacs.PacsError, match=says) as refused:
        pacs.connect(url, credentials)
    assert "Plantedpassword" not in str(refused.value) and "Plantedtoken" not in str(refused.value)


def test_an_unreachable_pacs_is_one_sentence(capfd):
    assert pacs.main(["--url", "http://127.0.0.1:9/dicom-web", "find"]) == 1
    assert one_sentence_lines(capfd.readouterr().err) == [
        "The PACS could not be reached while searching for studies; check the address and the network."
    ]


# ----------------------------------------------------------------------------------------------
# The page's settings
# ----------------------------------------------------------------------------------------------


def test_the_pacs_page_is_configured_by_environment_variables_only_when_an_address_is_set(monkeypatch):
    from pages.shared import DICOMWEB_URL_ENV, dicomweb_settings

    assert DICOMWEB_URL_ENV == pacs.ENV_URL
    for name in (pacs.ENV_URL, pacs.ENV_USER, pacs.ENV_PASSWORD, pacs.ENV_TOKEN, pacs.ENV_CA_BUNDLE):
        monkeypatch.delenv(name, raising=False)
    assert dicomweb_settings() is None  # no secrets.toml in the repository: the PACS page stays hidden
    monkeypatch.setenv(pacs.ENV_URL, "https://pacs.example/dicom-web")
    monkeypatch.setenv(pacs.ENV_TOKEN, "Plantedtoken")
    settings = dicomweb_settings()
    assert settings.url == "https://pacs.example/dicom-web" and settings.credentials.token == "Plantedtoken"
    assert "Plantedtoken" not in repr(settings)
