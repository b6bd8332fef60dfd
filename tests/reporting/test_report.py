"""The PDF report: its text (read back with pypdf), images, page furniture and safety."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader

from tests.analysis.test_triage import POLICY, prediction, series
from workstation.analysis.findings import SeriesVerdict
from workstation.analysis.run import ModelSummary, StudyTriage
from workstation.analysis.triage import series_verdict
from workstation.imaging import Problem, SeriesInfo, Study
from workstation.reporting.content import build_content, pseudonym
from workstation.reporting.pdf import ReportExistsError, write_report
from workstation.store.readings import Reading

SHA = "ab" * 32
INFO = SeriesInfo(patient_name="Doe^Jane", patient_id="PID-001", patient_birth_date="19700101",
                  patient_sex="F", study_date="20261125", study_description="MRI brain",
                  accession_number="ACC-1", modality="MR", series_description="T1 axial",
                  body_part_examined="BRAIN", institution_name="Test Clinic")


def triage(*verdicts: SeriesVerdict, problems: tuple[Problem, ...] = ()) -> StudyTriage:
    study = Study(series=tuple(v.series for v in verdicts), problems=problems)
    return StudyTriage(study, verdicts, ModelSummary("triage-v1", "1.0.0", SHA), "cpu", 1.0,
                       "onnxruntime")


def with_info(verdict: SeriesVerdict, info: SeriesInfo) -> SeriesVerdict:
    from dataclasses import replace

    return replace(verdict, series=replace(verdict.series, info=info))


def tumour_verdict(info: SeriesInfo = INFO) -> SeriesVerdict:
    preds = [prediction(), prediction(meningioma=0.8, mask_at=(16, 16)),
             prediction(meningioma=0.7, mask_at=(12, 20))]
    return with_info(series_verdict(series(3), preds, POLICY), info)


def text_of(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def test_dicom_tumour_report_has_patient_fields_verdict_and_sha(tmp_path: Path) -> None:
    path = write_report(build_content(triage(tumour_verdict()), {}, "St Elsewhere"),
                        tmp_path / "r.pdf")
    text = text_of(path)
    for expected in ("Doe Jane", "PID-001", "1970-01-01", "2026-11-25", "ACC-1", "MRI brain",
                     "St Elsewhere", "Tumour suspected", "meningioma", SHA, "triage-v1 1.0.0",
                     "cpu (onnxruntime)",
                     "Decision support only", "Page 1 of"):
        assert expected in text, expected
    reader = PdfReader(path)
    assert all("PID-001" in page.extract_text() for page in reader.pages)
    images = [image for page in reader.pages for image in page.images]
    # plain and outlined key images (reportlab stores identical pictures once)
    assert len(images) >= 2
    assert "Image 2 of 3" in text and "Suspect region: 25 pixels (outlined)" in text
    fonts = {str(f.get_object().get("/BaseFont")) for page in reader.pages
             for f in page["/Resources"]["/Font"].values()}
    assert all("Vera" in font for font in fonts)  # TrueType, embedded (no base-14 fonts)


def test_png_folder_report_marks_missing_fields(tmp_path: Path) -> None:
    raster = with_info(series_verdict(series(2, None, None, dicom_plane=False),
                                      [prediction(), prediction()], POLICY),
                       SeriesInfo(series_description="pngs"))
    text = text_of(write_report(build_content(triage(raster), {}), tmp_path / "p.pdf"))
    assert text.count("not available") >= 5
    assert "No tumour detected" in text


def test_review_case_lists_each_reason(tmp_path: Path) -> None:
    preds = [prediction(), prediction(glioma=0.3), prediction(glioma=0.6)]
    review = with_info(series_verdict(series(3), preds, POLICY), INFO)
    text = " ".join(text_of(write_report(build_content(triage(review), {}),
                                         tmp_path / "v.pdf")).split())
    assert "Needs human review" in text
    assert "1 of 3 images is a low-confidence no-tumour call" in text
    assert "one image suggests a tumour" in text


def test_review_key_images_show_the_no_tumour_image_with_an_outline(tmp_path: Path) -> None:
    """Four low-confidence calls outrank it by p(tumour), but a reason names the confident
    no-tumour image whose mask outlines a region: the report must show it."""
    from workstation.reporting.content import KEY_IMAGES_PER_SERIES, key_images

    preds = [prediction(meningioma=m) for m in (0.2, 0.25, 0.3, 0.15)]
    preds += [prediction(glioma=0.01, mask_at=(16, 16)), prediction(glioma=0.005)]
    review = with_info(series_verdict(series(6), preds, POLICY), INFO)
    images, rule = key_images(review)
    assert len(images) == KEY_IMAGES_PER_SERIES
    assert [f.index for f in images] == [2, 1, 4]
    assert "outlined suspect region" in rule
    text = " ".join(text_of(write_report(build_content(triage(review), {}),
                                         tmp_path / "r.pdf")).split())
    assert "1 of 6 images is called no tumour but shows an outlined suspect region (image 5)" \
        in text


def test_cannot_assess_case_and_unreadable_files(tmp_path: Path) -> None:
    ct = with_info(series_verdict(series(2, "CT", "ABDOMEN"), [prediction()] * 2, POLICY),
                   SeriesInfo(modality="CT", body_part_examined="ABDOMEN"))
    bad = (Problem("/data/broken.dcm", "the file is empty (0 bytes)"),)
    text = text_of(write_report(build_content(triage(ct, problems=bad), {}), tmp_path / "c.pdf"))
    assert "Cannot assess" in text and "modality CT" in text
    assert "broken.dcm" in text and "empty" in text


def test_anonymized_report_hides_identity(tmp_path: Path) -> None:
    text = text_of(write_report(build_content(triage(tumour_verdict()), {}, anonymize=True),
                                tmp_path / "a.pdf"))
    for secret in ("Doe", "PID-001", "1970", "ACC-1"):
        assert secret not in text
    assert pseudonym(INFO) in text and "anonymized" in text


def test_reading_is_printed_when_recorded(tmp_path: Path) -> None:
    verdict = tumour_verdict()
    reading = Reading.now("1.2", "disagree", "glioma", "enhancing rim, see prior", "Dr Who")
    text = text_of(write_report(build_content(triage(verdict), {"1.2": reading}),
                                tmp_path / "g.pdf"))
    assert "disagree" in text and "glioma" in text and "Dr Who" in text
    empty = text_of(write_report(build_content(triage(verdict), {}), tmp_path / "e.pdf"))
    assert "Name, signature, date" in empty


def test_existing_file_is_kept_without_force(tmp_path: Path) -> None:
    path = tmp_path / "r.pdf"
    path.write_bytes(b"keep me")
    content = build_content(triage(tumour_verdict()), {})
    with pytest.raises(ReportExistsError):
        write_report(content, path)
    assert path.read_bytes() == b"keep me"
    write_report(content, path, force=True, page_size="Letter")
    page = PdfReader(path).pages[0]
    assert round(float(page.mediabox.width)) == 612  # US Letter
    assert not list(tmp_path.glob("*.part"))


def test_failed_write_leaves_no_half_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    from workstation.reporting import pdf

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr(pdf, "build_story", broken)
    with pytest.raises(OSError):
        write_report(build_content(triage(tumour_verdict()), {}), tmp_path / "x.pdf")
    assert list(tmp_path.iterdir()) == []


def test_outlined_key_image_marks_the_region() -> None:
    from workstation.reporting.images import outlined_picture

    image = np.full((64, 64), 0.5, np.float32)
    mask = np.zeros((64, 64), np.float32)
    mask[20:40, 20:40] = 1
    picture = np.asarray(outlined_picture(image, mask))
    assert (picture == 255).all(axis=2).any() and (picture == 0).all(axis=2).any()


def test_report_quotes_one_card_row_per_headline_measure() -> None:
    """The provenance table reads the shipped card's headline rows: each measure once (the
    slice specificity the target is set on, not the per-cluster figure beside it)."""
    from workstation.reporting.content import MODEL_CARD_ROWS, model_card_rows

    card = Path(__file__).resolve().parents[2] / "models" / "MODEL_CARD.md"
    names = [name for name, _ in model_card_rows(card)]
    assert len(names) == len(MODEL_CARD_ROWS)
    assert [next(k for k in MODEL_CARD_ROWS if n.startswith(k)) for n in names] == list(
        MODEL_CARD_ROWS)
