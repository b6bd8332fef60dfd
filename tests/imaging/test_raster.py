"""PNG / JPEG / TIFF series: ordering, bit depths, colour and bad files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from workstation.imaging import Plane, PlaneSource, load_study


def save(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def ramp(value: int) -> np.ndarray:
    arr = np.zeros((16, 16), dtype=np.uint8)
    arr[:, :8] = value
    arr[:, 8:] = 255 - value
    return arr


def test_folder_is_one_series_in_natural_order(tmp_path: Path) -> None:
    for n in (10, 2, 1):
        save(tmp_path / f"slice{n}.png", ramp(n))
    study = load_study([tmp_path])
    (series,) = study.series
    assert [Path(s.source).name for s in series.slices] == ["slice1.png", "slice2.png",
                                                             "slice10.png"]
    assert series.plane is Plane.UNKNOWN and series.plane_source is PlaneSource.NONE
    assert series.info.patient_name is None
    first = series.slices[0]
    assert first.image[0, 0] == np.float32(1 / 255)


def test_files_named_individually_are_one_series_each(tmp_path: Path) -> None:
    a = save(tmp_path / "a.png", ramp(1))
    b = save(tmp_path / "b.jpg", ramp(200))
    study = load_study([a, b])
    assert [len(s.slices) for s in study.series] == [1, 1]


def test_16_bit_png_keeps_its_range(tmp_path: Path) -> None:
    arr = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 200).astype(np.uint16)
    save(tmp_path / "deep.png", arr)
    (series,) = load_study([tmp_path]).series
    slice_ = series.slices[0]
    assert slice_.raw.max() == 255 * 200
    assert slice_.window.source == "percentile"
    assert slice_.image.min() == 0.0 and slice_.image.max() == 1.0


def test_rgb_png_becomes_grey_and_says_so(tmp_path: Path) -> None:
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    save(tmp_path / "red.png", rgb)
    grey_rgb = np.repeat(ramp(30)[..., None], 3, axis=2)
    save(tmp_path / "grey.png", grey_rgb)
    study = load_study([tmp_path / "red.png", tmp_path / "grey.png"])
    red, grey = study.series
    assert red.slices[0].image.shape == (8, 8)
    assert "colour" in " ".join(red.slices[0].warnings)
    assert not grey.slices[0].warnings
    np.testing.assert_allclose(grey.slices[0].raw, ramp(30), atol=0.01)


def test_multipage_tiff_gives_a_slice_per_page(tmp_path: Path) -> None:
    pages = [Image.fromarray(ramp(v)) for v in (10, 20, 30)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    (series,) = load_study([tmp_path / "stack.tif"]).series
    assert len(series.slices) == 3


def test_truncated_png_and_jpeg_are_reported_rest_loads(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    noisy = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    for name in ("good.png", "cut.png", "cut.jpg"):
        save(tmp_path / name, noisy)
    for name in ("cut.png", "cut.jpg"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
    study = load_study([tmp_path])
    (series,) = study.series
    assert len(series.slices) == 1
    failed = {Path(p.path).name: p.message for p in study.errors}
    assert set(failed) == {"cut.png", "cut.jpg"}
    assert all("truncated" in m or "damaged" in m or "decoded" in m for m in failed.values())


def _png_with_header_size(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 32)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path


def test_absurd_png_header_is_refused_quickly(tmp_path: Path) -> None:
    _png_with_header_size(tmp_path / "bomb.png", 20000, 20000)
    (error,) = load_study([tmp_path]).errors
    assert "20000x20000" in error.message or "too large" in error.message


def test_zero_byte_and_fake_png(tmp_path: Path) -> None:
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "fake.png").write_text("this is not an image")
    study = load_study([tmp_path])
    assert not study.series
    messages = {Path(p.path).name: p.message for p in study.errors}
    assert "empty" in messages["zero.png"]
    assert "not a readable image" in messages["fake.png"]
