"""The one-page case report (fracture_model.report), read back with pypdf as a reader of the PDF would."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pytest
from pypdf import PdfReader

from fracture_model.ood import OUT_OF_DISTRIBUTION_NOTE
from fracture_model.report import DISCLAIMER, CaseReport, case_report_pdf, threshold_rule
from tests.bad_inputs import bone_like

CARD = {
    "name": "Fracture Lens EfficientNet-Lite0",
    "input_size": 384,
    "operating_threshold": 0.1219,
    "operating_threshold_rule": "youden",
    "training": {"code_version": "c9f88dc2bfe7351342d92c97c4ea2f49eb66e1d7"},
}
SHA256 = "ab12cd34ef56" + "0" * 52


def _report(**changes) -> CaseReport:
    pixels = bone_like(300, 240).astype(np.float32) / 255.0
    overlay = np.zeros((*pixels.shape, 3), np.uint8)
    overlay[..., 0] = 200
    fields = dict(pixels=pixels, overlay_rgb=overlay, probability_fractured=0.8731, decision="fractured",
                  operating_threshold=0.1219, card=CARD, model_sha256=SHA256, method="Grad-CAM",
                  pointing="On the 126 fractured test radiographs the Grad-CAM peak lay on a fracture box in 76%.",
                  created=datetime(2026, 11, 29, 21, 5, tzinfo=UTC))
    return CaseReport(**(fields | changes))


def _text(pdf: bytes) -> tuple[str, PdfReader]:
    reader = PdfReader(io.BytesIO(pdf))
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages), reader


def test_report_states_the_result_the_threshold_the_method_and_the_model():
    text, reader = _text(case_report_pdf(_report()))
    assert len(reader.pages) == 1
    assert "Probability of fracture: 87%" in text
    assert "FRACTURE SUSPECTED" in text
    assert "Operating threshold 0.122" in text and "Youden's J" in text and "validation split" in text
    assert "Heatmap method: Grad-CAM" in text and "76%" in text
    assert CARD["name"] in text
    assert "model version ab12cd34ef56" in text and SHA256[:13] not in text  # the first 12 characters only
    assert f"code version {CARD['training']['code_version']}" in text
    assert "2026-11-29 21:05 UTC" in text
    assert " ".join(DISCLAIMER.split()) in text
    assert "Note:" not in text  # no out-of-distribution note for an in-distribution image
    assert "File:" not in text
    images = [image for page in reader.pages for image in page.images]
    assert len(images) == 2  # the radiograph and the heatmap overlay


def test_not_fractured_and_an_out_of_distribution_note():
    text, _ = _text(case_report_pdf(_report(probability_fractured=0.04, decision="not fractured",
                                            out_of_distribution_note=OUT_OF_DISTRIBUTION_NOTE)))
    assert "Probability of fracture: 4%" in text and "no fracture detected" in text
    assert "FRACTURE SUSPECTED" not in text
    assert " ".join(OUT_OF_DISTRIBUTION_NOTE.split()) in text


def test_file_name_only_when_given_and_any_script_survives():
    text, _ = _text(case_report_pdf(_report(file_name="wrist_left_Łódź.dcm")))
    assert "File: wrist_left_?ód?.dcm" in text  # outside Latin-1: shown as '?', never an error


def test_metadata_names_no_file_and_no_patient():
    _, reader = _text(case_report_pdf(_report(file_name="Quixleyfarn.dcm")))
    metadata = {key: str(value) for key, value in (reader.metadata or {}).items()}
    assert not any("Quixleyfarn" in value for value in metadata.values()), metadata


def test_a_rule_the_code_does_not_know_is_named_not_hidden():
    assert threshold_rule({"operating_threshold_rule": "sensitivity_0.90"}) == "the rule 'sensitivity_0.90'"
    assert "Youden" in threshold_rule(CARD)


@pytest.mark.parametrize("shape", [(2000, 300), (300, 2000), (64, 64)])
def test_extreme_aspect_ratios_still_give_one_page(shape):
    pixels = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
    _, reader = _text(case_report_pdf(_report(pixels=pixels, overlay_rgb=np.zeros((*shape, 3), np.uint8))))
    assert len(reader.pages) == 1


def test_without_a_heatmap():
    text, reader = _text(case_report_pdf(_report(overlay_rgb=None, method=None, pointing=None)))
    assert "Heatmap method" not in text
    assert len([image for page in reader.pages for image in page.images]) == 1
