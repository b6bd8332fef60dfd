"""Background work with signals: loading a study, analysing it, Grad-CAM for one slice.

Each task runs on the global QThreadPool; results come back through queued signals, so
widgets are only touched on the GUI thread. Cancelling sets a flag the task polls.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Signal


class TaskSignals(QObject):
    item = Signal(object)  # a loaded Series/Problem, or an analysed SeriesVerdict
    progress = Signal(int, int, str)  # done, total, what is happening
    finished = Signal(object)  # the task's final value
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
        except Exception as exc:  # reported to the user in words; details on stderr
            traceback.print_exc()
            self.signals.failed.emit(_plain(exc))
            return
        self.signals.finished.emit(value)


def _plain(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "AnalysisCancelled":
        return "analysis cancelled"
    return str(exc) or name


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
    """Creates the analysis engine once (importing torch), on the first analysis."""

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

    @property
    def engine(self) -> Any:
        return self._engine


def analysis_work(series_list: Sequence[Any], holder: EngineHolder, device: str
                  ) -> Callable[[Task], Any]:
    def work(task: Task) -> float:
        from workstation.analysis.run import analyse_series

        task.report(0, 0, "Loading the triage model...")
        engine = holder.get(device)
        policy = engine.calibration.policy()
        total = sum(len(s.assessed_indices) for s in series_list)
        done = 0
        seconds = 0.0
        for series in series_list:
            def step(n: int, _: int, base: int = done, name: str = series.description) -> None:
                task.report(base + n, total, f"Analysing {name}")
            task.emit_item(analyse_series(series, engine, policy, step,
                                          lambda: task.cancelled))
            seconds += engine.last_seconds
            done += len(series.assessed_indices)
        return seconds
    return work


def gradcam_work(holder: EngineHolder, image: Any, class_index: int) -> Callable[[Task], Any]:
    def work(task: Task) -> Any:
        from workstation.analysis.saliency import gradcam

        return gradcam(holder.engine, image, class_index)
    return work
