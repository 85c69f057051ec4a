"""One read as a one-page PDF (fpdf2): the radiograph and its heatmap, the result and the model that gave it.

The report holds no DICOM attribute at all: it is made from the decoded pixels, the prediction, the heatmap
and the model card. The file name appears only when the caller passes it (the user ticked "include file
name"). The PDF's metadata names the producer and the creation date, nothing else.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime

import cv2
import numpy as np
from fpdf import FPDF

TITLE = "Fracture Lens case report"
DISCLAIMER = (
    "Decision support, not a diagnosis. Fracture Lens is a research and teaching tool. A clinician reads the "
    "radiograph and decides; the model can miss fractures and can flag normal bone."
)
THRESHOLD_RULES = {
    "youden": "the point on the validation ROC curve that maximises sensitivity + specificity (Youden's J)",
}
PANEL_SIDE_PX = 900
"""Each picture is embedded with its long side at most this many pixels (JPEG), enough for print."""


def threshold_rule(card: dict) -> str:
    """How the operating threshold was chosen, in words (from the model card's ``operating_threshold_rule``)."""
    rule = card.get("operating_threshold_rule", "")
    return THRESHOLD_RULES.get(rule, f"the rule '{rule}'")


@dataclass(frozen=True)
class CaseReport:
    """What one report says. ``pixels``: the radiograph as read (2-D float in [0, 1]); ``overlay_rgb``: the
    heatmap over it (RGB uint8, same size); ``pointing``: the method's measured pointing figure in a sentence."""

    pixels: np.ndarray
    overlay_rgb: np.ndarray | None
    probability_fractured: float
    decision: str
    operating_threshold: float
    card: dict
    model_sha256: str
    method: str | None = None
    pointing: str | None = None
    out_of_distribution_note: str | None = None
    file_name: str | None = None
    created: datetime | None = None


def _latin1(text: str) -> str:
    """The PDF's core font covers Latin-1; anything else (e.g. in a file name) is shown as '?'."""
    return text.replace("\u2013", "-").replace("\u2014", "-").replace("\u2019", "'").encode(
        "latin-1", "replace").decode("latin-1")


def _jpeg(image: np.ndarray) -> io.BytesIO:
    """A JPEG (quality 90) of a grayscale float image in [0, 1] or an RGB uint8 image, long side <= PANEL_SIDE_PX."""
    if image.dtype != np.uint8:
        image = np.clip(image * 255.0, 0, 255).astype(np.uint8)
    scale = min(1.0, PANEL_SIDE_PX / max(image.shape[:2]))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("could not encode the report image")
    return io.BytesIO(encoded.tobytes())


def case_report_pdf(report: CaseReport) -> bytes:
    """The one-page A4 PDF of ``report``."""
    created = report.created or datetime.now(UTC)
    card = report.card
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=False)
    pdf.set_margins(15, 15, 15)
    pdf.set_creation_date(created)
    pdf.add_page()
    width = pdf.epw

    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(width, 9, TITLE, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(width, 5, _latin1(f"Created {created.strftime('%Y-%m-%d %H:%M %Z').strip()}"),
             new_x="LMARGIN", new_y="NEXT")
    if report.file_name:
        pdf.cell(width, 5, _latin1(f"File: {report.file_name}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)

    # the radiograph and the heatmap overlay side by side, each in a box of half the width
    gap = 6
    box_width = (width - gap) / 2 if report.overlay_rgb is not None else width
    height, image_width = report.pixels.shape[:2]
    box_height = min(110.0, box_width * height / image_width)
    drawn_width = box_height * image_width / height
    top = pdf.get_y()
    pdf.image(_jpeg(report.pixels), x=pdf.l_margin + (box_width - drawn_width) / 2, y=top, w=drawn_width, h=box_height)
    if report.overlay_rgb is not None:
        pdf.image(_jpeg(report.overlay_rgb), x=pdf.l_margin + box_width + gap + (box_width - drawn_width) / 2, y=top,
                  w=drawn_width, h=box_height)
    pdf.set_y(top + box_height + 1)
    pdf.set_font("Helvetica", "I", 8)
    pdf.cell(box_width, 4, "Radiograph as read", align="C")
    if report.overlay_rgb is not None:
        pdf.set_x(pdf.l_margin + box_width + gap)
        pdf.cell(box_width, 4, _latin1(f"{report.method} heatmap over the radiograph (red: most influence)"), align="C")
    pdf.ln(8)

    fractured = report.decision == "fractured"
    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(width, 7, _latin1(f"Probability of fracture: {report.probability_fractured:.0%}   "
                               f"Decision: {'FRACTURE SUSPECTED' if fractured else 'no fracture detected'}"),
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    lines = [
        f"Operating threshold {report.operating_threshold:.3f}, chosen on the validation split as "
        f"{threshold_rule(card)}; the decision is 'fractured' when the probability is at least the threshold.",
    ]
    if report.out_of_distribution_note:
        lines.append(f"Note: {report.out_of_distribution_note}")
    if report.method:
        lines.append(f"Heatmap method: {report.method}. " + (report.pointing or
                     "No measured pointing figure is stored for this method."))
    for line in lines:
        pdf.multi_cell(width, 5, _latin1(line), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)

    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(width, 5, "Model", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    code_version = (card.get("training") or {}).get("code_version", "not recorded")
    pdf.multi_cell(width, 5, _latin1(
        f"{card.get('name', 'unnamed model')}; model version {report.model_sha256[:12]}; "
        f"code version {code_version}; input {card.get('input_size', '?')} px."), new_x="LMARGIN", new_y="NEXT")

    pdf.set_y(-32)
    pdf.set_font("Helvetica", "B", 10)
    pdf.multi_cell(width, 5, _latin1(DISCLAIMER), border=1, padding=2, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
