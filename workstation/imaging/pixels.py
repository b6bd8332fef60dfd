"""Pure pixel functions: raw values -> display-ready float image in [0, 1].

The order follows the DICOM grayscale pipeline (PS3.4 N.2): modality LUT (rescale), then
VOI (a window read with its VOI LUT Function, or the file's VOI LUT), then presentation
(MONOCHROME1 is inverted *after* windowing).

``display_image`` is the one function from modality values to what is shown: a Slice's
``image`` is it at the file's window, the viewer calls it at every window/level change, the
thumbnails and the report's key images go through it, so all of them show the same grey
levels with the same polarity. ``to_8bit`` is the one conversion to the 8-bit grey they
paint or print.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from workstation.imaging.series import (
    BLANK_DISPLAY_WARNING,
    FloatImage,
    Slice,
    VoiLut,
    Window,
)

# Percentiles for a robust window when the file carries none: ignores the few hot pixels
# and the empty background that would otherwise flatten the contrast.
ROBUST_LOW_PERCENTILE = 0.5
ROBUST_HIGH_PERCENTILE = 99.5
# A computed window (percentile, preset, full range) spans at least one modality unit.
MIN_COMPUTED_WIDTH = 1.0 + 1e-6
# LINEAR_EXACT and SIGMOID need a width above 0 (PS3.3 C.11.2.1.3); this keeps it finite.
_MIN_EXACT_WIDTH = 1e-6


def rescale(arr: npt.NDArray[np.generic], slope: float = 1.0, intercept: float = 0.0) -> FloatImage:
    """Modality LUT as a linear rescale: ``slope * stored + intercept`` (PS3.3 C.11.1)."""
    out = np.asarray(arr, dtype=np.float32)
    if slope != 1.0:
        out = out * np.float32(slope)
    if intercept != 0.0:
        out = out + np.float32(intercept)
    return out


def percentile_window(raw: FloatImage) -> Window:
    """A window spanning the 0.5th to 99.5th percentile of the finite pixel values.

    Read as LINEAR_EXACT (an exact range) and never narrower than one modality unit, so a
    blank slice shows an even mid-grey rather than noise stretched to full contrast.
    """
    finite = raw[np.isfinite(raw)]
    if finite.size == 0:
        return Window(center=0.5, width=1.0, source="percentile")
    low, high = np.percentile(finite, [ROBUST_LOW_PERCENTILE, ROBUST_HIGH_PERCENTILE])
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    width = max(float(high - low), 1e-6)
    return Window(center=float(low) + width / 2.0, width=max(width, MIN_COMPUTED_WIDTH),
                  source="percentile")


def apply_window(raw: FloatImage, window: Window) -> FloatImage:
    """The VOI stage, mapped to [0, 1] instead of [ymin, ymax] (PS3.3 C.11.2.1):

    - ``window.lut`` set: the file's VOI LUT (C.11.2.1.1), entries scaled by 2^bits - 1;
    - LINEAR (C.11.2.1.2.1): x <= c - 0.5 - (w-1)/2 -> 0, x > c - 0.5 + (w-1)/2 -> 1,
      else ((x - (c - 0.5)) / (w - 1) + 0.5); w >= 1;
    - LINEAR_EXACT (C.11.2.1.3.2): x <= c - w/2 -> 0, x > c + w/2 -> 1, else
      ((x - c) / w + 0.5); w > 0;
    - SIGMOID (C.11.2.1.3.1): 1 / (1 + exp(-4 (x - c) / w)); w > 0.

    Non-finite results show as 0 (black before any MONOCHROME1 inversion).
    """
    raw = np.asarray(raw, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # a window of 1e300: inf, then 0 or 1
        return _apply_window(raw, window)


def _apply_window(raw: FloatImage, window: Window) -> FloatImage:
    if window.lut is not None:
        out = apply_voi_lut(raw, window.lut)
    elif window.function == "SIGMOID":
        width = max(float(window.width), _MIN_EXACT_WIDTH)
        with np.errstate(over="ignore"):
            out = (1.0 / (1.0 + np.exp(np.float32(-4.0 / width)
                                       * (raw - np.float32(window.center))))).astype(np.float32)
    elif window.function == "LINEAR_EXACT":
        width = max(float(window.width), _MIN_EXACT_WIDTH)
        low = float(window.center) - width / 2.0
        out = np.clip((raw - np.float32(low)) / np.float32(width), 0.0, 1.0)
    else:
        center, width = float(window.center), float(window.width)
        if width > 1.0:
            out = (raw - np.float32(center - 0.5)) / np.float32(width - 1.0) + np.float32(0.5)
            out = np.clip(out, 0.0, 1.0)
        else:  # w = 1 (or a malformed w < 1): a step at c - 0.5
            out = (raw > np.float32(center - 0.5)).astype(np.float32)
    out = np.asarray(out, dtype=np.float32)
    out[~np.isfinite(out)] = 0.0
    return out


def apply_voi_lut(raw: FloatImage, lut: VoiLut) -> FloatImage:
    """The file's VOI LUT on modality values, as pydicom's ``apply_voi`` indexes it
    (truncated to the entry, clamped to the first and last), scaled to [0, 1]; entries a
    damaged table holds outside its own bit range are clamped, never shown outside [0, 1]."""
    top = np.float32(max(1, 2 ** max(0, lut.bits) - 1))
    table = np.clip(np.asarray(lut.table, dtype=np.float32) / top, 0.0, 1.0)
    finite = np.isfinite(raw)
    index = np.zeros(raw.shape, dtype=np.int64)
    index[finite] = np.floor(raw[finite] - np.float32(lut.first_mapped)).astype(np.int64)
    np.clip(index, 0, len(table) - 1, out=index)
    out = table[index]
    out[~finite] = 0.0
    return out


def invert(image: FloatImage) -> FloatImage:
    """MONOCHROME1 presentation: minimum value is white. Applied after the window."""
    return (np.float32(1.0) - image).astype(np.float32, copy=False)


def display_image(raw: npt.NDArray[np.generic], window: Window,
                  photometric: str = "MONOCHROME2", *, inverted: bool = False) -> FloatImage:
    """Modality values -> the displayed grey image in [0, 1]: VOI (``apply_window``), then
    presentation: MONOCHROME1 inverted, and ``inverted`` (the user's Invert) on top of it."""
    image = apply_window(np.asarray(raw, dtype=np.float32), window)
    if (photometric.strip().upper() == "MONOCHROME1") != inverted:
        image = invert(image)
    return image


def slice_image(image: Slice, window: Window | None = None, *,
                inverted: bool = False) -> FloatImage:
    """What slice ``image`` shows at ``window`` (default: its own, which gives exactly
    ``image.image``)."""
    return display_image(image.raw, window if window is not None else image.window,
                         image.photometric, inverted=inverted)


def pixel_aspect(pixel_spacing: tuple[float, float] | None) -> float:
    """Height over width of one pixel as it is displayed: Pixel Spacing's row spacing over
    its column spacing (PS3.3 10.7.1.3), 1 (square) when absent or implausible."""
    if pixel_spacing is None:
        return 1.0
    rows, cols = (float(v) for v in pixel_spacing)
    if not (rows > 0 and cols > 0) or not 0.05 <= rows / cols <= 20:
        return 1.0
    return rows / cols


def to_8bit(image: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    """A display image in [0, 1] as the 8-bit grey that is painted, thumbnailed and printed
    (rounded to the nearest level; NaN shows black)."""
    grey = np.rint(np.clip(np.nan_to_num(np.asarray(image, dtype=np.float32)), 0.0, 1.0)
                   * np.float32(255.0))
    return np.ascontiguousarray(grey.astype(np.uint8))


def to_greyscale(rgb: npt.NDArray[np.generic]) -> FloatImage:
    """ITU-R BT.601 luma of an RGB(A) array (last axis = samples)."""
    arr = np.asarray(rgb, dtype=np.float32)
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.tensordot(arr[..., :3], weights, axes=([-1], [0])).astype(np.float32)


def is_uniform(arr: npt.NDArray[np.generic]) -> bool:
    """True when every pixel has the same value (what a failed decoder often returns)."""
    if arr.size == 0:
        return True
    flat = arr.reshape(-1)
    return bool(np.all(flat == flat[0]))


def blank_window_warning(raw: npt.NDArray[np.generic], image: npt.NDArray[np.generic],
                         window: Window) -> str | None:
    """The warning for a display ``image`` that is one flat grey although ``raw`` varies
    (``Slice.display_blank``), saying where the values lie against the window; else None."""
    if not is_uniform(np.asarray(image)) or is_uniform(np.asarray(raw)):
        return None
    finite = np.asarray(raw, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    values = (f"{float(finite.min()):.6g} to {float(finite.max()):.6g}" if finite.size
              else "none finite")
    if window.lut is not None:
        how = f"the file's VOI LUT maps every value ({values}) to one grey"
    else:
        shown = f"window (center {float(window.center):.6g}, width {float(window.width):.6g})"
        low = float(window.center) - float(window.width) / 2.0
        high = float(window.center) + float(window.width) / 2.0
        if finite.size and float(finite.max()) <= low:
            how = f"every value ({values}) lies below the {shown}"
        elif finite.size and float(finite.min()) >= high:
            how = f"every value ({values}) lies above the {shown}"
        else:
            how = f"the {shown} maps every value ({values}) to one grey"
    return f"{BLANK_DISPLAY_WARNING}: {how}; the image shows one flat grey"


def frozen(arr: npt.NDArray[np.generic]) -> FloatImage:
    """A contiguous float32 copy that nobody can write to."""
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if out is arr:
        out = out.copy()
    out.setflags(write=False)
    return out
