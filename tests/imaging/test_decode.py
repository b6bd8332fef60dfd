"""Every transfer syntax that pydicom and pydicom-data ship for MR (and CT, CR, NM) decodes
to the same pixels as its uncompressed reference; the blank-decode guard works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workstation.imaging import decode as decoding
from workstation.imaging import load_study

LOSSLESS_MR_SMALL = [
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_padded.dcm",
]
LOSSLESS_ENHANCED_MR = [
    "emri_small_RLE.dcm",
    "emri_small_big_endian.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
]


def raw_stack(path: Path) -> np.ndarray:
    study = load_study([path])
    assert not study.errors, study.errors
    assert len(study.series) == 1
    return np.stack([s.raw for s in study.series[0].slices])


@pytest.mark.parametrize("name", LOSSLESS_MR_SMALL)
def test_mr_small_syntaxes_match_reference(pydicom_files: Path, name: str) -> None:
    reference = raw_stack(pydicom_files / "MR_small.dcm")
    np.testing.assert_array_equal(raw_stack(pydicom_files / name), reference)


@pytest.mark.parametrize("name", LOSSLESS_ENHANCED_MR)
def test_enhanced_mr_syntaxes_match_reference(pydicom_data_files: Path, name: str) -> None:
    reference = raw_stack(pydicom_data_files / "emri_small.dcm")
    assert reference.shape == (10, 64, 64)
    np.testing.assert_array_equal(raw_stack(pydicom_data_files / name), reference)


@pytest.mark.parametrize(
    ("compressed", "reference"),
    [("MR2_J2KR.dcm", "MR2_UNCR.dcm"), ("693_J2KR.dcm", "693_UNCR.dcm"),
     ("RG1_J2KR.dcm", "RG1_UNCR.dcm")],
)
def test_lossless_jpeg2000_matches_reference(
    pydicom_data_files: Path, compressed: str, reference: str
) -> None:
    np.testing.assert_array_equal(
        raw_stack(pydicom_data_files / compressed), raw_stack(pydicom_data_files / reference)
    )


@pytest.mark.parametrize(
    ("compressed", "reference", "folder"),
    [("MR2_J2KI.dcm", "MR2_UNCI.dcm", "data"), ("693_J2KI.dcm", "693_UNCI.dcm", "mixed"),
     ("JPEG2000.dcm", "JPEG2000_UNC.dcm", "mixed")],
)
def test_lossy_jpeg2000_is_close_to_reference(
    pydicom_files: Path, pydicom_data_files: Path, compressed: str, reference: str, folder: str
) -> None:
    def find(name: str) -> Path:
        for base in (pydicom_files, pydicom_data_files):
            if (base / name).exists():
                return base / name
        raise FileNotFoundError(name)

    lossy, exact = raw_stack(find(compressed)), raw_stack(find(reference))
    assert lossy.shape == exact.shape
    spread = float(exact.max() - exact.min())
    assert float(np.mean(np.abs(lossy - exact))) < 0.02 * spread


@pytest.mark.parametrize(
    "name", ["SC_rgb_jpeg.dcm", "SC_rgb_rle.dcm", "JPEGLSNearLossless_16.dcm",
             "SC_rgb_jpeg_gdcm.dcm", "examples_ybr_color.dcm"],
)
def test_other_compressions_decode_to_a_real_image(pydicom_files: Path, name: str) -> None:
    stack = raw_stack(pydicom_files / name)
    assert float(stack.std()) > 0


@pytest.mark.parametrize("name", ["JPEG-lossy.dcm", "JPGExtended.dcm"])
def test_12_bit_jpeg_without_a_decoder_is_a_clear_error(pydicom_files: Path, name: str) -> None:
    """12-bit JPEG Extended needs the GPL libjpeg plugin, which we do not ship."""
    study = load_study([pydicom_files / name])
    assert not study.series
    (error,) = study.errors
    assert "JPEG Extended" in error.message and "12-bit" in error.message


def test_jpeg_lossless_decodes(pydicom_data_files: Path) -> None:
    stack = raw_stack(pydicom_data_files / "JPEG-LL.dcm")
    assert stack.shape == (1, 1024, 256)
    assert float(stack.std()) > 0


def test_blank_decoder_output_falls_back_to_another_plugin(
    pydicom_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin that returns zeros for a frame with content is skipped for the next one."""
    real = decoding.decode_with_plugin
    called: list[str] = []

    def first_plugin_returns_zeros(ds, plugin):  # type: ignore[no-untyped-def]
        called.append(plugin)
        arr = real(ds, plugin)
        return np.zeros_like(arr) if len(called) == 1 else arr

    monkeypatch.setattr(decoding, "decode_with_plugin", first_plugin_returns_zeros)
    reference = raw_stack(pydicom_files / "MR_small.dcm")
    np.testing.assert_array_equal(raw_stack(pydicom_files / "MR_small_jp2klossless.dcm"),
                                  reference)
    assert len(called) >= 2


def test_blank_from_every_decoder_is_a_clear_error(
    pydicom_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decoding, "decode_with_plugin",
                        lambda ds, plugin: np.zeros((ds.Rows, ds.Columns), np.uint16))
    study = load_study([pydicom_files / "MR_small_jp2klossless.dcm"])
    assert not study.series
    assert len(study.errors) == 1
    assert "blank image" in study.errors[0].message
    assert "MR_small_jp2klossless.dcm" in study.errors[0].path
