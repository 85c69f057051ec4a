"""A worklist: many uploaded files (or ``.zip`` archives of them) -> decoded, scored in batches -> study lines.

Everything stays in memory. The only DICOM attribute read besides the image is the StudyInstanceUID, to
group the views of one study; it is never shown or written anywhere (studies are named "Study 1..N" by
their rank in the list, files by their name or, hidden, "Image 1..N" in upload order).

The page (``pages/worklist.py``) and the tests call the same functions; scoring goes through the same
``imaging`` -> ``predictor`` path as the Read page.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np

from fracture_model.imaging import InputError, Radiograph, looks_like_radiograph, read_radiograph

CSV_COLUMNS = ("path", "probability_fractured", "decision", "in_distribution", "study", "views_in_study",
               "status", "reason", "model_version")
"""The predict command's columns first (``path,probability_fractured,decision,in_distribution``), then the rest."""
MAX_ARCHIVE_MEMBERS = 2000
"""A ``.zip`` with more files than this is refused (a worklist is a morning, not an archive)."""
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024
"""Refuse a ``.zip`` whose files would unpack to more than this in memory (512 MB)."""
BAD_ARCHIVE = "The .zip archive is damaged or not a zip file, so none of its files could be read."
_UNEXPECTED = "Sorry, this file could not be read. Please try another PNG, JPEG or DICOM radiograph."


@dataclass
class WorkItem:
    """One uploaded file (or one file of an uploaded archive)."""

    number: int
    """1..N in upload order: 'Image N' when file names are hidden."""
    name: str
    data: bytes | None = field(default=None, repr=False)
    radiograph: Radiograph | None = field(default=None, repr=False)
    problem: str | None = None
    """Why it was not scored, in one sentence (unreadable, or does not look like a radiograph)."""
    looks_unlike_radiograph: bool = False
    study_uid: str | None = field(default=None, repr=False)
    prediction: object | None = None
    """A ``fracture_model.predictor.Prediction`` once scored."""

    def label(self, hide_names: bool) -> str:
        return f"Image {self.number}" if hide_names else self.name

    @property
    def scored(self) -> bool:
        return self.prediction is not None


@dataclass
class StudyLine:
    """One line of the worklist: a DICOM study (its views) or a single file."""

    items: list[WorkItem]

    @property
    def scored_items(self) -> list[WorkItem]:
        return [item for item in self.items if item.scored]

    @property
    def probability(self) -> float | None:
        """The highest P(fractured) of its views; None when no view could be scored."""
        scored = self.scored_items
        return max(item.prediction.probability_fractured for item in scored) if scored else None

    @property
    def fractured(self) -> bool:
        """Flagged when any view is called fractured."""
        return any(item.prediction.fractured for item in self.scored_items)

    @property
    def top(self) -> WorkItem:
        """The view with the highest probability (the first file when none was scored)."""
        scored = self.scored_items
        return max(scored, key=lambda item: item.prediction.probability_fractured) if scored else self.items[0]

    @property
    def out_of_distribution(self) -> bool:
        return any(item.prediction.in_distribution is False for item in self.scored_items)

    @property
    def featureless(self) -> bool:
        """A view with nothing of a radiograph in it (``ood.image_content``): its probability means nothing."""
        return any(item.prediction.featureless for item in self.scored_items)


def expand_uploads(files: Iterable[tuple[str, bytes]], max_archive_bytes: int = MAX_ARCHIVE_BYTES) -> list[WorkItem]:
    """One ``WorkItem`` per uploaded file; a ``.zip`` gives one per file inside it (``archive.zip/inner/name``).

    A damaged archive, or one too large to unpack in memory, becomes one item with its reason.
    Folders, hidden files and macOS' ``__MACOSX`` entries inside an archive are skipped.
    """
    items: list[WorkItem] = []

    def add(name: str, data: bytes | None = None, problem: str | None = None) -> None:
        items.append(WorkItem(number=len(items) + 1, name=name, data=data, problem=problem))

    for name, data in files:
        if not _is_zip(name, data):
            add(name, data)
            continue
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = [info for info in archive.infolist() if not info.is_dir() and not _hidden(info.filename)]
                if len(members) > MAX_ARCHIVE_MEMBERS:
                    add(name, problem=f"The .zip archive holds {len(members)} files; at most "
                                      f"{MAX_ARCHIVE_MEMBERS} can be read at once.")
                    continue
                if sum(info.file_size for info in members) > max_archive_bytes:
                    add(name, problem=f"The .zip archive would unpack to more than "
                                      f"{max_archive_bytes // (1024 * 1024)} MB, too much to read in memory.")
                    continue
                for info in members:
                    member = f"{name}/{info.filename}"
                    try:
                        add(member, archive.read(info))
                    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, ValueError, OSError):
                        add(member, problem="This file in the .zip archive is damaged or encrypted, "
                                            "so it could not be read.")
        except (zipfile.BadZipFile, OSError, ValueError):
            add(name, problem=BAD_ARCHIVE)
    return items


def _is_zip(name: str, data: bytes) -> bool:
    return name.lower().endswith(".zip") or data[:4] == b"PK\x03\x04"


def _hidden(member: str) -> bool:
    parts = PurePosixPath(member).parts
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def decode(item: WorkItem, score_unlike_radiographs: bool = False) -> WorkItem:
    """Decode ``item.data`` (and read its study); set ``problem`` when it cannot or should not be scored."""
    if item.problem is not None or item.data is None:
        return item
    try:
        item.radiograph = read_radiograph(item.data)
    except InputError as error:
        item.problem = str(error)
        return item
    except Exception:  # a bug, not the user's fault: a sentence, never the file's content
        item.problem = _UNEXPECTED
        return item
    plausible, reason = looks_like_radiograph(item.radiograph)
    item.looks_unlike_radiograph = not plausible
    if not plausible and not score_unlike_radiographs:
        item.problem = reason
    if item.radiograph.source_format == "DICOM":
        item.study_uid = study_uid(item.data)
    return item


def study_uid(data: bytes) -> str | None:
    """The DICOM StudyInstanceUID of a file already decoded as DICOM (None if absent), kept in memory only."""
    import pydicom

    try:
        dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=["StudyInstanceUID"],
                                  force=True)
    except Exception:  # the image decoded; a study we cannot read just makes the file its own study
        return None
    value = str(dataset.get("StudyInstanceUID", "") or "").strip()
    return value or None


def score(items: Sequence[WorkItem], predict_many: Callable[[list[np.ndarray]], list], batch_size: int = 16,
          progress: Callable[[int, int], None] | None = None) -> None:
    """Score every decoded item without a problem, ``batch_size`` at a time; ``progress(done, total)`` after each."""
    pending = [item for item in items if item.radiograph is not None and item.problem is None and not item.scored]
    total = len(pending)
    for start in range(0, total, batch_size):
        batch = pending[start:start + batch_size]
        for item, prediction in zip(batch, predict_many([item.radiograph.pixels for item in batch]), strict=True):
            item.prediction = prediction
        if progress is not None:
            progress(min(start + batch_size, total), total)


def study_lines(items: Sequence[WorkItem]) -> list[StudyLine]:
    """DICOM files of one study together (in upload order), every other file alone; highest probability first,
    lines that could not be scored last (in upload order)."""
    by_study: dict[str, StudyLine] = {}
    lines: list[StudyLine] = []
    for item in items:
        if item.study_uid is None:
            lines.append(StudyLine([item]))
        elif item.study_uid in by_study:
            by_study[item.study_uid].items.append(item)
        else:
            by_study[item.study_uid] = StudyLine([item])
            lines.append(by_study[item.study_uid])
    return sorted(lines, key=lambda line: (line.probability is None, -(line.probability or 0.0)))


def csv_text(items: Sequence[WorkItem], model_version: str) -> str:
    """One row per file, most suspicious study first: the predict command's columns, then the study and status.

    ``path`` is the uploaded file's name (inside an archive: ``archive.zip/inner/name``); ``study`` is the
    line's rank ("Study 1" ...), never a DICOM identifier.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rank, line in enumerate(study_lines(items), start=1):
        for item in line.items:
            prediction = item.prediction
            in_distribution = "" if prediction is None or prediction.in_distribution is None else \
                str(bool(prediction.in_distribution)).lower()
            writer.writerow([
                item.name,
                "" if prediction is None else f"{prediction.probability_fractured:.6f}",
                "" if prediction is None else prediction.decision,
                in_distribution,
                f"Study {rank}", len(line.items),
                "scored" if prediction is not None else "not scored",
                item.problem or "",
                model_version,
            ])
    return out.getvalue()
