"""The main window, shown, with its settings and readings in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from workstation.gui.main_window import MainWindow


@pytest.fixture
def window(qtbot, tmp_path: Path) -> MainWindow:  # type: ignore[no-untyped-def]
    win = MainWindow(settings_path=tmp_path / "settings.json", readings_dir=tmp_path / "readings")
    qtbot.addWidget(win)
    win.show()
    return win
