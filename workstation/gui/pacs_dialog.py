"""Open from PACS: search the configured PACS (C-FIND), retrieve a study (C-GET) and open it.

The search and the retrieval run on the thread pool (``workers.Task``); the dialog shows
their progress, and Cancel stops a retrieval (the images already received stay in the
local store and in the worklist). When a study has been retrieved whole, ``retrieved``
holds its folder, ``study_retrieved`` is emitted and the dialog closes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workstation.dicomnet.config import NetworkSettings, RemoteNode
from workstation.dicomnet.query import (
    QueryInputError,
    RetrieveProgress,
    RetrieveResult,
    StudyMatch,
    StudyQuery,
    retrieve_study,
    search_studies,
)
from workstation.gui.tables import read_only_table
from workstation.gui.workers import Task, TaskRunner

COLUMNS = ("Study date", "Patient", "Patient ID", "Modality", "Description", "Series",
           "Images")
MODALITIES = ("", "MR", "CT", "PT", "SC")
ERROR_INK = "#a00000"
SHOWN_PROBLEMS = 3  # a retrieval's problems said in the dialog; the rest are counted


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else value


def _count(value: int | None) -> str:
    return "" if value is None else str(value)


class PacsDialog(QDialog):
    study_retrieved = Signal(str, str)  # the study's folder in the store, its UID

    def __init__(self, settings: NetworkSettings, parent: QWidget | None = None,
                 worklist_path: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open from PACS")
        self.settings = settings
        self.worklist_path = worklist_path
        # a pool of its own: closing waits for this dialog's work, not the window's analysis
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.runner = TaskRunner(self.pool, parent=self)
        self.matches: list[StudyMatch] = []
        self.retrieved: Path | None = None
        self._task: Task | None = None
        self._last = RetrieveProgress(0, None, 0)
        self._build()
        self._set_busy(False)
        if not settings.nodes:
            self._say("No PACS is configured. Add one to the DICOM network settings "
                      "(dicom.json; see the README, \"Query/retrieve from a PACS\").", error=True)
            self.search_button.setEnabled(False)
        self.resize(900, 520)

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        self.node_choice = QComboBox()
        for node in self.settings.nodes:
            self.node_choice.addItem(f"{node.name} ({node.ae_title} at {node.host}:"
                                     f"{node.port})", node.name)
        default = self.node_choice.findData(self.settings.pacs)
        if default >= 0:
            self.node_choice.setCurrentIndex(default)
        self.patient = QLineEdit()
        self.patient.setPlaceholderText("name (any part) or patient ID")
        self.date = QLineEdit()
        self.date.setPlaceholderText("YYYYMMDD, YYYY-MM-DD or FROM-TO (20240101-20240331)")
        self.modality = QComboBox()
        self.modality.setEditable(True)
        self.modality.addItems(MODALITIES)
        self.description = QLineEdit()
        self.description.setPlaceholderText("any part of the study description")
        for field in (self.patient, self.date, self.description):
            field.returnPressed.connect(self.search)
        form = QFormLayout()
        form.addRow("PACS", self.node_choice)
        form.addRow("Patient", self.patient)
        form.addRow("Study date", self.date)
        form.addRow("Modality", self.modality)
        form.addRow("Description", self.description)
        self.search_button = QPushButton("&Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)

        self.table = read_only_table(COLUMNS, COLUMNS.index("Description"))
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.cellDoubleClicked.connect(lambda row, column: self.retrieve())

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.retrieve_button = QPushButton("&Retrieve and open")
        self.retrieve_button.clicked.connect(self.retrieve)
        self.cancel_button = QPushButton("&Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)

        top = QHBoxLayout()
        top.addLayout(form, stretch=1)
        top.addWidget(self.search_button, alignment=Qt.AlignmentFlag.AlignBottom)
        buttons = QHBoxLayout()
        buttons.addWidget(self.progress, stretch=1)
        buttons.addWidget(self.retrieve_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, stretch=1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)

    # ----------------------------------------------------------------------- state
    @property
    def busy(self) -> bool:
        return self._task is not None

    def _set_busy(self, busy: bool) -> None:
        self.search_button.setEnabled(not busy and bool(self.settings.nodes))
        self.retrieve_button.setEnabled(not busy and self.selected() is not None)
        self.cancel_button.setEnabled(busy)
        self.progress.setVisible(busy)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {ERROR_INK};" if error else "")

    def node(self) -> RemoteNode:
        return self.settings.node(str(self.node_choice.currentData()))

    def selected(self) -> StudyMatch | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or not 0 <= rows[0].row() < len(self.matches):
            return None
        return self.matches[rows[0].row()]

    def _selection_changed(self) -> None:
        self.retrieve_button.setEnabled(not self.busy and self.selected() is not None)

    def _start(self, work: Callable[[Task], Any], finished: Callable[..., None],
               cancelled: Callable[[], None], progress: Callable[..., None] | None = None
               ) -> None:
        task = Task(work)
        self._task = task
        self._set_busy(True)
        self.runner.start(task, lambda: self._task is task, progress=progress,
                          finished=finished, cancelled=cancelled, failed=self._failed)

    def _ended(self) -> None:
        self._task = None
        self._set_busy(False)

    # ---------------------------------------------------------------------- search
    def search(self) -> None:
        if self.busy or not self.settings.nodes:
            return
        try:
            query = StudyQuery(patient=self.patient.text(), date=self.date.text(),
                               modality=self.modality.currentText(),
                               description=self.description.text())
        except QueryInputError as exc:
            self._say(f"{str(exc)[0].upper()}{str(exc)[1:]}.", error=True)
            return
        node, settings = self.node(), self.settings
        self.progress.setRange(0, 0)  # busy, no total
        self._say(f"Searching {node.name}...")
        self._start(lambda task: search_studies(settings, query, node), self._found,
                    self._search_cancelled)

    def _found(self, matches: object) -> None:
        self._ended()
        assert isinstance(matches, list)
        self.show_matches(matches)
        node = self.node().name
        self._say(f"{len(matches)} studies found on {node}." if matches
                  else f"No study on {node} matches the search.")

    def _search_cancelled(self) -> None:
        self._ended()
        self._say("Search cancelled.")

    def show_matches(self, matches: list[StudyMatch]) -> None:
        self.matches = list(matches)
        self.table.setRowCount(len(self.matches))
        for row, match in enumerate(self.matches):
            cells = (_date(match.study_date), match.patient_name, match.patient_id,
                     "/".join(match.modalities), match.description,
                     _count(match.series_count), _count(match.instance_count))
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"Study {match.study_uid}")
                self.table.setItem(row, column, item)
        if self.matches:
            self.table.selectRow(0)
        self._selection_changed()

    # -------------------------------------------------------------------- retrieve
    def retrieve(self) -> None:
        match = self.selected()
        if self.busy or match is None:
            return
        node, settings, worklist = self.node(), self.settings, self.worklist_path
        total = match.instance_count or 0
        self.progress.setRange(0, total)
        self.progress.setValue(0)
        self._last = RetrieveProgress(0, total or None, 0)
        self._say(f"Retrieving the study of {match.patient_name or 'an unnamed patient'} "
                  f"from {node.name}...")

        def work(task: Task) -> RetrieveResult:
            def progress(step: RetrieveProgress) -> None:
                task.report(step.received, step.total or 0, step.text)
            return retrieve_study(settings, match.study_uid, node, progress=progress,
                                  cancelled=lambda: task.cancelled, worklist_path=worklist)

        self._start(work, self._retrieved, self._retrieve_cancelled, self._progress)

    def _progress(self, done: int, total: int, text: str) -> None:
        self._last = RetrieveProgress(done, total or None, 0)
        if total:
            self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat(f"{done} / {total} images" if total else f"{done} images")
        self._say(f"{text}.")

    def _retrieved(self, result: object) -> None:
        self._ended()
        assert isinstance(result, RetrieveResult)
        if result.complete and result.folder is not None:
            self.retrieved = result.folder
            self._say(f"Retrieved {result.received} images.")
            self.study_retrieved.emit(str(result.folder), result.study_uid)
            self.accept()
            return
        shown = result.problems[:SHOWN_PROBLEMS]
        problems = " ".join(f"{p[0].upper()}{p[1:]}." for p in shown)
        if len(result.problems) > len(shown):
            problems += f" And {len(result.problems) - len(shown)} more problems."
        self._say(f"Only {result.received} images arrived, {result.failed} failed; the study "
                  f"was not opened. {problems}".strip(), error=True)

    def _retrieve_cancelled(self) -> None:
        self._ended()
        received = self._last.received
        kept = (f" The {received} images received are kept in the local store and the "
                "worklist." if received else "")
        self._say(f"Retrieval cancelled.{kept}")

    def _failed(self, message: str) -> None:
        self._ended()
        self._say(f"{message[0].upper()}{message[1:]}." if message else "Failed.", error=True)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._say("Cancelling...")

    # ----------------------------------------------------------------------- close
    def done(self, result: int) -> None:
        """Closing (Close, Escape, the window's button) stops what is running first."""
        if self._task is not None:
            self._task.cancel()
            self.pool.waitForDone(10_000)
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.done(QDialog.DialogCode.Rejected)
        event.accept()
