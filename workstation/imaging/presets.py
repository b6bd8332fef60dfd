"""Window presets for the viewer: a display window chosen from the slice's own values.

Pure functions of the slice, like ``pixels.percentile_window``; the viewer applies them.
"""

from __future__ import annotations

import enum

import numpy as np

from workstation.imaging.pixels import percentile_window
from workstation.imaging.series import Slice, Window

CONTRAST_PERCENTILES = (5.0, 95.0)


class Preset(enum.Enum):
    """The presets in the order of their keys (1 to 4); the value is the menu's words."""

    FILE = "Window from the file"
    FULL = "Full range"
    ROBUST = "Robust (0.5-99.5 percentile)"
    CONTRAST = "High contrast (5-95 percentile)"


def _span(low: float, high: float) -> Window:
    return Window((low + high) / 2, max(high - low, 1.0), "preset")


def preset_window(image: Slice, preset: Preset) -> Window:
    """The display window ``preset`` gives slice ``image`` (on its modality values)."""
    raw = np.asarray(image.raw)
    if preset is Preset.FILE:
        return image.window
    if preset is Preset.ROBUST:
        return percentile_window(raw)
    if preset is Preset.FULL:
        return _span(float(raw.min()), float(raw.max()))
    low, high = np.percentile(raw, CONTRAST_PERCENTILES)
    return _span(float(low), float(high))
