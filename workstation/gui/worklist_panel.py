"""The Worklist panel: every study received or retrieved, most urgent first, kept up to date.

Rows come from ``store.worklist.Worklist.studies()`` (priority: tumour, review, cannot
assess, not yet analysed, routine; then arrival). The panel reads the database on the
thread pool every ``interval_ms`` and redraws only when something changed, so studies the
receiver stores and analyses appear and move while the window is open. The verdict badge
has the banner's colours (``panels.BADGE``); unread studies are in bold. Double-clicking a
study marks it read and emits ``open_study`` with its folder.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QThreadPool, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QLabel,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workstation.analysis.findings import Verdict
from workstation.gui.panels import BADGE
from workstation.gui.tables import read_only_table
from workstation.gui.workers import Task
from workstation.store.worklist import PRIORITY_WORDS, Worklist, WorklistRow, default_path

# what decides the order first, so that a narrow panel still shows it
COLUMNS = ("Verdict", "Patient", "Arrived", "State", "Study date", "Description", "Series")
DESCRIPTION = COLUMNS.index("Description")
# a study not analysed yet: the banner's colours for "Analysing..." / "Not analysed yet"
WAITING_BADGE = ("#3c3c3c", "white")
STATE_WORDS = {"receiving": "receiving images", "waiting": "waiting for analysis",
               "analysing": "analysing", "done": "analysed", "failed": "failed"}


def badge(row: WorklistRow) -> tuple[str, str, str]:
    """The verdict badge's words and colours (background, ink), as the banner shows them."""
    if row.verdict:
        try:
            return BADGE[Verdict(row.verdict)]
        except ValueError:
            return BADGE[Verdict.CANNOT_ASSESS]
    if row.state == "failed":
        return BADGE[Verdict.CANNOT_ASSESS]
    words = "ANALYSING" if row.state == "analysing" else "NOT ANALYSED"
    return (words, *WAITING_BADGE)


def arrival_words(stamp: float, now: float | None = None) -> str:
    """"14:05" today, else "2024-03-02 14:05"."""
    moment = datetime.fromtimestamp(stamp)
    today = datetime.fromtimestamp(now if now is not None else time.time()).date()
    return moment.strftime("%H:%M" if moment.date() == today else "%Y-%m-%d %H:%M")


def person(name: str) -> str:
    """A DICOM person name as people read it: "Test Regression" for "Test^Regression"."""
    return " ".join(part for part in name.split("^") if part).strip()


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else value


def state_words(row: WorklistRow) -> str:
    words = STATE_WORDS.get(row.state, row.state)
    return f"{words}: {row.reason}" if row.state == "failed" and row.reason else words


def read_rows(path: Path) -> list[WorklistRow]:
    """The worklist's rows, or none while no study has arrived (the database is not
    created by looking at it)."""
    if not path.is_file():
        return []
    with Worklist(path) as worklist:
        return worklist.studies()


class WorklistPanel(QWidget):
    open_study = Signal(str, str)  # the study's folder, its UID

    def __init__(self, path: Path | None = None, interval_ms: int = 1500,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = path if path is not None else default_path()
        self.rows: list[WorklistRow] = []
        # its own pool: a slow database never waits behind the window's analysis
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._polling: Task | None = None
        self._marking: list[Task] = []
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.table = read_only_table(COLUMNS, DESCRIPTION)
        self.table.cellDoubleClicked.connect(self._double_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, stretch=1)
        self.show_rows([])
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        app = QCoreApplication.instance()
        if app is not None:  # the pool's thread must end before Qt does
            app.aboutToQuit.connect(self.stop)
        self.refresh()

    # ------------------------------------------------------------------- reading
    def refresh(self) -> None:
        """Read the worklist on the pool (one read at a time); redraw if it changed."""
        if self._polling is not None:
            return
        path = self.path
        task = Task(lambda task: read_rows(path))
        self._polling = task
        task.signals.finished.connect(self._read)
        task.signals.failed.connect(self._read_failed)
        self.pool.start(task)

    def _read(self, rows: object) -> None:
        self._polling = None
        assert isinstance(rows, list)
        if rows != self.rows:
            self.show_rows(rows)

    def _read_failed(self, message: str) -> None:
        self._polling = None
        self.summary.setText(f"The worklist could not be read: {message}")

    # ------------------------------------------------------------------- showing
    def show_rows(self, rows: Sequence[WorklistRow]) -> None:
        selected = self.selected_uid()
        self.rows = list(rows)
        self.table.setRowCount(len(self.rows))
        now = time.time()
        for index, row in enumerate(self.rows):
            words, background, ink = badge(row)
            unread = not row.read
            cells = (words, person(row.patient_name) or "(no name)",
                     arrival_words(row.arrived_at, now), state_words(row),
                     _date(row.study_date), row.description, str(row.series_count))
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(self._tooltip(row))
                if column == 0:
                    item.setBackground(QBrush(QColor(background)))
                    item.setForeground(QBrush(QColor(ink)))
                    font = QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                elif unread:
                    font = QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(index, column, item)
        self._summarise()
        if selected is not None:
            for index, row in enumerate(self.rows):
                if row.study_uid == selected:
                    self.table.selectRow(index)

    @staticmethod
    def _tooltip(row: WorklistRow) -> str:
        lines = [f"{person(row.patient_name) or '(no name)'}, ID {row.patient_id or '-'}",
                 f"Priority: {PRIORITY_WORDS.get(row.priority_name, row.priority_name)}"]
        if row.headline:
            lines.append(row.headline)
        lines += [f"- {reason}" for reason in row.reasons]
        lines.append(f"{row.series_count} series, {row.instance_count} images, "
                     f"{'read' if row.read else 'unread'}")
        if row.reason:
            lines.append(f"Failed: {row.reason}")
        lines.append(str(row.folder))
        return "\n".join(lines)

    def _summarise(self) -> None:
        if not self.rows:
            self.summary.setText("No study has arrived yet. Studies sent to this workstation "
                                 "or retrieved from the PACS appear here, most urgent "
                                 "first.")
            return
        unread = sum(not r.read for r in self.rows)
        urgent = sum(r.priority_name == "tumour" and not r.read for r in self.rows)
        words = f"{len(self.rows)} studies, {unread} unread"
        if urgent:
            words += f", {urgent} unread with a tumour suspected"
        self.summary.setText(words)

    def selected_uid(self) -> str | None:
        model = self.table.selectionModel()
        rows = model.selectedRows() if model is not None else []
        if rows and 0 <= rows[0].row() < len(self.rows):
            return self.rows[rows[0].row()].study_uid
        return None

    # ------------------------------------------------------------------- opening
    def _double_clicked(self, index: int, column: int) -> None:
        if 0 <= index < len(self.rows):
            self.open_row(self.rows[index])

    def open_row(self, row: WorklistRow) -> None:
        """Mark ``row`` read (on the pool) and ask the window to open its folder."""
        path, uid = self.path, row.study_uid

        def mark(task: Task) -> None:
            with Worklist(path) as worklist:
                worklist.mark_read(uid)

        task = Task(mark)
        self._marking.append(task)  # held until it ends

        def ended(*_: object) -> None:
            self._marking.remove(task)
            self.refresh()
        task.signals.finished.connect(ended)
        task.signals.failed.connect(ended)
        self.pool.start(task)
        self.open_study.emit(str(row.folder), row.study_uid)

    def stop(self) -> None:
        """Stop reading (the window is closing, the application quitting); the pool's
        threads end."""
        self.timer.stop()
        self.pool.waitForDone(5000)
