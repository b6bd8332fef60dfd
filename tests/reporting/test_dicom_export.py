"""Every DICOM result of a triaged real series, written, checked by dciodvfy, read back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from tests.reporting.dicom_cases import GE, MPRAGE, dciodvfy_errors, triaged
from workstation.analysis.run import StudyTriage
from workstation.reporting.dicom_export import (
    AnonymizedExportError,
    DicomExport,
    export_results,
)
from workstation.reporting.dicom_pdf import ENCAPSULATED_PDF_STORAGE

SOP_CLASSES = {
    "SR": "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "SEG": "1.2.840.10008.5.1.4.1.1.66.4",
    "PDF": ENCAPSULATED_PDF_STORAGE,
    "SC": "1.2.840.10008.5.1.4.1.1.7",
}
needs_dciodvfy = pytest.mark.skipif(
    shutil.which("dciodvfy") is None,
    reason="dciodvfy is not installed (Debian package 'dicom3tools')")


@pytest.fixture(scope="module", params=[GE, MPRAGE], ids=["ge-single-frame", "mprage-enhanced"])
def exported(request: pytest.FixtureRequest, datasets: Path,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[StudyTriage, DicomExport]:
    result = triaged(datasets, request.param, tumour=[4, 5, 6])
    folder = tmp_path_factory.mktemp("dicom-results")
    return result, export_results(result, folder, readings={})


def test_every_kind_of_object_is_written(exported: tuple[StudyTriage, DicomExport]) -> None:
    _, export = exported
    kinds = [o.kind for o in export.objects]
    assert kinds.count("SR") == 1 and kinds.count("PDF") == 1 and kinds.count("SEG") == 1
    assert kinds.count("SC") == 3  # the report's three key images
    for obj in export.objects:
        assert obj.path.is_file()
        assert obj.sop_class_uid == SOP_CLASSES[obj.kind]
        assert obj.path.name == f"{obj.kind}-{obj.sop_instance_uid}.dcm"


@needs_dciodvfy
def test_dciodvfy_finds_no_error_in_any_object(exported: tuple[StudyTriage, DicomExport]
                                               ) -> None:
    _, export = exported
    problems = {o.kind: dciodvfy_errors(o.path) for o in export.objects}
    assert problems == {o.kind: [] for o in export.objects}


def test_same_study_and_patient_new_series_each(exported: tuple[StudyTriage, DicomExport]
                                                ) -> None:
    result, export = exported
    source = pydicom.dcmread(result.verdicts[0].series.slices[0].source,
                             stop_before_pixels=True)
    series = {}
    for obj in export.objects:
        ds = pydicom.dcmread(obj.path, stop_before_pixels=True)
        assert ds.StudyInstanceUID == source.StudyInstanceUID == export.study_uid
        assert ds.PatientID == source.PatientID
        assert str(ds.PatientName) == str(source.PatientName)
        assert ds.get("StudyDate") == source.get("StudyDate")
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID
        assert "decision support" in ds.SeriesDescription
        series.setdefault(obj.kind, set()).add(ds.SeriesInstanceUID)
    assert all(len(uids) == 1 for uids in series.values())  # the key images share one
    assert len(set().union(*series.values())) == len(series)  # one series per kind


def test_a_series_without_region_gives_no_segmentation(datasets: Path, tmp_path: Path
                                                       ) -> None:
    result = triaged(datasets, GE, tumour=[])
    export = export_results(result, tmp_path, readings={})
    assert not export.of_kind("SEG")
    assert [o.kind for o in export.objects].count("SC") == 3
    assert any("no suspect region" in note for note in export.notes)
    assert not list(tmp_path.glob("SEG-*"))


def test_an_anonymized_report_is_never_exported(datasets: Path, tmp_path: Path) -> None:
    result = triaged(datasets, GE, tumour=[4])
    with pytest.raises(AnonymizedExportError, match="anonymized report is not exported"):
        export_results(result, tmp_path, readings={}, anonymize=True)
    assert not list(tmp_path.iterdir())


def test_command_line_writes_the_dicom_results_of_the_real_model(
        datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from workstation.cli import main
    from workstation.reporting.dicom_pdf import extract_pdf

    source = datasets / GE
    monkeypatch.setenv("BRAIN_TRIAGE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("BRAIN_TRIAGE_DATA_DIR", str(tmp_path / "data"))
    report, out = tmp_path / "report.pdf", tmp_path / "dicom"
    status = main(["triage", str(source), "--device", "cpu", "--report", str(report),
                   "--dicom-out", str(out)])
    assert status == 0
    pdfs = list(out.glob("PDF-*.dcm"))
    assert len(pdfs) == 1 and len(list(out.glob("SR-*.dcm"))) == 1
    assert extract_pdf(pydicom.dcmread(pdfs[0])) == report.read_bytes()
    assert f"DICOM results written to {out}" in capsys.readouterr().err


def test_command_line_refuses_dicom_export_of_an_anonymized_report(
        datasets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workstation.cli import main

    status = main(["triage", str(datasets / GE), "--anonymize", "--dicom-out",
                   str(tmp_path / "out")])
    assert status == 2
    assert "anonymized report is not exported to DICOM" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
