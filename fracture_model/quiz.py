"""A class quiz over the stored test cases: which cases, in which order, was the click on the fracture, the score.

Everything here reads the stored evaluation (``<model-dir>/evaluation/``) and never the model: the teach
page runs without loading TensorFlow. The evaluation's case images show the radiologists' boxes, which
would give the answer away, so the quiz has its own material beside them, written by
``python -m fracture_model.evaluate`` (or, for an evaluation made before the quiz existed, by
``python -m fracture_model.quiz --data <FracAtlas folder>``):

- ``evaluation/quiz/cases.csv``: per test image its size in pixels and its fracture boxes (COCO
  ``[left, top, width, height]`` in those pixels, as JSON), the coordinates the pointing game uses;
- ``evaluation/quiz/<image>.jpg``: the radiograph alone (no boxes, no heatmap), long side at most
  ``QUIZ_IMAGE_SIDE`` px.

A quiz is fixed by its ``QuizSettings`` (seed, number of cases, filters), which travel in a share link's
query parameters, so every device that opens the link gets the same cases in the same order.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import cv2
import numpy as np
import pandas as pd

from fracture_model.imaging import InputError
from fracture_model.localisation import POINTING_TOLERANCE_PX, Box
from fracture_model.model_card import DEFAULT_MODEL_DIR, EVALUATION_DIR, PREDICTIONS_FILE

QUIZ_DIR = "quiz"
"""Folder of the quiz material inside ``evaluation/``."""
QUIZ_CASES_FILE = "cases.csv"
QUIZ_IMAGE_SIDE = 384
"""Long side of a stored quiz radiograph, in pixels (the working copy's images are at most 512)."""
QUIZ_JPEG_QUALITY = 85

MAX_CASES = 50
"""Most cases in one quiz (and the bound on the ``cases`` query parameter)."""
DEFAULT_CASES = 10
MAX_SEED = 2**32 - 1
HARD_MARGIN = 0.05
"""A 'hard case' is one the model got wrong, or whose probability lies within this of the operating threshold."""
IMPLANT_CHOICES = ("any", "with", "without")


class QuizLinkError(InputError):
    """A share link whose quiz settings cannot be read (one sentence for the person who opened it)."""


class QuizMaterialMissing(FileNotFoundError):
    """The stored evaluation has no quiz material (an evaluation made before the quiz existed)."""


# --- the cases ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuizCase:
    """One stored test case, as the quiz needs it. Box coordinates are pixels of the radiograph (``width``)."""

    image_id: str
    body_part: str
    implant: bool
    fractured: bool
    probability_fractured: float
    model_decision: str
    """"fractured" or "not fractured", at the operating threshold of the stored evaluation."""
    radiograph: Path
    """The radiograph alone (no boxes), for the question."""
    case_image: Path | None
    """The evaluation's case image: the radiograph with the boxes beside the Grad-CAM overlay (or None)."""
    width: int
    height: int
    boxes: tuple[Box, ...]
    heatmap_hit: bool | None
    """Did the stored Grad-CAM peak lie within the pointing tolerance of a box? None: not measured."""

    @property
    def model_says_fractured(self) -> bool:
        return self.model_decision == "fractured"

    @property
    def model_correct(self) -> bool:
        return self.model_says_fractured == self.fractured


def load_quiz_cases(evaluation_dir: Path | str) -> list[QuizCase]:
    """Every stored test case that has quiz material, sorted by image ID.

    Raises ``QuizMaterialMissing`` when the evaluation (or its quiz material) is not there.
    """
    folder = Path(evaluation_dir)
    material = folder / QUIZ_DIR / QUIZ_CASES_FILE
    if not (folder / PREDICTIONS_FILE).exists() or not material.exists():
        raise QuizMaterialMissing(f"no quiz material in {folder}")
    predictions = pd.read_csv(folder / PREDICTIONS_FILE, keep_default_na=False, dtype={"image_id": str})
    geometry = pd.read_csv(material, keep_default_na=False, dtype={"image_id": str, "image_file": str})
    joined = predictions.merge(geometry, on="image_id", how="inner", validate="one_to_one")
    cases = []
    for row in joined.itertuples(index=False):
        hit = getattr(row, "pointing_hit", "")
        case_image = getattr(row, "case_image", "")
        cases.append(QuizCase(
            image_id=row.image_id,
            body_part=str(row.body_part),
            implant=int(row.hardware) == 1,
            fractured=int(row.fractured) == 1,
            probability_fractured=float(row.probability_fractured),
            model_decision=str(row.decision),
            radiograph=folder / QUIZ_DIR / row.image_file,
            case_image=folder / case_image if case_image else None,
            width=int(row.width),
            height=int(row.height),
            boxes=tuple(Box.from_coco(box) for box in json.loads(row.boxes)),
            heatmap_hit=None if hit in ("", None) or pd.isna(hit) else bool(int(float(hit))),
        ))
    return sorted(cases, key=lambda case: case.image_id)


# --- the settings a share link carries ---------------------------------------------------------------------

@dataclass(frozen=True)
class QuizSettings:
    """What fixes a quiz: the seed, how many cases, and the filters. Empty ``body_parts``: every body part."""

    seed: int
    cases: int = DEFAULT_CASES
    body_parts: tuple[str, ...] = ()
    implant: str = "any"
    hard: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.seed <= MAX_SEED:
            raise QuizLinkError(f"The quiz number must be a whole number from 0 to {MAX_SEED}.")
        if not 1 <= self.cases <= MAX_CASES:
            raise QuizLinkError(f"The number of cases must be between 1 and {MAX_CASES}.")
        if self.implant not in IMPLANT_CHOICES:
            raise QuizLinkError("The implant filter must be 'any', 'with' or 'without'.")
        object.__setattr__(self, "body_parts", tuple(sorted(set(self.body_parts))))

    def to_query(self) -> dict[str, str]:
        """The query parameters of the share link (only the filters that are set)."""
        query = {"quiz": str(self.seed), "cases": str(self.cases)}
        if self.body_parts:
            query["parts"] = ",".join(self.body_parts)
        if self.implant != "any":
            query["implant"] = self.implant
        if self.hard:
            query["hard"] = "1"
        return query

    @classmethod
    def from_query(cls, query: Mapping[str, str | Sequence[str]]) -> QuizSettings | None:
        """The settings in a share link's query parameters; None when the link names no quiz.

        Raises ``QuizLinkError`` with one sentence for a value that cannot be read.
        """
        def value(name: str) -> str | None:
            found = query.get(name)
            if found is None:
                return None
            if not isinstance(found, str):  # a repeated parameter: the last one counts, as in Streamlit
                found = list(found)[-1] if len(found) else ""
            return found.strip()[:200]

        seed = value("quiz")
        if seed is None:
            return None
        if not re.fullmatch(r"\d{1,10}", seed):
            raise QuizLinkError(f"The quiz number must be a whole number from 0 to {MAX_SEED}.")
        count = value("cases")
        if count is not None and not re.fullmatch(r"\d{1,3}", count):
            raise QuizLinkError(f"The number of cases must be between 1 and {MAX_CASES}.")
        parts = value("parts")
        body_parts: tuple[str, ...] = ()
        if parts:
            body_parts = tuple(part.strip().lower() for part in parts.split(",") if part.strip())
            if len(body_parts) > 20 or not all(re.fullmatch(r"[a-z_]{1,30}", part) for part in body_parts):
                raise QuizLinkError("The body parts in the link must be names such as 'hand,leg'.")
        hard = value("hard")
        if hard not in (None, "0", "1"):
            raise QuizLinkError("The hard-cases setting in the link must be 0 or 1.")
        return cls(seed=int(seed), cases=DEFAULT_CASES if count is None else int(count), body_parts=body_parts,
                   implant=(value("implant") or "any").lower(), hard=hard == "1")

    def check_body_parts(self, known: Sequence[str]) -> None:
        """Raise ``QuizLinkError`` when the settings name a body part the stored test cases do not have."""
        unknown = [part for part in self.body_parts if part not in known]
        if unknown:
            raise QuizLinkError(f"The test cases have no body part '{unknown[0]}'; they have {', '.join(known)}.")


def share_link(base_url: str, settings: QuizSettings) -> str:
    """``base_url`` (the teach page's address, e.g. ``https://host/teach``) with the quiz's query parameters."""
    return f"{base_url.split('?', 1)[0]}?{urlencode(settings.to_query())}"


# --- choosing the cases -------------------------------------------------------------------------------------

def is_hard(case: QuizCase, threshold: float, margin: float = HARD_MARGIN) -> bool:
    """The model got it wrong, or its probability lies within ``margin`` of the operating threshold."""
    return not case.model_correct or abs(case.probability_fractured - threshold) <= margin


def matching_cases(cases: Sequence[QuizCase], settings: QuizSettings, threshold: float) -> list[QuizCase]:
    """The cases the settings' filters let through, sorted by image ID."""
    kept = [
        case for case in cases
        if (not settings.body_parts or case.body_part in settings.body_parts)
        and (settings.implant == "any" or case.implant == (settings.implant == "with"))
        and (not settings.hard or is_hard(case, threshold))
    ]
    return sorted(kept, key=lambda case: case.image_id)


def choose_cases(cases: Sequence[QuizCase], settings: QuizSettings, threshold: float) -> list[QuizCase]:
    """The quiz: ``settings.cases`` of the matching cases in an order fixed by ``settings.seed``.

    The same stored cases and settings give the same quiz on every device. Fewer cases come back when
    fewer match.
    """
    pool = matching_cases(cases, settings, threshold)
    order = np.random.default_rng(settings.seed).permutation(len(pool))
    return [pool[i] for i in order[: settings.cases]]


# --- the click and the score --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClickCheck:
    """Where a click fell on the radiograph (its pixels) and how far from the nearest box."""

    x: float
    y: float
    distance_px: float
    """Distance to the nearest box in pixels of the radiograph: 0 inside a box, inf when it has none."""
    hit: bool
    """Within ``POINTING_TOLERANCE_PX`` of a box: the pointing game's rule for a heatmap's peak."""


def click_position(case: QuizCase, click_x: float, click_y: float, shown_width: float,
                   shown_height: float) -> tuple[float, float]:
    """The radiograph pixel coordinates (continuous) of a click at (``click_x``, ``click_y``) on the image shown
    ``shown_width`` x ``shown_height`` px: the centre of the clicked screen pixel, scaled to the radiograph."""
    if shown_width <= 0 or shown_height <= 0:
        raise ValueError("the shown image has no size")
    x = min(max((click_x + 0.5) * case.width / shown_width, 0.0), float(case.width))
    y = min(max((click_y + 0.5) * case.height / shown_height, 0.0), float(case.height))
    return x, y


def check_click(case: QuizCase, x: float, y: float, tolerance: float = POINTING_TOLERANCE_PX) -> ClickCheck:
    """Is the point (``x``, ``y``), in radiograph pixels, within ``tolerance`` px of one of the case's boxes?"""
    distance = min((box.distance_to(x, y) for box in case.boxes), default=math.inf)
    return ClickCheck(x=x, y=y, distance_px=distance, hit=distance <= tolerance)


@dataclass
class Answer:
    """A student's answer to one case (kept in the session only)."""

    fractured: bool | None = None
    click: tuple[float, float] | None = None
    """Where they pointed, in radiograph pixels."""
    revealed: bool = False


@dataclass(frozen=True)
class QuizScore:
    cases: int
    answered: int
    student_correct: int
    model_correct: int
    """The model's correct calls on the same cases the student answered."""
    pointed: int
    """Cases with a fracture box on which the student clicked."""
    pointed_hits: int
    heatmap_cases: int
    """Of those same cases, how many have a stored Grad-CAM pointing result ..."""
    heatmap_hits: int
    """... and how many of those the Grad-CAM peak hit."""
    unanswered: tuple[str, ...] = field(default=())


def score_quiz(cases: Sequence[QuizCase], answers: Mapping[str, Answer]) -> QuizScore:
    """The student's calls and clicks against the labels and boxes, beside the model's on the same cases."""
    answered = [case for case in cases if (answer := answers.get(case.image_id)) and answer.fractured is not None]
    pointed = [case for case in cases if case.boxes and (answer := answers.get(case.image_id)) and answer.click]
    measured = [case for case in pointed if case.heatmap_hit is not None]
    return QuizScore(
        cases=len(cases),
        answered=len(answered),
        student_correct=sum(answers[case.image_id].fractured == case.fractured for case in answered),
        model_correct=sum(case.model_correct for case in answered),
        pointed=len(pointed),
        pointed_hits=sum(check_click(case, *answers[case.image_id].click).hit for case in pointed),
        heatmap_cases=len(measured),
        heatmap_hits=sum(bool(case.heatmap_hit) for case in measured),
        unanswered=tuple(case.image_id for case in cases if case not in answered),
    )


# --- writing the material -----------------------------------------------------------------------------------

def quiz_image(pixels: np.ndarray, side: int = QUIZ_IMAGE_SIDE) -> np.ndarray:
    """The radiograph (2-D, 0..1) as 8-bit grayscale with its long side at most ``side`` px (never enlarged)."""
    scale = min(1.0, side / max(pixels.shape))
    size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
    small = cv2.resize(pixels.astype(np.float32), size, interpolation=cv2.INTER_AREA) if scale < 1.0 else pixels
    return np.clip(np.asarray(small) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def write_quiz_material(test: pd.DataFrame, images_dir: Path, boxes: Mapping[str, Sequence[Box]],
                        evaluation_dir: Path) -> Path:
    """Write ``evaluation/quiz/`` for the test cases in ``test`` (columns ``image_id``, ``path``, ``fractured``).

    ``images_dir`` holds the radiographs at ``path``; ``boxes`` maps an image ID to its fracture boxes in
    that image's pixels (as ``localisation.load_boxes`` reads them). Only fractured images keep their boxes,
    as in the pointing game. Replaces any earlier quiz material.
    """
    from fracture_model.imaging import read_radiograph

    out = Path(evaluation_dir) / QUIZ_DIR
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rows = []
    for row in test.itertuples(index=False):
        pixels = read_radiograph((Path(images_dir) / row.path).read_bytes()).pixels
        name = f"{Path(row.image_id).stem}.jpg"
        cv2.imwrite(str(out / name), quiz_image(pixels), [cv2.IMWRITE_JPEG_QUALITY, QUIZ_JPEG_QUALITY])
        case_boxes = boxes.get(row.image_id, ()) if int(row.fractured) == 1 else ()
        rows.append({
            "image_id": row.image_id, "image_file": name, "width": pixels.shape[1], "height": pixels.shape[0],
            "boxes": json.dumps([[round(value, 2) for value in (box.left, box.top, box.width, box.height)]
                                 for box in case_boxes]),
        })
    pd.DataFrame(rows, columns=["image_id", "image_file", "width", "height", "boxes"]).to_csv(
        out / QUIZ_CASES_FILE, index=False)
    return out


def main(argv: list[str] | None = None) -> int:
    """Add quiz material to an existing evaluation (``python -m fracture_model.evaluate`` writes it itself)."""
    from fracture_model.localisation import ANNOTATIONS_FILE, load_boxes

    parser = argparse.ArgumentParser(
        prog="python -m fracture_model.quiz",
        description="Write evaluation/quiz/ (radiographs without boxes, box coordinates) for the teach page.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=DEFAULT_MODEL_DIR.parents[2] / "shared" / "datasets" / "fracatlas",
                        help="FracAtlas folder (images/ and annotations/)")
    args = parser.parse_args(argv)
    evaluation = args.model_dir / EVALUATION_DIR
    predictions = evaluation / PREDICTIONS_FILE
    if not predictions.exists():
        parser.error(f"no stored evaluation at {evaluation}: run python -m fracture_model.evaluate first")
    annotations = args.data / ANNOTATIONS_FILE
    if not annotations.exists():
        parser.error(f"no fracture boxes at {annotations}")
    test = pd.read_csv(predictions, keep_default_na=False)
    out = write_quiz_material(test, args.data / "images", load_boxes(annotations), evaluation)
    print(f"wrote quiz material for {len(test)} test cases to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
