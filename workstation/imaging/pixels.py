"""Pure pixel functions: raw values -> display-ready float image in [0, 1].

The order follows the DICOM grayscale pipeline (PS3.4 N.2): modality LUT (rescale), then
VOI (window), then presentation (MONOCHROME1 is inverted *after* windowing).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from workstation.imaging.series import FloatImage, Window

# Percentiles for a robust window when the file carries none: ignores the few hot pixels
# and the empty background that would otherwise flatten the contrast.
ROBUST_LOW_PERCENTILE = 0.5
ROBUST_HIGH_PERCENTILE = 99.5


def rescale(arr: npt.NDArray[np.generic], slope: float = 1.0, intercept: float = 0.0) -> FloatImage:
    """Modality LUT as a linear rescale: ``slope * stored + intercept`` (PS3.3 C.11.1)."""
    out = np.asarray(arr, dtype=np.float32)
    if slope != 1.0:
        out = out * np.float32(slope)
    if intercept != 0.0:
        out = out + np.float32(intercept)
    return out


def percentile_window(raw: FloatImage) -> Window:
    """A window spanning the 0.5th to 99.5th percentile of the finite pixel values."""
    finite = raw[np.isfinite(raw)]
    if finite.size == 0:
        return Window(center=0.5, width=1.0, source="percentile")
    low, high = np.percentile(finite, [ROBUST_LOW_PERCENTILE, ROBUST_HIGH_PERCENTILE])
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    width = max(float(high - low), 1e-6)
    return Window(center=float(low) + width / 2.0, width=width, source="percentile")


def apply_window(raw: FloatImage, window: Window) -> FloatImage:
    """Linear VOI window of PS3.3 C.11.2.1.2.1, mapped to [0, 1] instead of [ymin, ymax]."""
    center, width = float(window.center), max(float(window.width), 1.0 + 1e-6)
    if window.source != "dicom":
        # computed windows are exact ranges, not DICOM's "width - 1" convention
        low = center - width / 2.0
        out = (raw - np.float32(low)) / np.float32(width)
    else:
        out = (raw - np.float32(center - 0.5)) / np.float32(width - 1.0) + np.float32(0.5)
    out = np.clip(out, 0.0, 1.0)
    out[~np.isfinite(out)] = 0.0
    return out.astype(np.float32, copy=False)


def invert(image: FloatImage) -> FloatImage:
    """MONOCHROME1 presentation: minimum value is white. Applied after the window."""
    return (np.float32(1.0) - image).astype(np.float32, copy=False)


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


def frozen(arr: npt.NDArray[np.generic]) -> FloatImage:
    """A contiguous float32 copy that nobody can write to."""
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if out is arr:
        out = out.copy()
    out.setflags(write=False)
    return out
