"""UIH (United Imaging Healthcare) grid images: one volume per file, stored as a grid of tiles.

UIH calls this the GRID format ("similar to the Siemens Mosaic format"); what is read here is
what dcm2niix reads, and nothing else:

* Vendor: Manufacturer (0008,0070) starting with "UI" (``dcmStrManufacturer`` in
  rordenlab/dcm2niix ``console/nii_dicom.cpp``); "United Imaging" is accepted too.
* Tile count: (0065,1050) "MR Number Of Slice In Volume", DS, read only for UIH files
  (``kNumberOfImagesInGridUIH`` -> ``d.CSA.mosaicSlices`` in ``readDICOMx``). Its private
  creator is "Image Private Header" (dcm2niix maps that creator's block onto 0065,10xx).
  UIH's table in dcm2niix ``UIH/README.md`` says the tag "appeared when image type (0008,0008)
  has VFRAME"; the UIH files of neurolabusc/dcm_qa_uih have ImageType
  ORIGINAL\\PRIMARY\\M\\VFRAME\\MAGNITUDE. dcm2niix does not test VFRAME and neither does this.
* Grid: ``cols = ceil(sqrt(n))`` tiles across, ``rows = ceil(n / cols)`` tiles down (unlike a
  Siemens mosaic, which is square), tiles in row-major order; the tile size is
  Columns / cols by Rows / rows (``nii_demosaic(..., isUIH)`` in ``nii_dicom.cpp`` and the same
  rule in ``UIH/README.md``).
* Positions: (0065,1051) "MR VFrame Sequence" holds one item per slice, each with its own
  Image Position (Patient) (``UIH/README.md``); dcm2niix takes the first position it meets as
  the first slice's and the last as the last slice's, and skips the Siemens mosaic
  corner-to-tile shift ("only for Siemens mosaic: ignore for UIH grid", ``set_nii_header_x``).
  Here item k gives tile k its position directly.

The Aliza viewer's mdcm ``SplitUihGridFilter`` (``splituihgridfilter.cpp``) reads the same tags
(0065,xx50 and the first item of 0065,xx51 under "Image Private Header") and cuts tile z at
column z % ceil(sqrt(n)), row z // ceil(sqrt(n)).

No real UIH grid file was at hand: the tests build files in this layout. A damaged header never
raises: an unreadable slice count means the file is not cut; unreadable positions leave the
tiles in stored order without positions (the caller adds a plain note).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.values import convert_SQ

from workstation.imaging.bounds import tiles_fit

PRIVATE_CREATOR = "Image Private Header"
PRIVATE_CREATOR_TAG = Tag(0x0065, 0x0010)
SLICES_IN_VOLUME_TAG = Tag(0x0065, 0x1050)  # MR Number Of Slice In Volume, DS
VFRAME_SEQUENCE_TAG = Tag(0x0065, 0x1051)  # MR VFrame Sequence, one item per slice
READ_TAGS = (PRIVATE_CREATOR_TAG, SLICES_IN_VOLUME_TAG, VFRAME_SEQUENCE_TAG)

UNREADABLE_COUNT_NOTE = ("UIH grid image whose slice count (0065,1050) could not be read: "
                         "each file is shown as one picture, not cut into slices")


@dataclass(frozen=True)
class Grid:
    """How the ``count`` slices of a UIH grid file are laid out in its picture."""

    count: int
    rows: int  # tiles down
    columns: int  # tiles across

    @property
    def layout(self) -> tuple[int, int]:
        return self.rows, self.columns


def is_uih(ds: Dataset) -> bool:
    """Manufacturer (0008,0070) names United Imaging Healthcare."""
    name = str(ds.get("Manufacturer") or "").strip().upper()
    return name.startswith("UI") or "UNITED IMAGING" in name


def _text(value: Any) -> str:
    if isinstance(value, bytes):  # implicit VR: private elements arrive as raw bytes
        return value.decode("ascii", errors="replace").strip("\x00 ")
    return str(value).strip()


def _creator_ok(ds: Dataset) -> bool:
    """Block 0x10 of group 0065 belongs to UIH's image header (or has no creator at all)."""
    if PRIVATE_CREATOR_TAG not in ds:
        return True  # anonymisers drop creators; dcm2niix then reads 0065,1050 as it is
    return PRIVATE_CREATOR.upper() in _text(ds[PRIVATE_CREATOR_TAG].value).upper()


def slice_count(ds: Dataset) -> int | None:
    """The slice count of a UIH grid file, or None when absent or unreadable."""
    if not is_uih(ds) or SLICES_IN_VOLUME_TAG not in ds or not _creator_ok(ds):
        return None
    try:
        value = ds[SLICES_IN_VOLUME_TAG].value
        if isinstance(value, Sequence) and not isinstance(value, str | bytes):
            value = value[0] if len(value) else ""
        number = float(_text(value).split("\\")[0])
    except Exception:  # damaged private element: not a grid we can cut
        return None
    if not math.isfinite(number) or abs(number - round(number)) > 1e-3:
        return None
    return round(number)


def grid(ds: Dataset) -> Grid | None:
    """The tile layout of a UIH grid file, or None when ``ds`` is not one (or is damaged)."""
    count = slice_count(ds)
    if count is None or count < 2:
        return None
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    try:
        height, width = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        return None
    if not tiles_fit(count, height, width, rows, columns):
        return None  # tiles under MIN_TILE_SIDE pixels a side (imaging.bounds): corrupt
    return Grid(count=count, rows=rows, columns=columns)


def unreadable_count(ds: Dataset) -> bool:
    """A UIH file carries a slice count that cannot be used (for the series notes)."""
    return is_uih(ds) and SLICES_IN_VOLUME_TAG in ds and grid(ds) is None \
        and (slice_count(ds) or 0) != 1


def _position(item: Any) -> tuple[float, float, float] | None:
    try:
        values = tuple(float(v) for v in item.get("ImagePositionPatient"))
    except (TypeError, ValueError, AttributeError):
        return None
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        return None
    return values


def tile_positions(ds: Dataset, count: int) -> list[tuple[float, float, float]] | None:
    """Image Position (Patient) of each tile, from item k of the MR VFrame Sequence.

    None (tiles then keep their stored order) unless the sequence has exactly one readable
    position per tile.
    """
    if VFRAME_SEQUENCE_TAG not in ds or not _creator_ok(ds):
        return None
    try:
        items = ds[VFRAME_SEQUENCE_TAG].value
        if isinstance(items, bytes):  # implicit VR: an undecoded private sequence
            items = convert_SQ(items, True, True)
        if len(items) != count:
            return None
        positions = [_position(item) for item in items]
    except Exception:  # any damage in the private header: no positions, never a crash
        return None
    if any(p is None for p in positions):
        return None
    return positions  # type: ignore[return-value]


def note(count: int, placed: bool) -> str:
    how = ("placed by the per-slice positions of its UIH header (0065,1051)" if placed
           else "kept in the order stored in the grid (no readable UIH per-slice positions)")
    return f"UIH grid: each file was cut into {count} slices, {how}"
