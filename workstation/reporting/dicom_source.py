"""The source DICOM files behind a triaged series, and what every result object shares.

The DICOM results (structured report, segmentation, encapsulated PDF, key images) are
stored beside the study they describe: same patient and study, a new series each. This
module reads the source headers back (the loaded ``Slice`` keeps its file and frame, not
the header) and names the device that made the results.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from workstation import __version__
from workstation.analysis.findings import Finding, SeriesVerdict
from workstation.imaging.dicom import mosaic_count

MANUFACTURER = "brain MRI triage workstation"
MODEL_NAME = "Brain MRI triage"
SOFTWARE_VERSION = __version__
# the decision-support warning every object carries in its series description and text
DECISION_SUPPORT = "decision support, not a diagnosis"

# Series numbers of the result series: far above a scanner's, one per kind of object
SERIES_NUMBERS = {"SR": 9901, "SEG": 9902, "PDF": 9903, "SC": 9904}

# Patient and General Study module attributes copied from the source to every result
PATIENT_STUDY_KEYWORDS = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "OtherPatientIDsSequence", "PatientAge", "PatientWeight", "PatientSize",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
    "AccessionNumber", "StudyDescription",
)


class NotExportableError(ValueError):
    """A series whose results cannot be written as DICOM (said in plain words)."""


@dataclass(frozen=True)
class SourceImage:
    """One assessed slice of a series with the header of the file it came from."""

    finding: Finding
    dataset: Dataset  # header only (no pixel data)
    frame: int | None  # 0-based frame of a multi-frame file; None for a single frame


@lru_cache(maxsize=4096)
def _header(path: str) -> Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


@contextlib.contextmanager
def quiet_names() -> Iterator[None]:
    """Silence highdicom's warning on one-part patient names (scanners write them daily;
    the name is copied as the source has it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended "
                                "person name", category=UserWarning)
        yield


def read_header(path: str) -> Dataset:
    """The header of ``path`` (no pixel data), read once per file."""
    return _header(str(path))


def source_images(verdict: SeriesVerdict) -> list[SourceImage]:
    """The header of each assessed slice of a DICOM series, in the series' order.

    Raises NotExportableError for a series that is not DICOM, or a Siemens mosaic / UIH
    grid (a slice there is a tile of a larger picture: results cannot reference it).
    """
    series = verdict.series
    if series.kind != "dicom" or not series.series_uid:
        raise NotExportableError(
            f"{series.description} is not a DICOM series; its results stay in the PDF")
    images = []
    for finding in verdict.findings:
        slice_ = series.slices[finding.index]
        try:
            dataset = read_header(slice_.source)
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise NotExportableError(
                f"the source file {Path(slice_.source).name} can no longer be read ({exc})"
            ) from exc
        if mosaic_count(dataset):
            raise NotExportableError(
                f"{series.description} is a mosaic (several slices per picture); its "
                "results cannot point at single slices")
        frames = int(dataset.get("NumberOfFrames") or 1)
        images.append(SourceImage(finding, dataset, slice_.frame if frames > 1 else None))
    return images


def study_source(verdicts: tuple[SeriesVerdict, ...]) -> Dataset:
    """The header whose patient and study every result copies: the first DICOM file
    of the first DICOM series. Raises NotExportableError when there is none."""
    for verdict in verdicts:
        series = verdict.series
        if series.kind == "dicom" and series.slices and series.info.study_instance_uid:
            return read_header(series.slices[0].source)
    raise NotExportableError("the study holds no DICOM series: there is nothing to store "
                             "DICOM results beside")


def copy_patient_study(source: Dataset, target: Dataset) -> None:
    """The Patient and General Study attributes of ``source`` onto ``target``."""
    for keyword in PATIENT_STUDY_KEYWORDS:
        if keyword in source:
            setattr(target, keyword, source[keyword].value)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
                    "AccessionNumber"):
        if keyword not in target:
            setattr(target, keyword, None)  # type 2: present, possibly empty


def patient_orientation(dataset: Dataset, frame: int | None = None) -> tuple[str, str]:
    """Patient Orientation (0020,0020) of an image: the patient direction of its rows and
    columns (dominant axis only), from Image Orientation (Patient)."""
    orientation = dataset.get("ImageOrientationPatient")
    if orientation is None and frame is not None:
        shared = dataset.get("SharedFunctionalGroupsSequence")
        per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
        for groups in ((per_frame[frame] if per_frame and frame < len(per_frame) else None),
                       (shared[0] if shared else None)):
            if groups is not None and "PlaneOrientationSequence" in groups:
                orientation = groups.PlaneOrientationSequence[0].ImageOrientationPatient
                break
    if orientation is None or len(orientation) != 6:
        return ("L", "P")  # the axial convention when the file does not say
    return (_direction([float(v) for v in orientation[:3]]),
            _direction([float(v) for v in orientation[3:]]))


def _direction(vector: list[float]) -> str:
    letters = (("L", "R"), ("P", "A"), ("H", "F"))
    axis = max(range(3), key=lambda i: abs(vector[i]))
    if math.isclose(vector[axis], 0.0):
        return "L"
    return letters[axis][0 if vector[axis] > 0 else 1]
