"""UIH grid images (imaging.uih) on synthetic files in the layout dcm2niix reads.

No real UIH grid file is available. Each file here is built as dcm2niix's ``nii_dicom.cpp``
and ``UIH/README.md`` describe one: Manufacturer "UIH", ImageType ...\\VFRAME\\..., no
top-level Image Position (Patient), private creator (0065,0010) "Image Private Header",
(0065,1050) DS slice count, (0065,1051) MR VFrame Sequence with one Image Position (Patient)
per slice, and the slices tiled row-major in ceil(sqrt(n)) columns by ceil(n / columns) rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

from tests.dicom_factory import AXIAL, mr_dataset, write
from workstation.imaging import Plane, load_study, uih

# tiles are 6 rows x 8 columns (not square, so a row/column mix-up shows)
TILE_ROWS, TILE_COLS = 6, 8
# Image Orientation (Patient) of the UIH DTI series in neurolabusc/dcm_qa_uih (oblique axial)
UIH_OBLIQUE = (0.961448, 0.273573, 0.0278504, -0.273459, 0.961851, -0.00792131)
SPACING = 4.2  # SpacingBetweenSlices of that series
ORIGIN = np.array([-110.0, -95.0, -30.0])


def tile_pixels(k: int, volume: int = 0) -> np.ndarray:
    base = 1000 * volume + 100 * k
    return (np.arange(TILE_ROWS * TILE_COLS).reshape(TILE_ROWS, TILE_COLS) + base).astype(
        np.uint16)


def grid_picture(count: int, volume: int = 0) -> np.ndarray:
    """The stored picture: tile k at row k // cols, column k % cols; unused cells junk."""
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    picture = np.full((rows * TILE_ROWS, columns * TILE_COLS), 65535, dtype=np.uint16)
    for k in range(count):
        r, c = divmod(k, columns)
        picture[r * TILE_ROWS:(r + 1) * TILE_ROWS, c * TILE_COLS:(c + 1) * TILE_COLS] = \
            tile_pixels(k, volume)
    return picture


def normal_of(orientation: Sequence[float]) -> np.ndarray:
    return np.cross(orientation[:3], orientation[3:])


def uih_grid_dataset(count: int, *, series_uid: str, instance: int = 1,
                     orientation: Sequence[float] = AXIAL,
                     slots: Sequence[int] | None = None, volume: int = 0,
                     manufacturer: str = "UIH") -> Dataset:
    """A UIH grid file; tile k lies ``slots[k]`` slice spacings from ORIGIN along the normal."""
    slots = list(range(count)) if slots is None else list(slots)
    ds = mr_dataset(grid_picture(count, volume), series_uid=series_uid, instance=instance,
                    position=None, orientation=orientation, description="epi_dti grid")
    ds.Manufacturer = manufacturer
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "VFRAME", "MAGNITUDE"]
    ds.SpacingBetweenSlices = SPACING
    ds.add_new((0x0065, 0x0010), "LO", "Image Private Header")
    ds.add_new((0x0065, 0x1050), "DS", str(count))
    normal = normal_of(orientation)
    items = []
    for k in range(count):
        item = Dataset()
        item.AcquisitionTime = f"1201{k:02d}.000000"
        item.ImagePositionPatient = [round(float(v), 4)
                                     for v in ORIGIN + slots[k] * SPACING * normal]
        item.SliceLocation = round(float(slots[k] * SPACING), 4)
        items.append(item)
    ds.add_new((0x0065, 0x1051), "SQ", DicomSequence(items))
    return ds


def load_one(folder: Path):  # type: ignore[no-untyped-def]
    study = load_study([folder])
    assert not study.problems, study.problems
    (series,) = study.series
    return series


def messages(series) -> list[str]:  # type: ignore[no-untyped-def]
    return [p.message for p in series.problems]


@pytest.mark.parametrize(("count", "rows", "columns"),
                         [(20, 4, 5), (27, 5, 6), (10, 3, 4), (16, 4, 4), (2, 1, 2)])
def test_grid_layout_is_ceil_sqrt_columns_by_ceil_rows(count: int, rows: int,
                                                        columns: int) -> None:
    ds = uih_grid_dataset(count, series_uid=generate_uid())
    grid = uih.grid(ds)
    assert grid is not None
    assert (grid.count, grid.rows, grid.columns) == (count, rows, columns)


def test_grid_is_cut_into_tiles_placed_by_the_header_positions(tmp_path: Path) -> None:
    # 10 slices: a 3 x 4 grid (a square Siemens rule would cut 4 x 4 and misplace every
    # tile); the header puts the tiles out of order along the normal
    slots = [3, 0, 7, 1, 9, 2, 5, 8, 4, 6]
    write(uih_grid_dataset(10, series_uid=generate_uid(), slots=slots), tmp_path / "grid.dcm")
    series = load_one(tmp_path)
    assert len(series.slices) == 10
    assert {s.raw.shape for s in series.slices} == {(TILE_ROWS, TILE_COLS)}
    by_slot = {slot: k for k, slot in enumerate(slots)}
    for index, s in enumerate(series.slices):  # ordered along the normal: slot 0, 1, 2, ...
        np.testing.assert_array_equal(s.raw, tile_pixels(by_slot[index]))
        assert s.position == pytest.approx(float(ORIGIN[2]) + index * SPACING, abs=1e-3)
        assert s.image_position == pytest.approx(
            tuple(ORIGIN + index * SPACING * normal_of(AXIAL)), abs=1e-3)
    assert series.plane is Plane.AXIAL
    assert ("UIH grid: each file was cut into 10 slices, placed by the per-slice positions "
            "of its UIH header (0065,1051)") in messages(series)


def test_oblique_grid_positions_step_along_the_normal(tmp_path: Path) -> None:
    write(uih_grid_dataset(20, series_uid=generate_uid(), orientation=UIH_OBLIQUE),
          tmp_path / "grid.dcm")
    series = load_one(tmp_path)
    assert len(series.slices) == 20
    positions = [s.position for s in series.slices]
    assert all(p is not None for p in positions)
    steps = np.diff(np.asarray(positions, dtype=float))
    np.testing.assert_allclose(steps, SPACING, atol=1e-3)
    for k, s in enumerate(series.slices):
        np.testing.assert_array_equal(s.raw, tile_pixels(k))
    assert series.plane is Plane.AXIAL and (series.obliquity_deg or 0.0) > 1.0  # tilted normal


def test_each_grid_file_is_one_volume(tmp_path: Path) -> None:
    uid = generate_uid()
    for volume in range(3):  # e.g. b = 0 and two repeats, one file each
        write(uih_grid_dataset(20, series_uid=uid, instance=volume + 1, volume=volume),
              tmp_path / f"{volume + 1:08d}.dcm")
    series = load_one(tmp_path)
    assert len(series.slices) == 60
    assert [v.count for v in series.volumes] == [20, 20, 20]
    for v in series.volumes:
        tiles = series.slices[v.start:v.start + v.count]
        np.testing.assert_array_equal(tiles[0].raw, tile_pixels(0, v.index))
        np.testing.assert_array_equal(tiles[-1].raw, tile_pixels(19, v.index))


def test_implicit_vr_private_elements_are_still_read(tmp_path: Path) -> None:
    # implicit VR: pydicom hands the private elements over as raw bytes (VR UN)
    ds = uih_grid_dataset(10, series_uid=generate_uid(), slots=list(range(9, -1, -1)))
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    write(ds, tmp_path / "grid.dcm")
    series = load_one(tmp_path)
    assert len(series.slices) == 10
    for index, s in enumerate(series.slices):
        np.testing.assert_array_equal(s.raw, tile_pixels(9 - index))
        assert s.position is not None


def _no_sequence(ds: Dataset) -> None:
    del ds[0x0065, 0x1051]


def _short_sequence(ds: Dataset) -> None:
    ds[0x0065, 0x1051].value = list(ds[0x0065, 0x1051].value)[:-1]


def _bad_position(ds: Dataset) -> None:
    ds[0x0065, 0x1051].value[4].ImagePositionPatient = [1.0, 2.0]


def _text_position(ds: Dataset) -> None:
    item = ds[0x0065, 0x1051].value[2]
    del item.ImagePositionPatient
    item.add_new((0x0020, 0x0032), "LO", "not a position")


def _garbage_sequence(ds: Dataset) -> None:
    del ds[0x0065, 0x1051]
    ds.add_new((0x0065, 0x1051), "OB", b"\xfe\xff\x00\xe0\xff\xff\x00\x10junk")


@pytest.mark.parametrize("damage", [_no_sequence, _short_sequence, _bad_position,
                                    _text_position, _garbage_sequence])
def test_damaged_positions_keep_the_stored_order(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    ds = uih_grid_dataset(10, series_uid=generate_uid(), slots=list(range(9, -1, -1)))
    damage(ds)
    write(ds, tmp_path / "grid.dcm")
    series = load_one(tmp_path)
    assert len(series.slices) == 10
    for k, s in enumerate(series.slices):  # stored order, not the (reversed) header order
        np.testing.assert_array_equal(s.raw, tile_pixels(k))
        assert s.position is None
    assert ("UIH grid: each file was cut into 10 slices, kept in the order stored in the grid "
            "(no readable UIH per-slice positions)") in messages(series)


@pytest.mark.parametrize("count", [b"abc ", b"0 ", b"2.5 ", b"1e12", b"x\\y ", b"\xff\xfe"])
def test_damaged_slice_count_shows_the_file_as_one_picture(tmp_path: Path,
                                                           count: bytes) -> None:
    ds = uih_grid_dataset(10, series_uid=generate_uid())
    # written as the bytes on disk, past pydicom's own DS checks
    ds[0x0065, 0x1050] = RawDataElement(Tag(0x0065, 0x1050), "DS", len(count), count, 0,
                                        False, True)
    write(ds, tmp_path / "grid.dcm")
    series = load_one(tmp_path)
    (single,) = series.slices
    assert single.raw.shape == grid_picture(10).shape
    assert uih.UNREADABLE_COUNT_NOTE in messages(series)


def test_other_private_creator_is_not_read_as_uih(tmp_path: Path) -> None:
    ds = uih_grid_dataset(10, series_uid=generate_uid())
    ds[0x0065, 0x0010].value = "Spectroscopy Private Header"
    write(ds, tmp_path / "grid.dcm")
    (single,) = load_one(tmp_path).slices
    assert single.raw.shape == grid_picture(10).shape


def test_same_tags_from_another_manufacturer_are_ignored(tmp_path: Path) -> None:
    write(uih_grid_dataset(10, series_uid=generate_uid(), manufacturer="SIEMENS"),
          tmp_path / "grid.dcm")
    series = load_one(tmp_path)
    (single,) = series.slices
    assert single.raw.shape == grid_picture(10).shape
    assert not any("UIH" in m for m in messages(series))


@pytest.mark.parametrize("name", ["UIH", "uih ", "United Imaging Healthcare", "UIHMR"])
def test_manufacturer_names(name: str) -> None:
    ds = Dataset()
    ds.Manufacturer = name
    assert uih.is_uih(ds)
