"""Side panels: the series browser, the verdict banner, findings and the reader's form."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workstation.analysis.findings import CLASSES, Finding, SeriesVerdict, Verdict, percent
from workstation.imaging.series import Series
from workstation.store.readings import Reading

BADGE = {
    Verdict.TUMOUR: ("TUMOUR", "#7a0010", "white"),
    Verdict.REVIEW: ("REVIEW", "#f2c200", "black"),
    Verdict.CANNOT_ASSESS: ("CANNOT ASSESS", "#5a5a5a", "white"),
    Verdict.NO_TUMOUR: ("NO TUMOUR", "#2e7d32", "white"),
}

TINT = {Verdict.TUMOUR: "#f3c6cb", Verdict.REVIEW: "#fbe9a6", Verdict.CANNOT_ASSESS: "#d6d6d6",
        Verdict.NO_TUMOUR: "#cfe8cf"}


def thumbnail(series: Series, size: int = 72) -> QIcon:
    if not series.slices:
        return QIcon()
    image = np.asarray(series.slices[len(series.slices) // 2].image)
    pixels = np.ascontiguousarray((np.clip(image, 0, 1) * 255).astype(np.uint8))
    rows, cols = pixels.shape
    qimage = QImage(pixels.data, cols, rows, cols, QImage.Format.Format_Grayscale8).copy()
    return QIcon(QPixmap.fromImage(qimage).scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.SmoothTransformation))


def series_text(series: Series, verdict: SeriesVerdict | None) -> str:
    if verdict is not None:
        plane, source = verdict.plane, verdict.plane_source
    else:
        plane, source = series.plane.value, series.plane_source.value
    # after analysis, no plane means the images could not be assessed
    source_words = {"dicom": "from DICOM", "model": "from the model",
                    "none": "not known" if verdict is not None else "not known yet"
                    }.get(source, source)
    status = BADGE[verdict.verdict][0] if verdict is not None else "not analysed yet"
    return (f"{series.description}\n{plane} ({source_words}), {len(series.slices)} images\n"
            f"[{status}]")


class SeriesBrowser(QListWidget):
    """One thumbnail per series, with description, plane, count and verdict badge."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setIconSize(QSize(72, 72))
        self.setMinimumWidth(250)
        self.setWordWrap(True)

    def add_series(self, series: Series) -> None:
        item = QListWidgetItem(thumbnail(series), series_text(series, None))
        item.setToolTip(series.source)
        self.addItem(item)

    def set_verdict(self, row: int, verdict: SeriesVerdict) -> None:
        item = self.item(row)
        if item is None:
            return
        item.setText(series_text(verdict.series, verdict))
        item.setToolTip(f"{verdict.series.source}\n{verdict.headline}")
        item.setData(Qt.ItemDataRole.UserRole, verdict.verdict.value)
        item.setBackground(QColor(TINT[verdict.verdict]))


class VerdictBanner(QLabel):
    """The series verdict in words, large, coloured, impossible to miss."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setMargin(10)
        self.show_text("No study open", "#3c3c3c", "white")

    def show_text(self, text: str, background: str, ink: str) -> None:
        self.setText(text)
        self.setStyleSheet(f"QLabel {{ background: {background}; color: {ink}; "
                           "font-size: 17pt; font-weight: bold; border: 2px solid black; }")

    def show_verdict(self, verdict: SeriesVerdict | None, analysing: bool = False) -> None:
        if verdict is None:
            self.show_text("Analysing..." if analysing else "Not analysed yet", "#3c3c3c",
                           "white")
            return
        _, background, ink = BADGE[verdict.verdict]
        lines = [verdict.headline.upper() if verdict.verdict is Verdict.REVIEW
                 else verdict.headline]
        lines += [f"- {reason}" for reason in verdict.review_reasons]
        self.show_text("\n".join(lines), background, ink)

    @property
    def words(self) -> str:
        return self.text()


class FindingsPanel(QWidget):
    """Class probabilities of the shown image, and images ordered by suspicion."""

    jump_to = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.slice_label = QLabel("Image: -")
        self.table = QTableWidget(len(CLASSES), 2)
        self.table.setHorizontalHeaderLabels(["Class", "Probability"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, name in enumerate(CLASSES):
            self.table.setItem(row, 0, QTableWidgetItem(name.replace("_", " ")))
            self.table.setItem(row, 1, QTableWidgetItem("-"))
        self.table.setMaximumHeight(140)
        self.slice_verdict = QLabel("")
        self.slice_verdict.setWordWrap(True)
        self.suspicious = QListWidget()
        self.suspicious.itemActivated.connect(self._activated)
        self.suspicious.itemClicked.connect(self._activated)
        layout.addWidget(self.slice_label)
        layout.addWidget(self.table)
        layout.addWidget(self.slice_verdict)
        layout.addWidget(QLabel("Images by suspicion (click to jump, N = next):"))
        layout.addWidget(self.suspicious, stretch=1)

    def show_finding(self, finding: Finding | None, count: int) -> None:
        if finding is None:
            self.slice_label.setText("Image: not analysed")
            for row in range(len(CLASSES)):
                self._cell(row).setText("-")
            self.slice_verdict.setText("")
            return
        self.slice_label.setText(f"Image {finding.index + 1} of {count} ({finding.plane})")
        for row, name in enumerate(CLASSES):
            self._cell(row).setText(percent(finding.probabilities[name], decimals=1))
        text = f"Image verdict: {finding.verdict.value.replace('_', ' ')}"
        if finding.review_reasons:
            text += " - " + "; ".join(finding.review_reasons)
        self.slice_verdict.setText(text)

    def _cell(self, row: int) -> QTableWidgetItem:
        item = self.table.item(row, 1)
        assert item is not None
        return item

    def show_ranking(self, verdict: SeriesVerdict | None) -> None:
        self.suspicious.clear()
        if verdict is None:
            return
        for finding in sorted(verdict.findings, key=lambda f: -f.suspicion):
            item = QListWidgetItem(
                f"Image {finding.index + 1}: p(tumour) {percent(finding.tumour_probability)}, "
                f"{finding.verdict.value.replace('_', ' ')}")
            item.setData(Qt.ItemDataRole.UserRole, finding.index)
            self.suspicious.addItem(item)

    def _activated(self, item: QListWidgetItem) -> None:
        self.jump_to.emit(int(item.data(Qt.ItemDataRole.UserRole)))


class ReadingForm(QGroupBox):
    """The reviewer's own reading of the shown series."""

    saved = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Your reading of this series", parent)
        form = QFormLayout(self)
        self.agreement = QComboBox()
        self.agreement.addItems(["agree", "disagree"])
        self.corrected = QComboBox()
        self.corrected.addItems(["", *CLASSES, "other"])
        self.note = QPlainTextEdit()
        self.note.setPlaceholderText("Free-text note (optional)")
        self.note.setMaximumHeight(70)
        self.reader = QLineEdit()
        self.reader.setPlaceholderText("Your name")
        self.save_button = QPushButton("Save reading")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form.addRow("Model verdict", self.agreement)
        form.addRow("Corrected class", self.corrected)
        form.addRow("Note", self.note)
        form.addRow("Reader", self.reader)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addStretch(1)
        form.addRow(buttons)
        form.addRow(self.status)
        self.save_button.clicked.connect(self._save)
        self.series_key = ""

    def load(self, series_key: str, reading: Reading | None, reader: str) -> None:
        self.series_key = series_key
        self.agreement.setCurrentText(reading.agreement if reading else "agree")
        self.corrected.setCurrentText(reading.corrected_class if reading else "")
        self.note.setPlainText(reading.note if reading else "")
        self.reader.setText(reading.reader if reading and reading.reader else reader)
        self.status.setText(f"Recorded {reading.recorded_at}" if reading else "No reading yet")
        self.setEnabled(bool(series_key))

    def _save(self) -> None:
        if not self.series_key:
            return
        reading = Reading.now(self.series_key, self.agreement.currentText(),
                              self.corrected.currentText(), self.note.toPlainText(),
                              self.reader.text())
        self.status.setText(f"Recorded {reading.recorded_at}")
        self.saved.emit(reading)

