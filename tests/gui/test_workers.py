"""Background tasks end in one of three typed outcomes (finished, cancelled, failed), and
the runner drops what a task of a study no longer open reports."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.fakes import FakeEngine, make_series
from workstation.analysis.findings import AnalysisCancelled, SeriesVerdict
from workstation.analysis.model_file import default_description
from workstation.gui.workers import EngineHolder, Task, TaskRunner, analysis_work


def outcomes(task: Task) -> dict[str, list[Any]]:
    heard: dict[str, list[Any]] = {"item": [], "finished": [], "cancelled": [], "failed": []}
    task.signals.item.connect(heard["item"].append)
    task.signals.finished.connect(heard["finished"].append)
    task.signals.cancelled.connect(lambda: heard["cancelled"].append(True))
    task.signals.failed.connect(heard["failed"].append)
    return heard


def run(qtbot: Any, task: Task, signal: Any) -> None:
    with qtbot.waitSignal(signal, timeout=20_000):
        TaskRunner().pool.start(task)


def test_an_analysis_cancelled_by_the_engine_ends_cancelled_with_the_verdicts_given(
        qtbot) -> None:  # type: ignore[no-untyped-def]
    holder = SimpleNamespace(get=lambda device: FakeEngine(cancel_at=1))
    task = Task(analysis_work([make_series(name="a"), make_series(name="b")], holder, "cpu"))
    heard = outcomes(task)
    run(qtbot, task, task.signals.cancelled)
    assert [v.series.description for v in heard["item"]] == ["a"]
    assert all(isinstance(v, SeriesVerdict) for v in heard["item"])
    assert heard["finished"] == [] and heard["failed"] == []


def test_a_task_cancelled_while_it_ran_never_reports_finished(qtbot) -> None:  # type: ignore[no-untyped-def]
    def work(task: Task) -> int:
        task.cancel()  # as the Cancel button does, while the work goes on to its end
        return 3

    task = Task(work)
    heard = outcomes(task)
    run(qtbot, task, task.signals.cancelled)
    assert heard["finished"] == [] and heard["cancelled"] == [True]


def test_a_failure_is_said_in_words(qtbot) -> None:  # type: ignore[no-untyped-def]
    def work(task: Task) -> None:
        raise RuntimeError("the model file is damaged")

    task = Task(work)
    heard = outcomes(task)
    run(qtbot, task, task.signals.failed)
    assert heard["failed"] == ["the model file is damaged"] and heard["cancelled"] == []


def test_the_runner_drops_what_a_stale_task_reports(qtbot) -> None:  # type: ignore[no-untyped-def]
    runner = TaskRunner()
    heard: list[object] = []

    def work(task: Task) -> str:
        task.emit_item("late item")
        return "late value"

    busy: list[bool] = []
    runner.busy.connect(busy.append)
    with qtbot.waitSignal(runner.busy, timeout=20_000, check_params_cb=lambda b: not b):
        runner.start(Task(work), lambda: False, item=heard.append, finished=heard.append)
    assert heard == [] and runner.tasks == [] and busy == [True, False]
    with qtbot.waitSignal(runner.busy, timeout=20_000, check_params_cb=lambda b: not b):
        runner.start(Task(work), lambda: True, item=heard.append, finished=heard.append)
    assert heard == ["late item", "late value"]


def test_cancelled_is_a_type_not_words() -> None:
    assert issubclass(AnalysisCancelled, Exception)
    from workstation.analysis import engine

    assert engine.AnalysisCancelled is AnalysisCancelled  # what the real engine raises


@pytest.mark.skipif(not default_description().is_file(), reason="no shipped model")
def test_the_engine_preloads_in_the_background_and_is_reused() -> None:
    holder = EngineHolder()
    holder.preload("cpu").join(timeout=120)
    engine = holder.engine
    assert engine is not None and engine.backend in ("onnxruntime", "torch")
    assert holder.get("cpu") is engine  # the first analysis finds it loaded
