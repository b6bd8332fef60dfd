"""Settings and About dialogs."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from workstation import __version__
from workstation.build_info import load_build_info, resource_root
from workstation.reporting.content import DISCLAIMER, model_card_rows
from workstation.settings import Settings


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        form = QFormLayout(self)
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.device.setCurrentText(settings.device)
        self.overlay_style = QComboBox()
        self.overlay_style.addItems(["outline", "fill"])
        self.overlay_style.setCurrentText(settings.overlay_style)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(10, 100)
        self.opacity.setValue(int(settings.overlay_opacity * 100))
        self.institution = QLineEdit(settings.institution)
        self.page = QComboBox()
        self.page.addItems(["A4", "Letter"])
        self.page.setCurrentText(settings.page_size)
        self.reader = QLineEdit(settings.reader_name)
        form.addRow("Analysis device", self.device)
        form.addRow("Region overlay", self.overlay_style)
        form.addRow("Overlay opacity", self.opacity)
        form.addRow("Institution (reports)", self.institution)
        form.addRow("Report page size", self.page)
        form.addRow("Your name (readings)", self.reader)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._settings = settings

    def result_settings(self) -> Settings:
        return replace(self._settings, device=self.device.currentText(),
                       overlay_style=self.overlay_style.currentText(),
                       overlay_opacity=self.opacity.value() / 100,
                       institution=self.institution.text().strip(),
                       page_size=self.page.currentText(),
                       reader_name=self.reader.text().strip())


def about_text(model_name: str) -> str:
    rows = model_card_rows_text()
    build = "\n".join(load_build_info().lines()[1:])  # model sha256s and the build date
    return (f"Brain MRI triage workstation {__version__}\n"
            f"Model: {model_name}\n{build}\n\n"
            f"Test-split figures (models/MODEL_CARD.md):\n{rows}\n\n"
            f"{DISCLAIMER}")


def model_card_rows_text() -> str:
    card = resource_root() / "models" / "MODEL_CARD.md"
    return "\n".join(f"- {a}: {b}" for a, b in model_card_rows(card))


class AboutDialog(QDialog):
    def __init__(self, model_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About")
        layout = QVBoxLayout(self)
        self.label = QLabel(about_text(model_name))
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)
        self.resize(520, 420)
