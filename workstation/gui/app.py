"""``workstation gui [PATH...]``: start the window (Qt imported here, torch only later)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

STARTED = time.perf_counter()
DESKTOP_FILE = "brain-mri-triage"  # packaging/brain-mri-triage.desktop, StartupWMClass


def run_gui(paths: Sequence[str], measure: bool = False, started: float | None = None) -> int:
    from workstation.gui.platform_check import ensure_platform

    # Qt aborts with a core dump when its display plugin cannot load: say why, exit 2
    status = ensure_platform(measure=measure)
    if status is not None:
        return status
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from workstation.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    _quit_on_signals(app, QTimer)
    app.setApplicationName("Brain MRI triage workstation")
    # the menu entry (packaging/brain-mri-triage.desktop): the desktop groups the window
    # under it and shows its icon
    QGuiApplication.setDesktopFileName(DESKTOP_FILE)
    window = MainWindow()
    window.show()
    app.processEvents()
    shown = time.perf_counter() - (started or STARTED)
    # the decoder workers start while the user picks a study: the first compressed file
    # then finds them warm (start() never raises and does not wait)
    from workstation.imaging import isolated

    isolated.start()
    # the triage model loads meanwhile too (ONNX Runtime on the CPU: under a second)
    preload = window.holder.preload(window.settings.device)
    if measure:
        _measure(app, window, paths, shown, QTimer)
    elif paths:
        window.open_paths(list(paths))
    try:
        return int(app.exec())
    finally:
        # a load still running in native code when the interpreter exits aborts the
        # process ("terminate called without an active exception"): let it finish first
        preload.join(timeout=60)
        isolated.shutdown(kill=True)


def _quit_on_signals(app: Any, timer_type: Any) -> None:
    """SIGTERM (a logout, a service manager), SIGHUP and Ctrl-C end the window as File >
    Quit does, so the decoder processes are stopped (they outlived a killed window)."""
    import signal

    for name in ("SIGTERM", "SIGHUP", "SIGINT"):
        if hasattr(signal, name):
            # queued: a signal that arrives before the event loop runs still ends it
            signal.signal(getattr(signal, name),
                          lambda *_: timer_type.singleShot(0, app.quit))
    # Python runs a signal handler only between bytecodes: a timer lets it in while Qt waits
    wake = timer_type(app)
    wake.timeout.connect(lambda: None)
    wake.start(300)


def _measure(app: object, window: object, paths: Sequence[str], shown: float,
             timer_type: Any) -> None:
    """Print start-up, first-image and responsiveness figures, then quit."""
    gaps: list[float] = []
    last = [time.perf_counter()]

    def beat() -> None:
        now = time.perf_counter()
        if window.session.analysing:  # type: ignore[attr-defined]
            gaps.append(now - last[0])
        last[0] = now

    heartbeat = timer_type(window)  # parented, so it lives as long as the window
    heartbeat.timeout.connect(beat)
    heartbeat.start(20)

    def done() -> None:
        session = window.session  # type: ignore[attr-defined]
        busy = session.analysing or window.runner.tasks  # type: ignore[attr-defined]
        if paths and (busy or not session.verdicts):
            timer_type.singleShot(100, done)
            return
        timings = window.timings  # type: ignore[attr-defined]
        print(f"window shown {shown:.2f} s after start")
        if paths:
            print(f"first image shown {timings.get('first_image_s', float('nan')):.3f} s after "
                  f"opening; whole series shown {timings.get('first_series_s', float('nan')):.3f}"
                  f" s; analysis {timings.get('analysis_s', float('nan')):.1f} s")
            if gaps:
                median = 1000 * sorted(gaps)[len(gaps) // 2]
                print(f"GUI event loop during analysis: {len(gaps)} ticks of 20 ms, longest "
                      f"gap {1000 * max(gaps):.0f} ms, median {median:.0f} ms")
        app.quit()  # type: ignore[attr-defined]

    if paths:
        window.open_paths(list(paths))  # type: ignore[attr-defined]
    timer_type.singleShot(100, done)
