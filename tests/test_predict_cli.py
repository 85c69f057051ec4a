"""`python -m fracture_model.predict` on the whole bad-input corpus, as a user runs it (a subprocess; its rerun with
``--score-photographs`` for one photograph runs in this process).

Each bad file gets one sentence on standard error, every good file is still scored (with the same
probability the Predictor gives in this process), and the exit code is 1. Works with any shipped model.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fracture_model import predict
from fracture_model.imaging import read_radiograph
from tests.bad_inputs import (
    BAD_INPUTS,
    ODD_BUT_VALID,
    assert_one_sentence,
    colour_photograph,
    cr_radiograph,
    find_planted,
    write_corpus,
)
from tests.conftest import REPO, SAMPLES


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fracture_model.predict", *arguments],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},  # what a user has, not the test suite's 3
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("corpus")
    good_folder = folder / "good"
    good_folder.mkdir()
    for _make, filename, _mime in ODD_BUT_VALID.values():
        (good_folder / filename).write_bytes(_make())
    (good_folder / "IM000123").write_bytes(cr_radiograph())  # DICOM without an extension
    samples = sorted(SAMPLES.glob("*.jpg"))[:2]
    photo = folder / "cat.jpg"
    photo.write_bytes(colour_photograph())
    return {
        "bad_folder": folder / "bad", "bad": write_corpus(folder / "bad"),
        "good_folder": good_folder, "good": sorted(good_folder.iterdir()) + samples, "samples": samples,
        "photo": photo, "missing": folder / "gone.png",
    }


@pytest.fixture(scope="module")
def result(corpus) -> subprocess.CompletedProcess[str]:
    return run_cli(str(corpus["bad_folder"]), str(corpus["good_folder"]), *map(str, corpus["samples"]),
                   str(corpus["photo"]), str(corpus["missing"]))


def _sentences(stderr: str) -> dict[str, str]:
    """path -> the sentence written for it."""
    sentences = {}
    for line in stderr.splitlines():
        path, separator, sentence = line.partition(": ")
        if separator:
            sentences[path] = sentence
    return sentences


def test_exit_code_is_1_when_any_file_was_not_scored(result):
    assert result.returncode == 1, result.stderr


def test_each_bad_file_gets_exactly_one_sentence_on_stderr(result, corpus):
    sentences = _sentences(result.stderr)
    for name, path in corpus["bad"].items():
        assert str(path) in sentences, f"no sentence for {name}"
        assert_one_sentence(sentences[str(path)])
        assert BAD_INPUTS[name].words in sentences[str(path)]
        assert sum(line.startswith(f"{path}: ") for line in result.stderr.splitlines()) == 1
    assert "could not be opened" in sentences[str(corpus["missing"])]
    assert_one_sentence(sentences[str(corpus["missing"])])
    assert "Traceback" not in result.stderr


def test_stderr_holds_only_the_sentences_and_a_count(result, corpus):
    lines = result.stderr.splitlines()
    unscored = len(corpus["bad"]) + 2  # the bad files, the photograph, the missing file
    assert len(lines) == unscored + 1  # no start-up noise from TensorFlow in between
    scored = len(corpus["good"])
    assert lines[-1] == f"{unscored} of {unscored + scored} file(s) were not scored."


def test_good_files_are_still_scored_with_the_predictors_probability(result, corpus, shipped_predictor):
    rows = pd.read_csv(io.StringIO(result.stdout), keep_default_na=False)
    assert list(rows.columns) == ["path", "probability_fractured", "decision", "in_distribution"]
    assert sorted(rows["path"]) == sorted(str(path) for path in corpus["good"])
    for row in rows.itertuples():
        expected = shipped_predictor.predict(read_radiograph(Path(row.path).read_bytes()).pixels)
        assert row.probability_fractured == pytest.approx(expected.probability_fractured, abs=2e-6)
        assert str(row.in_distribution).lower() == ("" if expected.in_distribution is None
                                                    else str(expected.in_distribution).lower())
        if abs(expected.probability_fractured - expected.operating_threshold) > 1e-5:
            assert row.decision == expected.decision
    assert not any(str(path) in result.stdout for path in corpus["bad"].values())


def test_a_photograph_is_reported_and_scored_only_on_request(result, corpus, capsys):
    photo = str(corpus["photo"])
    sentence = _sentences(result.stderr)[photo]
    assert_one_sentence(sentence)
    assert "very likely a photograph" in sentence and "colourfulness" in sentence
    assert photo not in result.stdout

    # the same command with the flag, run in this process (the subprocess above already checks what a user sees
    # around it; a second interpreter would load TensorFlow and the model again for one file)
    assert predict.main(["--score-photographs", photo]) == 0
    forced = capsys.readouterr()
    assert "very likely a photograph" in forced.err
    rows = pd.read_csv(io.StringIO(forced.out))
    assert list(rows["path"]) == [photo]
    assert np.isfinite(rows["probability_fractured"]).all()


def test_no_patient_identifier_is_printed(result):
    assert find_planted(result.stdout + result.stderr) == []
