"""File > Print Report prints the PDF report's own pages (a QPrinter writing a PDF file
stands in for the printer), not a picture of the window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pypdfium2
import pytest
from PIL import Image
from pypdf import PdfReader
from PySide6.QtGui import QPageSize
from PySide6.QtPrintSupport import QPrinter

from tests.reporting.test_report import triage, tumour_verdict
from workstation.analysis.run import StudyTriage
from workstation.gui import printing
from workstation.gui.main_window import MainWindow
from workstation.reporting.content import build_content
from workstation.reporting.pdf import write_report


def pdf_printer(path: Path, mode: QPrinter.PrinterMode = QPrinter.PrinterMode.HighResolution
                ) -> QPrinter:
    printer = QPrinter(mode)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printer.setOutputFileName(str(path))
    printer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    return printer


def grey_page(pdf: Path, index: int, size: tuple[int, int] = (210, 297)) -> np.ndarray:
    """Page ``index`` rendered, in grey, at ``size`` pixels."""
    document = pypdfium2.PdfDocument(str(pdf))
    try:
        picture = document[index].render(scale=1.0).to_pil().convert("L")
    finally:
        document.close()
    return np.asarray(picture.resize(size, Image.Resampling.BILINEAR), dtype=np.float64)


def likeness(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def study_result() -> StudyTriage:
    return triage(tumour_verdict(), tumour_verdict())


@pytest.fixture
def report(tmp_path: Path) -> Path:
    return write_report(build_content(study_result(), {}, "Test Clinic"), tmp_path / "r.pdf")


def test_every_report_page_is_printed_as_it_looks(qtbot, report: Path,  # type: ignore[no-untyped-def]
                                                  tmp_path: Path) -> None:
    printed = tmp_path / "printed.pdf"
    pages = printing.print_pdf(report, pdf_printer(printed))
    expected = len(PdfReader(report).pages)
    assert expected >= 2
    assert pages == expected == len(PdfReader(printed).pages)
    first = grey_page(printed, 0)
    assert first.std() > 20 and (first < 128).mean() > 0.01  # not blank
    for index in range(expected):
        on_paper = grey_page(printed, index)
        assert on_paper.std() > 0.8 * grey_page(report, index).std()  # not blank either
        # each sheet is its own report page, in order, and closer to it than to any other
        scores = [likeness(on_paper, grey_page(report, k)) for k in range(expected)]
        assert scores[index] > 0.95, scores
        assert int(np.argmax(scores)) == index
    # the sheets are the report's pictures: no text of the window, no window grab
    assert PdfReader(printed).pages[0].extract_text().strip() == ""


def test_print_report_menu_prints_the_report(qtbot, window: MainWindow, tmp_path: Path,  # type: ignore[no-untyped-def]
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    printed = tmp_path / "menu.pdf"
    asked: list[str] = []

    def choose(parent: object, page_size: str) -> QPrinter:
        asked.append(page_size)
        return pdf_printer(printed, QPrinter.PrinterMode.ScreenResolution)

    monkeypatch.setattr(printing, "choose_printer", choose)
    monkeypatch.setattr(window, "triage_result", study_result)
    (action,) = [a for a in window.actions() if a.text() == "&Print Report..."]
    action.trigger()
    assert asked == [window.settings.page_size]
    assert len(PdfReader(printed).pages) == len(PdfReader(
        write_report(build_content(study_result(), {}), tmp_path / "same.pdf")).pages)
    assert "Report printed" in window.statusBar().currentMessage()


def test_print_report_before_the_analysis_says_so(qtbot, window: MainWindow,  # type: ignore[no-untyped-def]
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    monkeypatch.setattr("PySide6.QtWidgets.QMessageBox.information",
                        lambda parent, title, text: said.append(text))
    monkeypatch.setattr(printing, "choose_printer", lambda *a: pytest.fail("no dialog"))
    window.print_report()
    assert said == ["The analysis has not finished yet."]
