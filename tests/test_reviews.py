"""The reviewers' verdict store on a real SQLite file: concurrent writers, restarts, model versions, bounds."""

from __future__ import annotations

import csv
import io
import sqlite3
import subprocess
import sys
import threading

import pytest

from fracture_model import reviews
from fracture_model.reviews import MAX_COMMENT, ReviewStore, ReviewStoreError, Verdict
from tests.conftest import REPO

MODEL_A = "a" * 64
MODEL_B = "b" * 64


def _verdict(image: str = "IMG0000019.jpg", reviewer: str = "Dr Ada", model: str = MODEL_A, **changes) -> Verdict:
    fields = {"heatmap_on_fracture": "yes", "agrees_with_model": "yes", "comment": ""} | changes
    return Verdict(model_sha256=model, image_id=image, reviewer=reviewer, **fields)


def test_the_database_is_in_wal_mode(tmp_path):
    store = ReviewStore(tmp_path / "reviews.sqlite3")
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_concurrent_writers_from_threads_lose_nothing(tmp_path):
    store = ReviewStore(tmp_path / "reviews.sqlite3")
    writers, each = 8, 40
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(number: int) -> None:
        try:
            start.wait()
            for i in range(each):
                store.record(_verdict(image=f"IMG{i:07d}.jpg", reviewer=f"reviewer {number}", comment=f"{number}/{i}"))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(number,)) for number in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    rows = store.verdicts(MODEL_A)
    assert len(rows) == writers * each
    assert {row["comment"] for row in rows} == {f"{n}/{i}" for n in range(writers) for i in range(each)}
    figures = store.figures(MODEL_A)
    assert (figures.verdicts, figures.cases, figures.reviewers) == (writers * each, each, writers)


def test_another_process_writing_at_the_same_time_loses_nothing(tmp_path):
    """Two server processes on one file (e.g. two replicas): SQLite's locking, not a lock in Python."""
    path = tmp_path / "reviews.sqlite3"
    store = ReviewStore(path)
    script = (
        "import sys; from fracture_model.reviews import ReviewStore, Verdict\n"
        "store = ReviewStore(sys.argv[1])\n"
        f"for i in range(30): store.record(Verdict('{MODEL_A}', f'IMG{{i:07d}}.jpg', 'other process', 'no', 'no'))\n"
    )
    other = subprocess.Popen([sys.executable, "-c", script, str(path)], cwd=REPO)
    for i in range(30):
        store.record(_verdict(image=f"IMG{i:07d}.jpg", reviewer="this process"))
    assert other.wait(timeout=120) == 0
    rows = store.verdicts(MODEL_A)
    assert sorted((row["reviewer"], row["image_id"]) for row in rows) == sorted(
        (reviewer, f"IMG{i:07d}.jpg") for reviewer in ("other process", "this process") for i in range(30))


def test_a_restart_keeps_everything(tmp_path):
    path = tmp_path / "reviews.sqlite3"
    first = ReviewStore(path)
    ids = [first.record(_verdict(image=f"IMG{i:07d}.jpg", comment="line one\nline two")) for i in range(5)]
    del first
    again = ReviewStore(path)  # a new server process opens the same file
    rows = again.verdicts(MODEL_A)
    assert [row["id"] for row in rows] == ids
    assert rows[0]["comment"] == "line one\nline two"


def test_a_new_model_version_starts_empty_and_the_old_verdicts_stay(tmp_path):
    store = ReviewStore(tmp_path / "reviews.sqlite3")
    store.record(_verdict(model=MODEL_A))
    assert store.verdicts(MODEL_B) == []
    assert store.figures(MODEL_B).verdicts == 0
    store.record(_verdict(model=MODEL_B, heatmap_on_fracture="no"))
    assert len(store.verdicts(MODEL_A)) == 1 and store.verdicts(MODEL_A)[0]["heatmap_on_fracture"] == "yes"


def test_figures_count_the_latest_verdict_per_reviewer_and_case(tmp_path):
    store = ReviewStore(tmp_path / "reviews.sqlite3")
    store.record(_verdict(reviewer="Ada", heatmap_on_fracture="no", agrees_with_model="no"))
    store.record(_verdict(reviewer="Ada", heatmap_on_fracture="yes"))  # changed her mind: this one counts
    store.record(_verdict(reviewer="Ben", heatmap_on_fracture="no", agrees_with_model="unsure"))
    store.record(_verdict(reviewer="Ben", image="IMG0000025.jpg", heatmap_on_fracture="unsure"))
    figures = store.figures(MODEL_A)
    assert (figures.verdicts, figures.cases, figures.reviewers) == (3, 2, 2)
    assert (figures.heatmap_yes, figures.heatmap_no, figures.heatmap_unsure) == (1, 1, 1)
    assert figures.heatmap_on_fracture_share == 0.5  # unsure left out
    assert (figures.agree_yes, figures.agree_no, figures.agree_unsure) == (2, 0, 1)
    assert figures.agreement_share == 1.0
    assert len(store.verdicts(MODEL_A)) == 4  # every verdict is kept
    on_fractures = store.figures(MODEL_A, fractured={"IMG0000025.jpg"})  # only that case is fractured
    assert (on_fractures.heatmap_yes, on_fractures.heatmap_no, on_fractures.heatmap_unsure) == (0, 0, 1)
    assert on_fractures.heatmap_on_fracture_share is None
    assert (on_fractures.verdicts, on_fractures.agree_yes) == (3, 2)  # agreement: every case


@pytest.mark.parametrize(("changes", "message"), [
    ({"reviewer": "   "}, "Type your name"),
    ({"reviewer": "x" * 81}, "at most 80"),
    ({"comment": "x" * (MAX_COMMENT + 1)}, f"at most {MAX_COMMENT}"),
    ({"heatmap_on_fracture": "maybe"}, "yes, no or unsure"),
    ({"agrees_with_model": ""}, "yes, no or unsure"),
    ({"image": ""}, "Choose a test case"),
    ({"model": "not a hash"}, "SHA-256"),
])
def test_bad_input_gets_one_sentence(changes, message):
    with pytest.raises(ReviewStoreError, match=message) as raised:
        _verdict(**changes)
    assert str(raised.value).endswith(".")


def test_text_is_trimmed_and_control_characters_dropped(tmp_path):
    verdict = _verdict(reviewer="  Dr\x00 Ada\u202e ", comment="  fine\r\n\x1b[31mred  ")
    assert verdict.reviewer == "Dr Ada"
    assert verdict.comment == "fine\n[31mred"
    assert len(_verdict(comment="é" * MAX_COMMENT).comment) == MAX_COMMENT  # characters, not bytes


def test_the_database_refuses_what_the_code_would_refuse(tmp_path):
    """The bounds are also constraints of the table, so no other writer can store an unbounded comment."""
    store = ReviewStore(tmp_path / "reviews.sqlite3")
    with sqlite3.connect(store.path) as connection, pytest.raises(sqlite3.IntegrityError):
        connection.execute(
            "INSERT INTO verdicts (model_sha256, image_id, reviewer, heatmap_on_fracture, agrees_with_model, comment, "
            "recorded_at) VALUES (?, 'a', 'b', 'yes', 'yes', ?, 'now')", (MODEL_A, "x" * (MAX_COMMENT + 1)))


def test_csv_download_cannot_run_formulas(tmp_path):
    store = ReviewStore(tmp_path / "reviews.sqlite3")
    store.record(_verdict(comment='=HYPERLINK("http://x","y"), then "quoted"'))
    store.record(_verdict(reviewer="@admin", comment="plain"))
    rows = list(csv.DictReader(io.StringIO(reviews.verdicts_csv(store.verdicts(MODEL_A)))))
    assert [row["comment"] for row in rows] == ['\'=HYPERLINK("http://x","y"), then "quoted"', "plain"]
    assert rows[1]["reviewer"] == "'@admin"
    assert set(rows[0]) == set(reviews.COLUMNS)


def test_path_from_environment_then_secrets_then_user_data_folder(tmp_path):
    environment = {"XDG_DATA_HOME": str(tmp_path / "data")}
    assert reviews.database_path(None, environment) == tmp_path / "data" / "fracture-lens" / "reviews.sqlite3"
    assert reviews.database_path(str(tmp_path / "s.db"), environment) == tmp_path / "s.db"
    environment[reviews.ENVIRONMENT_VARIABLE] = str(tmp_path / "env.db")
    assert reviews.database_path(str(tmp_path / "s.db"), environment) == tmp_path / "env.db"
    default = reviews.database_path(None, {})
    assert REPO not in default.parents


def test_a_path_inside_the_repository_is_refused():
    with pytest.raises(ReviewStoreError, match="must not be inside the repository"):
        reviews.database_path(str(REPO / "assets" / "reviews.sqlite3"), {})


def test_an_unusable_path_gets_a_sentence(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ReviewStoreError, match="cannot be opened"):
        ReviewStore(blocker / "reviews.sqlite3")

