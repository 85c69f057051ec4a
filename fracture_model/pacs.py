"""Fracture Lens in the PACS: find radiograph studies over DICOMweb, score them, store the result back as DICOM.

    python -m fracture_model.pacs --url https://pacs.example/dicom-web score STUDY_UID [STUDY_UID ...]
    python -m fracture_model.pacs --url https://pacs.example/dicom-web score --unscored [--since 20261101]

Each CR or DX image of a study is fetched (WADO-RS) as the bytes the PACS holds and read through the same
path as the app (``imaging.read_radiograph`` -> ``Predictor``, Grad-CAM from ``explain.Explainer``). Two new
series go back into the study (STOW-RS):

* a Comprehensive SR (TID 1500 measurement report), one measurement group per image: P(fractured) and the
  operating threshold (TID 300 measurements, algorithm = the model's name and version), the decision
  (fracture of bone: present or absent) and a reference to the source image;
* one Secondary Capture per image: the radiograph with the Grad-CAM overlay and a banner with the
  probability, the decision and the words "Decision support - not a diagnosis" burned in.

Both name Fracture Lens in the Series Description and carry Manufacturer, Manufacturer's Model Name (the
model card's name) and Software Versions (model version and training code version). Of the source they
copy only what DICOM requires of every object in a study: the Patient and General Study attributes of
type 1 and 2 (`REQUIRED_PATIENT_AND_STUDY`); nothing else of the patient's.

An image that already has a Fracture Lens report in its study is not scored again. Credentials come from
the environment (`ENV_USER` and `ENV_PASSWORD` for HTTP basic, or `ENV_TOKEN` for a bearer token, and
`ENV_CA_BUNDLE` for a hospital's certificate authority); they are sent only over HTTPS or to this
machine, and never printed or logged. Nothing is written to disk; nothing of a patient's is logged.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import functools
import io
import ipaddress
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import cv2
import highdicom as hd
import numpy as np
import pydicom
import requests
from dicomweb_client import DICOMwebClient
from dicomweb_client.web import _Transaction
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from fracture_model.imaging import InputError, looks_like_radiograph, read_radiograph

ENV_URL = "FRACTURE_LENS_DICOMWEB_URL"
ENV_USER = "FRACTURE_LENS_DICOMWEB_USER"
ENV_PASSWORD = "FRACTURE_LENS_DICOMWEB_PASSWORD"
ENV_TOKEN = "FRACTURE_LENS_DICOMWEB_TOKEN"
ENV_CA_BUNDLE = "FRACTURE_LENS_DICOMWEB_CA_BUNDLE"

MANUFACTURER = "Fracture Lens"
DISCLAIMER = "Decision support - not a diagnosis"
REPORT_SERIES_DESCRIPTION = "Fracture Lens report - decision support, not a diagnosis"
HEATMAP_SERIES_DESCRIPTION = "Fracture Lens heatmaps - decision support, not a diagnosis"
RADIOGRAPH_MODALITIES = ("CR", "DX")
REPORT_SERIES_NUMBER, HEATMAP_SERIES_NUMBER = 9701, 9702
MAX_CAPTURE_SIDE = 1024
"""Longest side of a secondary capture, in pixels (larger radiographs are shrunk for it)."""
MIN_CAPTURE_WIDTH = 512
"""Narrower radiographs are enlarged for their capture so that the banner's words stay legible."""

REQUIRED_PATIENT_AND_STUDY = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
)
"""Patient module and General Study module attributes of type 1 or 2: every object of the study must carry
them (a type 2 attribute may be empty), so the results are filed with the right patient and study."""

FRACTURE = hd.sr.CodedConcept("125605004", "SCT", "Fracture of bone")
_UNITLESS = codes.UCUM.NoUnits
_TIMEOUT_S = 60

# DICOM JSON tags used in QIDO-RS answers.
_STUDY_UID, _SERIES_UID, _SOP_UID = "0020000D", "0020000E", "00080018"
_STUDY_DATE, _MODALITIES, _STUDY_IMAGES = "00080020", "00080061", "00201208"
_MODALITY, _SERIES_DESCRIPTION, _BODY_PART, _SERIES_IMAGES = "00080060", "0008103E", "00180015", "00201209"
_PATIENT_NAME, _PATIENT_ID = "00100010", "00100020"


class PacsError(Exception):
    """The PACS cannot be reached or refused a request; the message is one sentence for the user."""


# ----------------------------------------------------------------------------------------------
# Connection
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """HTTP basic (username and password) or a bearer token; never shown by ``repr``."""

    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Credentials:
        return cls(environ.get(ENV_USER) or None, environ.get(ENV_PASSWORD) or None, environ.get(ENV_TOKEN) or None)

    @property
    def given(self) -> bool:
        return bool(self.username or self.password or self.token)


def connect(url: str, credentials: Credentials | None = None, ca_bundle: str | None = None) -> DICOMwebClient:
    """A DICOMweb client for the service at ``url`` (its root, e.g. ``https://pacs/dicom-web``).

    Raises:
        PacsError: The URL is not an http(s) address, holds credentials, or credentials would travel
            unencrypted to another machine.
    """
    credentials = credentials or Credentials()
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PacsError("The DICOMweb address must start with http:// or https:// and name a server.")
    if parts.username or parts.password:
        raise PacsError(
            f"Put the PACS credentials in {ENV_USER} and {ENV_PASSWORD} (or {ENV_TOKEN}), not in the address."
        )
    if credentials.given and parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise PacsError("Credentials are sent only over https:// (or to this machine); the address uses http://.")
    if credentials.token and (credentials.username or credentials.password):
        raise PacsError(f"Set either {ENV_TOKEN} or {ENV_USER} and {ENV_PASSWORD}, not both.")
    if bool(credentials.username) != bool(credentials.password):
        raise PacsError(f"Set both {ENV_USER} and {ENV_PASSWORD} for HTTP basic authentication.")
    session = requests.Session()
    session.trust_env = False  # no .netrc or proxy credentials picked up behind the user's back
    if credentials.token:
        session.headers["Authorization"] = f"Bearer {credentials.token}"
    elif credentials.username:
        session.auth = (credentials.username, credentials.password)
    if ca_bundle:
        session.verify = ca_bundle
    client = _Client(url.strip().rstrip("/"), session=session, timeout=_TIMEOUT_S)
    # dicomweb-client retries every failed request (a refused connection too) 5 times, waiting up to 16 s in
    # between: 30 s before saying that a server is down. Three tries, 1 s and 2 s apart, ride out a blip.
    client.set_http_retry_params(retry=True, max_attempts=3, wait_exponential_multiplier=500)
    return client


def connect_from_environment(url: str | None = None, environ: Mapping[str, str] = os.environ) -> DICOMwebClient:
    """`connect` with the address (unless given), credentials and CA bundle from environment variables."""
    url = url or environ.get(ENV_URL)
    if not url:
        raise PacsError(f"No DICOMweb address: pass --url or set {ENV_URL}.")
    return connect(url, Credentials.from_environment(environ), environ.get(ENV_CA_BUNDLE) or None)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Client(DICOMwebClient):
    def retrieve_instance_bytes(self, study_uid: str, series_uid: str, sop_uid: str) -> bytes:
        """The instance exactly as the PACS holds it (WADO-RS, any transfer syntax).

        ``retrieve_instance`` parses the bytes with pydicom without ``force``, which fails on a file
        stored without the 128-byte preamble; the app's reader (`read_radiograph`) takes both, so the
        raw part is fetched through dicomweb-client's own multipart reader (dicomweb-client 0.61;
        tests/test_pacs.py stores an instance without preamble to keep this honest).
        """
        url = self._get_instances_url(_Transaction.RETRIEVE, study_uid, series_uid, sop_uid)
        accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
        response = self._http_get(url, headers={"Accept": accept})
        if response.headers.get("Content-Type", "").startswith("application/dicom"):  # a server skipping multipart
            return response.content
        parts = list(self._decode_multipart_message(response, stream=False))
        if len(parts) != 1:
            raise PacsError(f"The PACS returned {len(parts)} objects for one image instead of one.")
        return bytes(parts[0])  # dicomweb-client hands parts over as bytearray


@contextlib.contextmanager
def _talking_to_pacs(what: str) -> Iterator[None]:
    """Turn what `requests` raises into one sentence (without the URL, which holds UIDs and queries)."""
    try:
        yield
    except requests.exceptions.SSLError:
        raise PacsError(
            f"The PACS's certificate could not be verified while {what}; if the hospital has its own "
            f"certificate authority, point {ENV_CA_BUNDLE} at its certificate file."
        ) from None
    except requests.exceptions.ConnectionError:
        raise PacsError(f"The PACS could not be reached while {what}; check the address and the network.") from None
    except requests.exceptions.Timeout:
        raise PacsError(f"The PACS did not answer within {_TIMEOUT_S} s while {what}.") from None
    except requests.exceptions.HTTPError as error:
        status = error.response.status_code if error.response is not None else "error"
        if status in (401, 403):
            raise PacsError(
                f"The PACS refused access (HTTP {status}) while {what}; check {ENV_USER} and {ENV_PASSWORD} "
                f"(or {ENV_TOKEN})."
            ) from None
        raise PacsError(f"The PACS answered HTTP {status} while {what}.") from None


# ----------------------------------------------------------------------------------------------
# Finding studies (QIDO-RS)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudySummary:
    """What the study list shows. Patient name and ID are filled only when asked for (``with_patient``)."""

    study_uid: str
    date: str
    """YYYY-MM-DD, or empty when the study has no date."""
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    images: int
    """Instances in the study's CR and DX series."""
    scored: bool
    """The study already holds a Fracture Lens report."""
    patient_name: str | None = None
    patient_id: str | None = None


def find_studies(
    client: DICOMwebClient,
    *,
    since: datetime.date | None = None,
    until: datetime.date | None = None,
    modalities: Iterable[str] = RADIOGRAPH_MODALITIES,
    unscored_only: bool = False,
    limit: int = 50,
    with_patient: bool = False,
) -> list[StudySummary]:
    """Studies holding radiographs (modality CR or DX by default), newest first.

    ``since``/``until`` bound the study date (inclusive); ``limit`` caps how many studies are asked for
    in one search (paging with ``offset`` is not used: Orthanc 1.10 ignores it for this search, and
    dicomweb-client's ``get_remaining`` then never ends); ``unscored_only`` keeps those without a
    Fracture Lens report.
    """
    filters: dict[str, object] = {"ModalitiesInStudy": list(modalities)}
    if since or until:
        filters["StudyDate"] = f"{since:%Y%m%d}" if since else ""
        filters["StudyDate"] += "-" + (f"{until:%Y%m%d}" if until else "")
    fields = ["StudyDate", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"]
    with _talking_to_pacs("searching for studies"):
        found = client.search_for_studies(
            search_filters=filters, fields=fields, limit=limit
        )
    summaries, seen = [], set()
    for study in found:
        study_uid = _value(study, _STUDY_UID)
        if not study_uid or study_uid in seen:
            continue
        seen.add(study_uid)
        series = list_series(client, study_uid)
        radiographs = [item for item in series if item.modality in RADIOGRAPH_MODALITIES]
        summary = StudySummary(
            study_uid=study_uid,
            date=_iso_date(_value(study, _STUDY_DATE)),
            modalities=tuple(sorted({item.modality for item in series if not item.is_result and item.modality})),
            body_parts=tuple(sorted({item.body_part for item in radiographs if item.body_part})),
            images=sum(item.instances for item in radiographs),
            scored=any(item.is_report for item in series),
            patient_name=_person_name(study) if with_patient else None,
            patient_id=_value(study, _PATIENT_ID) if with_patient else None,
        )
        if not (unscored_only and summary.scored):
            summaries.append(summary)
    return sorted(summaries, key=lambda summary: summary.date, reverse=True)


@dataclass(frozen=True)
class SeriesSummary:
    series_uid: str
    modality: str
    description: str
    body_part: str
    instances: int

    @property
    def is_report(self) -> bool:
        return self.modality == "SR" and self.description == REPORT_SERIES_DESCRIPTION

    @property
    def is_result(self) -> bool:
        """One of the two series Fracture Lens stores."""
        return self.is_report or self.description == HEATMAP_SERIES_DESCRIPTION


def list_series(client: DICOMwebClient, study_uid: str) -> list[SeriesSummary]:
    with _talking_to_pacs("listing the series of a study"):
        found = client.search_for_series(
            study_uid, fields=["Modality", "SeriesDescription", "BodyPartExamined", "NumberOfSeriesRelatedInstances"]
        )
    return [
        SeriesSummary(
            series_uid=_value(item, _SERIES_UID),
            modality=(_value(item, _MODALITY) or "").upper(),
            description=_value(item, _SERIES_DESCRIPTION) or "",
            body_part=(_value(item, _BODY_PART) or "").upper(),
            instances=int(_value(item, _SERIES_IMAGES) or 0),
        )
        for item in found
        if _value(item, _SERIES_UID)
    ]


def _value(item: Mapping, tag: str):
    """The first value of ``tag`` in a DICOM JSON object, or None."""
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


def _person_name(item: Mapping) -> str | None:
    name = _value(item, _PATIENT_NAME)
    return name.get("Alphabetic") if isinstance(name, dict) else name


def _iso_date(value: str | None) -> str:
    if not value or len(value) != 8 or not value.isdigit():
        return ""
    return f"{value[:4]}-{value[4:6]}-{value[6:]}"


# ----------------------------------------------------------------------------------------------
# Scoring a study (WADO-RS -> imaging -> predictor -> Grad-CAM)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredImage:
    source: Dataset
    """The source image's identity and the patient and study attributes DICOM requires, nothing else."""
    prediction: object
    """`fracture_model.predictor.Prediction`."""
    capture: np.ndarray
    """RGB uint8: the overlay with the burned-in banner, as the secondary capture stores it."""

    @property
    def sop_instance_uid(self) -> str:
        return str(self.source.SOPInstanceUID)


@dataclass
class StudyResult:
    study_uid: str
    scored: list[ScoredImage] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """One sentence per image that could not be scored (or for the study, if it could not be read)."""
    notes: list[str] = field(default_factory=list)
    """One sentence per series that was left out because it holds no radiographs."""
    already_scored: list[str] = field(default_factory=list)
    """SOP Instance UIDs that already have a Fracture Lens report, not scored again."""


def score_study(
    client: DICOMwebClient,
    study_uid: str,
    predictor,
    explainer,
    *,
    run_model: Callable[[Callable[[], object]], object] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> StudyResult:
    """Score every CR and DX image of the study that has no Fracture Lens report yet.

    ``run_model(call)`` (optional) runs each image's model call (prediction and heatmap), e.g. on the app's
    model thread (``serving.ModelService.run``); ``progress(done, total)`` is called after each image.
    Raises `PacsError` when the PACS cannot be searched at all.
    """
    result = StudyResult(study_uid)
    series = list_series(client, study_uid)
    if not series:
        result.problems.append(f"Study {study_uid}: the PACS holds no series for this study.")
        return result
    done = reported_instances(client, study_uid, series)
    todo: list[tuple[str, str]] = []
    for item in series:
        if item.is_result:
            continue
        if item.modality not in RADIOGRAPH_MODALITIES:
            result.notes.append(
                f"Study {study_uid}: series {item.series_uid} (modality {item.modality or 'unknown'}) holds no "
                "radiographs (CR or DX) and was not scored."
            )
            continue
        with _talking_to_pacs("listing the images of a series"):
            instances = client.search_for_instances(study_uid, item.series_uid, fields=["SOPInstanceUID"])
        for instance in instances:
            sop_uid = _value(instance, _SOP_UID)
            if sop_uid in done:
                result.already_scored.append(sop_uid)
            elif sop_uid:
                todo.append((item.series_uid, sop_uid))
    for number, (series_uid, sop_uid) in enumerate(sorted(todo), start=1):
        try:
            scored = _score_instance(client, study_uid, series_uid, sop_uid, predictor, explainer, run_model)
            result.scored.append(scored)
        except (InputError, PacsError) as error:
            result.problems.append(f"Study {study_uid}, image {sop_uid}: {error}")
        if progress is not None:
            progress(number, len(todo))
    return result


def _score_instance(client, study_uid, series_uid, sop_uid, predictor, explainer, run_model) -> ScoredImage:
    with _talking_to_pacs("fetching an image"):
        data = client.retrieve_instance_bytes(study_uid, series_uid, sop_uid)
    radiograph = read_radiograph(data)  # the app's reader: same bytes, same pixels
    plausible, reason = looks_like_radiograph(radiograph)
    if not plausible:
        raise InputError(reason)
    try:
        header = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - read_radiograph already accepted it; this is belt and braces
        raise InputError("The DICOM header could not be read.") from None
    source = required_attributes(header)
    if source.get("StudyInstanceUID") != study_uid or source.get("SOPInstanceUID") != sop_uid:
        raise InputError("The object the PACS returned names another study or image than the one asked for.")

    def model_call():
        network_input = predictor.network_input(radiograph.pixels)
        return predictor.predictions(network_input)[0], explainer.explain(network_input, radiograph.pixels.shape)

    prediction, explanation = run_model(model_call) if run_model else model_call()
    capture = result_capture(radiograph.pixels, explanation.heatmap, prediction)
    return ScoredImage(source=source, prediction=prediction, capture=capture)


def required_attributes(header: Dataset) -> Dataset:
    """The source's identity (SOP class and instance, series, modality) and `REQUIRED_PATIENT_AND_STUDY`.

    Absent type 2 attributes become empty values, as DICOM allows; nothing else is copied.
    """
    source = Dataset()
    if "SpecificCharacterSet" in header:
        source.SpecificCharacterSet = header.SpecificCharacterSet
    for keyword in (*REQUIRED_PATIENT_AND_STUDY, "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID", "Modality"):
        value = header.get(keyword)
        setattr(source, keyword, "" if value is None else value)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID"):
        if not source.get(keyword):
            raise InputError(f"The DICOM object lacks its {keyword}, so a result could not refer to it.")
    return source


def result_capture(pixels: np.ndarray, heatmap: np.ndarray, prediction) -> np.ndarray:
    """The radiograph with the Grad-CAM overlay, under a banner: probability, decision, disclaimer (RGB uint8)."""
    from fracture_model.explain import overlay

    image = overlay(pixels, heatmap)
    height, width = image.shape[:2]
    scale = min(1.0, MAX_CAPTURE_SIDE / max(height, width))
    if width * scale < MIN_CAPTURE_WIDTH:
        scale = MIN_CAPTURE_WIDTH / width
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    lines = [
        f"Fracture Lens: P(fractured) {prediction.probability_fractured:.3f}, "
        f"{prediction.decision} at threshold {prediction.operating_threshold:.3f}",
        DISCLAIMER,
    ]
    if getattr(prediction, "in_distribution", None) is False:
        lines.append("Unlike the training radiographs: read with extra care")
    return np.vstack([_banner(lines, image.shape[1]), image])


def _banner(lines: list[str], width: int) -> np.ndarray:
    """White text on black, one row per line, scaled to fit ``width``."""
    font, thickness, margin = cv2.FONT_HERSHEY_SIMPLEX, 1, 8
    widest = max(cv2.getTextSize(line, font, 1.0, thickness)[0][0] for line in lines)
    font_scale = min(0.8, (width - 2 * margin) / widest)
    line_height = int(round(36 * font_scale)) + 4
    banner = np.zeros((line_height * len(lines) + margin, width, 3), dtype=np.uint8)
    for row, line in enumerate(lines, start=1):
        baseline = row * line_height - 4
        cv2.putText(banner, line, (margin, baseline), font, font_scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return banner


# ----------------------------------------------------------------------------------------------
# Writing the results (highdicom) and storing them (STOW-RS)
# ----------------------------------------------------------------------------------------------


def _equipment(card: dict, model_version: str) -> dict:
    """Manufacturer, model name and software versions as every result object carries them."""
    code_version = str(card.get("training", {}).get("code_version") or "unknown")[:12]
    return {
        "manufacturer": MANUFACTURER,
        "manufacturer_model_name": str(card.get("name", MANUFACTURER))[:64],
        "software_versions": [f"model {model_version}", f"code {code_version}"],
    }


def device_uid(model_sha256: str) -> str:
    """A UID for the Fracture Lens device of this model version (the same for every report it writes)."""
    return generate_uid(entropy_srcs=["Fracture Lens", model_sha256])


def build_report(
    scored: list[ScoredImage], card: dict, model_sha256: str, series_uid: str | None = None
) -> hd.sr.ComprehensiveSR:
    """A TID 1500 measurement report: per image P(fractured), the threshold, the decision, the source image."""
    if not scored:
        raise ValueError("no scored images to report")
    model_version = model_sha256[:12]
    algorithm = hd.sr.AlgorithmIdentification(name=str(card.get("name", MANUFACTURER)), version=model_version)
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_uid(model_sha256), name=MANUFACTURER, manufacturer_name=MANUFACTURER,
            model_name=str(card.get("name", MANUFACTURER)), serial_number=model_version,
        ),
    )
    groups = []
    for number, image in enumerate(scored, start=1):
        prediction = image.prediction
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=generate_uid(), identifier=f"Fracture Lens image {number}"),
            finding_type=FRACTURE,
            algorithm_id=algorithm,
            source_images=[hd.sr.SourceImageForMeasurementGroup(
                referenced_sop_class_uid=image.source.SOPClassUID,
                referenced_sop_instance_uid=image.source.SOPInstanceUID)],
            measurements=[
                hd.sr.Measurement(name=codes.DCM.Probability, value=float(prediction.probability_fractured),
                                  unit=_UNITLESS, algorithm_id=algorithm),
                hd.sr.Measurement(name=codes.DCM.ThresholdValue, value=float(prediction.operating_threshold),
                                  unit=_UNITLESS, algorithm_id=algorithm),
            ],
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(
                name=FRACTURE, value=codes.SCT.Present if prediction.fractured else codes.SCT.Absent)],
        ))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=codes.LN.XRUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    return hd.sr.ComprehensiveSR(
        evidence=[image.source for image in scored],
        content=report,
        series_instance_uid=series_uid or generate_uid(),
        series_number=REPORT_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        series_description=REPORT_SERIES_DESCRIPTION,
        is_complete=True,
        is_final=False,  # preliminary: decision support that a clinician has not verified
        **_equipment(card, model_version),
    )


def build_capture(
    image: ScoredImage, card: dict, model_sha256: str, series_uid: str, instance_number: int
) -> hd.sc.SCImage:
    """A Secondary Capture of ``image.capture`` in the source's study, referring to the source image."""
    source = image.source
    capture = hd.sc.SCImage(
        pixel_array=image.capture,
        photometric_interpretation="RGB",
        bits_allocated=8,
        # highdicom asks for an orientation in the patient system; it is replaced by the source's just below.
        coordinate_system="PATIENT",
        patient_orientation=("L", "F"),
        study_instance_uid=source.StudyInstanceUID,
        series_instance_uid=series_uid,
        series_number=HEATMAP_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=instance_number,
        patient_id=source.PatientID, patient_name=source.PatientName, patient_birth_date=source.PatientBirthDate,
        patient_sex=source.PatientSex, accession_number=source.AccessionNumber, study_id=source.StudyID,
        study_date=source.StudyDate, study_time=source.StudyTime,
        referring_physician_name=source.ReferringPhysicianName,
        specific_character_set=source.get("SpecificCharacterSet"),
        series_description=HEATMAP_SERIES_DESCRIPTION,
        transfer_syntax_uid=pydicom.uid.ExplicitVRLittleEndian,
        **_equipment(card, model_sha256[:12]),
    )
    capture.PatientOrientation = ""  # type 2: the banner and resizing leave no patient geometry to claim
    capture.BurnedInAnnotation = "YES"  # the banner's words (no patient identifiers)
    capture.ImageType = ["DERIVED", "SECONDARY"]
    capture.DerivationDescription = "Grad-CAM heatmap of the Fracture Lens model over the radiograph"
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    capture.SourceImageSequence = [reference]
    return capture


def result_objects(result: StudyResult, predictor) -> list[Dataset]:
    """The report and one capture per scored image, ready to store; empty when nothing was scored."""
    if not result.scored:
        return []
    card, sha = predictor.card, predictor.model_sha256
    heatmap_series = generate_uid()
    objects: list[Dataset] = [build_report(result.scored, card, sha)]
    objects += [build_capture(image, card, sha, heatmap_series, number)
                for number, image in enumerate(result.scored, start=1)]
    return objects


def store_results(client: DICOMwebClient, result: StudyResult, predictor) -> int:
    """Store the report and the captures in the study (one STOW-RS request); returns how many objects."""
    objects = result_objects(result, predictor)
    if not objects:
        return 0
    with _talking_to_pacs("storing the results"):
        client.store_instances(objects, study_instance_uid=result.study_uid)
    return len(objects)


def reported_instances(client: DICOMwebClient, study_uid: str, series: list[SeriesSummary] | None = None) -> set[str]:
    """SOP Instance UIDs of the study's images that a stored Fracture Lens report refers to."""
    series = list_series(client, study_uid) if series is None else series
    found: set[str] = set()
    for item in series:
        if not item.is_report:
            continue
        with _talking_to_pacs("reading an earlier Fracture Lens report"):
            instances = client.search_for_instances(study_uid, item.series_uid, fields=["SOPInstanceUID"])
            for instance in instances:
                data = client.retrieve_instance_bytes(study_uid, item.series_uid, _value(instance, _SOP_UID))
                report = pydicom.dcmread(io.BytesIO(data), force=True)
                found |= {reading.sop_instance_uid for reading in read_report(report)}
    return found


@dataclass(frozen=True)
class ReportedImage:
    """One image's reading as a Fracture Lens report states it."""

    sop_instance_uid: str
    probability_fractured: float
    operating_threshold: float
    fractured: bool
    model_name: str
    model_version: str


def read_report(dataset: Dataset) -> list[ReportedImage]:
    """Read a Fracture Lens report (`build_report`) back with highdicom."""
    report = hd.sr.ComprehensiveSR.from_dataset(dataset, copy=False)
    readings = []
    for group in report.content.get_image_measurement_groups():
        (probability,) = group.get_measurements(name=codes.DCM.Probability)
        (threshold,) = group.get_measurements(name=codes.DCM.ThresholdValue)
        (decision,) = group.get_qualitative_evaluations(name=FRACTURE)
        readings.append(ReportedImage(
            sop_instance_uid=str(group.source_images[0].referenced_sop_instance_uid),
            probability_fractured=float(probability.value),
            operating_threshold=float(threshold.value),
            fractured=decision.value == codes.SCT.Present,
            model_name=_text(group, codes.DCM.AlgorithmName),
            model_version=_text(group, codes.DCM.AlgorithmVersion),
        ))
    return readings


def _text(group, name) -> str:
    """The first TEXT item called ``name`` in a measurement group (e.g. the algorithm's name), or ''."""
    found = hd.sr.utils.find_content_items(group[0], name=name, recursive=True)
    return str(found[0].value) if found else ""


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def _date(text: str) -> datetime.date:
    try:
        if text.isdigit():
            return datetime.datetime.strptime(text, "%Y%m%d").date()
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYYMMDD or YYYY-MM-DD)") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fracture_model.pacs",
        description="Score radiograph studies in a PACS over DICOMweb and store each result back into its study.",
        epilog=(f"Credentials: {ENV_USER} and {ENV_PASSWORD} (HTTP basic) or {ENV_TOKEN} (bearer); "
                f"{ENV_CA_BUNDLE}: a certificate authority file for https. They are never printed."),
    )
    parser.add_argument("--url", default=os.environ.get(ENV_URL),
                        help=f"DICOMweb root of the PACS, e.g. https://pacs/dicom-web (default: ${ENV_URL})")
    parser.add_argument("--model-dir", default=None, help="model folder (default: the shipped model)")
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser(
        "score", help="score studies and store the results in them",
        description="Score every CR and DX image of the studies that has no Fracture Lens report yet and store "
                    "a report and a heatmap per image in the study. CSV on stdout: "
                    "study_uid,sop_instance_uid,probability_fractured,decision. Problems: one sentence each on "
                    "stderr, and exit code 1.",
    )
    score.add_argument("studies", nargs="*", metavar="STUDY_UID", help="Study Instance UIDs")
    score.add_argument("--unscored", action="store_true", help="every CR/DX study without a Fracture Lens report")
    find = commands.add_parser(
        "find", help="list CR/DX studies (CSV: study_uid,date,modalities,body_parts,images,scored)")
    find.add_argument("--unscored", action="store_true", help="only studies without a Fracture Lens report")
    for command in (score, find):
        command.add_argument("--since", type=_date, help="first study date (YYYYMMDD), with --unscored or find")
        command.add_argument("--until", type=_date, help="last study date (YYYYMMDD), with --unscored or find")
        command.add_argument("--limit", type=int, default=1000, help="most studies one search returns")
    args = parser.parse_args(argv)
    if args.command == "score" and bool(args.studies) == bool(args.unscored):
        parser.error("name the studies to score or pass --unscored (not both)")

    try:
        client = connect_from_environment(args.url)
        if args.command == "find":
            return _find(client, args)
        return _score(client, args)
    except PacsError as error:
        print(str(error), file=sys.stderr)
        return 1


def _find(client, args) -> int:
    found = find_studies(client, since=args.since, until=args.until, unscored_only=args.unscored, limit=args.limit)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["study_uid", "date", "modalities", "body_parts", "images", "scored"])
    for study in found:
        writer.writerow([study.study_uid, study.date, " ".join(study.modalities), " ".join(study.body_parts),
                         study.images, "yes" if study.scored else "no"])
    return 0


@functools.lru_cache(maxsize=1)
def _load_model(model_dir: str | None):
    """The predictor and its explainer (kept for the next `main` call in the same process)."""
    from fracture_model import native_stderr

    with native_stderr.silenced():  # TensorFlow's start-up notices are not problems with the studies
        from fracture_model.explain import Explainer
        from fracture_model.model_card import DEFAULT_MODEL_DIR
        from fracture_model.predictor import Predictor

        predictor = Predictor.load(model_dir or DEFAULT_MODEL_DIR)
        explainer = Explainer(predictor.model, predictor.card["positive_class"], predictor.card["last_conv_layer"])
    return predictor, explainer


def _score(client, args) -> int:
    studies = args.studies or [
        study.study_uid
        for study in find_studies(client, since=args.since, until=args.until, unscored_only=True, limit=args.limit)
    ]
    predictor, explainer = _load_model(args.model_dir)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["study_uid", "sop_instance_uid", "probability_fractured", "decision"])
    failures = skipped = stored = 0
    for study_uid in studies:
        try:
            result = score_study(client, study_uid, predictor, explainer)
            stored += store_results(client, result, predictor)
        except PacsError as error:
            failures += 1
            print(f"Study {study_uid}: {error}", file=sys.stderr)
            continue
        for note in result.notes:
            print(note, file=sys.stderr)
        for problem in result.problems:
            print(problem, file=sys.stderr)
        failures += len(result.problems)
        skipped += len(result.already_scored)
        for image in result.scored:
            writer.writerow([study_uid, image.sop_instance_uid, f"{image.prediction.probability_fractured:.6f}",
                             image.prediction.decision])
        sys.stdout.flush()
    if skipped:
        print(f"{skipped} image(s) already had a Fracture Lens report and were not scored again.", file=sys.stderr)
    if failures:
        print(f"{failures} image(s) or studies could not be scored.", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
