"""The one display function: modality values + window (VOI LUT Function or VOI LUT) +
photometric interpretation -> the grey image shown, checked against the PS3.3 formulas and
pydicom's own VOI implementation, and ``Slice.image`` being exactly it at the file's window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_voi_lut, apply_windowing
from pydicom.uid import generate_uid

from tests.dicom_factory import gradient, mr_dataset, write
from workstation.imaging import load_study
from workstation.imaging.pixels import (
    apply_window,
    display_image,
    percentile_window,
    slice_image,
    to_8bit,
)
from workstation.imaging.series import VoiLut, Window

BITS = 16
Y_MAX = 2 ** BITS - 1
# modality values across and beyond a window of centre 1000, width 400
RAMP = np.linspace(600.0, 1400.0, 801, dtype=np.float32)


def pydicom_window(raw: np.ndarray, center: float, width: float, function: str,
                   photometric: str = "MONOCHROME2") -> np.ndarray:
    """pydicom's ``apply_windowing`` on a bare VOI LUT module, scaled to [0, 1]."""
    ds = Dataset()
    ds.PhotometricInterpretation = photometric
    ds.BitsStored, ds.PixelRepresentation = BITS, 0
    ds.WindowCenter, ds.WindowWidth = center, width
    ds.VOILUTFunction = function
    return np.asarray(apply_windowing(raw.astype(np.float64), ds)) / Y_MAX


def ps33(raw: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR), C.11.2.1.3.2 (LINEAR_EXACT), C.11.2.1.3.1 (SIGMOID),
    written out with ymin = 0, ymax = 1."""
    x = raw.astype(np.float64)
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR":
        c, w = center - 0.5, width - 1.0
    else:
        c, w = center, width
    out = (x - c) / w + 0.5
    out[x <= c - w / 2] = 0.0
    out[x > c + w / 2] = 1.0
    return out


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_each_voi_function_matches_ps33_and_pydicom(function: str) -> None:
    window = Window(1000.0, 400.0, "dicom", function=function)
    shown = apply_window(RAMP, window)
    assert shown.dtype == np.float32
    np.testing.assert_allclose(shown, ps33(RAMP, 1000.0, 400.0, function), atol=1e-6)
    np.testing.assert_allclose(shown, pydicom_window(RAMP, 1000.0, 400.0, function), atol=1e-6)


def test_linear_and_linear_exact_differ_by_the_half_unit_convention() -> None:
    raw = np.array([800.0, 800.5, 1000.0, 1199.5, 1200.0], dtype=np.float32)
    linear = apply_window(raw, Window(1000.0, 400.0, "dicom", function="LINEAR"))
    exact = apply_window(raw, Window(1000.0, 400.0, "dicom", function="LINEAR_EXACT"))
    # LINEAR: black up to c - 0.5 - (w - 1)/2 = 800, white above c - 0.5 + (w - 1)/2 = 1199
    assert linear[0] == 0.0 and linear[3] == 1.0 and linear[4] == 1.0
    assert linear[2] == pytest.approx(0.5 + 0.5 / 399.0)
    # LINEAR_EXACT: exactly [c - w/2, c + w/2] = [800, 1200], 1000 is mid-grey
    assert exact[0] == 0.0 and exact[2] == pytest.approx(0.5) and exact[4] == 1.0
    assert exact[3] == pytest.approx(399.5 / 400.0)
    # SIGMOID never reaches black or white and is mid-grey at the centre
    sigmoid = apply_window(raw, Window(1000.0, 400.0, "dicom", function="SIGMOID"))
    assert sigmoid.min() > 0.0 and sigmoid.max() < 1.0
    assert sigmoid[2] == pytest.approx(0.5)


def test_window_function_defaults_by_where_the_window_came_from() -> None:
    assert Window(1.0, 2.0, "dicom").function == "LINEAR"
    for source in ("percentile", "full-range", "preset", "user"):
        assert Window(1.0, 2.0, source).function == "LINEAR_EXACT"
    assert Window(1.0, 2.0, "dicom", function="sigmoid").function == "SIGMOID"
    with pytest.raises(ValueError, match="VOI LUT Function"):
        Window(1.0, 2.0, "dicom", function="LOG")


def test_monochrome1_is_inverted_after_the_window() -> None:
    window = Window(1000.0, 400.0, "dicom")
    m2 = display_image(RAMP, window, "MONOCHROME2")
    m1 = display_image(RAMP, window, "MONOCHROME1")
    np.testing.assert_array_equal(m1, 1.0 - m2)
    # pydicom windows MONOCHROME1 data as it is; the inversion is the presentation's
    np.testing.assert_allclose(
        m1, 1.0 - pydicom_window(RAMP, 1000.0, 400.0, "LINEAR", "MONOCHROME1"), atol=1e-6)
    assert m1[0] == 1.0 and m1[-1] == 0.0  # the lowest values white
    # the user's Invert flips what the file asks for, either way
    np.testing.assert_array_equal(display_image(RAMP, window, "MONOCHROME1", inverted=True), m2)
    np.testing.assert_array_equal(display_image(RAMP, window, "MONOCHROME2", inverted=True), m1)


def test_percentile_window_is_the_fallback_and_an_exact_range() -> None:
    raw = np.linspace(0.0, 1000.0, 10001, dtype=np.float32).reshape(73, 137)
    window = percentile_window(raw)
    assert (window.source, window.function) == ("percentile", "LINEAR_EXACT")
    low, high = np.percentile(raw, [0.5, 99.5])
    shown = display_image(raw, window)
    assert shown[raw <= low].max() == 0.0 and shown[raw >= high].min() == 1.0
    np.testing.assert_allclose(shown, np.clip((raw - low) / (high - low), 0, 1), atol=1e-5)
    # a blank slice stays an even grey, as the model was trained on it
    blank = display_image(np.zeros((4, 4), np.float32), percentile_window(np.zeros((4, 4),
                                                                                  np.float32)))
    assert np.ptp(blank) == 0.0 and np.isfinite(blank).all()


def test_voi_lut_maps_like_pydicom_and_clamps_at_its_ends() -> None:
    table = tuple(int(v) for v in (np.linspace(0, 1, 64) ** 2 * 4095).round())
    lut = VoiLut(first_mapped=-16, bits=12, table=table)
    raw = np.arange(-40, 80, dtype=np.float32).reshape(8, 15)
    shown = apply_window(raw, Window(16.0, 64.0, "dicom", function="LINEAR_EXACT", lut=lut))
    item = Dataset()
    item.LUTDescriptor = [64, -16, 12]
    item.LUTData = list(table)
    ds = Dataset()
    ds.VOILUTSequence = [item]
    expected = np.asarray(apply_voi_lut(raw.astype(np.int64), ds), np.float64) / 4095
    np.testing.assert_allclose(shown, expected, atol=1e-6)
    assert shown[0, 0] == table[0] / 4095 and shown[-1, -1] == table[-1] / 4095


def test_to_8bit_rounds_and_is_what_everyone_paints() -> None:
    image = np.array([[0.0, 0.5, 1.0, 1.5, -1.0, np.nan]], dtype=np.float32)
    assert to_8bit(image).tolist() == [[0, 128, 255, 255, 0, 0]]


# ------------------------------------------------------------ files -> Slice.image
def load_one(path: Path):  # type: ignore[no-untyped-def]
    (series,) = load_study([path]).series
    return series.slices[0]


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
@pytest.mark.parametrize("function", [None, "LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_slice_image_is_the_display_function_at_the_files_window(
        tmp_path: Path, photometric: str, function: str | None) -> None:
    ds = mr_dataset(gradient(40, 40) * 3, series_uid=generate_uid(), instance=1,
                    photometric=photometric, window=(2000.0, 1500.0), slope=2.0,
                    intercept=-100.0)
    if function is not None:
        ds.VOILUTFunction = function
    write(ds, tmp_path / "one.dcm")
    image = load_one(tmp_path / "one.dcm")
    assert image.photometric == photometric and image.monochrome1 == (photometric ==
                                                                       "MONOCHROME1")
    assert image.window == Window(2000.0, 1500.0, "dicom", function=function or "LINEAR")
    np.testing.assert_array_equal(image.image, slice_image(image))
    # ... and that is pydicom's modality LUT + VOI LUT, with MONOCHROME1 inverted after it
    read = pydicom.dcmread(tmp_path / "one.dcm")
    from pydicom.pixels import apply_modality_lut

    modality = apply_modality_lut(read.pixel_array, read)
    assert read.BitsStored == 16
    y_min, y_max = -100.0, Y_MAX * 2.0 - 100.0  # pydicom's output range after the rescale
    expected = (apply_voi_lut(modality, read) - y_min) / (y_max - y_min)
    if photometric == "MONOCHROME1":
        expected = 1.0 - expected
    np.testing.assert_allclose(image.image, expected, atol=1e-5)


def test_file_without_window_falls_back_to_the_percentile_window(tmp_path: Path) -> None:
    write(mr_dataset(gradient(), series_uid=generate_uid(), instance=1,
                     photometric="MONOCHROME1"), tmp_path / "x.dcm")
    image = load_one(tmp_path / "x.dcm")
    assert image.window == percentile_window(np.asarray(image.raw))
    np.testing.assert_array_equal(image.image, slice_image(image))
    assert image.image[0, 0] == 1.0 and image.image[-1, -1] == 0.0  # MONOCHROME1


def test_exact_and_sigmoid_windows_narrower_than_one_are_kept(tmp_path: Path) -> None:
    # LINEAR needs a width of at least 1; LINEAR_EXACT and SIGMOID only one above 0
    for function, kept in (("LINEAR", False), ("LINEAR_EXACT", True), ("SIGMOID", True)):
        ds = mr_dataset(gradient(), series_uid=generate_uid(), instance=1, window=(5.0, 0.5))
        ds.VOILUTFunction = function
        write(ds, tmp_path / function)
        window = load_one(tmp_path / function).window
        assert (window.source == "dicom") == kept, function


def test_unknown_voi_function_is_read_as_linear_and_said(tmp_path: Path) -> None:
    ds = mr_dataset(gradient(), series_uid=generate_uid(), instance=1, window=(500.0, 400.0))
    ds.VOILUTFunction = "LOG"
    write(ds, tmp_path / "x.dcm")
    image = load_one(tmp_path / "x.dcm")
    assert image.window.function == "LINEAR"
    assert any("VOI LUT Function 'LOG'" in w for w in image.warnings)


def test_voi_lut_sequence_of_a_file(tmp_path: Path) -> None:
    """A VOI LUT Sequence (OW data) is used instead of the window, as pydicom prefers it."""
    ds = mr_dataset(gradient(16, 16), series_uid=generate_uid(), instance=1,
                    window=(100.0, 50.0), photometric="MONOCHROME1")
    item = Dataset()
    item.LUTDescriptor = [128, 64, 16]
    table = (np.sqrt(np.arange(128) / 127.0) * 65535).astype(np.uint16)
    item.add_new("LUTData", "OW", table.tobytes())
    item.LUTExplanation = "square root"
    ds.VOILUTSequence = [item]
    write(ds, tmp_path / "lut.dcm")
    image = load_one(tmp_path / "lut.dcm")
    assert image.window.lut is not None and image.window.lut.explanation == "square root"
    assert image.window.lut.table == tuple(int(v) for v in table)
    np.testing.assert_array_equal(image.image, slice_image(image))
    read = pydicom.dcmread(tmp_path / "lut.dcm")
    expected = 1.0 - apply_voi_lut(read.pixel_array, read) / Y_MAX
    np.testing.assert_allclose(image.image, expected, atol=1e-6)


def test_bundled_voi_lut_file_matches_pydicom(pydicom_data_files: Path) -> None:
    path = pydicom_data_files / "vlut_04.dcm"
    image = load_one(path)
    assert image.window.lut is not None
    read = pydicom.dcmread(path)
    expected = apply_voi_lut(read.pixel_array, read) / Y_MAX
    np.testing.assert_allclose(image.image, expected, atol=1e-6)
    np.testing.assert_array_equal(image.image, slice_image(image))


def test_real_monochrome1_radiograph_matches_pydicom(pydicom_data_files: Path) -> None:
    path = pydicom_data_files / "RG1_UNCI.dcm"
    image = load_one(path)
    assert image.monochrome1 and image.window.source == "dicom"
    np.testing.assert_array_equal(image.image, slice_image(image))
    read = pydicom.dcmread(path)
    center, width = float(read.WindowCenter), float(read.WindowWidth)
    raw = np.asarray(image.raw)
    expected = 1.0 - ps33(raw, center, width, "LINEAR")
    np.testing.assert_allclose(image.image, expected, atol=1e-5)
