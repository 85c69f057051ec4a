"""Reviewers' verdicts on the test cases' heatmaps, kept in one SQLite file (standard library ``sqlite3``, WAL).

A verdict says, for one test case of one model version: is the heatmap on the fracture (yes, no, unsure),
does the reviewer agree with the model's call (yes, no, unsure), a comment of at most ``MAX_COMMENT``
characters, and the reviewer's name as typed. Every verdict carries the model file's SHA-256, so a new
model starts a fresh review while the old verdicts stay in the file. A reviewer who judges a case again
adds a newer verdict; the figures count the latest verdict per reviewer and case.

Where the file lives: the environment variable ``FRACTURE_LENS_REVIEWS_DB``, else ``reviews_db`` in
``.streamlit/secrets.toml`` (the page passes it in), else ``reviews.sqlite3`` in the user's data folder
(``$XDG_DATA_HOME/fracture-lens``, by default ``~/.local/share/fracture-lens``). Never inside the repository.

Each write is one short transaction on its own connection; WAL lets readers go on while one writer writes,
and writers from other threads or processes wait (``BUSY_TIMEOUT_S``) instead of failing.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sqlite3
import unicodedata
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fracture_model.imaging import InputError

ENVIRONMENT_VARIABLE = "FRACTURE_LENS_REVIEWS_DB"
SECRETS_KEY = "reviews_db"
DATABASE_NAME = "reviews.sqlite3"
REPO = Path(__file__).resolve().parents[1]
CHOICES = ("yes", "no", "unsure")
MAX_COMMENT = 500
MAX_REVIEWER = 80
MAX_IMAGE_ID = 100
BUSY_TIMEOUT_S = 30.0

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS verdicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_sha256 TEXT NOT NULL CHECK (length(model_sha256) BETWEEN 1 AND 64),
    image_id TEXT NOT NULL CHECK (length(image_id) BETWEEN 1 AND {MAX_IMAGE_ID}),
    reviewer TEXT NOT NULL CHECK (length(reviewer) BETWEEN 1 AND {MAX_REVIEWER}),
    heatmap_on_fracture TEXT NOT NULL CHECK (heatmap_on_fracture IN ('yes', 'no', 'unsure')),
    agrees_with_model TEXT NOT NULL CHECK (agrees_with_model IN ('yes', 'no', 'unsure')),
    comment TEXT NOT NULL DEFAULT '' CHECK (length(comment) <= {MAX_COMMENT}),
    recorded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS verdicts_by_model ON verdicts (model_sha256, image_id);
"""
COLUMNS = ("id", "model_sha256", "image_id", "reviewer", "heatmap_on_fracture", "agrees_with_model", "comment",
           "recorded_at")


class ReviewStoreError(InputError):
    """The verdict database cannot be used (one sentence for the person running the app)."""


def default_database_path(environ: Mapping[str, str] | None = None) -> Path:
    """``reviews.sqlite3`` in the user's data folder (XDG: ``$XDG_DATA_HOME`` or ``~/.local/share``)."""
    environ = os.environ if environ is None else environ
    data_home = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "fracture-lens" / DATABASE_NAME


def database_path(configured: str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Where the verdicts live: the environment variable, else ``configured`` (secrets.toml), else the default.

    Raises ``ReviewStoreError`` for a path inside the repository, where it could be committed by mistake.
    """
    environ = os.environ if environ is None else environ
    chosen = environ.get(ENVIRONMENT_VARIABLE) or configured
    path = Path(chosen).expanduser() if chosen else default_database_path(environ)
    resolved = path.resolve()
    if resolved == REPO or REPO in resolved.parents:
        raise ReviewStoreError(
            f"The verdict database must not be inside the repository ({path}); set {ENVIRONMENT_VARIABLE} "
            "to a path outside it.")
    return resolved


def _clean_text(text: str, limit: int, what: str, *, multiline: bool) -> str:
    """``text`` trimmed, without control characters (newlines kept where ``multiline``), at most ``limit`` long."""
    if not isinstance(text, str):
        raise ReviewStoreError(f"The {what} must be text.")
    kept = "".join(
        character for character in text
        if (multiline and character == "\n") or not unicodedata.category(character).startswith("C")
    ).strip()
    if len(kept) > limit:
        raise ReviewStoreError(f"The {what} is {len(kept)} characters long; at most {limit} are kept.")
    return kept


@dataclass(frozen=True)
class Verdict:
    """One reviewer's judgement of one test case's heatmap, for one model version. Validated when made."""

    model_sha256: str
    image_id: str
    reviewer: str
    heatmap_on_fracture: str
    agrees_with_model: str
    comment: str = ""

    def __post_init__(self) -> None:
        reviewer = _clean_text(self.reviewer, MAX_REVIEWER, "reviewer name", multiline=False)
        if not reviewer:
            raise ReviewStoreError("Type your name before recording a verdict.")
        image_id = _clean_text(self.image_id, MAX_IMAGE_ID, "case name", multiline=False)
        if not image_id:
            raise ReviewStoreError("Choose a test case before recording a verdict.")
        if not (0 < len(self.model_sha256) <= 64) or not all(c in "0123456789abcdef" for c in self.model_sha256):
            raise ReviewStoreError("The model version must be the model file's SHA-256.")
        for value, what in ((self.heatmap_on_fracture, "'heatmap on the fracture'"),
                            (self.agrees_with_model, "'agree with the model'")):
            if value not in CHOICES:
                raise ReviewStoreError(f"The answer to {what} must be yes, no or unsure.")
        object.__setattr__(self, "reviewer", reviewer)
        object.__setattr__(self, "image_id", image_id)
        object.__setattr__(self, "comment", _clean_text(self.comment, MAX_COMMENT, "comment", multiline=True))


@dataclass(frozen=True)
class ReviewFigures:
    """The reviewers' figures for one model version, from the latest verdict per reviewer and case."""

    verdicts: int
    cases: int
    reviewers: int
    heatmap_yes: int
    heatmap_no: int
    heatmap_unsure: int
    agree_yes: int
    agree_no: int
    agree_unsure: int

    @property
    def heatmap_on_fracture_share(self) -> float | None:
        """Share of the yes/no heatmap verdicts that said 'on the fracture' (None without any)."""
        decided = self.heatmap_yes + self.heatmap_no
        return self.heatmap_yes / decided if decided else None

    @property
    def agreement_share(self) -> float | None:
        """Share of the yes/no verdicts that agreed with the model's call (None without any)."""
        decided = self.agree_yes + self.agree_no
        return self.agree_yes / decided if decided else None


class ReviewStore:
    """The verdicts in one SQLite file. Safe to share between threads: every call opens its own connection."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connection() as connection:
                mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                connection.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise ReviewStoreError(f"The verdict database at {self.path} cannot be opened ({error}).") from error
        if str(mode).lower() != "wal":
            raise ReviewStoreError(f"The verdict database at {self.path} cannot use write-ahead logging.")

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            yield connection
        finally:
            connection.close()

    def record(self, verdict: Verdict, *, recorded_at: datetime | None = None) -> int:
        """Store ``verdict`` (committed before this returns); its row id."""
        when = (recorded_at or datetime.now(UTC)).isoformat(timespec="milliseconds")
        with self._connection() as connection, connection:  # one transaction, committed on leaving
            cursor = connection.execute(
                "INSERT INTO verdicts (model_sha256, image_id, reviewer, heatmap_on_fracture, agrees_with_model, "
                "comment, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (verdict.model_sha256, verdict.image_id, verdict.reviewer, verdict.heatmap_on_fracture,
                 verdict.agrees_with_model, verdict.comment, when))
            return int(cursor.lastrowid)

    def verdicts(self, model_sha256: str) -> list[dict]:
        """Every verdict recorded for this model version, oldest first (dicts with ``COLUMNS``)."""
        with self._connection() as connection:
            connection.row_factory = sqlite3.Row
            rows = connection.execute(
                f"SELECT {', '.join(COLUMNS)} FROM verdicts WHERE model_sha256 = ? ORDER BY id", (model_sha256,))
            return [dict(row) for row in rows]

    def latest_verdicts(self, model_sha256: str) -> list[dict]:
        """The latest verdict of each reviewer on each case, for this model version."""
        latest: dict[tuple[str, str], dict] = {}
        for row in self.verdicts(model_sha256):
            latest[(row["reviewer"], row["image_id"])] = row
        return list(latest.values())

    def figures(self, model_sha256: str, fractured: Collection[str] | None = None) -> ReviewFigures:
        """The figures for this model version. With ``fractured`` (the image IDs of the fractured test cases),
        the heatmap counts are over those cases only, as the automatic pointing game is: on a radiograph
        without a fracture, 'is the heatmap on the fracture' has no right answer."""
        rows = self.latest_verdicts(model_sha256)
        if fractured is None:
            on_fractures = rows
        else:
            fractured = set(fractured)
            on_fractures = [row for row in rows if row["image_id"] in fractured]

        def count(chosen: list[dict], column: str, value: str) -> int:
            return sum(row[column] == value for row in chosen)

        return ReviewFigures(
            verdicts=len(rows),
            cases=len({row["image_id"] for row in rows}),
            reviewers=len({row["reviewer"] for row in rows}),
            heatmap_yes=count(on_fractures, "heatmap_on_fracture", "yes"),
            heatmap_no=count(on_fractures, "heatmap_on_fracture", "no"),
            heatmap_unsure=count(on_fractures, "heatmap_on_fracture", "unsure"),
            agree_yes=count(rows, "agrees_with_model", "yes"),
            agree_no=count(rows, "agrees_with_model", "no"),
            agree_unsure=count(rows, "agrees_with_model", "unsure"),
        )


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def verdicts_csv(rows: list[dict]) -> str:
    """The verdicts as CSV text (``COLUMNS``). A text cell that a spreadsheet would run as a formula (starting
    with =, +, -, @) gets a leading apostrophe, so opening the file cannot run what a reviewer typed."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({
            column: f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value
            for column, value in row.items()
        })
    return buffer.getvalue()
