"""Every DICOM result of a triaged study, written as files: one entry point.

For one study: the structured report (``dicom_sr``), a Segmentation per series with a
suspect region (``dicom_seg``), the PDF report encapsulated (``dicom_pdf``) and the key
images as Secondary Capture (``dicom_sc``). Each object has the study's Study Instance UID
and patient, and a new series of its own kind. Files are written atomically (temporary
file, then rename) as ``KIND-<SOP Instance UID>.dcm``.

An anonymized report is never exported: DICOM results are filed with the patient's study
and must name the patient, and a pseudonymized copy would file a second, unlinked patient.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from highdicom import UID
from pydicom.dataset import Dataset

from workstation.analysis.run import StudyTriage
from workstation.reporting.content import key_images
from workstation.reporting.dicom_pdf import build_encapsulated_pdf
from workstation.reporting.dicom_sc import build_key_image
from workstation.reporting.dicom_seg import build_segmentation
from workstation.reporting.dicom_source import NotExportableError, source_images, study_source
from workstation.reporting.dicom_sr import build_structured_report
from workstation.store.readings import Reading

KINDS = ("SR", "SEG", "PDF", "SC")
ANONYMIZED_REFUSAL = ("an anonymized report is not exported to DICOM: results stored with "
                      "the study must carry the patient's own name and ID")


class AnonymizedExportError(ValueError):
    """DICOM export was asked for an anonymized report."""


class DicomExportError(OSError):
    """A result file could not be written (the message names it)."""


@dataclass(frozen=True)
class ExportedObject:
    kind: str  # SR | SEG | PDF | SC
    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    series_uid: str
    description: str


@dataclass(frozen=True)
class DicomExport:
    study_uid: str
    objects: tuple[ExportedObject, ...]
    notes: tuple[str, ...]  # what was not exported, and why, in plain words

    def of_kind(self, kind: str) -> tuple[ExportedObject, ...]:
        return tuple(o for o in self.objects if o.kind == kind)

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(o.path for o in self.objects)


def report_pdf_bytes(result: StudyTriage, readings: dict[str, Reading],
                     institution: str = "", page_size: str = "A4") -> bytes:
    """The (not anonymized) PDF triage report of ``result``, as bytes."""
    from workstation.reporting.content import build_content
    from workstation.reporting.pdf import write_report

    content = build_content(result, readings, institution=institution, anonymize=False)
    with tempfile.TemporaryDirectory(prefix="triage-report-") as folder:
        path = write_report(content, Path(folder) / "report.pdf", page_size=page_size)
        return path.read_bytes()


def study_uid_of(result: StudyTriage) -> str:
    """The one Study Instance UID of the DICOM series of ``result``.

    Raises NotExportableError when there is none, or several (one study at a time: the
    report PDF covers the whole input and must not be filed with another patient's study).
    """
    uids = {v.series.info.study_instance_uid for v in result.verdicts
            if v.series.kind == "dicom" and v.series.info.study_instance_uid}
    if not uids:
        raise NotExportableError("the input holds no DICOM study: there is nothing to store "
                                 "DICOM results beside")
    if len(uids) > 1:
        raise NotExportableError(f"the input holds {len(uids)} different studies; export the "
                                 "results of one study at a time")
    return uids.pop()


def build_objects(result: StudyTriage, readings: dict[str, Reading], pdf: bytes
                  ) -> tuple[list[tuple[str, Dataset]], list[str]]:
    """The result objects of the study of ``result`` as (kind, dataset), and notes on what
    was left out."""
    study_uid = study_uid_of(result)
    notes: list[str] = []
    objects: list[tuple[str, Dataset]] = []
    objects.append(("SR", build_structured_report(result, readings)))
    sc_series = UID()
    instance = 0
    for verdict in result.verdicts:
        if verdict.series.info.study_instance_uid != study_uid:
            notes.append(f"{verdict.series.description}: not a DICOM series of the "
                         "study; its results stay in the PDF")
            continue
        try:
            images = source_images(verdict)
            segmentation = build_segmentation(verdict, result.model)
        except NotExportableError as exc:
            notes.append(str(exc))
            continue
        if segmentation is None:
            notes.append(f"{verdict.series.description}: no suspect region, so no "
                         "segmentation")
        else:
            objects.append(("SEG", segmentation))
        by_index = {s.finding.index: s for s in images}
        chosen, _ = key_images(verdict)
        for finding in chosen:
            if finding.index in by_index:
                instance += 1
                objects.append(("SC", build_key_image(verdict, by_index[finding.index],
                                                      sc_series, instance)))
    objects.append(("PDF", build_encapsulated_pdf(pdf, study_source(result.verdicts))))
    return objects, notes


def export_results(result: StudyTriage, folder: Path, *,
                   readings: dict[str, Reading] | None = None, report_pdf: bytes | None = None,
                   institution: str = "", page_size: str = "A4", anonymize: bool = False,
                   progress: Callable[[str], None] | None = None) -> DicomExport:
    """Write every DICOM result of ``result`` into ``folder``.

    ``report_pdf``: the PDF to encapsulate (the report just written, so the DICOM holds
    the same bytes); made here when not given. Raises AnonymizedExportError for an
    anonymized report, NotExportableError when the input has no single DICOM study, and
    DicomExportError when a file cannot be written.
    """
    if anonymize:
        raise AnonymizedExportError(ANONYMIZED_REFUSAL)
    if readings is None:
        from workstation.store.readings import load_readings

        readings = load_readings(result.study)
    if report_pdf is None:
        report_pdf = report_pdf_bytes(result, readings, institution, page_size)
    objects, notes = build_objects(result, readings, report_pdf)
    written = []
    for kind, dataset in objects:
        path = Path(folder) / f"{kind}-{dataset.SOPInstanceUID}.dcm"
        write_dataset(dataset, path)
        if progress is not None:
            progress(f"wrote {path.name}")
        written.append(ExportedObject(kind, path, str(dataset.SOPClassUID),
                                      str(dataset.SOPInstanceUID),
                                      str(dataset.SeriesInstanceUID),
                                      str(dataset.get("SeriesDescription", ""))))
    return DicomExport(str(objects[0][1].StudyInstanceUID), tuple(written), tuple(notes))


def write_dataset(dataset: Dataset, path: Path) -> Path:
    """``dataset`` as a DICOM file (with its file meta), atomically."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part",
                                             dir=path.parent)
        os.close(handle)
    except OSError as exc:
        raise DicomExportError(exc.errno, f"{path.parent} cannot be written: "
                                          f"{exc.strerror}") from exc
    try:
        dataset.save_as(temporary, enforce_file_format=True)
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        if isinstance(exc, OSError):
            raise DicomExportError(exc.errno, f"{path} could not be written: "
                                              f"{exc.strerror}") from exc
        raise
    return path
