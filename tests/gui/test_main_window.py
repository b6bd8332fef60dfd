"""The real window, driven offscreen: open, scroll, window/level, overlays, verdict,
reading, export. Checks what is displayed, not only that nothing raised."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pypdf import PdfReader
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent

from workstation.analysis.model_file import default_description
from workstation.gui.main_window import MainWindow

needs_model = pytest.mark.skipif(not default_description().is_file(), reason="no shipped model")
VERDICT_WORDS = ("TUMOUR SUSPECTED", "Tumour suspected", "No tumour detected", "NEEDS HUMAN REVIEW",
                 "Cannot assess")


def wait_for_verdicts(qtbot, win: MainWindow) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: win.session.complete and not win.session.analysing,
                    timeout=240_000)


def wheel(widget, steps: int) -> None:  # type: ignore[no-untyped-def]
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, widget.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 120 * steps),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    widget.wheelEvent(event)


@needs_model
def test_dicom_series_open_scroll_window_overlays_verdict_reading_export(
        qtbot, window: MainWindow, datasets: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window.open_paths([str(datasets / "dicom" / "ge_epi_axial")])
    # the first file read is on screen before the whole series is sorted
    qtbot.waitUntil(lambda: window.viewer.current is not None, timeout=30_000)
    qtbot.waitUntil(lambda: bool(window.session.series), timeout=30_000)
    assert window.timings["first_image_s"] <= window.timings["first_series_s"]
    assert len(window.viewer.series.slices) == 150  # type: ignore[union-attr]
    window.viewer.set_index(0)
    assert "axial (from DICOM)" in window.browser.item(0).text()

    wheel(window.viewer, -3)  # wheel down = next images
    assert window.viewer.index == 3
    qtbot.keyClick(window.viewer, Qt.Key.Key_Down)
    assert window.viewer.index == 4 and window.slider.value() == 4

    before = window.viewer.display_window
    centre = window.viewer.rect().center()
    qtbot.mousePress(window.viewer, Qt.MouseButton.LeftButton, pos=centre)
    qtbot.mouseMove(window.viewer, centre + QPoint(40, 30))
    qtbot.mouseRelease(window.viewer, Qt.MouseButton.LeftButton, pos=centre + QPoint(40, 30))
    assert window.viewer.display_window != before and window.viewer.display_window.source == "user"
    qtbot.keyClick(window.viewer, Qt.Key.Key_R)
    assert window.viewer.display_window == window.viewer.current.window  # type: ignore[union-attr]

    wait_for_verdicts(qtbot, window)
    verdict = window.session.verdicts[0]
    assert any(word in window.banner.words for word in VERDICT_WORDS)
    assert verdict.verdict.value.upper().replace("_", " ") in window.browser.item(0).text()
    assert window.findings.table.item(3, 1).text().endswith("%")
    # 10 volumes (time points) of 15 images; the model reads the first
    assert len(window.viewer.series.volumes) == 10  # type: ignore[union-attr]
    assert window.findings.suspicious.count() == 15
    assert "Model triage-v2" in window.model_label.text()
    assert f"({window.holder.engine.backend})" in window.model_label.text()

    top = max(verdict.findings, key=lambda f: f.suspicion).index
    qtbot.keyClick(window.viewer, Qt.Key.Key_N)
    assert window.viewer.index == top

    window.mask_action.trigger()
    assert window.viewer.overlays.show_mask is False
    window.mask_action.trigger()
    assert window.viewer.overlays.show_mask is True
    assert window.viewer.overlays.mask is not None
    assert window.viewer.overlays.mask.shape == (64, 64)

    form = window.reading_form
    form.agreement.setCurrentText("disagree")
    form.corrected.setCurrentText("glioma")
    form.note.setPlainText("subtle signal change on image 20")
    form.reader.setText("Dr Test")
    form.save_button.click()
    assert "Recorded" in form.status.text()
    assert list((tmp_path / "readings").glob("*.json"))

    report = window.export_report(tmp_path / "report.pdf")
    assert report is not None
    text = "\n".join(page.extract_text() for page in PdfReader(report).pages)
    assert "Test Regression" in text and "Dr Test" in text and "subtle signal change" in text
    assert window.export_masks(tmp_path / "masks") == 15
    assert (tmp_path / "masks" / "4_0.png").is_file()


@needs_model
def test_png_folder_plane_from_model_and_gradcam(qtbot, window: MainWindow, datasets: Path,
                                                 tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "pngs"
    folder.mkdir()
    for number in ("0001", "0002", "0003"):
        Image.open(datasets / "figshare_cheng" / "images" / f"{number}.jpg").save(
            folder / f"slice{int(number)}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    window.open_paths([str(folder)])
    wait_for_verdicts(qtbot, window)
    assert window.viewer.series is not None and len(window.viewer.series.slices) == 3
    assert window.problem_list.count() == 1
    assert "broken.png" in window.problem_list.item(0).text()
    assert "from the model" in window.browser.item(0).text()
    assert window.session.verdicts[0].plane_source == "model"

    window.gradcam_action.trigger()
    qtbot.waitUntil(lambda: window.viewer.overlays.gradcam is not None, timeout=60_000)
    heat = window.viewer.overlays.gradcam
    assert heat.shape == window.viewer.current.shape  # type: ignore[union-attr]
    assert float(np.max(heat)) > 0


def test_unreadable_study_says_so(qtbot, window: MainWindow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "empty.dcm").write_bytes(b"")
    window.open_paths([str(tmp_path / "empty.dcm")])
    qtbot.waitUntil(lambda: "Cannot assess" in window.banner.words, timeout=30_000)
    assert window.problem_list.count() == 1
    assert "empty" in window.problem_list.item(0).text()


def test_a_whole_body_picture_is_not_assessed_as_a_brain_slice(  # type: ignore[no-untyped-def]
        qtbot, window: MainWindow, tmp_path: Path) -> None:
    # a 4:1 picture (like a nuclear-medicine bone scan exported without its header)
    picture = np.zeros((512, 128), np.uint8)
    picture[40:480, 30:100] = 180
    Image.fromarray(picture).save(tmp_path / "whole_body.png")
    window.open_paths([str(tmp_path / "whole_body.png")])
    wait_for_verdicts(qtbot, window)
    assert "Cannot assess" in window.banner.words
    assert "too long and narrow for one brain slice" in window.banner.words
    assert "(not known)" in window.browser.item(0).text()
    assert "CANNOT ASSESS" in window.browser.item(0).text()


def test_settings_persist_and_recent_studies(qtbot, window: MainWindow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.png").write_bytes(b"")
    window.open_paths([str(tmp_path / "a.png")])
    qtbot.waitUntil(lambda: "Cannot assess" in window.banner.words, timeout=30_000)
    from workstation.settings import Settings

    saved = Settings.load(tmp_path / "settings.json")
    assert saved.recent[0] == str(tmp_path / "a.png")
    assert [a.text() for a in window.recent_menu.actions()] == [str(tmp_path / "a.png")]
    shortcuts = {a.text(): a.shortcut().toString() for a in window.actions()}
    assert shortcuts["Suspect &region"] == "M" and shortcuts["&Export Report (PDF)..."] == "Ctrl+E"


def test_probability_table_never_shows_certainty_the_model_does_not_have(qtbot) -> None:  # type: ignore[no-untyped-def]
    """p 0.99998 reads ">99.9%", not "100.0%" (the banner and the report say ">99%");
    the table keeps one decimal otherwise (0.989 is not rounded up to 99%)."""
    from dataclasses import replace

    from workstation.analysis.findings import Finding, Verdict
    from workstation.gui.panels import FindingsPanel

    panel = FindingsPanel()
    qtbot.addWidget(panel)
    finding = Finding(
        index=0, file="a.png", predicted_class="meningioma", verdict=Verdict.TUMOUR,
        probabilities={"glioma": 0.00001, "meningioma": 0.98899, "pituitary": 0.011,
                       "no_tumour": 0.0},
        plane="axial", plane_probabilities={"axial": 1.0, "coronal": 0.0, "sagittal": 0.0},
        review_reasons=(), ood_score=0.1, reference_ood_score=0.1,
        mask=np.zeros((4, 4), np.float32), mask_area_px=0, peak=None)
    panel.show_finding(finding, 1)
    cells = [panel.table.item(row, 1).text() for row in range(4)]
    assert cells == ["<0.1%", "98.9%", "1.1%", "<0.1%"]
    sure = replace(finding, probabilities={"glioma": 0.0, "meningioma": 0.99998,
                                           "pituitary": 0.00002, "no_tumour": 0.0})
    panel.show_finding(sure, 1)
    assert panel.table.item(1, 1).text() == ">99.9%"
