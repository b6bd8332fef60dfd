"""File > Print Report: the PDF triage report's own pages on a printer, not a picture of
the window.

The report is written by File > Export Report's own code (``exports.export_report``: the
reporting package's ``build_content`` and ``write_report``, the institution and page size
from the settings) into a temporary file; each of its pages is rendered by PDFium
(pypdfium2) and drawn on one printer page, scaled to fit the paper.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QImage, QPageSize, QPainter
from PySide6.QtPrintSupport import QPrintDialog, QPrinter

if TYPE_CHECKING:
    from workstation.analysis.run import StudyTriage
    from workstation.settings import Settings
    from workstation.store.readings import Reading

MAX_DPI = 300  # the report's pictures are far below this; more only costs memory
PAGE_SIZES = {"A4": QPageSize.PageSizeId.A4, "Letter": QPageSize.PageSizeId.Letter}


class PrintError(RuntimeError):
    """The report could not be printed; the message says why in plain words."""


def page_image(page: Any, dpi: float) -> QImage:
    """One PDF page (a pypdfium2 page) as an RGB QImage at ``dpi``."""
    bitmap = page.render(scale=dpi / 72.0, optimize_mode="print")
    try:
        picture = bitmap.to_pil().convert("RGB")
    finally:
        bitmap.close()
    data = picture.tobytes()
    image = QImage(data, picture.width, picture.height, 3 * picture.width,
                   QImage.Format.Format_RGB888)
    return image.copy()  # own the pixels: ``data`` goes away


def print_pdf(pdf: Path, printer: QPrinter, dpi: float | None = None) -> int:
    """Print every page of ``pdf`` on ``printer``, one PDF page to one sheet, scaled to fit
    the paper and centred; return the number of pages printed."""
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(str(pdf))
    except (OSError, pypdfium2.PdfiumError) as exc:
        raise PrintError(f"the report {pdf} cannot be read: {exc}") from exc
    try:
        count = len(document)
        if count == 0:
            raise PrintError("the report has no pages")
        printer.setFullPage(True)  # the report carries its own margins
        resolution = dpi or min(printer.resolution(), MAX_DPI)
        painter = QPainter()
        if not painter.begin(printer):
            raise PrintError("the printer could not be started")
        try:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            paper = QRectF(printer.paperRect(QPrinter.Unit.DevicePixel))
            for index in range(count):
                if index and not printer.newPage():
                    raise PrintError(f"the printer refused page {index + 1}")
                page = document[index]
                try:
                    image = page_image(page, resolution)
                finally:
                    page.close()
                size = image.size().toSizeF().scaled(paper.size(),
                                                     Qt.AspectRatioMode.KeepAspectRatio)
                target = QRectF(paper.x() + (paper.width() - size.width()) / 2,
                                paper.y() + (paper.height() - size.height()) / 2,
                                size.width(), size.height())
                painter.drawImage(target, image)
        finally:
            painter.end()
    finally:
        document.close()
    return count


@contextmanager
def report_file(parent: Any, result: StudyTriage, readings: dict[str, Reading],
                settings: Settings) -> Iterator[Path | None]:
    """The PDF report of ``result`` written by File > Export Report's own code, into a
    temporary folder removed afterwards; None when it could not be written (the reader has
    been told why)."""
    from workstation.gui.exports import export_report

    with tempfile.TemporaryDirectory(prefix="triage-print-") as folder:
        yield export_report(parent, result, readings, settings, Path(folder) / "triage.pdf")


def choose_printer(parent: Any, page_size: str) -> QPrinter | None:
    """The system print dialog, the paper preset to the report's page size."""
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setPageSize(QPageSize(PAGE_SIZES.get(page_size, QPageSize.PageSizeId.A4)))
    printer.setDocName("Brain MRI triage report")
    dialog = QPrintDialog(printer, parent)
    return printer if dialog.exec() else None


def print_report(parent: Any, result: StudyTriage | None, readings: dict[str, Reading],
                 settings: Settings, printer: QPrinter | None = None) -> int | None:
    """File > Print Report: build the report, ask for a printer (unless given one) and print
    it; the number of pages printed, or None (not analysed yet, cancelled, or failed, each
    said to the user)."""
    from PySide6.QtWidgets import QMessageBox

    from workstation.gui.exports import APP_TITLE

    if result is None:
        QMessageBox.information(parent, APP_TITLE, "The analysis has not finished yet.")
        return None
    try:
        with report_file(parent, result, readings, settings) as pdf:
            if pdf is None:
                return None
            printer = printer or choose_printer(parent, settings.page_size)
            if printer is None:
                return None
            pages = print_pdf(pdf, printer)
    except (OSError, PrintError) as exc:
        QMessageBox.warning(parent, APP_TITLE, f"The report was not printed: {exc}")
        return None
    status = getattr(parent, "statusBar", None)
    if status is not None:
        status().showMessage(f"Report printed ({pages} page{'s' if pages != 1 else ''})", 5000)
    return pages
