"""Side panels: the series browser, the verdict banner, findings and the reader's form."""

from __future__ import annotations

import html

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QKeyEvent, QPixmap
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
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workstation.analysis.findings import CLASSES, Finding, SeriesVerdict, Verdict, percent
from workstation.gui.viewer import pixel_aspect
from workstation.imaging.pixels import slice_image, to_8bit
from workstation.imaging.series import Series, Volume
from workstation.session import shown_volume
from workstation.store.readings import Reading

BADGE = {
    Verdict.TUMOUR: ("TUMOUR", "#7a0010", "white"),
    Verdict.REVIEW: ("REVIEW", "#f2c200", "black"),
    Verdict.CANNOT_ASSESS: ("CANNOT ASSESS", "#5a5a5a", "white"),
    Verdict.NO_TUMOUR: ("NO TUMOUR", "#2e7d32", "white"),
}

TINT = {Verdict.TUMOUR: "#f3c6cb", Verdict.REVIEW: "#fbe9a6", Verdict.CANNOT_ASSESS: "#d6d6d6",
        Verdict.NO_TUMOUR: "#cfe8cf"}


TOOLTIP_VOLUMES = 16  # volumes listed one a line in a series' tooltip; then "and N more"


def thumbnail_pixels(series: Series) -> npt.NDArray[np.uint8] | None:
    """The 8-bit grey image a series' thumbnail shows: the middle image of its shown volume
    at the file's window, through the viewer's display function (same polarity)."""
    if not series.slices:
        return None
    volume = shown_volume(series)
    return to_8bit(slice_image(series.slices[volume.start + volume.count // 2]))


def thumbnail(series: Series, size: int = 72) -> QIcon:
    pixels = thumbnail_pixels(series)
    if pixels is None:
        return QIcon()
    rows, cols = pixels.shape
    qimage = QImage(pixels.data, cols, rows, cols, QImage.Format.Format_Grayscale8).copy()
    # at the image's physical proportions, as the viewer paints it
    width, height = float(cols), rows * pixel_aspect(series)
    scale = size / max(width, height)
    return QIcon(QPixmap.fromImage(qimage).scaled(
        max(1, round(width * scale)), max(1, round(height * scale)),
        Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation))


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
    return (f"{series.description}\n{plane} ({source_words}), {count_words(series)}\n"
            f"[{status}]")


def count_words(series: Series) -> str:
    """"15 images"; "13 volumes of 40 images, volume 1 (b = 0) assessed" for a series of
    several volumes."""
    if not series.is_multi_volume:
        return f"{len(series.slices)} images"
    counts = {v.count for v in series.volumes}
    volumes = len(series.volumes)
    words = (f"{volumes} volumes of {counts.pop()} images" if len(counts) == 1
             else f"{volumes} volumes, {len(series.slices)} images")
    assessed = series.assessed_volumes
    if not assessed:
        return f"{words}, none assessed"
    return f"{words}, {', '.join(v.name for v in assessed)} assessed"


def volume_state(volume: Volume) -> str:
    """"assessed", or why not, in the volume's own words."""
    if volume.assessed:
        return "assessed"
    return volume.not_assessed_reason or "not assessed"


def series_tooltip(series: Series, verdict: SeriesVerdict | None) -> str:
    """The series' folder, verdict and, for several volumes, each volume (the first
    ``TOOLTIP_VOLUMES``) with the reasons the others were not assessed said once."""
    lines = [series.source]
    if verdict is not None:
        lines.append(verdict.headline)
    if series.is_multi_volume:
        lines.append(f"{len(series.volumes)} volumes:")
        shown = series.volumes[:TOOLTIP_VOLUMES]
        lines += [f"  {v.name}, {v.count} images" + (" \N{EM DASH} assessed" if v.assessed
                                                     else "") for v in shown]
        if len(series.volumes) > len(shown):
            lines.append(f"  and {len(series.volumes) - len(shown)} more")
        reasons = dict.fromkeys(volume_state(v) for v in series.volumes if not v.assessed)
        lines += [_capital(reason) for reason in reasons]
    return "\n".join(lines)


class SeriesBrowser(QListWidget):
    """One thumbnail per series, with description, plane, count and verdict badge."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setIconSize(QSize(72, 72))
        self.setMinimumWidth(250)
        self.setWordWrap(True)

    def add_series(self, series: Series) -> None:
        item = QListWidgetItem(thumbnail(series), series_text(series, None))
        item.setToolTip(series_tooltip(series, None))
        self.addItem(item)

    def set_verdict(self, row: int, verdict: SeriesVerdict) -> None:
        item = self.item(row)
        if item is None:
            return
        item.setText(series_text(verdict.series, verdict))
        item.setToolTip(series_tooltip(verdict.series, verdict))
        item.setData(Qt.ItemDataRole.UserRole, verdict.verdict.value)
        item.setBackground(QColor(TINT[verdict.verdict]))


class VerdictBanner(QLabel):
    """The series verdict in words, large, coloured, impossible to miss; under it, in
    smaller type, a note such as which volume of the series the verdict was decided on."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setMargin(10)
        self._words = ""
        self.show_text("No study open", "#3c3c3c", "white")

    def show_text(self, text: str, background: str, ink: str, note: str = "") -> None:
        self._words = f"{text}\n{note}" if note else text
        markup = html.escape(text).replace("\n", "<br>")
        if note:
            markup += ('<br><span style="font-size: 11pt; font-weight: normal;">'
                       f"{html.escape(note)}</span>")
        self.setText(markup)
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
        lines += [f"- {reason.text}" for reason in verdict.reasons]
        note = _capital(verdict.assessed_on) if verdict.assessed_on else ""
        self.show_text("\n".join(lines), background, ink, note)

    @property
    def words(self) -> str:
        """The banner's text, plain (for the printout and the tests)."""
        return self._words


class FindingsPanel(QWidget):
    """Class probabilities of the shown image, and images ordered by suspicion."""

    jump_to = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.slice_label = QLabel("Image: -")
        self.slice_label.setWordWrap(True)
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

    def show_image(self, series: Series | None, index: int, finding: Finding | None) -> None:
        """Image ``index`` of ``series`` and the model's ``finding`` on it (None: not
        analysed yet, or not assessed, said with its volume's reason)."""
        if series is None or not series.slices:
            self.show_finding(None, 0)
            return
        volume = series.volume_of(index)
        self.show_finding(finding, volume.count, series.image_words(index),
                          None if volume.assessed else volume_state(volume))

    def show_finding(self, finding: Finding | None, count: int, image_words: str | None = None,
                     not_assessed: str | None = None) -> None:
        """The model's reading of the shown image. ``image_words`` names it ("image 5 of 40,
        volume 2 (b = 1500, direction 1)"; default "image N of ``count``");
        ``not_assessed`` says why the model does not read it (its volume's reason)."""
        if finding is None:
            words = _capital(image_words) if image_words else "Image"
            self.slice_label.setText(f"{words}: not assessed" if not_assessed
                                     else f"{words}: not analysed")
            for row in range(len(CLASSES)):
                self._cell(row).setText("-")
            self.slice_verdict.setText(_capital(not_assessed) if not_assessed else "")
            return
        words = _capital(image_words) if image_words else \
            f"Image {finding.index + 1} of {count}"
        self.slice_label.setText(f"{words} \N{EN DASH} {finding.plane}")
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
        series = verdict.series
        for finding in verdict.most_suspicious(None):
            volume = series.volume_of(finding.index)
            where = f"Image {finding.index - volume.start + 1}"
            if series.is_multi_volume:
                where += f", volume {volume.index + 1}"
            # a tumour image names its class, as the verdict's headline does
            called = finding.verdict.value.replace("_", " ")
            if finding.verdict is Verdict.TUMOUR:
                name = finding.predicted_class
                called += f" ({name} {percent(finding.probabilities[name])})"
            item = QListWidgetItem(
                f"{where}: p(tumour) {percent(finding.tumour_probability)}, {called}")
            item.setData(Qt.ItemDataRole.UserRole, finding.index)
            self.suspicious.addItem(item)

    def _activated(self, item: QListWidgetItem) -> None:
        self.jump_to.emit(int(item.data(Qt.ItemDataRole.UserRole)))


def _capital(words: str) -> str:
    return words[:1].upper() + words[1:]


class VolumeSpinBox(QSpinBox):
    """A spin box that keeps its own arrow and page keys while it has the focus (the
    window's image shortcuts take them otherwise)."""

    OWN_KEYS = (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent) \
                and event.key() in self.OWN_KEYS \
                and event.modifiers() == Qt.KeyboardModifier.NoModifier:
            event.accept()
            return True
        return super().event(event)


class VolumeControl(QWidget):
    """Which volume of a multi-volume series the viewer shows: a spin box "Volume 2 of 13"
    and the volume's label and whether the model read it. Hidden for a single volume."""

    volume_chosen = Signal(int)  # 0-based volume index

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        self.spin = VolumeSpinBox()
        self.spin.setPrefix("Volume ")
        self.spin.setKeyboardTracking(False)
        self.spin.setToolTip("The volume shown (Ctrl+Up / Ctrl+Down); the image position is "
                             "kept")
        self.label = QLabel("")
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.spin)
        layout.addWidget(self.label, stretch=1)
        self.spin.valueChanged.connect(lambda value: self.volume_chosen.emit(value - 1))
        self.hide()

    def show_series(self, series: Series | None) -> None:
        if series is None or not series.is_multi_volume:
            self.hide()
            return
        self.spin.blockSignals(True)
        self.spin.setRange(1, len(series.volumes))
        self.spin.setSuffix(f" of {len(series.volumes)}")
        self.spin.blockSignals(False)
        # wide enough for every volume's words, so the image slider does not jump
        metrics = self.label.fontMetrics()
        self.label.setMinimumWidth(max(metrics.horizontalAdvance(self._words(v))
                                       for v in series.volumes) + 4)
        self.show()

    @staticmethod
    def _words(volume: Volume) -> str:
        state = "assessed by the model" if volume.assessed else "not assessed"
        return f"{volume.label} \N{EN DASH} {state}" if volume.label else state

    def show_volume(self, volume: Volume) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(volume.index + 1)
        self.spin.blockSignals(False)
        self.label.setText(self._words(volume))
        self.label.setToolTip(volume_state(volume))


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

