"""Where the window puts the reader: a series opens at the first image of the volume the
model reads; only N or a click in the ranking goes to a suspicious image; a sorted series,
another series or a verdict arriving leaves the reader where they are. The analysis runs
on a stand-in engine; cancelling it is an outcome, not an error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt

from tests.fakes import FakeEngine, make_series, verdict_of
from workstation.gui.main_window import MainWindow
from workstation.imaging.study import Preview


def test_a_series_opens_at_its_first_image_not_where_the_preview_was(
        qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    series = make_series((5, 5), assessed=1)
    window._loaded_item(Preview(series.slices[9], files=10))  # the last file read first
    assert window.viewer.current is series.slices[9]
    window._loaded_item(series)
    assert window.viewer.series is series
    assert window.viewer.index == 5 and window.viewer.position == 0
    assert window.slider.value() == 0 and window.volume_control.spin.value() == 2


def test_the_position_is_kept_when_another_series_and_the_verdict_arrive(
        qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    series = make_series((6,))
    window._loaded_item(series)
    window.viewer.set_position(2)
    window._loaded_item(make_series((3,), name="later", uid="9"))
    assert window.browser.currentRow() == 0 and window.viewer.index == 2
    window._analysed(verdict_of(series, {4: 0.999, 5: 0.9}))
    assert window.viewer.index == 2 and window.slider.value() == 2
    assert window.findings.slice_label.text().startswith("Image 3 of 6")
    assert window.banner.words.startswith("Tumour suspected (priority read): most likely "
                                          "glioma (>99% on image 5)")
    top = window.findings.suspicious.item(0)
    assert top.text() == "Image 5: p(tumour) >99%, tumour (glioma >99%)"
    qtbot.keyClick(window.viewer, Qt.Key.Key_N)  # only now to the most suspicious image
    assert window.viewer.index == 4
    qtbot.keyClick(window.viewer, Qt.Key.Key_N)
    assert window.viewer.index == 5
    window.findings.suspicious.itemClicked.emit(window.findings.suspicious.item(2))
    assert window.viewer.index == window.findings.suspicious.item(2).data(
        Qt.ItemDataRole.UserRole)


def test_a_cancelled_analysis_keeps_the_verdicts_given_and_the_position(
        qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    a, b = make_series((4,), name="a", uid="1"), make_series((4,), name="b", uid="2")
    window.holder.get = lambda device: FakeEngine(cancel_at=1)  # type: ignore[method-assign]
    window._loaded_item(a)
    window._loaded_item(b)
    window.viewer.set_position(3)
    window.start_analysis()
    qtbot.waitUntil(lambda: not window.session.analysing, timeout=30_000)
    assert list(window.session.verdicts) == [0]
    assert window.viewer.index == 3
    assert window.banner.words.startswith("No tumour detected")
    assert "Analysis cancelled: 1 of 2 series have a verdict" in \
        window.statusBar().currentMessage()
    assert not window.progress.isVisible()
    window.browser.setCurrentRow(1)
    assert window.banner.words == "Not analysed yet" and window.viewer.index == 0
    window.viewer.set_position(2)
    window.holder.get = lambda device: FakeEngine()  # type: ignore[method-assign]
    window.start_analysis()
    qtbot.waitUntil(lambda: window.session.complete and not window.session.analysing,
                    timeout=30_000)
    assert window.viewer.index == 2 and window.banner.words.startswith("No tumour detected")


def test_what_a_study_no_longer_open_reports_is_dropped(
        qtbot, window: MainWindow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window.holder.get = lambda device: FakeEngine()  # type: ignore[method-assign]
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, count in ((first, 12), (second, 2)):
        folder.mkdir()
        for k in range(count):
            picture = np.zeros((64, 64), np.uint8)
            picture[16:48, 16:48] = 100 + k
            Image.fromarray(picture).save(folder / f"{k}.png")
    window.open_paths([str(first)])
    window.open_paths([str(second)])  # at once, while the first is still being read
    qtbot.waitUntil(lambda: window.session.complete and not window.session.analysing,
                    timeout=60_000)
    assert [s.source for s in window.session.series] == [str(second)]
    assert window.browser.count() == 1
    assert len(window.session.series[0].slices) == 2
    assert window.viewer.index == 0
