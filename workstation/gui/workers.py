"""Background work with signals: loading a study, analysing it, Grad-CAM for one slice.

Each task runs on the global QThreadPool; results come back through queued signals, so
widgets are only touched on the GUI thread. Cancelling sets a flag the task polls; a task
cancelled ends with the ``cancelled`` signal (never ``finished`` or ``failed``), whether its
work stopped early (``AnalysisCancelled``) or not.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from workstation.analysis.findings import AnalysisCancelled


class TaskSignals(QObject):
    item = Signal(object)  # a loaded Series/Problem, or an analysed SeriesVerdict
    progress = Signal(int, int, str)  # done, total, what is happening
    finished = Signal(object)  # the task's final value
    cancelled = Signal()  # the user cancelled: no final value
    failed = Signal(str)  # plain-words reason


class Task(QRunnable):
    """Runs ``work(task)``; ``work`` calls ``task.emit_item`` / ``task.report`` as it goes."""

    def __init__(self, work: Callable[[Task], Any]) -> None:
        super().__init__()
        self.signals = TaskSignals()
        self._work = work
        self._cancel = threading.Event()
        self.setAutoDelete(False)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def emit_item(self, item: object) -> None:
        self.signals.item.emit(item)

    def report(self, done: int, total: int, what: str) -> None:
        self.signals.progress.emit(done, total, what)

    def run(self) -> None:
        try:
            value = self._work(self)
        except AnalysisCancelled:
            self.signals.cancelled.emit()
            return
        except Exception as exc:  # reported to the user in words; details on stderr
            traceback.print_exc()
            self.signals.failed.emit(str(exc) or type(exc).__name__)
            return
        if self.cancelled:
            self.signals.cancelled.emit()
        else:
            self.signals.finished.emit(value)


Handler = Callable[..., None]


class TaskRunner(QObject):
    """The window's running tasks: started on the pool, cancelled together, and heard only
    while the study they were started for is open (a task of a study replaced by another
    is cancelled, and what it still reports is dropped)."""

    busy = Signal(bool)  # True when a task starts with none running; False when none is left

    def __init__(self, pool: QThreadPool | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = pool or QThreadPool.globalInstance()
        self.tasks: list[Task] = []

    def start(self, task: Task, live: Callable[[], bool], *, item: Handler | None = None,
              progress: Handler | None = None, finished: Handler | None = None,
              cancelled: Handler | None = None, failed: Handler | None = None) -> None:
        """Run ``task``; each handler runs on the GUI thread, and only while ``live()``."""
        def heard(handler: Handler | None, ends: bool = False) -> Handler:
            def call(*args: object) -> None:
                if ends:
                    self._ended(task)
                if handler is not None and live():
                    handler(*args)
            return call

        signals = task.signals
        signals.item.connect(heard(item))
        signals.progress.connect(heard(progress))
        signals.finished.connect(heard(finished, ends=True))
        signals.cancelled.connect(heard(cancelled, ends=True))
        signals.failed.connect(heard(failed, ends=True))
        self.tasks.append(task)
        if len(self.tasks) == 1:
            self.busy.emit(True)
        self.pool.start(task)

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()

    def _ended(self, task: Task) -> None:
        if task in self.tasks:
            self.tasks.remove(task)
            if not self.tasks:
                self.busy.emit(False)


def load_work(paths: Sequence[str]) -> Callable[[Task], Any]:
    def work(task: Task) -> int:
        from workstation.imaging import Series, iter_study

        count = 0
        task.report(0, 0, "Reading files...")
        for item in iter_study(list(paths), previews=True):
            if task.cancelled:
                break
            if isinstance(item, Series):
                count += 1
                task.report(count, 0, f"Loaded series {count}: {item.description}")
            task.emit_item(item)
        return count
    return work


class EngineHolder:
    """Creates the analysis engine once: preloaded after the window shows, else on the
    first analysis."""

    def __init__(self) -> None:
        self._engine: Any = None
        self._device = ""
        self._lock = threading.Lock()

    def get(self, device: str) -> Any:
        with self._lock:
            if self._engine is None or self._device != device:
                from workstation.analysis.engine import Engine

                self._engine = Engine(device=device)
                self._device = device
            return self._engine

    def preload(self, device: str) -> threading.Thread:
        """Load the engine on a background thread now (after the window shows), so the
        first analysis does not wait for it. A model that cannot load is reported by that
        first analysis, which tries again (``get`` raises there, in words)."""
        def load() -> None:
            try:
                self.get(device)
            except Exception:  # the first analysis reports it
                return
        thread = threading.Thread(target=load, name="engine-preload", daemon=True)
        thread.start()
        return thread

    @property
    def engine(self) -> Any:
        return self._engine


def analysis_work(series_list: Sequence[Any], holder: EngineHolder, device: str
                  ) -> Callable[[Task], Any]:
    """Each series' verdict as an item (``analysis.run.iter_analysis``); the final value is
    the seconds the analysis took, once the model is loaded."""
    def work(task: Task) -> float:
        from workstation.analysis.run import iter_analysis

        task.report(0, 0, "Loading the triage model...")
        engine = holder.get(device)
        started = time.perf_counter()

        def step(done: int, total: int, series: Any) -> None:
            task.report(done, total, f"Analysing {series.description}")
        for verdict in iter_analysis(series_list, engine, step, lambda: task.cancelled):
            task.emit_item(verdict)
        return time.perf_counter() - started
    return work


GRADCAM_NEEDS_FULL_INSTALL = (
    "Grad-CAM (where the classifier looked) needs the full install of the workstation, "
    "with PyTorch. This installation analyses with ONNX Runtime only: the verdicts and the "
    "suspect-region overlay are complete without it.")


def gradcam_available() -> bool:
    """Whether Grad-CAM can run here: it reads the torch network (pytorch-grad-cam), which
    the CPU package of ``make package`` leaves out. Asked without importing them."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None
               for name in ("torch", "pytorch_grad_cam"))


def gradcam_work(holder: EngineHolder, image: Any, finding: Any) -> Callable[[Task], Any]:
    """Grad-CAM of ``image`` for the class ``analysis.saliency`` chooses for ``finding``."""
    def work(task: Task) -> Any:
        from workstation.analysis.saliency import explain

        return explain(holder.engine, image, finding)
    return work
