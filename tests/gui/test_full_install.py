"""The CPU package (no torch): Grad-CAM says in words that it needs the full install."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QMessageBox

from workstation.gui import main_window as main_window_module
from workstation.gui.main_window import MainWindow
from workstation.gui.workers import GRADCAM_NEEDS_FULL_INSTALL, gradcam_available


def test_gradcam_is_available_in_the_full_install() -> None:
    assert gradcam_available()  # the test environment has torch and pytorch-grad-cam


def test_gradcam_without_torch_says_it_needs_the_full_install(
        qtbot, window: MainWindow, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    said: list[str] = []
    monkeypatch.setattr(main_window_module, "gradcam_available", lambda: False)
    monkeypatch.setattr(QMessageBox, "information",
                        lambda parent, title, text: said.append(text))
    window.gradcam_action.trigger()
    assert said == [GRADCAM_NEEDS_FULL_INSTALL]
    assert "needs the full install" in said[0] and "PyTorch" in said[0]
    assert not window.gradcam_action.isChecked()
    assert not window.viewer.overlays.show_gradcam
    assert window.statusBar().currentMessage() == GRADCAM_NEEDS_FULL_INSTALL
