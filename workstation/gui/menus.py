"""The window's menus in one place: each command's words, its key and what it calls.

Every action is also added to the window itself, so its key works wherever the focus is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu

from workstation.gui import exports
from workstation.imaging.presets import Preset

if TYPE_CHECKING:
    from workstation.gui.main_window import MainWindow

Key = str | QKeySequence.StandardKey | None


@dataclass(frozen=True)
class Menus:
    """What the window changes after building: the recent studies and the toggles."""

    recent: QMenu
    mask: QAction
    gradcam: QAction
    invert: QAction


def add_action(window: MainWindow, menu: QMenu, text: str, slot: Callable[..., Any],
               key: Key = None, checkable: bool = False) -> QAction:
    action = QAction(text, window)
    if key is not None:
        action.setShortcut(QKeySequence(key))
    action.setCheckable(checkable)
    action.triggered.connect(slot)
    menu.addAction(action)
    window.addAction(action)
    return action


def build_menus(window: MainWindow) -> Menus:
    bar = window.menuBar()
    viewer = window.viewer

    def add(menu: QMenu, text: str, slot: Callable[..., Any], key: Key = None,
            checkable: bool = False) -> QAction:
        return add_action(window, menu, text, slot, key, checkable)

    file_menu = bar.addMenu("&File")
    add(file_menu, "&Open File...", window.choose_files, QKeySequence.StandardKey.Open)
    add(file_menu, "Open &Folder...", window.choose_folder, "Ctrl+Shift+O")
    add(file_menu, "Open from P&ACS...", window.open_from_pacs, "Ctrl+Shift+R")
    recent = file_menu.addMenu("Open &Recent")
    file_menu.addSeparator()
    add(file_menu, "&Export Report (PDF)...", window.choose_report_path, "Ctrl+E")
    add(file_menu, "Export &Masks...", window.choose_masks_folder, "Ctrl+Shift+M")
    add(file_menu, "Send Res&ults to PACS...", lambda: window.results_sender.open(),
        "Ctrl+Shift+S")
    add(file_menu, "&Print Report...", window.print_report, QKeySequence.StandardKey.Print)
    add(file_menu, "Print &View...",
        lambda: exports.print_view(window, window.banner.words, viewer), "Ctrl+Shift+P")
    file_menu.addSeparator()
    add(file_menu, "&Settings...", window.edit_settings, "Ctrl+,")
    add(file_menu, "&Quit", window.close, QKeySequence.StandardKey.Quit)

    view = bar.addMenu("&View")
    worklist = window.worklist_dock.toggleViewAction()
    worklist.setText("&Worklist")
    worklist.setShortcut(QKeySequence("Ctrl+L"))
    view.addAction(worklist)
    window.addAction(worklist)
    mask = add(view, "Suspect &region", window.toggle_mask, "M", True)
    gradcam = add(view, "&Grad-CAM (where the classifier looked)", window.toggle_gradcam, "G",
                  True)
    invert = add(view, "&Invert", viewer.set_inverted, "I", True)
    add(view, "&Reset window", viewer.reset_window, "R")
    add(view, "&Fit to window", viewer.fit, "F")
    add(view, "Zoom &in", lambda: viewer.zoom_by(1.25), "+")
    add(view, "Zoom &out", lambda: viewer.zoom_by(0.8), "-")
    view.addSeparator()
    add(view, "&Next image", lambda: viewer.step(1), "Down")
    add(view, "&Previous image", lambda: viewer.step(-1), "Up")
    add(view, "Next image (page)", lambda: viewer.step(1), "PgDown")
    add(view, "Previous image (page)", lambda: viewer.step(-1), "PgUp")
    add(view, "First image", lambda: viewer.set_position(0), "Home")
    add(view, "Last image", lambda: viewer.set_position(10 ** 6), "End")
    add(view, "Next &volume", lambda: viewer.step_volume(1), "Ctrl+Down")
    add(view, "Previous vo&lume", lambda: viewer.step_volume(-1), "Ctrl+Up")
    add(view, "Next most &suspicious image", window.next_suspicious, "N")
    presets = view.addMenu("Window &presets")
    for number, preset in enumerate(Preset, start=1):
        add(presets, preset.value, lambda checked=False, p=preset: window.apply_preset(p),
            str(number))

    analysis = bar.addMenu("&Analysis")
    add(analysis, "&Analyse again", window.start_analysis, "F5")
    add(analysis, "&Cancel", window.cancel, "Esc")
    help_menu = bar.addMenu("&Help")
    add(help_menu, "&About and model card", window.show_about, "F1")
    return Menus(recent, mask, gradcam, invert)
