"""What leaves the window: the PDF report, the suspect-region masks, a print of the view.

The report and the masks are written from the study's triage exactly as the command line
writes them; a failure is said in a message box, never raised into the window.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QFont, QPaintDevice, QPainter
from PySide6.QtWidgets import QMessageBox, QWidget

from workstation.store.audit import REPORT_EXPORTED, record_event, study_uid_of

if TYPE_CHECKING:
    from workstation.analysis.run import StudyTriage
    from workstation.settings import Settings
    from workstation.store.readings import Reading

APP_TITLE = "Brain MRI triage workstation"  # the window's, and its message boxes'


def export_report(parent: QWidget, result: StudyTriage, readings: dict[str, Reading],
                  settings: Settings, path: Path) -> Path | None:
    """Write the triage report to ``path`` (replacing a file there: the file dialog has
    asked); the path written, or None once the reader is told why not."""
    from workstation.reporting.content import build_content
    from workstation.reporting.pdf import write_report

    content = build_content(result, readings, institution=settings.institution)
    try:
        written = write_report(content, path, settings.page_size, force=True)
        record_event(REPORT_EXPORTED, study_uid=study_uid_of(result.study), detail="PDF report")
        return written
    except OSError as exc:
        QMessageBox.warning(parent, APP_TITLE, f"The report was not written: {exc}")
        return None


def export_masks(result: StudyTriage, folder: Path) -> int:
    """Each assessed image's suspect-region mask as a PNG in ``folder``; how many were
    written."""
    from workstation.analysis.run import write_masks

    problems = write_masks(result, folder)
    return sum(len(v.findings) for v in result.verdicts) - len(problems)


def print_view(parent: QWidget, words: str, view: QWidget) -> None:
    """File > Print View: ask for a printer, then ``render_view`` on it."""
    from PySide6.QtPrintSupport import QPrintDialog, QPrinter

    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    if QPrintDialog(printer, parent).exec():
        render_view(printer, words, view)


def render_view(device: QPaintDevice | Any, words: str, view: QWidget) -> None:
    """The banner's ``words`` and a picture of ``view``, on a printer or any paint device."""
    painter = QPainter(device)
    page = painter.viewport()
    painter.setFont(QFont("Sans", 14, QFont.Weight.Bold))
    painter.drawText(QRectF(0, 0, page.width(), page.height() * 0.15),
                     Qt.TextFlag.TextWordWrap, words)
    picture = view.grab()
    target = QRectF(0, page.height() * 0.17, page.width(), page.height() * 0.8)
    scaled = picture.scaled(target.size().toSize(), Qt.AspectRatioMode.KeepAspectRatio)
    painter.drawPixmap(QPointF(target.x(), target.y()), scaled)
    painter.end()
