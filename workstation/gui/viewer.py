"""The slice viewer: scroll, window/level, zoom/pan, invert, overlays, orientation letters.

Mouse: wheel = next/previous slice, Ctrl+wheel = zoom, left drag = window/level,
right or middle drag = pan, double-click = fit. The image is windowed from the slice's
modality values, so re-windowing never re-reads the file, through the one display function
``imaging.pixels.slice_image`` (VOI LUT Function, VOI LUT, MONOCHROME1 inversion) that made
the slice's ``image``: what is shown at the file's window is what the model read and what the
report prints. ``displayed`` holds the 8-bit grey image painted.

A series of several volumes (diffusion directions, echoes, magnitude/phase, time points) is
read one volume at a time: scrolling moves through the positions of the shown volume, and
changing volume keeps the position. ``index`` stays the slice's index in ``series.slices``.
Each volume keeps its own display window (a phase map is not read in the magnitude's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from workstation.imaging.geometry import direction_letters
from workstation.imaging.pixels import pixel_aspect as spacing_aspect
from workstation.imaging.pixels import slice_image, to_8bit
from workstation.imaging.series import Series, Slice, Volume, Window
from workstation.reporting.images import outline

MASK_COLOUR = QColor(255, 200, 0)
LETTER_COLOUR = QColor(255, 255, 120)
DRAG_PIXELS_PER_WIDTH = 200.0  # a drag this long changes the level (or width) by one width
DRAG_START = 3  # pixels the mouse moves before a left-button drag changes the window


def letter_font() -> QFont:
    return QFont("Sans", 12, QFont.Weight.Bold)


def dragged_window(start: Window, dx: float, dy: float) -> Window:
    """The window after a left-button drag of (dx, dy) pixels from ``start``: down raises
    the level, right widens the window, by ``width / 200`` modality units a pixel. The
    window keeps its VOI LUT Function (a drag from the file's VOI LUT is read as the exact
    window of the LUT's input range)."""
    linear = start.function == "LINEAR"
    scale = (max(start.width, 1.0) if linear else start.width) / DRAG_PIXELS_PER_WIDTH
    narrowest = 1.0 if linear else start.width / DRAG_PIXELS_PER_WIDTH
    return Window(center=start.center + dy * scale,
                  width=max(narrowest, start.width + dx * scale),
                  source="user", function=start.function)


def pixel_aspect(series: Series | None) -> float:
    """Height over width of one pixel as painted, from the series' Pixel Spacing."""
    return spacing_aspect(series.info.pixel_spacing if series is not None else None)


def outlined_text(painter: QPainter, where: QPointF, text: str, font: QFont,
                  colour: QColor) -> None:
    """``text`` from baseline point ``where``, filled with ``colour`` inside a black rim,
    so it stays readable on white (MONOCHROME1, inverted) as on black."""
    path = QPainterPath()
    path.addText(where, font, text)
    painter.strokePath(path, QPen(QColor(0, 0, 0), 3.0))
    painter.fillPath(path, colour)


def _number(value: float) -> str:
    """A window value as the corner shows it: whole units, or 3 significant digits for a
    window narrower than that (float data)."""
    return f"{value:.0f}" if abs(value) >= 10 or value == round(value) else f"{value:.3g}"


@dataclass
class Overlays:
    mask: npt.NDArray[np.float32] | None = None
    gradcam: npt.NDArray[np.float32] | None = None
    show_mask: bool = True
    show_gradcam: bool = False
    style: str = "outline"  # outline | fill
    opacity: float = 0.45


def _grey_qimage(pixels: npt.NDArray[np.uint8]) -> QImage:
    rows, cols = pixels.shape
    return QImage(pixels.data, cols, rows, cols, QImage.Format.Format_Grayscale8).copy()


def _rgba_qimage(rgba: npt.NDArray[np.uint8]) -> QImage:
    rows, cols, _ = rgba.shape
    data = np.ascontiguousarray(rgba)
    return QImage(data.data, cols, rows, cols * 4, QImage.Format.Format_RGBA8888).copy()


def mask_overlay(mask: npt.NDArray[np.float32], style: str, opacity: float
                 ) -> npt.NDArray[np.uint8]:
    rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
    if style == "fill":
        region = mask >= 0.5
        rgba[region] = (MASK_COLOUR.red(), MASK_COLOUR.green(), MASK_COLOUR.blue(),
                        int(255 * opacity))
    line = outline(mask)
    rgba[line] = (MASK_COLOUR.red(), MASK_COLOUR.green(), MASK_COLOUR.blue(), 255)
    return rgba


def heat_overlay(heat: npt.NDArray[np.float32], opacity: float) -> npt.NDArray[np.uint8]:
    """A blue-to-red ramp; transparent where the heat is low."""
    h = np.clip(heat, 0, 1)
    rgba = np.zeros((*h.shape, 4), dtype=np.uint8)
    rgba[..., 0] = (255 * np.clip(2 * h - 0.5, 0, 1)).astype(np.uint8)
    rgba[..., 1] = (255 * np.clip(1 - np.abs(2 * h - 1.2), 0, 1)).astype(np.uint8)
    rgba[..., 2] = (255 * np.clip(1 - 2 * h, 0, 1)).astype(np.uint8)
    rgba[..., 3] = (255 * opacity * np.clip(h * 1.5 - 0.2, 0, 1)).astype(np.uint8)
    return rgba


class SliceView(QWidget):
    slice_changed = Signal(int)
    window_changed = Signal(float, float)
    hovered = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(320, 320)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.series: Series | None = None
        self.index = 0
        self.display_window: Window | None = None
        self.inverted = False
        self.zoom = 1.0
        self.pan = QPointF(0, 0)
        self.overlays = Overlays()
        self._image: QImage | None = None
        self.displayed: npt.NDArray[np.uint8] | None = None  # the grey image painted
        self._overlay_images: list[QImage] = []
        self._drag: tuple[str, QPointF, Window | None, QPointF] | None = None
        self._windows: dict[int, Window] = {}  # the display window of each volume shown

    # ----------------------------------------------------------------- state changes
    def set_series(self, series: Series | None) -> None:
        self.series = series
        self.index = 0
        self._windows = {}
        self.display_window = series.slices[0].window if series and series.slices else None
        self.zoom, self.pan = 1.0, QPointF(0, 0)
        self.overlays.mask = self.overlays.gradcam = None
        self._refresh()

    @property
    def volume(self) -> Volume | None:
        """The volume shown (the only one of a single-volume series)."""
        if self.series is None or not self.series.slices:
            return None
        return self.series.volume_of(self.index)

    @property
    def position(self) -> int:
        """The shown image's 0-based place within its volume."""
        volume = self.volume
        return self.index - volume.start if volume is not None else 0

    @property
    def current(self) -> Slice | None:
        if self.series is None or not self.series.slices:
            return None
        return self.series.slices[self.index]

    def set_index(self, index: int) -> None:
        """Show slice ``index`` of ``series.slices`` (of whichever volume holds it)."""
        if self.series is None or not self.series.slices:
            return
        index = max(0, min(len(self.series.slices) - 1, index))
        if index != self.index:
            old, new = self.series.volume_of(self.index), self.series.volume_of(index)
            if old.index != new.index and self.display_window is not None:
                self._windows[old.index] = self.display_window
                self.display_window = self._windows.get(
                    new.index, self.series.slices[new.start].window)
            self.index = index
            self.overlays.gradcam = None
            self._refresh()
            self.slice_changed.emit(index)

    def set_position(self, position: int) -> None:
        """Show image ``position`` (0-based, clamped) of the shown volume."""
        volume = self.volume
        if volume is not None:
            self.set_index(volume.start + max(0, min(volume.count - 1, position)))

    def step(self, delta: int) -> None:
        """The next (``delta`` > 0) or previous image of the shown volume; stops at its ends."""
        self.set_position(self.position + delta)

    def set_volume(self, number: int) -> None:
        """Show volume ``number`` (0-based, clamped) at the same position where it has one."""
        if self.series is None or not self.series.slices:
            return
        volumes = self.series.volumes
        volume = volumes[max(0, min(len(volumes) - 1, number))]
        self.set_index(volume.start + min(self.position, volume.count - 1))

    def step_volume(self, delta: int) -> None:
        volume = self.volume
        if volume is not None:
            self.set_volume(volume.index + delta)

    def set_window(self, window: Window) -> None:
        self.display_window = window
        self._refresh()
        self.window_changed.emit(window.center, window.width)

    def reset_window(self) -> None:
        if self.current is not None:
            self.set_window(self.current.window)

    def set_inverted(self, inverted: bool) -> None:
        self.inverted = inverted
        self._refresh()

    def fit(self) -> None:
        self.zoom, self.pan = 1.0, QPointF(0, 0)
        self.update()

    def zoom_by(self, factor: float) -> None:
        self.zoom = float(np.clip(self.zoom * factor, 0.25, 16.0))
        self.update()

    def set_overlays(self, mask: npt.NDArray[np.float32] | None = None,
                     gradcam: npt.NDArray[np.float32] | None = None) -> None:
        self.overlays.mask = mask
        self.overlays.gradcam = gradcam
        self._refresh_overlays()
        self.update()

    def _refresh(self) -> None:
        current = self.current
        if current is None or self.display_window is None:
            self._image = self.displayed = None
        else:
            self.displayed = to_8bit(slice_image(current, self.display_window,
                                                 inverted=self.inverted))
            self._image = _grey_qimage(self.displayed)
        self._refresh_overlays()
        self.update()

    def _refresh_overlays(self) -> None:
        images = []
        o = self.overlays
        if o.show_gradcam and o.gradcam is not None:
            images.append(_rgba_qimage(heat_overlay(o.gradcam, o.opacity)))
        if o.show_mask and o.mask is not None and (o.mask >= 0.5).any():
            images.append(_rgba_qimage(mask_overlay(o.mask, o.style, o.opacity)))
        self._overlay_images = images

    # ---------------------------------------------------------------------- geometry
    def image_rect(self) -> QRectF:
        """Where the image is painted: fitted to the view at its physical proportions
        (Pixel Spacing: a 0.9 x 2.4 mm pixel is painted 2.7 times as tall as wide)."""
        if self._image is None:
            return QRectF()
        width = float(self._image.width())
        height = self._image.height() * pixel_aspect(self.series)
        scale = min(self.width() / width, self.height() / height) * self.zoom
        w, h = width * scale, height * scale
        return QRectF((self.width() - w) / 2 + self.pan.x(), (self.height() - h) / 2 + self.pan.y(),
                      w, h)

    def pixel_at(self, point: QPointF) -> tuple[int, int] | None:
        rect = self.image_rect()
        if self._image is None or not rect.contains(point):
            return None
        col = int((point.x() - rect.x()) / rect.width() * self._image.width())
        row = int((point.y() - rect.y()) / rect.height() * self._image.height())
        return row, col

    # ----------------------------------------------------------------------- painting
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.GlobalColor.black)
        if self._image is None:
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                             "Open a study: File > Open (Ctrl+O), or drop files here")
            return
        rect = self.image_rect()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.zoom < 2)
        painter.drawImage(rect, self._image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for overlay in self._overlay_images:
            painter.drawImage(rect, overlay)
        self._paint_letters(painter, rect)
        self._paint_corner(painter)

    def orientation_letters(self) -> dict[str, str] | None:
        """The patient directions the shown image's edges face ("left", "right", "top",
        "bottom" -> e.g. "R", "L", "H", "F"), from its Image Orientation (Patient); None
        when the slice has no orientation."""
        current = self.current
        if current is None or current.orientation is None:
            return None
        row_dir, col_dir = current.orientation[:3], current.orientation[3:]
        return {"left": direction_letters([-v for v in row_dir]),
                "right": direction_letters(row_dir),
                "top": direction_letters([-v for v in col_dir]),
                "bottom": direction_letters(col_dir)}

    def letter_positions(self) -> list[tuple[str, str, QPointF]]:
        """(edge, letters, baseline start) of each orientation letter painted: at the
        middle of each edge of the image, kept inside the view."""
        letters = self.orientation_letters()
        rect = self.image_rect()
        if letters is None or rect.isEmpty():
            return []
        metrics = QFontMetrics(letter_font())
        # the middle of each edge, or of the view where the image is panned past it
        c = QPointF(min(max(rect.center().x(), 24.0), self.width() - 24.0),
                    min(max(rect.center().y(), 24.0), self.height() - 24.0))
        half = metrics.capHeight() / 2
        left, right = max(rect.left(), 0.0) + 6, min(rect.right(), float(self.width())) - 6
        top, bottom = max(rect.top(), 0.0) + 6, min(rect.bottom(), self.height() - 22.0) - 6
        return [
            ("left", letters["left"], QPointF(left, c.y() + half)),
            ("right", letters["right"],
             QPointF(right - metrics.horizontalAdvance(letters["right"]), c.y() + half)),
            ("top", letters["top"],
             QPointF(c.x() - metrics.horizontalAdvance(letters["top"]) / 2,
                     top + metrics.capHeight())),
            # above the image counter line, which runs along the bottom edge
            ("bottom", letters["bottom"],
             QPointF(c.x() - metrics.horizontalAdvance(letters["bottom"]) / 2, bottom)),
        ]

    def _paint_letters(self, painter: QPainter, rect: QRectF) -> None:
        font = letter_font()
        for _, letters, where in self.letter_positions():
            outlined_text(painter, where, letters, font, LETTER_COLOUR)

    def _paint_corner(self, painter: QPainter) -> None:
        if self.series is None or self.display_window is None:
            return
        outlined_text(painter, QPointF(8, self.height() - 8), self.corner_words(),
                      QFont("Sans", 10), QColor(230, 230, 230))

    def corner_words(self) -> str:
        """The line along the bottom: image counter, window (or the file's VOI LUT),
        invert, zoom."""
        window = self.display_window
        if self.series is None or window is None:
            return ""
        if window.lut is not None:
            voi = f"VOI LUT ({window.lut.explanation})" if window.lut.explanation else "VOI LUT"
        else:
            voi = f"W {_number(window.width)}  L {_number(window.center)}"
            if window.function != "LINEAR":
                voi += f" ({window.function.lower().replace('_', ' ')})"
        return (f"{self.image_words()}   {voi}" + ("   inverted" if self.inverted else "")
                + f"   zoom {self.zoom:.1f}x")

    def image_words(self) -> str:
        """The image counter: "Image 5 / 40", and for a series of several volumes
        "Image 5 / 40 — volume 2 of 13 (b = 1500, direction 1)"."""
        volume = self.volume
        if self.series is None or volume is None:
            return ""
        words = f"Image {self.position + 1} / {volume.count}"
        if not self.series.is_multi_volume:
            return words
        label = f" ({volume.label})" if volume.label else ""
        return (f"{words} — volume {volume.index + 1} of {len(self.series.volumes)}"
                f"{label}")

    # -------------------------------------------------------------------------- input
    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1.15 ** steps)
        elif steps:
            # wheel towards the user (negative) = next image; one image per notch
            notches = max(1, round(abs(steps)))
            self.step(-notches if steps > 0 else notches)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        mode = "window" if event.button() == Qt.MouseButton.LeftButton else "pan"
        self._drag = (mode, event.position(), self.display_window, QPointF(self.pan))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._drag = None

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        self.fit()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag is not None:
            mode, start, window, pan = self._drag
            delta = event.position() - start
            if mode == "pan":
                self.pan = pan + delta
                self.update()
            elif window is not None and (self.display_window is not window
                                         or abs(delta.x()) + abs(delta.y()) >= DRAG_START):
                # a click that hardly moves keeps the window (and the file's VOI LUT)
                # down darkens what is shown, whichever the polarity: a MONOCHROME1 image
                # (or one the user inverted) lowers its level instead
                current = self.current
                flip = current is not None and current.monochrome1 != self.inverted
                self.set_window(dragged_window(window, delta.x(),
                                               -delta.y() if flip else delta.y()))
        self._report_hover(event.position())

    def _report_hover(self, point: QPointF) -> None:
        current = self.current
        where = self.pixel_at(point)
        if current is None or where is None:
            self.hovered.emit("")
            return
        row, col = where
        value = float(current.raw[row, col])
        text = f"pixel ({row}, {col}) value {value:.1f}"
        if self.overlays.mask is not None:
            text += f", suspect-region probability {float(self.overlays.mask[row, col]):.2f}"
        self.hovered.emit(text)
