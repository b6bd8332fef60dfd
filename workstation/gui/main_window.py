"""The workstation window: open a study, see the verdict and the suspect region, act on it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QThreadPool
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QFont,
    QKeySequence,
    QPainter,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from workstation.analysis.findings import CLASSES, TUMOUR_CLASSES, Finding, SeriesVerdict
from workstation.gui.dialogs import AboutDialog, SettingsDialog
from workstation.gui.panels import (
    FindingsPanel,
    ReadingForm,
    SeriesBrowser,
    VerdictBanner,
    VolumeControl,
    shown_volume,
)
from workstation.gui.viewer import SliceView
from workstation.gui.workers import EngineHolder, Task, analysis_work, gradcam_work, load_work
from workstation.imaging.pixels import percentile_window
from workstation.imaging.series import Problem, Series, SeriesInfo, Severity, Study, Window
from workstation.imaging.study import Preview
from workstation.settings import Settings
from workstation.store.readings import Reading, load_readings, save_reading, series_key

APP_TITLE = "Brain MRI triage workstation"


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, settings_path: Path | None = None,
                 readings_dir: Path | None = None) -> None:
        super().__init__()
        self.settings_path = settings_path
        self.settings = settings or Settings.load(settings_path)
        self.readings_dir = readings_dir
        self.holder = EngineHolder()
        self.pool = QThreadPool.globalInstance()
        self.paths: list[str] = []
        self.series: list[Series] = []
        self.problems: list[Problem] = []
        self.verdicts: dict[int, SeriesVerdict] = {}
        self.readings: dict[str, Reading] = {}
        self.current_row = -1
        self._suspicion_cursor = -1
        self._preview_source = ""
        self.tasks: list[Task] = []
        self.analysing = False
        self.timings: dict[str, float] = {}
        self._opened_at = 0.0
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self._build_widgets()
        self._build_menus()
        self._apply_settings()
        self.resize(1400, 860)

    # ------------------------------------------------------------------ construction
    def _build_widgets(self) -> None:
        self.browser = SeriesBrowser()
        self.browser.currentRowChanged.connect(self.show_series)
        self.banner = VerdictBanner()
        self.viewer = SliceView()
        self.viewer.slice_changed.connect(self._slice_changed)
        self.viewer.hovered.connect(self._show_hover)
        # the slider runs over the positions of the shown volume; the volume control
        # (multi-volume series only) chooses the volume
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("Image of the shown volume (Up / Down, wheel)")
        self.slider.valueChanged.connect(self.viewer.set_position)
        self.volume_control = VolumeControl()
        self.volume_control.volume_chosen.connect(self.viewer.set_volume)
        controls = QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(self.slider, stretch=1)
        controls.addWidget(self.volume_control)
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.addWidget(self.banner)
        centre_layout.addWidget(self.viewer, stretch=1)
        centre_layout.addLayout(controls)
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

        self.problem_list = QListWidget()
        dock = QDockWidget("Files that could not be read", self)
        dock.setObjectName("problems")
        dock.setWidget(self.problem_list)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.problem_dock = dock
        dock.hide()

        status = self.statusBar()
        self.model_label = QLabel("Model: not loaded")
        self.hover_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        status.addWidget(self.model_label)
        status.addWidget(self.hover_label, stretch=1)
        status.addPermanentWidget(self.progress)
        status.addPermanentWidget(self.cancel_button)

    def _show_hover(self, text: str) -> None:
        self.hover_label.setText(text)

    def _action(self, menu: Any, text: str, slot: Any,
                shortcut: str | QKeySequence | QKeySequence.StandardKey | None = None,
                checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        menu.addAction(action)
        self.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "&Open File...", self.choose_files, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open &Folder...", self.choose_folder, "Ctrl+Shift+O")
        self.recent_menu = file_menu.addMenu("Open &Recent")
        file_menu.addSeparator()
        self.export_action = self._action(file_menu, "&Export Report (PDF)...",
                                          self.choose_report_path, "Ctrl+E")
        self.masks_action = self._action(file_menu, "Export &Masks...", self.choose_masks_folder,
                                         "Ctrl+Shift+M")
        self._action(file_menu, "&Print View...", self.print_view, QKeySequence.StandardKey.Print)
        file_menu.addSeparator()
        self._action(file_menu, "&Settings...", self.edit_settings, "Ctrl+,")
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        view = bar.addMenu("&View")
        self.mask_action = self._action(view, "Suspect &region", self._toggle_mask, "M", True)
        self.gradcam_action = self._action(view, "&Grad-CAM (where the classifier looked)",
                                           self._toggle_gradcam, "G", True)
        self.invert_action = self._action(view, "&Invert", self.viewer.set_inverted, "I", True)
        self._action(view, "&Reset window", self.viewer.reset_window, "R")
        self._action(view, "&Fit to window", self.viewer.fit, "F")
        self._action(view, "Zoom &in", lambda: self.viewer.zoom_by(1.25), "+")
        self._action(view, "Zoom &out", lambda: self.viewer.zoom_by(0.8), "-")
        view.addSeparator()
        self._action(view, "&Next image", lambda: self.viewer.step(1), "Down")
        self._action(view, "&Previous image", lambda: self.viewer.step(-1), "Up")
        self._action(view, "Next image (page)", lambda: self.viewer.step(1), "PgDown")
        self._action(view, "Previous image (page)", lambda: self.viewer.step(-1), "PgUp")
        self._action(view, "First image", lambda: self.viewer.set_position(0), "Home")
        self._action(view, "Last image", lambda: self.viewer.set_position(10 ** 6), "End")
        self._action(view, "Next &volume", lambda: self.viewer.step_volume(1), "Ctrl+Down")
        self._action(view, "Previous vo&lume", lambda: self.viewer.step_volume(-1), "Ctrl+Up")
        self._action(view, "Next most &suspicious image", self.next_suspicious, "N")
        presets = view.addMenu("Window &presets")
        for key, (name, rule) in enumerate(WINDOW_PRESETS.items(), start=1):
            self._action(presets, name, lambda checked=False, r=rule: self.apply_preset(r),
                         str(key))
        analysis = bar.addMenu("&Analysis")
        self._action(analysis, "&Analyse again", self.start_analysis, "F5")
        self._action(analysis, "&Cancel", self.cancel, "Esc")
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&About and model card", self.show_about, "F1")

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

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            self.open_paths(paths)

    def open_paths(self, paths: list[str]) -> None:
        self.cancel()
        self.paths = [str(p) for p in paths]
        self.series, self.problems, self.verdicts = [], [], {}
        self.current_row = -1
        self._preview_source = ""
        self.browser.clear()
        self.problem_list.clear()
        self.problem_dock.hide()
        self.viewer.set_series(None)
        self.volume_control.show_series(None)
        self.findings.show_finding(None, 0)
        self.findings.show_ranking(None)
        self.banner.show_text("Reading the study...", "#3c3c3c", "white")
        self.settings = self.settings.with_recent(
            self.paths[0] if len(self.paths) == 1 else str(Path(self.paths[0]).parent))
        self._save_settings()
        self._apply_settings()
        self.setWindowTitle(f"{APP_TITLE} - {', '.join(Path(p).name for p in self.paths)}")
        self._opened_at = time.perf_counter()
        self.timings = {}
        self._run(Task(load_work(self.paths)), self._loaded_item, self._load_finished)

    def _run(self, task: Task, on_item: Any, on_finished: Any) -> None:
        task.signals.item.connect(on_item)
        task.signals.progress.connect(self._progress)
        task.signals.finished.connect(on_finished)
        task.signals.failed.connect(self._task_failed)
        self.tasks.append(task)
        self.progress.show()
        self.cancel_button.show()
        self.pool.start(task)

    def _loaded_item(self, item: object) -> None:
        if isinstance(item, Preview) and not self.series:
            self._preview_source = item.slice.source
            self.viewer.set_series(Series(source=item.slice.source, series_uid=None,
                                          info=SeriesInfo(), slices=(item.slice,)))
            self._slice_changed(0)
            self.banner.show_text(f"Reading {item.files} files... (showing the first image "
                                  "read; no verdict yet)", "#3c3c3c", "white")
            self.timings["first_image_s"] = time.perf_counter() - self._opened_at
        if isinstance(item, Series):
            self.series.append(item)
            self.browser.add_series(item)
            if len(self.series) == 1:
                self.browser.setCurrentRow(0)
                self.timings.setdefault("first_image_s", time.perf_counter() - self._opened_at)
                self.timings["first_series_s"] = time.perf_counter() - self._opened_at
                # stay at the position of the image the preview showed, now in its sorted
                # place, in the volume the series opens on (the one the model reads)
                sources = [s.source for s in item.slices]
                if self._preview_source in sources:
                    index = sources.index(self._preview_source)
                    self.viewer.set_position(index - item.volume_of(index).start)
        elif isinstance(item, Problem):
            self.problems.append(item)
            if item.severity is Severity.ERROR:
                self.problem_list.addItem(f"{item.path}: {item.message}")
                self.problem_dock.show()

    def _load_finished(self, count: object) -> None:
        self.timings["load_s"] = time.perf_counter() - self._opened_at
        self._finish_task()
        study = self.study
        self.readings = load_readings(study, self.readings_dir)
        for series in self.series:
            for problem in series.problems:
                if problem.severity is Severity.ERROR:
                    self.problem_list.addItem(f"{problem.path}: {problem.message}")
                    self.problem_dock.show()
        if not self.series:
            self.banner.show_text("Cannot assess: no image in the study could be read",
                                  "#5a5a5a", "white")
            return
        self._show_reading()
        self.start_analysis()

    @property
    def study(self) -> Study:
        return Study(series=tuple(self.series), problems=tuple(self.problems))

    # ----------------------------------------------------------------------- analysis
    def start_analysis(self) -> None:
        if not self.series or self.analysing:
            return
        self.analysing = True
        self.verdicts = {}
        self._analysis_started = time.perf_counter()
        self.banner.show_verdict(None, analysing=True)
        work = analysis_work(list(self.series), self.holder, self.settings.device)
        self._run(Task(work), self._analysed, self._analysis_finished)

    def _analysed(self, verdict: object) -> None:
        assert isinstance(verdict, SeriesVerdict)
        row = next(i for i, s in enumerate(self.series) if s is verdict.series)
        self.verdicts[row] = verdict
        self.browser.set_verdict(row, verdict)
        if row == self.current_row:
            self._show_current_verdict()

    def _analysis_finished(self, seconds: object) -> None:
        self.analysing = False
        self.timings["analysis_s"] = time.perf_counter() - self._analysis_started
        self._finish_task()
        self.statusBar().clearMessage()
        engine = self.holder.engine
        if engine is not None:
            images = sum(len(s.assessed_indices) for s in self.series)
            self.model_label.setText(
                f"Model {engine.info.name} {engine.info.version} | device {engine.device} | "
                f"last analysis {float(seconds):.1f} s for {images} images")  # type: ignore[arg-type]

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()

    def _finish_task(self) -> None:
        self.tasks.clear()
        self.progress.hide()
        self.cancel_button.hide()

    def _task_failed(self, message: str) -> None:
        self._finish_task()
        self.analysing = False
        if message == "analysis cancelled":
            self.banner.show_text("Analysis cancelled - no verdict", "#3c3c3c", "white")
            return
        self.banner.show_text(f"Cannot assess: {message}", "#5a5a5a", "white")

    def _progress(self, done: int, total: int, what: str) -> None:
        self.progress.setMaximum(max(total, 0))
        self.progress.setValue(done)
        self.progress.setFormat(f"{what} %v/%m" if total else what)
        self.statusBar().showMessage(what, 3000)

    # --------------------------------------------------------------------- showing
    def show_series(self, row: int) -> None:
        if not 0 <= row < len(self.series):
            return
        self.current_row = row
        self._suspicion_cursor = -1
        series = self.series[row]
        self.viewer.set_series(series)
        self.volume_control.show_series(series)
        if series.slices:  # open on the volume the verdict is decided on
            self.viewer.set_index(shown_volume(series).start)
        self._show_current_verdict()
        self._show_reading()

    @property
    def current_verdict(self) -> SeriesVerdict | None:
        return self.verdicts.get(self.current_row)

    def current_finding(self) -> Finding | None:
        verdict = self.current_verdict
        if verdict is None:
            return None
        return verdict.finding_at(self.viewer.index)

    def _show_current_verdict(self) -> None:
        verdict = self.current_verdict
        self.banner.show_verdict(verdict, analysing=self.analysing)
        self.findings.show_ranking(verdict)
        self._slice_changed(self.viewer.index)

    def _slice_changed(self, index: int) -> None:
        volume = self.viewer.volume
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, volume.count - 1) if volume is not None else 0)
        self.slider.setValue(self.viewer.position)
        self.slider.blockSignals(False)
        if volume is not None:
            self.volume_control.show_volume(volume)
        finding = self.current_finding()
        series = self.viewer.series
        if series is None or volume is None:
            self.findings.show_finding(None, 0)
        else:
            self.findings.show_finding(
                finding, volume.count, series.image_words(index),
                None if volume.assessed else volume.not_assessed_reason or "not assessed")
        # nothing is drawn on an image the model did not read
        self.viewer.set_overlays(finding.mask if finding is not None else None, None)
        if finding is not None and self.gradcam_action.isChecked():
            self._start_gradcam(finding)

    def next_suspicious(self) -> None:
        verdict = self.current_verdict
        if verdict is None:
            return
        # first press: the most suspicious image; each further press: the next one down
        ranked = [f.index for f in sorted(verdict.findings, key=lambda f: -f.suspicion)]
        if not ranked:  # no volume of the series was assessed
            return
        self._suspicion_cursor = (self._suspicion_cursor + 1) % len(ranked)
        self.viewer.set_index(ranked[self._suspicion_cursor])

    def apply_preset(self, rule: str) -> None:
        current = self.viewer.current
        if current is None:
            return
        raw = np.asarray(current.raw)
        if rule == "file":
            self.viewer.set_window(current.window)
        elif rule == "full":
            low, high = float(raw.min()), float(raw.max())
            self.viewer.set_window(Window((low + high) / 2, max(high - low, 1.0), "preset"))
        elif rule == "robust":
            self.viewer.set_window(percentile_window(raw))
        else:
            low, high = np.percentile(raw, [5, 95])
            self.viewer.set_window(Window(float(low + high) / 2, max(float(high - low), 1.0),
                                          "preset"))

    def _toggle_mask(self, checked: bool) -> None:
        self.viewer.overlays.show_mask = checked
        self.viewer.set_overlays(self.viewer.overlays.mask, self.viewer.overlays.gradcam)

    def _toggle_gradcam(self, checked: bool) -> None:
        self.viewer.overlays.show_gradcam = checked
        finding = self.current_finding()
        if checked and finding is not None:
            self._start_gradcam(finding)
        else:
            self.viewer.set_overlays(self.viewer.overlays.mask, None)

    def _start_gradcam(self, finding: Finding) -> None:
        if self.holder.engine is None or self.analysing:
            return  # Grad-CAM hooks the network the analysis is using
        probabilities = [finding.probabilities[c] for c in TUMOUR_CLASSES]
        target = CLASSES.index(finding.predicted_class) if finding.predicted_class != \
            "no_tumour" else int(np.argmax(probabilities))
        image = np.asarray(self.series[self.current_row].slices[finding.index].image)
        index = finding.index

        def done(heat: object) -> None:
            if self.viewer.index == index and self.gradcam_action.isChecked():
                self.viewer.set_overlays(self.viewer.overlays.mask, heat)  # type: ignore[arg-type]

        task = Task(gradcam_work(self.holder, image, target))
        task.signals.finished.connect(done)
        self.pool.start(task)

    # ---------------------------------------------------------------- readings, export
    def _show_reading(self) -> None:
        if self.current_row < 0:
            self.reading_form.load("", None, self.settings.reader_name)
            return
        key = series_key(self.series[self.current_row])
        self.reading_form.load(key, self.readings.get(key), self.settings.reader_name)

    def _save_reading(self, reading: object) -> None:
        assert isinstance(reading, Reading)
        self.readings[reading.series_key] = reading
        try:
            save_reading(self.study, reading, self.readings_dir)
        except OSError as exc:
            QMessageBox.warning(self, APP_TITLE, f"The reading could not be saved: {exc}")

    def triage_result(self) -> Any:
        from workstation.analysis.run import ModelSummary, StudyTriage

        engine = self.holder.engine
        if engine is None or len(self.verdicts) != len(self.series):
            return None
        verdicts = tuple(self.verdicts[i] for i in range(len(self.series)))
        info = engine.info
        return StudyTriage(self.study, verdicts, ModelSummary(info.name, info.version,
                                                              info.sha256),
                           engine.device, 0.0)

    def choose_report_path(self) -> None:
        if self.triage_result() is None:
            QMessageBox.information(self, APP_TITLE, "The analysis has not finished yet.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export the triage report", "triage.pdf",
                                              "PDF (*.pdf)")
        if path:
            self.export_report(Path(path))

    def export_report(self, path: Path) -> Path | None:
        from workstation.reporting.content import build_content
        from workstation.reporting.pdf import write_report

        result = self.triage_result()
        if result is None:
            return None
        content = build_content(result, self.readings, institution=self.settings.institution)
        try:
            # the file dialog has already asked before replacing an existing file
            written = write_report(content, path, self.settings.page_size, force=True)
        except OSError as exc:
            QMessageBox.warning(self, APP_TITLE, f"The report was not written: {exc}")
            return None
        self.statusBar().showMessage(f"Report written to {written}", 5000)
        return written

    def choose_masks_folder(self) -> None:
        if self.triage_result() is None:
            QMessageBox.information(self, APP_TITLE, "The analysis has not finished yet.")
            return
        folder = QFileDialog.getExistingDirectory(self, "Export the suspect-region masks")
        if folder:
            self.export_masks(Path(folder))

    def export_masks(self, folder: Path) -> int:
        from workstation.analysis.run import write_masks

        result = self.triage_result()
        if result is None:
            return 0
        problems = write_masks(result, folder)
        written = sum(len(v.findings) for v in result.verdicts) - len(problems)
        self.statusBar().showMessage(f"{written} masks written to {folder}", 5000)
        return written

    def print_view(self) -> None:
        from PySide6.QtPrintSupport import QPrintDialog, QPrinter

        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        if QPrintDialog(printer, self).exec():
            self.render_view(printer)

    def render_view(self, device: Any) -> None:
        """The banner text and the current view, on a printer or any paint device."""
        painter = QPainter(device)
        page = painter.viewport()
        painter.setFont(QFont("Sans", 14, QFont.Weight.Bold))
        painter.drawText(QRectF(0, 0, page.width(), page.height() * 0.15),
                         Qt.TextFlag.TextWordWrap, self.banner.words)
        picture = self.viewer.grab()
        target = QRectF(0, page.height() * 0.17, page.width(), page.height() * 0.8)
        scaled = picture.scaled(target.size().toSize(), Qt.AspectRatioMode.KeepAspectRatio)
        painter.drawPixmap(QPointF(target.x(), target.y()), scaled)
        painter.end()

    # ------------------------------------------------------------------- settings, help
    def edit_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.settings = dialog.result_settings()
            self._save_settings()
            self._apply_settings()

    def _save_settings(self) -> None:
        try:
            self.settings.save(self.settings_path)
        except OSError:
            self.statusBar().showMessage("Settings could not be saved", 5000)

    def show_about(self) -> None:
        engine = self.holder.engine
        name = f"{engine.info.name} {engine.info.version}" if engine else "triage-v1"
        AboutDialog(name, self).exec()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cancel()
        self.pool.waitForDone(3000)
        event.accept()


WINDOW_PRESETS = {
    "Window from the file": "file",
    "Full range": "full",
    "Robust (0.5-99.5 percentile)": "robust",
    "High contrast (5-95 percentile)": "contrast",
}
