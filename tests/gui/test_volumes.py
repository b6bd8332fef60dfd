"""A series of several volumes in the window: one volume at a time in the viewer, a
volume control and keys, plain words where the model did not read a volume, and a jump
from the ranking to the right volume. Built without the model or the DICOM loader."""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt

from workstation.analysis.findings import Finding, ReasonKind, SeriesVerdict, Verdict
from workstation.gui.main_window import MainWindow
from workstation.imaging.series import Plane, PlaneSource, Series, SeriesInfo, Slice, Volume, Window

PHASE_REASON = "not assessed: not an anatomical image (phase)"
ONE_VOLUME_REASON = ("not assessed: the model reads one volume of the series "
                     "(volume 2 (magnitude, echo 1))")


def make_slice(name: str, level: float) -> Slice:
    image = np.full((32, 32), level, np.float32)
    image.flags.writeable = False
    return Slice(image=image, raw=image * 1000, window=Window(level * 1000, 400, "dicom"),
                 source=name)


def make_series(volumes: tuple[Volume, ...] | None = None) -> Series:
    """Three volumes: phase (5 images, not anatomical), magnitude echo 1 (5, the one
    assessed), magnitude echo 2 (4, not assessed); or one volume of 5 images."""
    if volumes is None:
        volumes = (Volume(0, "phase, echo 1", 0, 5, anatomical=False, assessed=False,
                          not_assessed_reason=PHASE_REASON),
                   Volume(1, "magnitude, echo 1", 5, 5),
                   Volume(2, "magnitude, echo 2", 10, 4, assessed=False,
                          not_assessed_reason=ONE_VOLUME_REASON))
    slices = tuple(make_slice(f"v{v.index}_{i}.dcm", 0.2 + 0.2 * v.index)
                   for v in volumes for i in range(v.count))
    return Series(source="/study/fieldmap", series_uid="1.2.3",
                  info=SeriesInfo(series_number=7, series_description="Field map"),
                  slices=slices, plane=Plane.AXIAL, plane_source=PlaneSource.DICOM,
                  volumes=volumes)


def make_finding(index: int, p_tumour: float) -> Finding:
    mask = np.zeros((32, 32), np.float32)
    mask[10:20, 10:20] = 0.9
    tumour = p_tumour >= 0.5
    return Finding(
        index=index, file=f"slice{index}.dcm", predicted_class="glioma" if tumour else "no_tumour",
        verdict=Verdict.TUMOUR if tumour else Verdict.NO_TUMOUR,
        probabilities={"glioma": p_tumour, "meningioma": 0.0, "pituitary": 0.0,
                       "no_tumour": 1.0 - p_tumour},
        plane="axial", plane_probabilities={"axial": 1.0, "coronal": 0.0, "sagittal": 0.0},
        review_reasons=(), ood_score=0.1, reference_ood_score=0.1, mask=mask,
        mask_area_px=100, peak=(15, 15))


def make_verdict(series: Series, strongest: int = 8) -> SeriesVerdict:
    """Findings for the assessed slices only; ``strongest`` (a global index) is the most
    suspicious."""
    findings = tuple(make_finding(i, 0.97 if i == strongest else 0.02)
                     for i in series.assessed_indices)
    return SeriesVerdict(series, Verdict.TUMOUR, "glioma", 0.97, (), findings, "axial", "dicom")


def show(window: MainWindow, series: Series, verdict: bool = True) -> None:
    """What loading and analysis do, without the loader and the model."""
    row = window.session.add_series(series)
    window.browser.add_series(series)
    window.browser.setCurrentRow(row)
    if verdict:
        window._analysed(make_verdict(series))


def probability_cell(window: MainWindow, row: int) -> str:
    item = window.findings.table.item(row, 1)
    assert item is not None
    return item.text()


def test_volume_control_only_for_a_multi_volume_series(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    show(window, make_series((Volume(0, "", 0, 5),)))
    assert not window.volume_control.isVisible()
    assert window.viewer.image_words() == "Image 1 / 5"
    assert "5 images" in window.browser.item(0).text()

    show(window, make_series(), verdict=False)
    assert window.volume_control.isVisible()
    spin = window.volume_control.spin
    assert (spin.minimum(), spin.maximum(), spin.suffix()) == (1, 3, " of 3")
    # the series opens on the volume the model reads
    assert window.viewer.volume.index == 1  # type: ignore[union-attr]
    assert spin.value() == 2 and "magnitude, echo 1" in window.volume_control.label.text()
    assert "assessed by the model" in window.volume_control.label.text()
    text = window.browser.item(1).text()
    assert "3 volumes, 14 images" in text and "volume 2 (magnitude, echo 1) assessed" in text
    tooltip = window.browser.item(1).toolTip()
    assert "volume 1 (phase, echo 1), 5 images" in tooltip and PHASE_REASON[1:] in tooltip

    window.browser.setCurrentRow(0)
    assert not window.volume_control.isVisible()


def test_slider_and_counter_run_over_one_volume(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    show(window, make_series())
    assert (window.slider.minimum(), window.slider.maximum()) == (0, 4)
    window.slider.setValue(3)
    assert window.viewer.index == 8 and window.viewer.position == 3
    assert window.viewer.image_words() == \
        "Image 4 / 5 \N{EM DASH} volume 2 of 3 (magnitude, echo 1)"
    window.volume_control.spin.setValue(3)
    assert window.slider.maximum() == 3 and window.slider.value() == 3
    assert window.viewer.image_words() == \
        "Image 4 / 4 \N{EM DASH} volume 3 of 3 (magnitude, echo 2)"
    assert window.findings.slice_label.text().startswith("Image 4 of 4, volume 3")
    # scrolling stops at the ends of the volume; Home/End are its first and last image
    qtbot.keyClick(window.viewer, Qt.Key.Key_Down)
    assert window.viewer.index == 13
    qtbot.keyClick(window.viewer, Qt.Key.Key_Home)
    assert window.viewer.index == 10 and window.slider.value() == 0
    qtbot.keyClick(window.viewer, Qt.Key.Key_Up)
    assert window.viewer.index == 10
    qtbot.keyClick(window.viewer, Qt.Key.Key_End)
    assert window.viewer.index == 13


def test_keys_and_control_change_volume_at_the_same_position(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    show(window, make_series())
    window.viewer.set_position(4)  # the last image of volume 2
    qtbot.keyClick(window.viewer, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert window.viewer.volume.index == 0 and window.viewer.position == 4  # type: ignore[union-attr]
    assert window.volume_control.spin.value() == 1
    assert "phase, echo 1" in window.volume_control.label.text()
    qtbot.keyClick(window.viewer, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert window.viewer.volume.index == 0  # type: ignore[union-attr]
    qtbot.keyClick(window.viewer, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window.viewer, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    # volume 3 has 4 images: the nearest position
    assert window.viewer.volume.index == 2 and window.viewer.position == 3  # type: ignore[union-attr]
    window.viewer.set_position(1)
    window.volume_control.spin.setValue(2)
    assert window.viewer.index == 6 and window.slider.value() == 1
    # in the focused volume box its arrows change the volume, not the image
    spin = window.volume_control.spin
    spin.setFocus()
    qtbot.keyClick(spin, Qt.Key.Key_Up)
    assert window.viewer.volume.index == 2 and window.viewer.position == 1  # type: ignore[union-attr]
    shortcuts = {a.text(): a.shortcut().toString() for a in window.actions()}
    assert shortcuts["Next &volume"] == "Ctrl+Down"
    assert shortcuts["Previous vo&lume"] == "Ctrl+Up"


def test_each_volume_keeps_its_own_display_window(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    show(window, make_series())
    series = window.viewer.series
    assert series is not None
    assert window.viewer.display_window == series.slices[5].window
    chosen = Window(123.0, 45.0, "user")
    window.viewer.set_window(chosen)
    window.viewer.set_volume(0)  # the phase map opens in its own window from the file
    assert window.viewer.display_window == series.slices[0].window
    window.viewer.set_volume(1)
    assert window.viewer.display_window == chosen


def test_a_volume_not_assessed_says_so_and_draws_nothing(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    show(window, make_series())
    window.viewer.set_position(3)  # global 8: the strongest finding
    assert window.viewer.overlays.mask is not None
    assert probability_cell(window, 0) == "97.0%"
    assert "Decided on volume 2 (magnitude, echo 1) of 3 volumes" in window.banner.words

    window.volume_control.spin.setValue(1)
    assert window.viewer.index == 3
    assert window.findings.slice_verdict.text() == "Not assessed: not an anatomical image (phase)"
    assert window.findings.slice_label.text() == \
        "Image 4 of 5, volume 1 (phase, echo 1): not assessed"
    assert {probability_cell(window, r) for r in range(4)} == {"-"}
    assert window.viewer.overlays.mask is None and window.viewer.overlays.gradcam is None
    assert window.current_finding() is None
    assert "not assessed" in window.volume_control.label.text()

    qtbot.keyClick(window.viewer, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window.viewer, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert window.findings.slice_verdict.text() == "N" + ONE_VOLUME_REASON[1:]
    assert window.viewer.overlays.mask is None


def test_not_assessed_before_the_analysis_too(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    show(window, make_series(), verdict=False)
    assert window.findings.slice_label.text().endswith(": not analysed")
    window.viewer.set_volume(0)
    assert window.findings.slice_verdict.text() == "Not assessed: not an anatomical image (phase)"


def test_a_finding_jump_selects_its_volume_and_position(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    show(window, make_series())
    window.volume_control.spin.setValue(3)
    window.viewer.set_position(0)
    top = window.findings.suspicious.item(0)
    assert top.text().startswith("Image 4, volume 2: p(tumour) 97%")
    assert window.findings.suspicious.count() == 5
    window.findings.suspicious.itemClicked.emit(top)
    assert window.viewer.index == 8
    assert window.viewer.volume.index == 1 and window.viewer.position == 3  # type: ignore[union-attr]
    assert window.slider.maximum() == 4 and window.slider.value() == 3
    assert window.volume_control.spin.value() == 2
    assert window.viewer.overlays.mask is not None
    # N from another volume goes to the most suspicious image, in its volume
    window.viewer.set_volume(0)
    qtbot.keyClick(window.viewer, Qt.Key.Key_N)
    assert window.viewer.index == 8 and window.volume_control.spin.value() == 2


def test_a_series_with_no_assessed_volume(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    volumes = (Volume(0, "phase, echo 1", 0, 3, anatomical=False, assessed=False,
                      not_assessed_reason=PHASE_REASON),
               Volume(1, "phase, echo 2", 3, 3, anatomical=False, assessed=False,
                      not_assessed_reason=PHASE_REASON))
    series = make_series(volumes)
    show(window, series, verdict=False)
    window._analysed(SeriesVerdict(series, Verdict.CANNOT_ASSESS, "", 0.0,
                                   ("not assessed: no anatomical image in this series",), (),
                                   "unknown", "none", (ReasonKind.NO_ANATOMICAL,)))
    assert "none assessed" in window.browser.item(0).text()
    assert window.findings.suspicious.count() == 0
    qtbot.keyClick(window.viewer, Qt.Key.Key_N)  # nothing to go to; nothing breaks
    assert window.viewer.index == 0
    assert "Not assessed" in window.findings.slice_verdict.text()
