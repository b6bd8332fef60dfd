import numpy as np
import pytest

from workstation.imaging.pixels import (
    apply_window,
    invert,
    is_uniform,
    percentile_window,
    rescale,
    to_greyscale,
)
from workstation.imaging.series import Window


def test_rescale_applies_slope_then_intercept() -> None:
    out = rescale(np.array([[0, 10]], dtype=np.uint16), slope=2.0, intercept=-1024.0)
    assert out.dtype == np.float32
    assert out.tolist() == [[-1024.0, -1004.0]]


def test_dicom_linear_window_matches_standard_formula() -> None:
    # PS3.3 C.11.2.1.2.1: x <= c - 0.5 - (w-1)/2 -> min; x > c - 0.5 + (w-1)/2 -> max
    raw = np.array([[0.0, 39.0, 50.0, 60.0, 100.0]], dtype=np.float32)
    out = apply_window(raw, Window(center=50.0, width=21.0, source="dicom"))
    assert out[0, 0] == 0.0 and out[0, -1] == 1.0
    assert out[0, 2] == pytest.approx(0.5 + 0.5 / 20.0)
    assert out[0, 1] == 0.0 and out[0, 3] == 1.0


def test_percentile_window_ignores_hot_pixels() -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(100, 200, size=(100, 100)).astype(np.float32)
    raw[0, 0] = 1e6
    window = percentile_window(raw)
    assert window.source == "percentile"
    assert window.center - window.width / 2 >= 99
    assert window.center + window.width / 2 <= 201


def test_percentile_window_of_constant_image_is_safe() -> None:
    window = percentile_window(np.full((4, 4), 7.0, dtype=np.float32))
    image = apply_window(np.full((4, 4), 7.0, dtype=np.float32), window)
    assert np.isfinite(image).all()


def test_invert_and_greyscale() -> None:
    assert invert(np.array([[0.0, 0.25]], dtype=np.float32)).tolist() == [[1.0, 0.75]]
    rgb = np.zeros((1, 2, 3), dtype=np.uint8)
    rgb[0, 1] = (255, 255, 255)
    assert to_greyscale(rgb)[0].tolist() == pytest.approx([0.0, 255.0], abs=1e-3)


def test_is_uniform() -> None:
    assert is_uniform(np.zeros((3, 3)))
    assert not is_uniform(np.eye(3))
