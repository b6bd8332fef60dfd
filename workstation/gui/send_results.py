"""File > Send Results: the study's DICOM results to a configured destination, with the
send queue's progress and failures in view.

The dialog lists the destinations of the DICOM network settings (the default one chosen),
writes the results (``reporting.dicom_export``) on a worker thread, queues them
(``store.send_queue``) and sends at once; a destination that is down keeps them in the
queue, which the window tries again every minute while it is open (and any later send or
``workstation triage --send`` too). What is waiting or was refused is listed with the
reason in plain words.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workstation.gui.exports import APP_TITLE
from workstation.gui.workers import Task, TaskRunner

if TYPE_CHECKING:
    from workstation.analysis.run import StudyTriage
    from workstation.dicomnet.config import NetworkSettings
    from workstation.gui.main_window import MainWindow
    from workstation.store.readings import Reading
    from workstation.store.send_queue import ProcessReport, SendQueue

RETRY_INTERVAL_MS = 60_000


@dataclass(frozen=True)
class SendSummary:
    """What one "Send" did, for the dialog and the status bar."""

    destination: str
    exported: int
    report: ProcessReport
    notes: tuple[str, ...]

    @property
    def words(self) -> str:
        report = self.report
        parts = []
        if report.sent:
            parts.append(f"{report.sent} result object{'s' if report.sent != 1 else ''} "
                         f"sent to {self.destination}")
        if report.failed:
            parts.append(f"{report.failed} refused by the destination")
        if report.waiting:
            parts.append(f"{report.waiting} result object{'s' if report.waiting != 1 else ''} "
                         "waiting in the send queue (tried again every minute while the "
                         "window is open)")
        return "; ".join(parts) or "nothing was due to be sent"


def send_work(result: StudyTriage, readings: dict[str, Reading], destination: str,
              settings: NetworkSettings, institution: str, page_size: str,
              queue: SendQueue) -> Any:
    """The worker's job: write the results, queue them for ``destination``, send."""
    def work(task: Task) -> SendSummary:
        from workstation.reporting.dicom_export import export_results

        task.report(0, 0, "Writing the DICOM results...")
        with tempfile.TemporaryDirectory(prefix="triage-send-") as folder:
            export = export_results(result, Path(folder), readings=readings,
                                    institution=institution, page_size=page_size)
            queue.enqueue(destination, export.paths, study_uid=export.study_uid,
                          description=f"triage results of study {export.study_uid}")
        task.report(0, len(export.objects), f"Sending to {destination}...")
        report = queue.process(settings, force=True, progress=lambda done, total: task.report(
            done, total, f"Sending to {destination}: {done} of {total}"))
        return SendSummary(destination, len(export.objects), report, export.notes)
    return work


def retry_work(settings: NetworkSettings, queue: SendQueue, force: bool) -> Any:
    def work(task: Task) -> ProcessReport:
        return queue.process(settings, force=force)
    return work


class SendResultsDialog(QDialog):
    """Choose where, send, watch; the queue's waiting and refused sends below."""

    def __init__(self, sender: ResultsSender, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sender_ = sender
        self.setWindowTitle("Send results")
        self.destination = QComboBox()
        settings = sender.network_settings()
        names = [n.name for n in settings.nodes] if settings is not None else []
        for node in settings.nodes if settings is not None else ():
            self.destination.addItem(f"{node.name} ({node.ae_title} at {node.host}:"
                                     f"{node.port})", node.name)
        if settings is not None and settings.destination in names:
            self.destination.setCurrentIndex(names.index(settings.destination))
        self.what = QLabel("The structured report, the suspect-region segmentation, the "
                           "report PDF and the key images, as DICOM, into the study on "
                           "the destination. Decision support, not a diagnosis.")
        self.what.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("" if names else "No DICOM destination is configured: add "
                             "one in the DICOM network settings (dicom.json).")
        self.status.setWordWrap(True)
        self.status.setMinimumHeight(self.status.fontMetrics().lineSpacing() * 3 + 4)
        self.queue_list = QTreeWidget()
        self.queue_list.setHeaderLabels(["State", "Destination", "Object", "Tries",
                                         "Why / next try"])
        self.queue_list.setRootIsDecorated(False)
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(True)
        self.send_button.setEnabled(bool(names))
        self.send_button.clicked.connect(self.send)
        self.retry_button = QPushButton("Try waiting sends now")
        self.retry_button.clicked.connect(self.retry)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.send_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.retry_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Destination:", self.destination)
        layout = QVBoxLayout(self)
        layout.addWidget(self.what)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(QLabel("Send queue (waiting and refused):"))
        layout.addWidget(self.queue_list, 1)
        layout.addWidget(buttons)
        self.resize(760, 420)
        self.refresh_queue()

    def send(self) -> None:
        name = self.destination.currentData()
        if name and self.sender_.send(str(name), self):
            self.send_button.setEnabled(False)
            self.progress.setRange(0, 0)
            self.status.setText(f"Sending to {name}...")

    def retry(self) -> None:
        self.status.setText("Trying the waiting sends again...")
        self.sender_.retry_now(force=True)

    def show_progress(self, done: int, total: int, what: str) -> None:
        if total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        self.status.setText(what)

    def show_summary(self, summary: SendSummary) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if summary.report.delivered_all else 0)
        lines = [summary.words, *dict.fromkeys(summary.report.messages)]
        self.status.setText("\n".join(lines))
        self.send_button.setEnabled(True)
        self.refresh_queue()

    def show_failure(self, message: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText(f"The results were not sent: {message}")
        self.send_button.setEnabled(True)
        self.refresh_queue()

    def refresh_queue(self) -> None:
        self.queue_list.clear()
        queue = self.sender_.queue(quiet=True)
        if queue is None:
            return
        from workstation.store.send_queue import FAILED, PENDING

        for item in queue.items(PENDING) + queue.items(FAILED):
            when = datetime.fromtimestamp(item.next_try).strftime("%H:%M:%S")
            why = item.last_error or "not tried yet"
            if item.state == PENDING:
                why = f"{why} (next try {when})"
            state = "waiting" if item.state == PENDING else "refused"
            self.queue_list.addTopLevelItem(QTreeWidgetItem(
                [state, item.node, item.path.name.split("-", 1)[0], str(item.attempts),
                 why]))
        for column in range(4):
            self.queue_list.resizeColumnToContents(column)


class ResultsSender(QObject):
    """The window's "Send results": its dialog, its worker and the minute-by-minute retry
    of the send queue while the window is open."""

    def __init__(self, window: MainWindow, queue_path: Path | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.queue_path = queue_path
        self.runner = TaskRunner(parent=self)
        self.dialog: SendResultsDialog | None = None
        self.last_summary: SendSummary | None = None
        self.last_retry: object = None
        self.timer = QTimer(self)
        self.timer.setInterval(RETRY_INTERVAL_MS)
        self.timer.timeout.connect(self.retry_now)
        self.timer.start()
        self._queue: SendQueue | None = None

    def network_settings(self) -> NetworkSettings | None:
        from workstation.dicomnet.config import NetworkSettings, NetworkSettingsError

        try:
            return NetworkSettings.load()
        except NetworkSettingsError as exc:
            QMessageBox.warning(self.window, APP_TITLE,
                                f"The DICOM network settings cannot be used: {exc}")
            return None

    def queue(self, quiet: bool = False) -> SendQueue | None:
        from workstation.store.send_queue import SendQueue, SendQueueError

        if self._queue is None:
            try:
                self._queue = SendQueue(self.queue_path)
            except SendQueueError as exc:
                if not quiet:
                    QMessageBox.warning(self.window, APP_TITLE, str(exc))
                return None
        return self._queue

    def _queue_file(self) -> Path:
        from workstation.store.send_queue import default_path

        return self.queue_path or default_path()

    def open(self) -> SendResultsDialog | None:
        """File > Send Results: the dialog, once the analysis has finished."""
        if self.window._finished_result() is None:
            return None
        if self.dialog is None:
            self.dialog = SendResultsDialog(self, self.window)
        self.dialog.refresh_queue()
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def send(self, destination: str, dialog: SendResultsDialog | None = None) -> bool:
        """Start sending the open study's results to ``destination``; False when it
        cannot start (said in a message box)."""
        result = self.window.triage_result()
        settings = self.network_settings()
        queue = self.queue()
        if result is None or settings is None or queue is None:
            return False
        app = self.window.settings
        task = Task(send_work(result, dict(self.window.session.readings), destination,
                              settings, app.institution, app.page_size, queue))
        self.runner.start(task, lambda: True, progress=self._progress,
                          finished=self._finished, failed=self._failed)
        return True

    def retry_now(self, force: bool = False) -> None:
        """Send what is due in the queue (``force``: all that waits) on a worker; nothing
        when a send is running."""
        if self.runner.tasks:
            return
        if self._queue is None and not self._queue_file().exists():
            return  # nothing was ever queued: no database to make
        queue = self.queue(quiet=True)
        if queue is None or not queue.pending():
            return
        from workstation.dicomnet.config import NetworkSettings, NetworkSettingsError

        try:
            settings = NetworkSettings.load()
        except NetworkSettingsError:
            return
        self.runner.start(Task(retry_work(settings, queue, force)), lambda: True,
                          finished=self._retried, failed=self._failed)

    def _progress(self, done: int, total: int, what: str) -> None:
        if self.dialog is not None:
            self.dialog.show_progress(done, total, what)

    def _finished(self, summary: object) -> None:
        assert isinstance(summary, SendSummary)
        self.last_summary = summary
        self.window.statusBar().showMessage(summary.words, 10000)
        if self.dialog is not None:
            self.dialog.show_summary(summary)

    def _failed(self, message: str) -> None:
        self.window.statusBar().showMessage(f"The results were not sent: {message}", 10000)
        if self.dialog is not None:
            self.dialog.show_failure(message)

    def _retried(self, report: object) -> None:
        self.last_retry = report
        sent = int(getattr(report, "sent", 0))
        if sent:
            self.window.statusBar().showMessage(f"{sent} queued result object(s) sent",
                                                10000)
        if self.dialog is not None:
            messages = tuple(getattr(report, "messages", ()))
            words = f"{sent} waiting result object(s) sent" if sent else \
                "nothing more could be sent"
            self.dialog.status.setText("\n".join([words, *dict.fromkeys(messages)]))
            self.dialog.refresh_queue()

    def stop(self) -> None:
        self.timer.stop()
        self.runner.cancel()
