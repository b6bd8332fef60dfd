"""What the viewer displays: the grey levels it paints (the array it converts and the
rendered widget), a MONOCHROME1 series' polarity, a window/level drag by the DICOM linear
formula, the report's key image, the thumbnail, and the orientation letters it draws.
Series are read from synthetic DICOM and shown without the model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pydicom.dataset import Dataset
from pydicom.pixels import apply_windowing
from pydicom.uid import generate_uid
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QFontMetrics, QImage

from tests.dicom_factory import AXIAL, CORONAL, SAGITTAL, mr_dataset, write
from tests.gui.test_volumes import show
from workstation.gui.main_window import MainWindow
from workstation.gui.panels import thumbnail_pixels
from workstation.gui.viewer import DRAG_PIXELS_PER_WIDTH, SliceView, letter_font
from workstation.imaging import Series, load_study
from workstation.imaging.pixels import slice_image, to_8bit
from workstation.imaging.series import Window
from workstation.reporting.images import grey_picture, slice_picture

SIZE = 48
CENTER, WIDTH = 1200.0, 1601.0
CORNER_LINE = 24  # pixels along the bottom where the viewer writes its counter line


def ramp(offset: int = 0) -> np.ndarray:
    """Stored values rising left to right and top to bottom: 0 .. 2 * 47 * 25 + offset."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    return (rows * 25 + cols * 25 + offset).astype(np.uint16)


def dicom_series(folder: Path, photometric: str = "MONOCHROME1", orientation=AXIAL,  # type: ignore[no-untyped-def]
                 count: int = 3, window: tuple[float, float] | None = (CENTER, WIDTH)
                 ) -> Series:
    uid = generate_uid()
    normal = np.cross(orientation[:3], orientation[3:])
    for index in range(count):
        write(mr_dataset(ramp(index * 10), series_uid=uid, instance=index + 1,
                         position=tuple(normal * 4.0 * index), orientation=orientation,
                         photometric=photometric, window=window),
              folder / f"IM{index}.dcm")
    (series,) = load_study([folder]).series
    return series


def rendered_grey(view: SliceView) -> tuple[np.ndarray, np.ndarray]:
    """The grey level the widget paints at the centre of each image pixel (from a grab of
    the widget), and where the sample is not grey (letters, text)."""
    grabbed = view.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    width, height = grabbed.width(), grabbed.height()
    pixels = np.frombuffer(grabbed.constBits(), np.uint8).reshape(
        height, grabbed.bytesPerLine())[:, :width * 3].reshape(height, width, 3)
    rect = view.image_rect()
    assert view.displayed is not None
    rows, cols = view.displayed.shape
    ys = (rect.y() + (np.arange(rows) + 0.5) * rect.height() / rows).astype(int)
    xs = (rect.x() + (np.arange(cols) + 0.5) * rect.width() / cols).astype(int)
    samples = pixels[ys[:, None], xs[None, :]].astype(int)
    not_grey = np.ptp(samples, axis=2) > 2
    not_grey |= (ys >= height - CORNER_LINE)[:, None]  # the corner line's (grey) text
    for box in letter_boxes(view):  # the letters' black rims are grey too
        x0, y0, x1, y1 = box
        not_grey |= ((ys >= y0) & (ys <= y1))[:, None] & ((xs >= x0) & (xs <= x1))[None, :]
    return samples[..., 0], not_grey


def letter_boxes(view: SliceView, rim: int = 3) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) around each orientation letter the viewer paints, rim included."""
    metrics = QFontMetrics(letter_font())
    boxes = []
    for _, letters, where in view.letter_positions():
        x0, y1 = int(where.x()), int(where.y())
        boxes.append((x0 - rim, y1 - metrics.ascent() - rim,
                      x0 + metrics.horizontalAdvance(letters) + rim, y1 + metrics.descent() + rim))
    return boxes


def assert_painted(view: SliceView, expected: np.ndarray) -> None:
    """The array the viewer converts is ``expected``, and so is what it paints."""
    assert view.displayed is not None
    np.testing.assert_array_equal(view.displayed, expected)
    painted, not_grey = rendered_grey(view)
    assert not_grey.mean() < 0.1  # only the letters and the corner line are left out
    difference = np.abs(painted - expected.astype(int))[~not_grey]
    assert difference.max() <= 3, difference.max()


def test_monochrome1_shows_the_polarity_of_its_slice_image(
        qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    series = dicom_series(tmp_path / "m1")
    show(window, series, verdict=False)
    view = window.viewer
    current = view.current
    assert current is not None and current.monochrome1
    assert_painted(view, to_8bit(current.image))
    # MONOCHROME1: the lowest stored value (top left) white, the highest (bottom right) black
    assert view.displayed is not None
    assert view.displayed[0, 0] == 255 and view.displayed[-1, -1] == 0
    # the thumbnail and the model's image have the same polarity
    thumb = thumbnail_pixels(series)
    assert thumb is not None
    middle = series.slices[len(series.slices) // 2]
    np.testing.assert_array_equal(thumb, to_8bit(middle.image))
    assert thumb[0, 0] == 255 and thumb[-1, -1] == 0
    # the user's Invert shows it the other way round, and back
    view.set_inverted(True)
    assert_painted(view, 255 - to_8bit(current.image))
    view.set_inverted(False)
    assert_painted(view, to_8bit(current.image))


def linear(raw: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1, with ymin = 0 and ymax = 1."""
    c, w = center - 0.5, width - 1.0
    out = (raw.astype(np.float64) - c) / w + 0.5
    return np.clip(np.where(raw <= c - w / 2, 0.0, np.where(raw > c + w / 2, 1.0, out)), 0, 1)


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_a_window_level_drag_changes_the_pixels_by_the_dicom_linear_formula(
        qtbot: QtBot, window: MainWindow, tmp_path: Path, photometric: str) -> None:
    series = dicom_series(tmp_path / photometric, photometric)
    show(window, series, verdict=False)
    view = window.viewer
    before = view.displayed.copy()  # type: ignore[union-attr]
    start = view.image_rect().center().toPoint()
    dx, dy = 60, -40  # right: wider; up: brighter, whichever the polarity
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view, start + QPoint(dx, dy))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=start + QPoint(dx, dy))
    scale = WIDTH / DRAG_PIXELS_PER_WIDTH
    window_now = view.display_window
    assert window_now is not None and window_now.source == "user"
    assert window_now.function == "LINEAR"
    # up lowers the level of a MONOCHROME2 image, raises that of a MONOCHROME1 one (both
    # show brighter)
    flip = -1 if photometric == "MONOCHROME1" else 1
    assert window_now.center == pytest.approx(CENTER + flip * dy * scale)
    assert window_now.width == pytest.approx(WIDTH + dx * scale)
    current = view.current
    assert current is not None
    raw = np.asarray(current.raw)
    expected = linear(raw, window_now.center, window_now.width)
    # pydicom's windowing agrees with the formula
    ds = Dataset()
    ds.PhotometricInterpretation, ds.BitsStored, ds.PixelRepresentation = photometric, 16, 0
    ds.WindowCenter, ds.WindowWidth = window_now.center, window_now.width
    np.testing.assert_allclose(apply_windowing(raw.astype(np.float64), ds) / 65535, expected,
                               atol=1e-9)
    if photometric == "MONOCHROME1":
        expected = 1.0 - expected
    shown = view.displayed
    assert shown is not None and not np.array_equal(shown, before)
    assert np.abs(shown.astype(int) - np.rint(expected * 255).astype(int)).max() <= 1
    assert_painted(view, to_8bit(slice_image(current, window_now)))
    assert shown.astype(int).sum() > before.astype(int).sum()  # brighter
    # Reset window: back to exactly the slice's own image
    view.reset_window()
    assert_painted(view, to_8bit(current.image))


def test_viewer_image_is_the_reports_key_image(
        qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    series = dicom_series(tmp_path / "m1", count=4)
    show(window, series, verdict=False)
    view = window.viewer
    view.set_position(2)
    current = view.current
    assert current is not None
    # the report prints Slice.image (reporting.pdf): the viewer at the file's window
    key = np.asarray(grey_picture(current.image))
    np.testing.assert_array_equal(view.displayed, key)
    np.testing.assert_array_equal(np.asarray(slice_picture(current)), key)
    # and at any other window both are the one display function
    chosen = Window(900.0, 700.0, "user", function="LINEAR")
    view.set_window(chosen)
    np.testing.assert_array_equal(view.displayed, np.asarray(slice_picture(current, chosen)))
    assert_painted(view, np.asarray(slice_picture(current, chosen)))


def test_a_file_without_a_window_shows_its_percentile_window(
        qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    series = dicom_series(tmp_path / "none", "MONOCHROME1", window=None)
    show(window, series, verdict=False)
    current = window.viewer.current
    assert current is not None and current.window.source == "percentile"
    assert_painted(window.viewer, to_8bit(current.image))
    assert "W " in window.viewer.corner_words() and "(linear exact)" in \
        window.viewer.corner_words()


LETTERS = {
    "axial": (AXIAL, {"left": "R", "right": "L", "top": "A", "bottom": "P"}),
    "coronal": (CORONAL, {"left": "R", "right": "L", "top": "H", "bottom": "F"}),
    "sagittal": (SAGITTAL, {"left": "A", "right": "P", "top": "H", "bottom": "F"}),
}


@pytest.mark.parametrize("plane", sorted(LETTERS))
def test_orientation_letters_of_each_plane_are_drawn_at_the_right_edges(
        qtbot: QtBot, window: MainWindow, tmp_path: Path, plane: str) -> None:
    orientation, expected = LETTERS[plane]
    series = dicom_series(tmp_path / plane, "MONOCHROME2", orientation=orientation)
    assert series.plane.value == plane
    show(window, series, verdict=False)
    view = window.viewer
    assert view.orientation_letters() == expected
    placed = {edge: (letters, where) for edge, letters, where in view.letter_positions()}
    assert {edge: letters for edge, (letters, _) in placed.items()} == expected
    rect = view.image_rect()
    centre = rect.center()
    assert placed["left"][1].x() < centre.x() < placed["right"][1].x()
    assert placed["top"][1].y() < centre.y() < placed["bottom"][1].y()
    # each is painted: yellow pixels where its letters are drawn
    grabbed = view.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    pixels = np.frombuffer(grabbed.constBits(), np.uint8).reshape(
        grabbed.height(), grabbed.bytesPerLine())[:, :grabbed.width() * 3].reshape(
        grabbed.height(), grabbed.width(), 3).astype(int)
    metrics = QFontMetrics(letter_font())
    for edge, (letters, where) in placed.items():
        x0, y1 = int(where.x()), int(where.y())
        x1, y0 = x0 + metrics.horizontalAdvance(letters), y1 - metrics.capHeight()
        box = pixels[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1]
        yellow = (box[..., 0] > 180) & (box[..., 1] > 180) & (box[..., 2] < 150)
        assert yellow.sum() >= 5, (edge, letters)
        assert x0 >= 0 and x1 <= view.width() and y0 >= 0 and y1 <= view.height()


def test_anisotropic_pixels_are_painted_at_their_proportions(
        qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    uid = generate_uid()
    for index in range(2):  # a coronal cut of 2.4 mm slices: 0.8 mm wide, 2.4 mm tall pixels
        ds = mr_dataset(ramp(), series_uid=uid, instance=index + 1, orientation=CORONAL,
                        position=(0.0, 2.4 * index, 0.0), window=(CENTER, WIDTH))
        ds.PixelSpacing = [2.4, 0.8]
        write(ds, tmp_path / f"IM{index}.dcm")
    (series,) = load_study([tmp_path]).series
    show(window, series, verdict=False)
    rect = window.viewer.image_rect()
    assert rect.height() / rect.width() == pytest.approx(3.0, rel=0.02)
    assert_painted(window.viewer, to_8bit(series.slices[0].image))
    icon = window.browser.item(0).icon()
    size = icon.availableSizes()[0]
    assert size.height() / size.width() == pytest.approx(3.0, rel=0.1)
    printed = slice_picture(series.slices[0], pixel_spacing=series.info.pixel_spacing)
    assert printed.size == (SIZE, SIZE * 3)


def test_a_voi_lut_file_shows_its_lut_until_a_real_drag(
        qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    ds = mr_dataset(ramp(), series_uid=generate_uid(), instance=1, window=(CENTER, WIDTH))
    item = Dataset()
    item.LUTDescriptor = [2400, 0, 16]
    item.add_new("LUTData", "US", [int(v) for v in np.sqrt(np.arange(2400) / 2399.0) * 65535])
    item.LUTExplanation = "square root"
    ds.VOILUTSequence = [item]
    write(ds, tmp_path / "lut.dcm")
    (series,) = load_study([tmp_path]).series
    show(window, series, verdict=False)
    view = window.viewer
    current = view.current
    assert current is not None and current.window.lut is not None
    assert "VOI LUT (square root)" in view.corner_words()
    assert_painted(view, to_8bit(current.image))
    start = view.image_rect().center().toPoint()
    # a click that hardly moves keeps the file's LUT
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view, start + QPoint(1, 1))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=start + QPoint(1, 1))
    assert view.display_window is current.window
    # a drag windows the LUT's input range exactly
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view, start + QPoint(0, 50))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=start + QPoint(0, 50))
    dragged = view.display_window
    assert dragged is not None and dragged.lut is None and dragged.function == "LINEAR_EXACT"
    assert dragged.width == 2400 and dragged.center == pytest.approx(1200 + 50 * 2400 / 200)
    assert "(linear exact)" in view.corner_words()
    assert_painted(view, to_8bit(slice_image(current, dragged)))
