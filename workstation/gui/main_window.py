"""The workstation window: open a study, see the verdict and the suspect region, act on it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from workstation.analysis.findings import Finding, SeriesVerdict
from workstation.gui import exports
from workstation.gui.controls import ImageControls, ProblemDock, TaskProgress
from workstation.gui.dialogs import AboutDialog, SettingsDialog
from workstation.gui.exports import APP_TITLE
from workstation.gui.menus import build_menus
from workstation.gui.panels import FindingsPanel, ReadingForm, SeriesBrowser, VerdictBanner
from workstation.gui.send_results import ResultsSender
from workstation.gui.viewer import SliceView
from workstation.gui.workers import (
    GRADCAM_NEEDS_FULL_INSTALL,
    EngineHolder,
    Task,
    TaskRunner,
    analysis_work,
    gradcam_available,
    gradcam_work,
    load_work,
)
from workstation.gui.worklist_panel import WorklistPanel
from workstation.imaging.presets import Preset, preset_window
from workstation.imaging.series import Problem, Series, SeriesInfo
from workstation.imaging.study import Preview
from workstation.session import StudySession
from workstation.settings import Settings
from workstation.store import audit
from workstation.store.readings import Reading


class MainWindow(QMainWindow):
    """Widgets and their wiring; what the reader has open and where is ``session``."""

    def __init__(self, settings: Settings | None = None, settings_path: Path | None = None,
                 readings_dir: Path | None = None, worklist_path: Path | None = None) -> None:
        super().__init__()
        self.worklist_path = worklist_path
        self.settings_path = settings_path
        self.settings = settings or Settings.load(settings_path)
        self.readings_dir = readings_dir
        self.holder = EngineHolder()
        self.runner = TaskRunner(parent=self)
        self.session = StudySession(readings_dir=readings_dir)
        self.timings: dict[str, float] = {}
        self._opened_at = 0.0
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self._build_widgets()
        self.results_sender = ResultsSender(self)  # File > Send Results, the send queue
        menus = build_menus(self)
        self.recent_menu, self.mask_action = menus.recent, menus.mask
        self.gradcam_action, self.invert_action = menus.gradcam, menus.invert
        self._apply_settings()
        self.resize(1400, 860)

    # ------------------------------------------------------------------ construction
    def _build_widgets(self) -> None:
        self.browser = SeriesBrowser()
        self.browser.currentRowChanged.connect(self.show_series)
        self.banner = VerdictBanner()
        self.viewer = SliceView()
        self.viewer.slice_changed.connect(self._slice_changed)
        self.controls = ImageControls(self.viewer)
        self.slider, self.volume_control = self.controls.slider, self.controls.volume_control
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.addWidget(self.banner)
        centre_layout.addWidget(self.viewer, stretch=1)
        centre_layout.addWidget(self.controls)
        self.findings = FindingsPanel()
        self.findings.jump_to.connect(self.viewer.set_index)  # any volume's image
        self.reading_form = ReadingForm()
        self.reading_form.saved.connect(self._save_reading)
        self.reading_form.setEnabled(False)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.findings, stretch=1)
        right_layout.addWidget(self.reading_form)
        splitter = QSplitter()
        splitter.addWidget(self.browser)
        splitter.addWidget(centre)
        splitter.addWidget(right)
        splitter.setSizes([260, 800, 340])
        self.setCentralWidget(splitter)

        self.problem_dock = ProblemDock(self)
        self.problem_list = self.problem_dock.problems
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.problem_dock)
        self.worklist = WorklistPanel(self.worklist_path)
        self.worklist.open_study.connect(self.open_stored_study)
        self.worklist_dock = QDockWidget("Worklist", self)
        self.worklist_dock.setObjectName("worklist")
        self.worklist_dock.setWidget(self.worklist)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.worklist_dock)
        self.resizeDocks([self.worklist_dock], [380], Qt.Orientation.Horizontal)
        # shown once studies arrive (a receiver or a retrieval made the worklist); View >
        # Worklist shows it before that
        self.worklist_dock.setVisible(self.worklist.path.exists())

        status = self.statusBar()
        self.model_label = QLabel("Model: not loaded")
        self.hover_label = QLabel("")
        self.viewer.hovered.connect(self.hover_label.setText)
        self.progress = TaskProgress()
        self.progress.cancel_requested.connect(self.cancel)
        self.runner.busy.connect(self.progress.setVisible)
        status.addWidget(self.model_label)
        status.addWidget(self.hover_label, stretch=1)
        status.addPermanentWidget(self.progress)

    def _apply_settings(self) -> None:
        s = self.settings
        self.mask_action.setChecked(s.show_mask)
        self.gradcam_action.setChecked(s.show_gradcam)
        o = self.viewer.overlays
        o.show_mask, o.show_gradcam = s.show_mask, s.show_gradcam
        o.style, o.opacity = s.overlay_style, s.overlay_opacity
        self.viewer.set_overlays(o.mask, o.gradcam)
        self.recent_menu.clear()
        for path in s.recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda checked=False, p=path: self.open_paths([p]))
        self.recent_menu.setEnabled(bool(s.recent))

    # ------------------------------------------------------------------------ opening
    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open images or DICOM files")
        if files:
            self.open_paths(files)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a study folder")
        if folder:
            self.open_paths([folder])

    def open_from_pacs(self) -> None:
        """Search the PACS and retrieve a study (``gui.pacs_dialog``); open it once here."""
        from workstation.dicomnet.config import NetworkSettings, NetworkSettingsError
        from workstation.gui.pacs_dialog import PacsDialog

        try:
            settings = NetworkSettings.load()
        except NetworkSettingsError as exc:
            QMessageBox.warning(self, APP_TITLE, f"The DICOM network settings cannot be "
                                f"used: {exc}")
            return
        dialog = PacsDialog(settings, self, self.worklist_path)
        dialog.study_retrieved.connect(self.open_stored_study)
        dialog.exec()

    def open_stored_study(self, folder: str, study_uid: str) -> None:
        """Open a study of the local store (from the worklist, or just retrieved)."""
        self.worklist_dock.show()  # a retrieved study is in the worklist now
        self.open_paths([folder])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            self.open_paths(paths)

    def open_paths(self, paths: list[str]) -> None:
        self.cancel()
        self.session = StudySession(tuple(str(p) for p in paths), self.readings_dir)
        paths = list(self.session.paths)
        self.browser.clear()
        self.problem_dock.show_problems(())
        self.viewer.set_series(None)
        self.controls.show_series(None)
        self.findings.show_finding(None, 0)
        self.findings.show_ranking(None)
        self.banner.show_text("Reading the study...", "#3c3c3c", "white")
        self.settings = self.settings.with_recent(
            paths[0] if len(paths) == 1 else str(Path(paths[0]).parent))
        self._save_settings()
        self._apply_settings()
        self.setWindowTitle(f"{APP_TITLE} - {', '.join(Path(p).name for p in paths)}")
        self._opened_at = time.perf_counter()
        self.timings = {}
        self._run(Task(load_work(paths)), self._loaded_item, self._load_finished,
                  self._load_cancelled)

    def _run(self, task: Task, item: Callable[..., None], finished: Callable[..., None],
             cancelled: Callable[[], None]) -> None:
        """Start ``task`` for the open study: what it reports later is dropped once another
        study is opened."""
        session = self.session
        self.runner.start(task, lambda: self.session is session, item=item,
                          progress=self._progress, finished=finished, cancelled=cancelled,
                          failed=self._task_failed)

    def _loaded_item(self, item: object) -> None:
        if isinstance(item, Preview) and not self.session.series:
            self.viewer.set_series(Series(source=item.slice.source, series_uid=None,
                                          info=SeriesInfo(), slices=(item.slice,)))
            self._slice_changed(0)
            self.banner.show_text(f"Reading {item.files} files... (showing the first image "
                                  "read; no verdict yet)", "#3c3c3c", "white")
            self.timings["first_image_s"] = time.perf_counter() - self._opened_at
        elif isinstance(item, Series):
            self.browser.add_series(item)
            if self.session.add_series(item) == 0:
                self.browser.setCurrentRow(0)  # at its first image, not the preview's place
                self.timings.setdefault("first_image_s", time.perf_counter() - self._opened_at)
                self.timings["first_series_s"] = time.perf_counter() - self._opened_at
        elif isinstance(item, Problem):
            self.session.add_problem(item)
            self.problem_dock.add(item)

    def _load_finished(self, count: object) -> None:
        self.timings["load_s"] = time.perf_counter() - self._opened_at
        audit.record_event(audit.STUDY_OPENED, study_uid=audit.study_uid_of(self.session.study))
        self._loading_done()
        self.start_analysis()

    def _load_cancelled(self) -> None:
        self._loading_done()  # what was read stays open, not analysed
        if self.session.series:
            self.banner.show_text("Reading cancelled - no verdict (Analysis > Analyse again "
                                  "analyses the series read)", "#3c3c3c", "white")

    def _loading_done(self) -> None:
        self.session.finish_loading()
        self.problem_dock.show_problems(self.session.unreadable())
        if not self.session.series:
            self.banner.show_text("Cannot assess: no image in the study could be read",
                                  "#5a5a5a", "white")
        self._show_reading()

    # ----------------------------------------------------------------------- analysis
    def start_analysis(self) -> None:
        series = self.session.start_analysis()
        if not series:
            return
        self._analysis_started = time.perf_counter()
        self._show_current_verdict()
        work = analysis_work(series, self.holder, self.settings.device)
        self._run(Task(work), self._analysed, self._analysis_finished,
                  self._analysis_cancelled)

    def _analysed(self, verdict: object) -> None:
        assert isinstance(verdict, SeriesVerdict)
        row = self.session.add_verdict(verdict)
        self.browser.set_verdict(row, verdict)
        if row == self.session.row:
            self._show_current_verdict()  # at the image the reader is on

    def _analysis_finished(self, seconds: object) -> None:
        self.session.finish_analysis()
        self.timings["analysis_s"] = time.perf_counter() - self._analysis_started
        self.statusBar().clearMessage()
        engine = self.holder.engine
        if engine is not None:
            images = sum(len(s.assessed_indices) for s in self.session.series)
            backend = getattr(engine, "backend", None)  # what ran the network
            self.model_label.setText(
                f"Model {engine.info.name} {engine.info.version} | device {engine.device}"
                f"{f' ({backend})' if backend else ''} | "
                f"last analysis {float(seconds):.1f} s for {images} images")  # type: ignore[arg-type]

    def _analysis_cancelled(self) -> None:
        self.session.finish_analysis()
        done, total = len(self.session.verdicts), len(self.session.series)
        self.statusBar().showMessage(f"Analysis cancelled: {done} of {total} series have a "
                                     "verdict", 5000)
        if self.session.current_verdict is None:
            self.banner.show_text("Analysis cancelled - no verdict", "#3c3c3c", "white")

    def cancel(self) -> None:
        self.runner.cancel()

    def _task_failed(self, message: str) -> None:
        self.session.finish_analysis()
        self.banner.show_text(f"Cannot assess: {message}", "#5a5a5a", "white")

    def _progress(self, done: int, total: int, what: str) -> None:
        self.progress.show_progress(done, total, what)
        self.statusBar().showMessage(what, 3000)

    # --------------------------------------------------------------------- showing
    def show_series(self, row: int) -> None:
        if not 0 <= row < len(self.session.series):
            return
        index = self.session.select(row)  # the first image of the volume the model reads
        series = self.session.series[row]
        self.viewer.set_series(series)
        self.controls.show_series(series)
        self.viewer.set_index(index)
        self._show_current_verdict()
        self._show_reading()

    def current_finding(self) -> Finding | None:
        return self.session.current_finding

    def _show_current_verdict(self) -> None:
        verdict = self.session.current_verdict
        self.banner.show_verdict(verdict, analysing=self.session.analysing)
        self.findings.show_ranking(verdict)
        self._slice_changed(self.viewer.index)

    def _slice_changed(self, index: int) -> None:
        self.session.move_to(index)
        self.controls.follow()
        finding = self.current_finding()
        self.findings.show_image(self.viewer.series, index, finding)
        # nothing is drawn on an image the model did not read
        self.viewer.set_overlays(finding.mask if finding is not None else None, None)
        if finding is not None and self.gradcam_action.isChecked():
            self._start_gradcam(finding)

    def next_suspicious(self) -> None:
        index = self.session.next_suspicious()
        if index is not None:
            self.viewer.set_index(index)

    def apply_preset(self, preset: Preset) -> None:
        if self.viewer.current is not None:
            self.viewer.set_window(preset_window(self.viewer.current, preset))

    def toggle_mask(self, checked: bool) -> None:
        self.viewer.overlays.show_mask = checked
        self.viewer.set_overlays(self.viewer.overlays.mask, self.viewer.overlays.gradcam)

    def toggle_gradcam(self, checked: bool) -> None:
        if checked and not gradcam_available():
            self._gradcam_unavailable()
            return
        self.viewer.overlays.show_gradcam = checked
        finding = self.current_finding()
        if checked and finding is not None:
            self._start_gradcam(finding)
        else:
            self.viewer.set_overlays(self.viewer.overlays.mask, None)

    def _gradcam_unavailable(self) -> None:
        """The CPU package has no torch: say so in words and leave the overlay off."""
        self.gradcam_action.setChecked(False)
        self.viewer.overlays.show_gradcam = False
        self.statusBar().showMessage(GRADCAM_NEEDS_FULL_INSTALL, 10000)
        QMessageBox.information(self, APP_TITLE, GRADCAM_NEEDS_FULL_INSTALL)

    def _start_gradcam(self, finding: Finding) -> None:
        if not gradcam_available():
            self.gradcam_action.setChecked(False)  # a setting kept from a full install
            self.viewer.overlays.show_gradcam = False
            return
        series = self.session.current_series
        if self.holder.engine is None or self.session.analysing or series is None:
            return  # Grad-CAM hooks the network the analysis is using
        image = series.slices[finding.index].image
        index = finding.index

        def done(heat: object) -> None:
            if self.viewer.index == index and self.gradcam_action.isChecked():
                self.viewer.set_overlays(self.viewer.overlays.mask, heat)  # type: ignore[arg-type]

        task = Task(gradcam_work(self.holder, image, finding))
        task.signals.finished.connect(done)
        self.runner.pool.start(task)

    # ---------------------------------------------------------------- readings, export
    def _show_reading(self) -> None:
        key, reading = self.session.current_reading()
        self.reading_form.load(key, reading, self.settings.reader_name)

    def _save_reading(self, reading: object) -> None:
        assert isinstance(reading, Reading)
        try:
            self.session.record(reading)
        except OSError as exc:
            QMessageBox.warning(self, APP_TITLE, f"The reading could not be saved: {exc}")

    def triage_result(self) -> Any:
        return self.session.triage_result(self.holder.engine)

    def _finished_result(self) -> Any:
        result = self.triage_result()
        if result is None:
            QMessageBox.information(self, APP_TITLE, "The analysis has not finished yet.")
        return result

    def choose_report_path(self) -> None:
        if self._finished_result() is not None:
            path, _ = QFileDialog.getSaveFileName(self, "Export the triage report",
                                                  "triage.pdf", "PDF (*.pdf)")
            if path:
                self.export_report(Path(path))

    def export_report(self, path: Path) -> Path | None:
        result = self.triage_result()
        written = None if result is None else exports.export_report(
            self, result, self.session.readings, self.settings, path)
        if written is not None:
            self.statusBar().showMessage(f"Report written to {written}", 5000)
        return written

    def choose_masks_folder(self) -> None:
        if self._finished_result() is not None:
            folder = QFileDialog.getExistingDirectory(self, "Export the suspect-region masks")
            if folder:
                self.export_masks(Path(folder))

    def export_masks(self, folder: Path) -> int:
        result = self.triage_result()
        written = 0 if result is None else exports.export_masks(result, folder)
        if result is not None:
            self.statusBar().showMessage(f"{written} masks written to {folder}", 5000)
        return written

    def print_report(self) -> None:
        from workstation.gui.printing import print_report

        print_report(self, self.triage_result(), self.session.readings, self.settings)

    # ------------------------------------------------------------------- settings, help
    def edit_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.settings = dialog.result_settings()
            self._save_settings()
            audit.record_event(audit.SETTINGS_CHANGED, detail="workstation settings")
            self._apply_settings()

    def _save_settings(self) -> None:
        try:
            self.settings.save(self.settings_path)
        except OSError:
            self.statusBar().showMessage("Settings could not be saved", 5000)

    def show_about(self) -> None:
        engine = self.holder.engine
        name = f"{engine.info.name} {engine.info.version}" if engine else "triage-v2"
        AboutDialog(name, self).exec()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cancel()
        self.results_sender.stop()
        self.worklist.stop()
        self.runner.pool.waitForDone(3000)
        event.accept()

