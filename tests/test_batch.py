"""`fracture_model.batch` on a real local Ray (2 CPUs), in one process, and against the predict command.

One corpus of a few dozen files (the sample radiographs, generated radiographs including DICOM without
an extension, a photograph, a missing file and the whole bad-input corpus) is scored three ways: Ray
Data, ``--engine local`` and ``python -m fracture_model.predict``. They must agree to 1e-5, every bad
file must carry the predict command's sentence, DIR must hold nothing but Parquet, a second run must
score nothing, and a run killed midway must be finished by the next one with exactly one row per path.
Works with any shipped model (nothing compares against a hard-coded output).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fracture_model import batch
from tests.bad_inputs import (
    ODD_BUT_VALID,
    assert_one_sentence,
    bone_like,
    colour_photograph,
    cr_radiograph,
    find_planted,
    planted_in_files,
    write_corpus,
)
from tests.conftest import MODEL_DIR, REPO, SAMPLES

ray = pytest.importorskip("ray", reason="Ray is installed from requirements-batch.txt")

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("archive")
    good = root / "ward" / "2025"
    good.mkdir(parents=True)
    for sample in sorted(SAMPLES.glob("*.jpg")):
        shutil.copy(sample, good / sample.name)
    for seed in range(8):
        Image.fromarray(bone_like(320 + 16 * seed, 256, seed=seed)).save(good / f"generated_{seed}.png")
    for _make, filename, _mime in ODD_BUT_VALID.values():
        (good / filename).write_bytes(_make())
    (good / "IM000123").write_bytes(cr_radiograph())  # DICOM without an extension
    (good / ".hidden.png").write_bytes(b"skipped like the predict command skips it")
    photo = root / "cat.jpg"
    photo.write_bytes(colour_photograph())
    bad = write_corpus(root / "bad")
    missing = root / "gone.png"
    listing = root / "more.txt"
    listing.write_text(f"{photo}\n\n{missing}\n{good / 'IM000123'}\n")  # a duplicate path is scored once
    good_files = sorted(str(path) for path in good.iterdir() if not path.name.startswith("."))
    return {"root": root, "sources": [str(good), str(root / "bad"), f"@{listing}"], "good": good_files,
            "bad": {name: str(path) for name, path in bad.items()}, "photo": str(photo), "missing": str(missing),
            "all": sorted([*good_files, *map(str, bad.values()), str(photo), str(missing)])}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_run(corpus, local_ray, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ray_out")
    lines: list[str] = []
    summary = batch.score_archive(corpus["sources"], out, engine="ray", batch_size=4, progress=lines.append,
                                  progress_every_s=0.0)
    return {"out": out, "summary": summary, "lines": lines, "rows": pd.read_parquet(out)}


@pytest.fixture(scope="module")
def local_run(corpus, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("local_out")
    summary = batch.score_archive(corpus["sources"], out, engine="local", batch_size=5, progress=lambda _: None)
    return {"out": out, "summary": summary, "rows": pd.read_parquet(out)}


@pytest.fixture(scope="module")
def predict_run(corpus) -> dict:
    """The predict command on the same files: probabilities (CSV) and sentences (stderr), by path."""
    result = subprocess.run([sys.executable, "-m", "fracture_model.predict", *corpus["all"]], cwd=REPO,
                            capture_output=True, text=True, timeout=300, env=ENV)
    rows = pd.read_csv(io.StringIO(result.stdout))
    sentences = dict(line.split(": ", 1) for line in result.stderr.splitlines() if ": " in line)
    return {"probabilities": dict(zip(rows["path"], rows["probability_fractured"], strict=True)),
            "decisions": dict(zip(rows["path"], rows["decision"], strict=True)), "sentences": sentences}


def _by_path(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.set_index("path").sort_index()


def test_every_file_gets_exactly_one_row_with_the_documented_columns(ray_run, local_run, corpus):
    for run in (ray_run, local_run):
        assert list(run["rows"].columns) == batch.SCHEMA.names
        assert sorted(run["rows"]["path"]) == corpus["all"]


def test_ray_local_and_predict_give_the_same_probabilities(ray_run, local_run, predict_run, corpus):
    on_ray, local = _by_path(ray_run["rows"]), _by_path(local_run["rows"])
    expected = predict_run["probabilities"]
    assert sorted(expected) == corpus["good"]
    for path, probability in expected.items():
        assert on_ray.loc[path, "probability_fractured"] == pytest.approx(probability, abs=1e-5)
        assert local.loc[path, "probability_fractured"] == pytest.approx(probability, abs=1e-5)
        assert on_ray.loc[path, "decision"] == local.loc[path, "decision"] == predict_run["decisions"][path]
        assert pd.isna(on_ray.loc[path, "error"]) and pd.isna(local.loc[path, "error"])


def test_model_version_and_out_of_distribution_come_from_the_predictor(ray_run, shipped_predictor, corpus):
    from fracture_model.imaging import read_radiograph

    rows = _by_path(ray_run["rows"])
    assert set(rows["model_version"]) == {shipped_predictor.model_version}
    for path in corpus["good"][:3]:
        expected = shipped_predictor.predict(read_radiograph(Path(path).read_bytes()).pixels).in_distribution
        found = rows.loc[path, "in_distribution"]
        assert (pd.isna(found) if expected is None else found == expected)


def test_unreadable_files_get_the_predict_commands_sentence(ray_run, local_run, predict_run, corpus):
    unreadable = [*corpus["bad"].values(), corpus["photo"], corpus["missing"]]
    assert sorted(predict_run["sentences"]) == sorted(unreadable)
    for run in (ray_run, local_run):
        rows = _by_path(run["rows"])
        for path in unreadable:
            assert rows.loc[path, "error"] == predict_run["sentences"][path]
            assert_one_sentence(rows.loc[path, "error"])
            assert pd.isna(rows.loc[path, "probability_fractured"]) and pd.isna(rows.loc[path, "decision"])
        assert "could not be opened" in rows.loc[corpus["missing"], "error"]
    summary = ray_run["summary"]
    assert (summary.scored, summary.failed, summary.skipped) == (len(corpus["good"]), len(unreadable), 0)
    assert ray_run["lines"][-1].startswith(f"scored {len(corpus['good'])}, failed {len(unreadable)}, skipped 0")
    assert "images/s" in ray_run["lines"][-1]
    assert any(" of " in line and "done" in line for line in ray_run["lines"][1:-1])  # progress while running


def test_output_folder_holds_only_parquet_and_no_patient_identifier(ray_run):
    out = ray_run["out"]
    names = [path.name for path in out.iterdir()]
    assert all(name.endswith(".parquet") for name in names if not name.startswith(("_", "."))), names
    assert sum(name.endswith(".parquet") for name in names) > 1  # one part per batch
    assert planted_in_files(list(out.iterdir())) == {}
    assert find_planted(ray_run["rows"].to_csv()) == []
    assert find_planted("\n".join(ray_run["lines"])) == []


def test_a_second_run_scores_nothing(ray_run, corpus):
    out = ray_run["out"]
    parts = sorted(out.glob("*.parquet"))
    summary = batch.score_archive(corpus["sources"], out, engine="ray", progress=lambda _: None)
    assert (summary.scored, summary.failed, summary.skipped) == (0, 0, len(corpus["all"]))
    assert sorted(out.glob("*.parquet")) == parts


def test_a_killed_run_is_finished_by_the_next_with_one_row_per_path(corpus, local_ray, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "fracture_model.batch", *corpus["sources"], "--out", str(out),
               "--engine", "local", "--batch-size", "1"]
    job = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600  # generous: a busy machine is slow to load TensorFlow
        while len(list(out.glob("*.parquet"))) < 3 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        job.send_signal(signal.SIGKILL)
    finally:
        job.wait()
    (out / ".writing-part-unfinished.parquet").write_bytes(b"PAR1 cut off")  # as a kill mid-write leaves it
    before = pd.read_parquet(out)
    assert 0 < len(before) < len(corpus["all"]), "the job finished before it could be killed"

    summary = batch.score_archive(corpus["sources"], out, engine="ray", batch_size=8, progress=lambda _: None)
    after = pd.read_parquet(out)
    assert summary.skipped == len(before)
    assert summary.scored + summary.failed == len(corpus["all"]) - len(before)
    assert sorted(after["path"]) == corpus["all"]  # exactly one row per path
    assert not list(out.glob(".writing-*"))


def test_a_folder_with_other_files_or_another_models_results_is_refused(tmp_path, ray_run, corpus):
    stranger = tmp_path / "notes"
    stranger.mkdir()
    (stranger / "readme.txt").write_text("mine")
    with pytest.raises(batch.BatchError, match="did not write"):
        batch.score_archive(corpus["sources"], stranger, engine="local", progress=lambda _: None)

    other_model = tmp_path / "other_model"
    shutil.copytree(ray_run["out"], other_model)
    part = sorted(other_model.glob("*.parquet"))[0]
    table = pq.read_table(part)
    pq.write_table(table.set_column(table.schema.get_field_index("model_version"), "model_version",
                                    [["0123456789ab"] * table.num_rows]), part)
    with pytest.raises(batch.BatchError, match="0123456789ab"):
        batch.score_archive(corpus["sources"], other_model, engine="local", progress=lambda _: None)


def test_sources_folders_lists_and_duplicates(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "a" / "deep" / "x.png").write_bytes(b"")
    (tmp_path / "a" / ".hidden").write_bytes(b"")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'a' / 'deep' / 'x.png'}\n  \n{tmp_path / 'b.dcm'}\n")
    found = batch.list_sources([str(tmp_path / "a"), f"@{listing}"])
    assert found == [str(tmp_path / "a" / "deep" / "x.png"), str(tmp_path / "b.dcm")]
    with pytest.raises(batch.BatchError, match="cannot be read"):
        batch.list_sources([f"@{tmp_path / 'no_such_list.txt'}"])


def test_model_version_is_the_predictors_without_loading_it(shipped_predictor):
    assert batch.model_version(MODEL_DIR) == shipped_predictor.model_version


def test_the_command_line_answers_help_and_refuses_a_bad_batch_size(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        batch.main(["--help"])
    assert exit_info.value.code == 0
    assert "--address" in capsys.readouterr().out
    assert batch.main([str(SAMPLES), "--out", str(tmp_path / "out"), "--batch-size", "0"]) == 2
    assert capsys.readouterr().err.strip() == "--batch-size must be at least 1."
    assert not (tmp_path / "out").exists()
