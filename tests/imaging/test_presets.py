"""Window presets as pure functions of a slice."""

from __future__ import annotations

import numpy as np
import pytest

from workstation.imaging.presets import Preset, preset_window
from workstation.imaging.series import Slice, Window


def slice_of(raw: np.ndarray) -> Slice:
    raw = raw.astype(np.float32)
    return Slice(image=raw / raw.max(), raw=raw, window=Window(40, 80, "dicom"), source="a")


def test_each_preset_from_the_slice_values() -> None:
    # a ramp of 1000 values and a few hot pixels
    image = slice_of(np.concatenate([np.arange(1000.0), [5000.0] * 8]).reshape(8, 126))
    assert preset_window(image, Preset.FILE) == image.window
    full = preset_window(image, Preset.FULL)
    assert (full.center, full.width, full.source) == (2500.0, 5000.0, "preset")
    contrast = preset_window(image, Preset.CONTRAST)
    low, high = np.percentile(image.raw, [5, 95])
    assert contrast.center == pytest.approx((low + high) / 2)
    assert contrast.width == pytest.approx(high - low)
    robust = preset_window(image, Preset.ROBUST)
    assert robust.source == "percentile" and robust.width < full.width


def test_a_flat_image_still_gets_a_usable_window() -> None:
    flat = slice_of(np.full((8, 8), 7.0))
    for preset in Preset:
        assert preset_window(flat, preset).width >= 1e-6
    assert preset_window(flat, Preset.FULL).width == 1.0


def test_the_menu_words_and_their_order() -> None:
    assert [p.value for p in Preset] == [
        "Window from the file", "Full range", "Robust (0.5-99.5 percentile)",
        "High contrast (5-95 percentile)"]
