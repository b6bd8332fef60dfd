"""Small composite controls the window is built from: the image slider with the volume
control under the viewer, the progress of background work in the status bar, and the
panel of files that could not be read."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSlider,
    QWidget,
)

from workstation.gui.panels import VolumeControl
from workstation.gui.viewer import SliceView
from workstation.imaging.series import Problem, Series, Severity


class ImageControls(QWidget):
    """The slider over the positions of the shown volume and, for a series of several
    volumes, the control that chooses the volume; both drive ``viewer``, and ``follow``
    brings them to the viewer's image."""

    def __init__(self, viewer: SliceView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("Image of the shown volume (Up / Down, wheel)")
        self.slider.valueChanged.connect(viewer.set_position)
        self.volume_control = VolumeControl()
        self.volume_control.volume_chosen.connect(viewer.set_volume)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, stretch=1)
        layout.addWidget(self.volume_control)

    def show_series(self, series: Series | None) -> None:
        self.volume_control.show_series(series)

    def follow(self) -> None:
        volume = self.viewer.volume
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, volume.count - 1) if volume is not None else 0)
        self.slider.setValue(self.viewer.position)
        self.slider.blockSignals(False)
        if volume is not None:
            self.volume_control.show_volume(volume)


class TaskProgress(QWidget):
    """A progress bar and a Cancel button; the window shows it while work runs."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(260)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self.hide()

    def show_progress(self, done: int, total: int, what: str) -> None:
        """``done`` of ``total`` (0: not known yet, shown as busy)."""
        self.bar.setMaximum(max(total, 0))
        self.bar.setValue(done)
        self.bar.setFormat(f"{what} %v/%m" if total else what)


class ProblemDock(QDockWidget):
    """The files that could not be read, one a line; hidden while there are none."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Files that could not be read", parent)
        self.setObjectName("problems")
        self.problems = QListWidget()
        self.setWidget(self.problems)
        self.hide()

    def add(self, problem: Problem) -> None:
        """List ``problem`` if it is an error (warnings and skipped files are not)."""
        if problem.severity is Severity.ERROR:
            self.problems.addItem(f"{problem.path}: {problem.message}")
            self.show()

    def show_problems(self, problems: Iterable[Problem]) -> None:
        self.problems.clear()
        self.hide()
        for problem in problems:
            self.add(problem)
