"""The report PDF in DICOM: Encapsulated PDF, extracted byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from tests.reporting.dicom_cases import GE, dciodvfy_errors, triaged
from workstation.reporting.dicom_export import report_pdf_bytes, write_dataset
from workstation.reporting.dicom_pdf import (
    ENCAPSULATED_PDF_STORAGE,
    NotAPdfError,
    build_encapsulated_pdf,
    extract_pdf,
)
from workstation.reporting.dicom_source import study_source


@pytest.fixture(scope="module")
def source_and_pdf(datasets: Path) -> tuple[Dataset, bytes]:
    result = triaged(datasets, GE, tumour=[5, 6])
    return study_source(result.verdicts), report_pdf_bytes(result, {})


@pytest.mark.parametrize("extra", [b"", b"\n"], ids=["as-written", "other-parity"])
def test_the_extracted_pdf_equals_the_report_byte_for_byte(
        source_and_pdf: tuple[Dataset, bytes], tmp_path: Path, extra: bytes) -> None:
    source, pdf = source_and_pdf
    pdf += extra  # the report as written, and one byte longer: odd and even lengths
    path = write_dataset(build_encapsulated_pdf(pdf, source), tmp_path / "pdf.dcm")
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == ENCAPSULATED_PDF_STORAGE
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert len(ds.EncapsulatedDocument) % 2 == 0
    assert ds.EncapsulatedDocumentLength == len(pdf)
    assert extract_pdf(ds) == pdf
    assert ds.StudyInstanceUID == source.StudyInstanceUID
    assert ds.PatientID == source.PatientID and ds.Modality == "DOC"


@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy is not installed (Debian package 'dicom3tools')")
def test_dciodvfy_accepts_the_encapsulated_pdf(source_and_pdf: tuple[Dataset, bytes],
                                               tmp_path: Path) -> None:
    source, pdf = source_and_pdf
    path = write_dataset(build_encapsulated_pdf(pdf, source), tmp_path / "pdf.dcm")
    assert dciodvfy_errors(path) == []


def test_what_is_not_a_pdf_is_refused(source_and_pdf: tuple[Dataset, bytes]) -> None:
    source, _ = source_and_pdf
    with pytest.raises(NotAPdfError, match="not a PDF"):
        build_encapsulated_pdf(b"<html></html>", source)
