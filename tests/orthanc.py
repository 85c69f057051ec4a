"""A real Orthanc PACS (Debian's ``orthanc`` + ``orthanc-dicomweb``) for tests, and radiograph studies to put in it.

`running_orthanc` starts ``Orthanc config.json`` as a plain process on a free loopback port, its storage and
index in a temp folder, optionally with HTTP basic authentication, and stops it afterwards. `RadiographStudy`
builds small CR and DX instances from the sample radiographs with pydicom: MONOCHROME1, 16-bit, JPEG Lossless
(transcoded by Orthanc itself, as no Python package here encodes it), one stored without the 128-byte
preamble, one image object without pixels, one non-image object (a text SR), all carrying planted patient
identifiers that must never show up in anything Fracture Lens prints or logs.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGLosslessSV1, generate_uid

from tests.conftest import SAMPLES
from tests.processes import free_port, stop

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")

CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_IMAGE = "1.2.840.10008.5.1.4.1.1.1.1"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"

# Copied into every result, as DICOM requires of every object in the study (never printed or logged):
REQUIRED_IDENTIFIERS = {
    "PatientName": "Zzplanted^Patientname",
    "PatientID": "PLANTEDID4711",
    "PatientBirthDate": "19230405",
    "AccessionNumber": "ACCPLANTED99",
    "ReferringPhysicianName": "Plantedreferrer^Doc",
    "StudyID": "STPLANTED1",
}
# Never copied into a result, never printed or logged:
OTHER_IDENTIFIERS = {
    "OtherPatientIDs": "OTHERPLANTED77",
    "PatientAddress": "1 Plantedlane Street",
    "PatientComments": "plantedcomment about the patient",
    "InstitutionName": "Planted General Hospital",
    "OperatorsName": "Plantedoperator^Olga",
    "StationName": "PLANTEDSTATION",
}
PLANTED = [*REQUIRED_IDENTIFIERS.values(), *OTHER_IDENTIFIERS.values(), "Zzplanted", "PLANTED"]
"""Every planted value, and fragments of them (a name printed in another form still starts with these)."""


@dataclass
class Orthanc:
    url: str
    """Orthanc's REST root, e.g. http://127.0.0.1:PORT"""
    auth: tuple[str, str] | None
    log_path: Path

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def get(self, path: str) -> requests.Response:
        response = requests.get(f"{self.url}{path}", auth=self.auth, timeout=30)
        response.raise_for_status()
        return response

    def post(self, path: str, **kwargs) -> requests.Response:
        response = requests.post(f"{self.url}{path}", auth=self.auth, timeout=60, **kwargs)
        response.raise_for_status()
        return response

    def upload(self, data: bytes) -> str:
        """Store a DICOM file as it is (Orthanc's REST API, not STOW-RS); returns Orthanc's instance ID."""
        return self.post("/instances", data=data).json()["ID"]

    def instance_count(self) -> int:
        return int(self.get("/statistics").json()["CountInstances"])

    def stored_file(self, sop_instance_uid: str) -> bytes:
        """The file Orthanc holds for an instance, byte for byte."""
        (found,) = self.post("/tools/lookup", data=sop_instance_uid).json()
        return self.get(f"/instances/{found['ID']}/file").content

    def study_instances(self, study_uid: str) -> list[Dataset]:
        """Every instance of the study, read with pydicom (``force``: some are stored without preamble)."""
        (found,) = [item for item in self.post("/tools/lookup", data=study_uid).json() if item["Type"] == "Study"]
        instances = self.get(f"/studies/{found['ID']}/instances").json()
        return [pydicom.dcmread(io.BytesIO(self.get(f"/instances/{item['ID']}/file").content), force=True)
                for item in instances]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")



@contextlib.contextmanager
def running_orthanc(folder: Path, users: dict[str, str] | None = None) -> Iterator[Orthanc]:
    """A fresh Orthanc with the DICOMweb plugin on a free loopback port; with ``users``, HTTP basic auth on."""
    if not (Path(ORTHANC).exists() and DICOMWEB_PLUGIN.exists()):
        pytest.skip("Orthanc with its DICOMweb plugin is not installed (.ci/run installs orthanc and orthanc-dicomweb)")
    storage = folder / "storage"
    storage.mkdir(parents=True)
    port = free_port()
    config = {
        "Name": "FractureLensTest",
        "HttpPort": port,
        "DicomServerEnabled": False,
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": bool(users),
        "RegisteredUsers": users or {},
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    log_path = folder / "orthanc.log"
    auth = next(iter(users.items())) if users else None
    with log_path.open("w") as log:
        process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    server = Orthanc(url=f"http://127.0.0.1:{port}", auth=auth, log_path=log_path)
    try:
        deadline = time.time() + 30
        while True:
            try:
                if requests.get(f"{server.url}/system", auth=auth, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.time() > deadline:
                pytest.fail("Orthanc did not start:\n" + server.log())
            time.sleep(0.1)
        yield server
    finally:
        stop(process)


# ----------------------------------------------------------------------------------------------
# Studies
# ----------------------------------------------------------------------------------------------


def _sample_pixels(name: str, bits: int, side: int = 320) -> np.ndarray:
    """A sample radiograph as integers of ``bits`` bits (brighter = denser), at most ``side`` px long."""
    image = Image.open(SAMPLES / name).convert("L")
    image.thumbnail((side, side))
    values = np.asarray(image, dtype=np.float64) / 255.0
    return np.round(values * (2**bits - 1)).astype(np.uint16)


def _image(study: Dataset, series_uid: str, sop_class: str, modality: str, pixels: np.ndarray | None, *,
           bits_stored: int = 16, monochrome1: bool = False, body_part: str = "HAND") -> Dataset:
    dataset = Dataset()
    dataset.update(study)
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = sop_class
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = series_uid
    dataset.Modality = modality
    dataset.SeriesNumber = 1
    dataset.InstanceNumber = 1
    dataset.BodyPartExamined = body_part
    dataset.Manufacturer = "Test X-ray maker"
    if pixels is not None:
        dataset.Rows, dataset.Columns = pixels.shape
        dataset.SamplesPerPixel = 1
        dataset.BitsAllocated = 16
        dataset.BitsStored = bits_stored
        dataset.HighBit = bits_stored - 1
        dataset.PixelRepresentation = 0
        if monochrome1:
            dataset.PhotometricInterpretation = "MONOCHROME1"
            pixels = (2**bits_stored - 1) - pixels  # stored inverted: MONOCHROME1 shows high values dark
        else:
            dataset.PhotometricInterpretation = "MONOCHROME2"
        dataset.PixelData = pixels.astype(np.uint16).tobytes()
    return dataset


def _encode(dataset: Dataset, preamble: bool = True) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    return data if preamble else data[132:]  # no 128-byte preamble and no "DICM": starts at the meta group


def _study_header(date: datetime.date) -> Dataset:
    study = Dataset()
    study.SpecificCharacterSet = "ISO_IR 100"
    study.StudyInstanceUID = generate_uid()
    study.StudyDate = f"{date:%Y%m%d}"
    study.StudyTime = "101500"
    study.PatientSex = "F"
    for keyword, value in {**REQUIRED_IDENTIFIERS, **OTHER_IDENTIFIERS}.items():
        setattr(study, keyword, value)
    return study


@dataclass
class RadiographStudy:
    """A study uploaded to Orthanc; ``images`` are the SOP Instance UIDs of readable radiographs."""

    study_uid: str
    images: list[str] = field(default_factory=list)
    no_pixels: str = ""
    """SOP Instance UID of the DX object without pixel data (cannot be scored)."""
    text_report: str = ""
    """SOP Instance UID of the text SR (not a radiograph: its series is left out)."""
    no_preamble: str = ""
    jpeg_lossless: str = ""
    monochrome1: str = ""


def upload_full_study(orthanc: Orthanc, date: datetime.date) -> RadiographStudy:
    """CR (MONOCHROME1, 12 of 16 bits) + DX (JPEG Lossless; no preamble; no pixels) + a text SR."""
    study = _study_header(date)
    found = RadiographStudy(study.StudyInstanceUID)
    cr_series, dx_series, sr_series = generate_uid(), generate_uid(), generate_uid()

    cr = _image(study, cr_series, CR_IMAGE, "CR", _sample_pixels("hand_fractured_IMG0000019.jpg", 12),
                bits_stored=12, monochrome1=True)
    cr.WindowCenter, cr.WindowWidth = 2048, 4096
    orthanc.upload(_encode(cr))
    found.monochrome1 = cr.SOPInstanceUID

    dx = _image(study, dx_series, DX_IMAGE, "DX", _sample_pixels("leg_fractured_IMG0001191.jpg", 16), body_part="LEG")
    original = orthanc.upload(_encode(dx))
    transcoded = orthanc.post(f"/instances/{original}/modify", json={
        "Transcode": JPEGLosslessSV1, "Force": True,
        "Keep": ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"],
    }).content
    requests.delete(f"{orthanc.url}/instances/{original}", auth=orthanc.auth, timeout=30).raise_for_status()
    orthanc.upload(transcoded)
    found.jpeg_lossless = dx.SOPInstanceUID

    bare = _image(study, dx_series, DX_IMAGE, "DX", _sample_pixels("hand_not_fractured_IMG0000006.jpg", 16))
    bare.InstanceNumber = 2
    orthanc.upload(_encode(bare, preamble=False))
    found.no_preamble = bare.SOPInstanceUID
    found.images = sorted([cr.SOPInstanceUID, dx.SOPInstanceUID, bare.SOPInstanceUID])

    empty = _image(study, dx_series, DX_IMAGE, "DX", None)
    empty.InstanceNumber = 3
    orthanc.upload(_encode(empty))
    found.no_pixels = empty.SOPInstanceUID

    text = _image(study, sr_series, BASIC_TEXT_SR, "SR", None)
    text.CompletionFlag, text.VerificationFlag, text.ValueType = "COMPLETE", "UNVERIFIED", "CONTAINER"
    orthanc.upload(_encode(text))
    found.text_report = text.SOPInstanceUID
    return found


def upload_small_study(orthanc: Orthanc, date: datetime.date) -> RadiographStudy:
    """One plain DX image (MONOCHROME2, 8 of 16 bits)."""
    study = _study_header(date)
    dx = _image(study, generate_uid(), DX_IMAGE, "DX", _sample_pixels("shoulder_fractured_IMG0002302.jpg", 8, 256),
                bits_stored=8, body_part="SHOULDER")
    orthanc.upload(_encode(dx))
    return RadiographStudy(study.StudyInstanceUID, images=[dx.SOPInstanceUID])
