"""DICOM files -> Series: read, group by series and orientation, sort, decode.

Grouping follows SeriesInstanceUID, split again by orientation when a scanner mixed them in
one series (localizers). Slices are sorted by their position along the slice normal
(Image Position (Patient) . normal), falling back to Instance Number, then file name.
Enhanced (multi-frame) MR frames become slices through their per-frame functional groups;
Siemens mosaics and UIH grids (imaging.uih) are cut into their tiles.
"""

from __future__ import annotations

import math
import os.path
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag
from pydicom.uid import UID

from workstation.imaging import decode as decoding
from workstation.imaging import uih
from workstation.imaging.bounds import check_pixel_work, check_tiles, header_int
from workstation.imaging.errors import NotAnImageError, UnreadableImageError
from workstation.imaging.geometry import (
    orientation_key,
    plane_from_orientation,
    position_along_normal,
)
from workstation.imaging.guard import (
    DECODE_FAILED,
    HEADER_DAMAGED,
    PREPARE_FAILED,
    FileBudget,
    file_step,
)
from workstation.imaging.naming import natural_key
from workstation.imaging.pixels import (
    blank_window_warning,
    display_image,
    frozen,
    is_uniform,
    percentile_window,
    rescale,
    to_greyscale,
)
from workstation.imaging.series import (
    BLANK_DISPLAY_WARNING,
    VOI_FUNCTIONS,
    Plane,
    PlaneSource,
    Problem,
    Series,
    SeriesInfo,
    Severity,
    Slice,
    VoiLut,
    Volume,
    Window,
)
from workstation.imaging.volumes import (
    ImageKind,
    VolumeGroup,
    VolumeHeader,
    image_kind,
    split_volumes,
)

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
# Only these elements are parsed: scanners add hundreds of private ones, and skipping them
# cuts the reading time of a 150-file series by a fifth.
READ_TAGS = [Tag(t) for t in (
    "SOPClassUID", "SOPInstanceUID", "ImageType", "Modality", "Manufacturer",
    "InstitutionName", "StudyDate", "StudyDescription", "StudyInstanceUID", "AccessionNumber",
    "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "BodyPartExamined",
    "ProtocolName",
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "InstanceNumber",
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
    "RescaleSlope", "RescaleIntercept", "RescaleType", "WindowCenter", "WindowWidth",
    "VOILUTFunction", "VOILUTSequence", "ModalityLUTSequence",
    "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "NumberOfFrames",
    "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence",
    "DimensionIndexSequence",
    "DirectoryRecordSequence", "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
    "PixelData", (0x0019, 0x0010), (0x0019, 0x100A),
    # what splits a series into volumes (imaging.volumes)
    "EchoNumbers", "AcquisitionNumber", "AcquisitionTime", "TemporalPositionIdentifier",
    "DiffusionBValue", "DiffusionGradientOrientation", "SpacingBetweenSlices",
    (0x0043, 0x1039),  # GE diffusion b-value (first value)
    (0x0029, 0x0010), (0x0029, 0x1010), (0x0029, 0x1020),  # Siemens CSA headers (mosaics)
    *uih.READ_TAGS,  # UIH grid: slice count and per-slice positions (imaging.uih)
)]
_MOSAIC_COUNT_TAG = (0x0019, 0x100A)  # Siemens NumberOfImagesInMosaic


# ---------------------------------------------------------------------------- reading
def looks_like_dicom(path: Path) -> bool:
    """Cheap check: the 'DICM' marker, or a raw data set starting with group 0002/0008."""
    with path.open("rb") as handle:
        head = handle.read(132)
    if len(head) == 132 and head[128:132] == b"DICM":
        return True
    return head[:2] in (b"\x02\x00", b"\x08\x00")


def read_dataset(path: Path) -> Dataset:
    """Read a DICOM file, raising UnreadableImageError/NotAnImageError in plain words.

    Every element is converted here (``_convert_all``) and the header's promises are checked
    against the budgets of imaging.bounds before any pixel is touched.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableImageError(f"cannot be opened ({exc.strerror or exc})") from exc
    if size == 0:
        raise UnreadableImageError("the file is empty (0 bytes)")
    try:
        if not looks_like_dicom(path):
            raise NotAnImageError("not a DICOM or image file")
        ds = pydicom.dcmread(path, force=True, specific_tags=READ_TAGS)
    except (NotAnImageError, UnreadableImageError):
        raise
    except InvalidDicomError as exc:
        raise NotAnImageError("not a DICOM or image file") from exc
    except PermissionError as exc:
        raise UnreadableImageError("permission denied") from exc
    except Exception as exc:
        raise UnreadableImageError(
            f"the DICOM file is damaged or truncated and could not be read ({exc})"
        ) from exc
    with file_step(HEADER_DAMAGED):
        _convert_all(ds)
        _check_is_image(ds)
    return ds


def _check_is_image(ds: Dataset) -> None:
    sop_class = str(ds.get("SOPClassUID") or getattr(ds, "file_meta", {}).get(
        "MediaStorageSOPClassUID", ""))
    if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        raise NotAnImageError("DICOMDIR index (the images it lists are read from their files)")
    if "PixelData" not in ds and "SOPClassUID" not in ds:
        raise UnreadableImageError(
            "the DICOM file is incomplete or truncated: it ends before any image data")
    if "PixelData" not in ds:
        name = getattr(ds.get("SOPClassUID"), "name", "") or "unknown object"
        if "Image" in name:
            raise UnreadableImageError(f"{name} without pixel data: no image to show")
        raise NotAnImageError(f"not an image ({name}); skipped")
    if "Rows" not in ds or "Columns" not in ds:
        raise UnreadableImageError("the image has no Rows/Columns: its size is unknown")
    _check_transfer_syntax(ds)
    check_pixel_work(ds)


def _check_transfer_syntax(ds: Dataset) -> None:
    """The file meta's Transfer Syntax UID is one pydicom knows (or absent: a raw data set)."""
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        return
    ts = meta.get("TransferSyntaxUID")
    if not isinstance(ts, UID):
        raise UnreadableImageError(
            "the file's Transfer Syntax UID (0002,0010) is not stored as a UID; the file meta "
            "header is damaged")
    if not ts.is_transfer_syntax:
        raise UnreadableImageError(
            f"the file's Transfer Syntax UID {str(ts)[:64]!r} is not a transfer syntax this "
            "workstation knows, so its pixel data cannot be read")


def _convert_all(ds: Dataset) -> None:
    """Convert every raw element now (pydicom converts them when first accessed): an
    unknown or damaged VR then fails here, inside the file's guarded header step, and never
    later while grouping, sorting or cutting tiles."""
    for _ in ds.iterall():
        pass
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        for _ in meta.iterall():
            pass


# ------------------------------------------------------------------------ frame headers
@dataclass(frozen=True)
class FrameHeader:
    """Where one 2D image lives (file, frame, mosaic tile) and its geometry and LUTs."""

    path: Path
    frame: int | None
    tile: int | None
    orientation: tuple[float, float, float, float, float, float] | None
    image_position: tuple[float, float, float] | None
    instance_number: int | None
    slope: float
    intercept: float
    window: Window | None
    kind: ImageKind = ImageKind.MAGNITUDE
    echo: int | None = None
    b_value: float | None = None
    b_vector: tuple[float, float, float] | None = None
    temporal: int | None = None
    stack: str | None = None
    dimension: tuple[int, ...] | None = None

    @cached_property
    def position(self) -> float | None:
        if self.orientation is None or self.image_position is None:
            return None
        try:
            return position_along_normal(self.image_position, self.orientation)
        except ValueError:
            return None

    def volume_header(self) -> VolumeHeader:
        """What tells this image's volume apart (imaging.volumes)."""
        position = self.position
        if position is None and self.tile is not None:
            position = float(self.tile)  # tile k of each mosaic is the same slice
        return VolumeHeader(
            kind=self.kind, echo=self.echo, b_value=self.b_value, b_vector=self.b_vector,
            temporal=self.temporal, stack=self.stack, dimension=self.dimension,
            position=position,
            order=(self.instance_number if self.instance_number is not None else 0,
                   natural_key(self.path.name), self.frame or 0, self.tile or 0))


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(values) != count or not all(math.isfinite(v) for v in values):
        return None
    return values


def _first_number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        if not value:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _frame_item(ds: Dataset, frame: int, sequence: str) -> Dataset | None:
    """An item of a functional group macro: per-frame first, then shared (PS3.3 C.7.6.16)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame) and sequence in per_frame[frame]:
        seq = per_frame[frame].get(sequence)
        return seq[0] if len(seq) else None
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared is not None and len(shared) and sequence in shared[0]:
        seq = shared[0].get(sequence)
        return seq[0] if len(seq) else None
    return None


def _voi_function(item: Dataset) -> str | None:
    """The item's VOI LUT Function (PS3.3 C.11.2.1.3); LINEAR when absent, None when it is
    a value this workstation does not know."""
    value = str(item.get("VOILUTFunction") or "").strip().upper()
    if not value:
        return "LINEAR"
    return value if value in VOI_FUNCTIONS else None


UNKNOWN_VOI_FUNCTION = "the file's VOI LUT Function '{}' is unknown; its window is read as LINEAR"


def _voi_lut_from(item: Dataset) -> VoiLut | None:
    """The first VOI LUT of the item's VOI LUT Sequence (PS3.3 C.11.2.1.1), None when there
    is none or it is malformed (the window, else the percentile window, is used then)."""
    sequence = item.get("VOILUTSequence")
    if not sequence:
        return None
    lut = sequence[0]
    descriptor = lut.get("LUTDescriptor")
    if descriptor is None or "LUTData" not in lut:
        return None
    try:
        entries, first, bits = (int(v) for v in descriptor)
    except (TypeError, ValueError):
        return None
    entries = entries or 65536  # PS3.3 C.11.2.1.1: 0 means 2^16 entries
    if not 8 <= bits <= 16:
        return None
    if first >= 32768 and item.get("PixelRepresentation", 0) == 1:
        first -= 65536  # US read where the signed data made it SS
    value = lut["LUTData"].value
    if isinstance(value, bytes):
        little = getattr(lut, "original_encoding", (None, True))[1] is not False
        table = np.frombuffer(value[:2 * entries], dtype="<u2" if little else ">u2")
    else:
        table = np.atleast_1d(np.asarray(value, dtype=np.int64))
    if len(table) != entries:
        return None
    explanation = str(lut.get("LUTExplanation") or "").strip() or None
    return VoiLut(first_mapped=first, bits=bits, table=tuple(int(v) for v in table),
                  explanation=explanation)


def _window_from(item: Dataset | None) -> Window | None:
    """The item's VOI: its VOI LUT when it has one (as pydicom's ``apply_voi_lut`` prefers
    it), else its first Window Center/Width read with its VOI LUT Function."""
    if item is None:
        return None
    lut = _voi_lut_from(item)
    if lut is not None:
        # the LUT's input range, as an exact window: where a window/level drag starts
        return Window(center=lut.first_mapped + lut.entries / 2.0, width=float(lut.entries),
                      source="dicom", function="LINEAR_EXACT", lut=lut)
    center = _first_number(item.get("WindowCenter"))
    width = _first_number(item.get("WindowWidth"))
    function = _voi_function(item) or "LINEAR"
    if center is None or width is None or width <= 0 or (function == "LINEAR" and width < 1):
        return None
    return Window(center=center, width=width, source="dicom", function=function)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def mosaic_count(ds: Dataset) -> int | None:
    """Number of images in a Siemens mosaic or a UIH grid (imaging.uih), or None when ``ds``
    is not a mosaic."""
    grid = uih.grid(ds)
    if grid is not None:
        return grid.count
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if "MOSAIC" not in image_type or _MOSAIC_COUNT_TAG not in ds:
        return None
    value = ds[_MOSAIC_COUNT_TAG].value
    if isinstance(value, bytes):
        value = int.from_bytes(value[:2], "little")
    elif isinstance(value, pydicom.multival.MultiValue | list | tuple):
        value = value[0] if len(value) else None
    count = _int_or_none(value)
    if not count or count <= 1:
        return None
    per_side = math.ceil(math.sqrt(count))
    rows, cols = header_int(ds, "Rows"), header_int(ds, "Columns")
    check_tiles(count, rows, cols, per_side, per_side, "Siemens mosaic (0019,100A)")
    return count


def _b_value(ds: Dataset) -> float | None:
    value = _first_number(ds.get("DiffusionBValue"))
    if value is None and (0x0043, 0x1039) in ds:  # GE: b-value (+ 1e9 flags) first
        value = _first_number(ds[0x0043, 0x1039].value)
        if value is not None:
            value = value % 1_000_000_000
    return value


def _volume_fields(ds: Dataset) -> dict[str, Any]:
    """Image kind, echo, diffusion and time point of a single-frame file."""
    return dict(
        kind=image_kind([str(v) for v in (ds.get("ImageType") or [])]),
        echo=_int_or_none(_first_number(ds.get("EchoNumbers"))),
        b_value=_b_value(ds),
        b_vector=_floats(ds.get("DiffusionGradientOrientation"), 3),
        temporal=_int_or_none(ds.get("TemporalPositionIdentifier")),
    )


# dimensions that order slices in space, not volumes (PS3.3 C.7.6.17.3)
_SPATIAL_DIMENSIONS = frozenset({Tag("InStackPositionNumber"), Tag("ImagePositionPatient")})


def _non_spatial_dimensions(ds: Dataset) -> list[int]:
    """Positions in Dimension Index Values of every dimension but the spatial ones."""
    dimensions = ds.get("DimensionIndexSequence") or []
    keep = []
    for j, item in enumerate(dimensions):
        pointer = item.get("DimensionIndexPointer")
        try:
            spatial = pointer is not None and Tag(pointer) in _SPATIAL_DIMENSIONS
        except (TypeError, ValueError, OverflowError):
            spatial = False
        if not spatial:
            keep.append(j)
    return keep


def _frame_volume_fields(ds: Dataset, frames: int) -> list[dict[str, Any]]:
    """The same per frame of an enhanced MR file, from its functional groups (C.8.13.5)
    and its dimension index values (C.7.6.17)."""
    fields = []
    echo_times: list[float | None] = []
    non_spatial = _non_spatial_dimensions(ds)
    for frame in range(frames):
        frame_type = _frame_item(ds, frame, "MRImageFrameTypeSequence")
        diffusion = _frame_item(ds, frame, "MRDiffusionSequence")
        content = _frame_item(ds, frame, "FrameContentSequence")
        echo = _frame_item(ds, frame, "MREchoSequence")
        direction = None
        if diffusion is not None and diffusion.get("DiffusionGradientDirectionSequence"):
            direction = _floats(diffusion.DiffusionGradientDirectionSequence[0].get(
                "DiffusionGradientOrientation"), 3)
        image_type = getattr(frame_type, "FrameType", None) or ds.get("ImageType") or []
        stack = getattr(content, "StackID", None)
        values = getattr(content, "DimensionIndexValues", None)
        values = [values] if isinstance(values, int) else list(values or [])
        dimension = tuple(_int_or_none(values[j]) or 0 for j in non_spatial
                          if j < len(values)) or None
        echo_times.append(_first_number(getattr(echo, "EffectiveEchoTime", None)))
        fields.append(dict(
            kind=image_kind([str(v) for v in image_type]),
            b_value=_first_number(getattr(diffusion, "DiffusionBValue", None)),
            b_vector=direction,
            temporal=_int_or_none(getattr(content, "TemporalPositionIndex", None)),
            stack=str(stack) if stack not in (None, "") else None,
            dimension=dimension,
        ))
    distinct = sorted({t for t in echo_times if t is not None})
    for item, time in zip(fields, echo_times, strict=True):
        item["echo"] = distinct.index(time) + 1 if time is not None and len(distinct) > 1 \
            else None
    return fields


def _mosaic_tile_positions(ds: Dataset, tiles: int
                           ) -> list[tuple[float, float, float]] | None:
    """Image Position (Patient) of each tile of a Siemens mosaic, from its CSA header.

    The mosaic's own position is that of the whole tiled picture; nibabel's Siemens reader
    gives the first tile's (the correction dcm2niix applies too) and the CSA slice normal,
    along which the tiles are stored one slice spacing apart. None when the CSA header is
    missing or unreadable: the tiles then keep their stored order without positions.
    """
    import warnings

    try:
        with warnings.catch_warnings():  # nibabel calls its DICOM readers experimental
            warnings.simplefilter("ignore")
            from nibabel.nicom import dicomwrappers

            wrapper = dicomwrappers.wrapper_from_data(ds)
            if not isinstance(wrapper, dicomwrappers.MosaicWrapper):
                return None
            first = np.asarray(wrapper.image_position, dtype=float)
            normal = np.asarray(wrapper.slice_normal, dtype=float)
            spacing = float(wrapper.voxel_sizes[2])
    except Exception:  # any damage in the private header: no positions, never a crash
        return None
    if first.shape != (3,) or normal.shape != (3,) or not np.all(np.isfinite(first)) \
            or not np.all(np.isfinite(normal)) or not math.isfinite(spacing) or spacing <= 0:
        return None
    return [tuple(float(v) for v in first + k * spacing * normal)  # type: ignore[misc]
            for k in range(tiles)]


def frame_headers(path: Path, ds: Dataset) -> list[FrameHeader]:
    """One FrameHeader per 2D image held by the file."""
    instance = _int_or_none(ds.get("InstanceNumber"))
    frames = decoding.number_of_frames(ds)
    if frames > 1 and ("PerFrameFunctionalGroupsSequence" in ds
                       or "SharedFunctionalGroupsSequence" in ds):
        headers = []
        volume_fields = _frame_volume_fields(ds, frames)
        for frame in range(frames):
            orientation = _floats(
                getattr(_frame_item(ds, frame, "PlaneOrientationSequence"),
                        "ImageOrientationPatient", None), 6)
            position = _floats(
                getattr(_frame_item(ds, frame, "PlanePositionSequence"),
                        "ImagePositionPatient", None), 3)
            transform = _frame_item(ds, frame, "PixelValueTransformationSequence")
            slope = _first_number(getattr(transform, "RescaleSlope", None))
            intercept = _first_number(getattr(transform, "RescaleIntercept", None))
            headers.append(FrameHeader(
                path=path, frame=frame, tile=None,
                orientation=orientation or _floats(ds.get("ImageOrientationPatient"), 6),  # type: ignore[arg-type]
                image_position=position,  # type: ignore[arg-type]
                instance_number=instance,
                slope=slope if slope is not None else 1.0,
                intercept=intercept if intercept is not None else 0.0,
                window=_window_from(_frame_item(ds, frame, "FrameVOILUTSequence"))
                or _window_from(ds),
                **volume_fields[frame],
            ))
        return headers

    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    position = _floats(ds.get("ImagePositionPatient"), 3)
    slope = _first_number(ds.get("RescaleSlope"))
    intercept = _first_number(ds.get("RescaleIntercept"))
    common = dict(
        path=path, orientation=orientation, instance_number=instance,
        slope=slope if slope is not None else 1.0,
        intercept=intercept if intercept is not None else 0.0,
        window=_window_from(ds), **_volume_fields(ds),
    )
    tiles = mosaic_count(ds)
    if tiles and frames == 1:
        positions = None if orientation is None else (
            uih.tile_positions(ds, tiles) if uih.is_uih(ds) else _mosaic_tile_positions(ds, tiles))
        return [FrameHeader(frame=None, tile=t,
                            image_position=positions[t] if positions else None,
                            **common)
                for t in range(tiles)]
    return [
        FrameHeader(frame=f if frames > 1 else None, tile=None,
                    image_position=position if frames == 1 else None, **common)  # type: ignore[arg-type]
        for f in range(frames)
    ]


# ----------------------------------------------------------------------------- grouping
@dataclass(frozen=True, eq=False)
class DicomFile:
    """One DICOM file as read, with everything the loader takes from its header.

    ``read_file`` computes all of it eagerly, inside the file's guarded header step, so that
    grouping, sorting, volume splitting and the series notes never touch a header element
    again (pydicom converts raw elements lazily, and a damaged one fails when first read).
    """

    path: Path
    dataset: Dataset
    headers: tuple[FrameHeader, ...]
    series_key: str  # SeriesInstanceUID, else the folder
    series_uid: str | None
    info: SeriesInfo
    syntax: str  # the transfer syntax's name, "unknown" when the file has none
    tiles: int | None = None  # tile count of a Siemens mosaic or a UIH grid
    layout: tuple[int, int] | None = None  # a UIH grid's (tiles down, tiles across)
    uih: bool = False
    uih_unreadable: bool = False  # a UIH slice count that cannot be used (a series note)


def read_file(path: Path) -> DicomFile:
    """Read one DICOM file and everything the loader needs of its header.

    Raises NotAnImageError / UnreadableImageError in plain words, never anything else but
    KeyboardInterrupt, SystemExit and GeneratorExit (imaging.guard).
    """
    budget = FileBudget()
    with file_step(HEADER_DAMAGED):
        ds = read_dataset(path)
        budget.check()
        grid = uih.grid(ds)
        tiles = mosaic_count(ds)
        headers = tuple(frame_headers(path, ds))
        budget.check()
        meta = getattr(ds, "file_meta", None)
        ts = meta.get("TransferSyntaxUID") if meta is not None else None
        uid = _text(ds, "SeriesInstanceUID")
        return DicomFile(
            path=path, dataset=ds, headers=headers,
            series_key=uid or f"no-series-uid:{path.parent}", series_uid=uid,
            info=series_info(ds), syntax=ts.name if ts is not None else "unknown",
            tiles=tiles, layout=grid.layout if grid is not None else None,
            uih=uih.is_uih(ds), uih_unreadable=uih.unreadable_count(ds))


def group_key(item: DicomFile) -> str:
    return item.series_key


def group_series(files: Iterable[DicomFile]) -> list[list[DicomFile]]:
    """Group files by SeriesInstanceUID, in the order the series were first met."""
    groups: dict[str, list[DicomFile]] = defaultdict(list)
    for item in files:
        groups[group_key(item)].append(item)
    return list(groups.values())


def sort_headers(headers: Sequence[FrameHeader]) -> list[FrameHeader]:
    """Order slices along the slice normal, else by Instance Number, else by file name."""
    def by_name(h: FrameHeader) -> tuple[Any, ...]:
        return (natural_key(h.path.name), h.frame or 0, h.tile or 0)

    if headers and all(h.position is not None for h in headers):
        return sorted(headers, key=lambda h: (round(h.position or 0.0, 3),
                                              h.instance_number or 0, *by_name(h)))
    if all(h.instance_number is not None for h in headers):
        return sorted(headers, key=lambda h: (h.instance_number or 0, *by_name(h)))
    return sorted(headers, key=by_name)


# ------------------------------------------------------------------------ series build
def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def series_info(ds: Dataset) -> SeriesInfo:
    spacing = _floats(ds.get("PixelSpacing"), 2)
    measures = _frame_item(ds, 0, "PixelMeasuresSequence")
    if spacing is None and measures is not None:
        spacing = _floats(measures.get("PixelSpacing"), 2)
    thickness = _first_number(ds.get("SliceThickness"))
    if thickness is None and measures is not None:
        thickness = _first_number(measures.get("SliceThickness"))
    return SeriesInfo(
        patient_name=_text(ds, "PatientName"),
        patient_id=_text(ds, "PatientID"),
        patient_birth_date=_text(ds, "PatientBirthDate"),
        patient_sex=_text(ds, "PatientSex"),
        study_date=_text(ds, "StudyDate"),
        study_description=_text(ds, "StudyDescription"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        accession_number=_text(ds, "AccessionNumber"),
        modality=_text(ds, "Modality"),
        series_number=_int_or_none(ds.get("SeriesNumber")),
        series_description=_text(ds, "SeriesDescription"),
        body_part_examined=_text(ds, "BodyPartExamined"),
        protocol_name=_text(ds, "ProtocolName"),
        pixel_spacing=spacing,  # type: ignore[arg-type]
        slice_thickness=thickness,
        institution_name=_text(ds, "InstitutionName"),
        manufacturer=_text(ds, "Manufacturer"),
    )


def _tile(image: np.ndarray, count: int, tile: int,
          layout: tuple[int, int] | None = None) -> np.ndarray:
    """Tile ``tile`` (row-major) of a mosaic: ceil(sqrt(count)) tiles a side (Siemens), or
    ``layout`` = (tiles down, tiles across) for a UIH grid (imaging.uih)."""
    per_side = math.ceil(math.sqrt(count))
    down, across = layout or (per_side, per_side)
    rows, cols = image.shape[0] // down, image.shape[1] // across
    r, c = divmod(tile, across)
    return image[r * rows:(r + 1) * rows, c * cols:(c + 1) * cols]


def _modality_values(pixels: np.ndarray, header: FrameHeader, ds: Dataset,
                     warnings: list[str]) -> np.ndarray:
    """The modality LUT (PS3.3 C.11.1): the file's Modality LUT Sequence through pydicom's
    ``apply_modality_lut`` when it has one, else the (per-frame) rescale."""
    if ds.get("ModalityLUTSequence") and pixels.ndim == 2:
        from pydicom.pixels import apply_modality_lut

        try:
            return np.asarray(apply_modality_lut(pixels, ds), dtype=np.float32)
        except Exception as exc:  # a malformed LUT: the stored values, and say so
            warnings.append(f"the Modality LUT could not be applied ({exc}); stored values "
                            "are shown")
    return rescale(pixels, header.slope, header.intercept)


def make_slice(pixels: np.ndarray, header: FrameHeader, ds: Dataset,
               extra_warnings: tuple[str, ...] = ()) -> Slice:
    """Modality LUT -> VOI (window or VOI LUT) -> MONOCHROME1 inversion for one decoded 2D
    frame; ``image`` is ``pixels.display_image`` at the file's own window (the percentile
    window when it has none)."""
    warnings = list(extra_warnings)
    if pixels.ndim == 3:
        pixels = to_greyscale(pixels)
        warnings.append("colour image shown in greyscale")
    raw = _modality_values(pixels, header, ds, warnings)
    if _voi_function(ds) is None:
        warnings.append(UNKNOWN_VOI_FUNCTION.format(str(ds.get("VOILUTFunction")).strip()))
    window = header.window or percentile_window(raw)
    photometric = str(ds.get("PhotometricInterpretation", "") or "MONOCHROME2").strip().upper()
    image = display_image(raw, window, photometric)
    if is_uniform(raw):
        warnings.append("the image is uniform (no visible content)")
    else:
        blank = blank_window_warning(raw, image, window)
        if blank is not None:
            warnings.append(blank)
    return Slice(
        image=frozen(image), raw=frozen(raw), window=window, source=str(header.path),
        frame=header.frame if header.frame is not None else header.tile,
        instance_number=header.instance_number, position=header.position,
        image_position=header.image_position, orientation=header.orientation,
        warnings=tuple(warnings), photometric=photometric,
    )


def file_slices(item: DicomFile) -> tuple[list[tuple[FrameHeader, Slice]], Problem | None]:
    """Decode one file (its guarded decode step) and make a slice of each of its images.

    Returns the images that loaded, each with its header, and at most one Problem naming the
    file: why it did not load, or which of its images did not. A file that runs past its
    time budget (imaging.guard) is dropped whole.
    """
    budget = FileBudget()
    try:
        decoded = decode_file(item)
    except UnreadableImageError as exc:
        return [], Problem(str(item.path), str(exc))
    made: list[tuple[FrameHeader, Slice]] = []
    failures: list[str] = []
    for header in item.headers:
        try:
            budget.check()
        except UnreadableImageError as exc:
            return [], Problem(str(item.path), str(exc))
        try:
            with file_step(PREPARE_FAILED):
                made.append((header, _slice_of(item, decoded, header)))
        except UnreadableImageError as exc:
            failures.append(str(exc))
    if not failures:
        return made, None
    if len(failures) == 1:
        return made, Problem(str(item.path), failures[0])
    return made, Problem(str(item.path), f"{len(failures)} of its {len(item.headers)} images "
                                         f"could not be shown; the first: {failures[0]}")


def first_slice(item: DicomFile) -> Slice | None:
    """The file's first image (a preview), None when it does not load."""
    try:
        decoded = decode_file(item)
        with file_step(PREPARE_FAILED):
            return _slice_of(item, decoded, item.headers[0])
    except UnreadableImageError:
        return None


def decode_file(item: DicomFile) -> decoding.Decoded:
    """The file's decode step: every frame, or UnreadableImageError in plain words whatever
    the decoder raised (a Rust PanicException included; imaging.guard). The one place the
    loader decodes DICOM pixel data."""
    with file_step(DECODE_FAILED):
        return decoding.decode(item.dataset)


def _slice_of(item: DicomFile, decoded: decoding.Decoded, header: FrameHeader) -> Slice:
    index = header.frame or 0
    if index >= len(decoded.frames):
        raise UnreadableImageError(f"frame {index + 1} is missing")
    pixels = np.asarray(decoded.frames[index])
    if header.tile is not None:
        pixels = _tile(pixels, item.tiles or 1, header.tile, item.layout)
    return make_slice(pixels, header, item.dataset, decoded.warnings)


def build_series(files: Sequence[DicomFile]) -> tuple[list[Series], list[Problem]]:
    """Decode one SeriesInstanceUID group into one Series per distinct orientation, each
    split into its volumes (imaging.volumes).

    Each file is decoded once (``file_slices``); only the images that loaded are grouped,
    sorted, split into volumes and counted in the series notes. A bad file's Problem goes
    to the series of its orientation (the first series when that part has none), and all
    of them are returned as well.
    """
    by_path = {item.path: item for item in files}
    by_orientation: dict[tuple[float, ...], list[tuple[FrameHeader, Slice]]] = \
        defaultdict(list)
    problems: list[tuple[tuple[float, ...], Problem]] = []
    syntaxes: dict[tuple[float, ...], set[str]] = defaultdict(set)
    decoding.prefetch(item.dataset for item in files)  # compressed: batches to workers
    for item in files:
        made, problem = file_slices(item)
        for header, image in made:
            key = orientation_key(header.orientation)
            by_orientation[key].append((header, image))
            syntaxes[key].add(item.syntax)
        if problem is not None:
            orientation = item.headers[0].orientation if item.headers else None
            problems.append((orientation_key(orientation), problem))

    series_list = []
    part_keys = []
    parts = sorted(by_orientation.items(), key=lambda kv: -len(kv[1]))
    for part_index, (key, made) in enumerate(parts):
        image_of = {id(header): image for header, image in made}
        ordered = sort_headers([header for header, _ in made])
        slices: list[Slice] = []
        volumes: list[Volume] = []
        for group in split_volumes([h.volume_header() for h in ordered]):
            members = [image_of[id(ordered[i])] for i in group.members]
            volumes.append(_volume(len(volumes), group, len(slices), len(members)))
            slices.extend(members)
        volumes = choose_assessed(volumes)
        first = by_path[ordered[0].path]
        plane, obliquity = plane_from_orientation(slices[0].orientation)
        notes = _series_notes(ordered, first, len(parts), part_index, volumes, slices)
        part_problems = tuple(p for k, p in problems
                              if k == key or (part_index == 0 and k not in by_orientation))
        part_keys.append(key)
        series_list.append(Series(
            source=str(_common_parent([h.path for h in ordered])),
            series_uid=first.series_uid,
            info=first.info,
            slices=tuple(slices),
            plane=plane,
            plane_source=PlaneSource.DICOM if plane is not Plane.UNKNOWN else PlaneSource.NONE,
            obliquity_deg=None if obliquity is None else round(obliquity, 1),
            transfer_syntaxes=tuple(sorted(syntaxes[key])),
            problems=part_problems + tuple(notes),
            kind="dicom",
            volumes=tuple(volumes),
        ))
    return series_list, [p for _, p in problems]


def _volume(index: int, group: VolumeGroup, start: int, count: int) -> Volume:
    reason = None if group.anatomical else \
        f"not assessed: not an anatomical image ({group.kind.value})"
    return Volume(index=index, label=group.label, start=start, count=count,
                  anatomical=group.anatomical, assessed=False, not_assessed_reason=reason)


def choose_assessed(volumes: Sequence[Volume]) -> list[Volume]:
    """The model reads one representative volume: the first anatomical one in volume order
    (the first time point, the b = 0 of a diffusion series, the magnitude of a field map,
    echo 1). The other anatomical volumes are repeats or other weightings of the same
    positions and say so; with no anatomical volume nothing is assessed."""
    chosen = next((v for v in volumes if v.anatomical), None)
    result = []
    for volume in volumes:
        if volume is chosen:
            result.append(replace(volume, assessed=True, not_assessed_reason=None))
        elif volume.anatomical and chosen is not None:
            result.append(replace(volume, not_assessed_reason=(
                f"not assessed: the model reads one volume of the series ({chosen.name})")))
        else:
            result.append(volume)
    return result


def _series_notes(headers: Sequence[FrameHeader], first: DicomFile, parts: int,
                  part_index: int, volumes: Sequence[Volume], slices: Sequence[Slice]
                  ) -> list[Problem]:
    """The series' warnings, from the images that loaded (``headers``, ``slices``)."""
    notes = []
    source = str(headers[0].path.parent)
    if parts > 1:
        notes.append(Problem(source, f"series mixes {parts} orientations; this is part "
                                     f"{part_index + 1}", Severity.WARNING))
    if any(h.tile is not None for h in headers) and first.uih:
        notes.append(Problem(source, uih.note(first.tiles or 0, all(
            h.position is not None for h in headers)), Severity.WARNING))
    elif any(h.tile is not None for h in headers):
        placed = ("placed along the slice normal by the Siemens CSA header"
                  if all(h.position is not None for h in headers)
                  else "kept in the order stored in the mosaic (no readable CSA header)")
        notes.append(Problem(source, f"Siemens mosaic: each file was cut into {first.tiles} "
                                     f"slices, {placed}", Severity.WARNING))
    elif first.uih_unreadable:
        notes.append(Problem(source, uih.UNREADABLE_COUNT_NOTE, Severity.WARNING))
    if len(volumes) > 1:
        sizes = sorted({v.count for v in volumes})
        size = " or ".join(str(n) for n in sizes)
        assessed = [v.name for v in volumes if v.assessed]
        reads = (f"the model reads {assessed[0]}" if assessed
                 else "no volume is an anatomical image")
        notes.append(Problem(source, f"{len(volumes)} volumes of {size} slices in one series "
                                     f"(repeats, echoes, diffusion or phase images); {reads}",
                             Severity.WARNING))
    blank = [s for s in slices if s.display_blank]
    if blank:
        warning = next((w for w in blank[0].warnings if w.startswith(BLANK_DISPLAY_WARNING)),
                       BLANK_DISPLAY_WARNING)
        notes.append(Problem(source, f"{warning} ({len(blank)} of {len(slices)} images, the "
                                     f"first {Path(blank[0].source).name}); the model does not "
                                     "assess them", Severity.WARNING))
    return notes


def _common_parent(paths: Sequence[Path]) -> Path:
    parents = {p.parent for p in paths}
    if len(parents) == 1:
        return parents.pop()
    return Path(os.path.commonpath([str(p) for p in parents]))
