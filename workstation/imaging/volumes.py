"""Split one series' images into volumes, the way dcm2niix and the viewers do.

A scanner sends under one Series Instance UID every repeat of the same positions (fMRI time
points), every diffusion direction, every echo and both magnitude and phase images. Images are
told apart, in this order, by what the header says of them:

1. Image Type: magnitude, phase, real, imaginary, field map or another derived map
   (PS3.3 C.8.13.1.1.1 and the vendors' values: Philips ``PHASE MAP``, Siemens ``P``);
2. Echo Number;
3. Diffusion b-value (and gradient direction where the header has one);
4. Temporal Position Identifier (or the Temporal Position Index of a multi-frame file);
   for an enhanced multi-frame file also its Stack ID and the frame's Dimension Index Values
   (Frame Content Sequence) on every dimension but the spatial ones (In-Stack Position
   Number, Image Position): a cardiac phase or any other dimension the file declares;
5. what is left repeating the same position along the slice normal: each position's k-th
   image, in acquisition order, belongs to the k-th volume (a b > 0 repeat is a diffusion
   direction; otherwise a time point or repeat).

This module only groups ``VolumeHeader`` values; it decodes nothing.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass


class ImageKind(enum.StrEnum):
    MAGNITUDE = "magnitude"
    PHASE = "phase"
    REAL = "real"
    IMAGINARY = "imaginary"
    FIELD_MAP = "field map"
    DERIVED_MAP = "derived map"


ANATOMICAL_KINDS = frozenset({ImageKind.MAGNITUDE})
_KIND_ORDER = tuple(ImageKind)

# Image Type values 3 and on (vendor spellings as dcm2niix reads them)
_PHASE = {"P", "PHASE", "PHASE MAP", "PHASE_MAP"}
_REAL = {"R", "REAL"}
_IMAGINARY = {"I", "IMAGINARY"}
_FIELD_MAP = {"FIELD_MAP", "FIELDMAP", "FIELD MAP", "B0 MAP", "B0MAP", "B0_MAP", "B1 MAP",
              "B1MAP", "FM"}
_DERIVED_MAPS = {"ADC", "EADC", "FA", "COLFA", "T1 MAP", "T2 MAP", "T2_STAR MAP",
                 "T1MAP", "T2MAP", "T2STARMAP", "R2STAR", "PERFUSION", "CBF", "CBV", "MTT",
                 "TTP", "MOSAIC_DERIVED"}


def image_kind(image_type: Sequence[str]) -> ImageKind:
    """What an image shows, from its Image Type (0008,0008) values."""
    values = {str(v).strip().upper() for v in image_type[2:]}
    if values & _FIELD_MAP:
        return ImageKind.FIELD_MAP
    if values & _PHASE:
        return ImageKind.PHASE
    if values & _REAL:
        return ImageKind.REAL
    if values & _IMAGINARY:
        return ImageKind.IMAGINARY
    if values & _DERIVED_MAPS:
        return ImageKind.DERIVED_MAP
    return ImageKind.MAGNITUDE


@dataclass(frozen=True)
class VolumeHeader:
    """What tells one image's volume apart: all of it from the DICOM header."""

    kind: ImageKind = ImageKind.MAGNITUDE
    echo: int | None = None
    b_value: float | None = None
    b_vector: tuple[float, float, float] | None = None
    temporal: int | None = None
    stack: str | None = None  # Stack ID of an enhanced multi-frame file
    # an enhanced multi-frame file's Dimension Index Values, less the spatial ones
    dimension: tuple[int, ...] | None = None
    position: float | None = None  # mm along the slice normal
    order: tuple[object, ...] = ()  # acquisition order (a sort key)


@dataclass(frozen=True)
class VolumeGroup:
    """One volume's members (indices into the headers given) and its label."""

    members: tuple[int, ...]
    label: str
    kind: ImageKind

    @property
    def anatomical(self) -> bool:
        return self.kind in ANATOMICAL_KINDS


@dataclass(frozen=True)
class _Key:
    kind: ImageKind
    echo: int
    b_value: float
    direction: int
    temporal: int
    stack: str
    dimension: tuple[int, ...]
    repeat: int


def _round_vector(vector: tuple[float, float, float] | None) -> tuple[float, ...] | None:
    if vector is None or all(abs(v) < 1e-6 for v in vector):
        return None
    return tuple(round(v, 3) + 0.0 for v in vector)


def split_volumes(headers: Sequence[VolumeHeader]) -> list[VolumeGroup]:
    """Group images into volumes, ordered as dcm2niix orders a series' outputs' volumes.

    Volumes come in order of image kind (magnitude first), echo, b-value (b = 0 first),
    gradient direction (as first met), time point and repeat; the members of a volume keep
    the order they were given in (along the slice normal).
    """
    if not headers:
        return []
    acquisition = sorted(range(len(headers)), key=lambda i: headers[i].order)
    directions: dict[tuple[float, float], dict[tuple[float, ...], int]] = defaultdict(dict)
    for i in acquisition:
        h = headers[i]
        vector = _round_vector(h.b_vector)
        if vector is not None:
            seen = directions[(h.b_value or 0.0, h.echo or 0)]
            seen.setdefault(vector, len(seen))

    def base_key(i: int) -> tuple[ImageKind, int, float, int, int, str, tuple[int, ...]]:
        h = headers[i]
        vector = _round_vector(h.b_vector)
        direction = (directions[(h.b_value or 0.0, h.echo or 0)][vector]
                     if vector is not None else -1)
        return (h.kind, h.echo or 0, h.b_value or 0.0, direction, h.temporal or 0,
                h.stack or "", h.dimension or ())

    # images repeating a position within one base key are repeats: the k-th in order
    occurrences: dict[tuple[object, ...], int] = defaultdict(int)
    keys: dict[int, _Key] = {}
    for i in acquisition:
        base = base_key(i)
        position = headers[i].position
        slot = (*base, round(position, 2) if position is not None else None)
        repeat = occurrences[slot] if position is not None else 0
        occurrences[slot] += 1
        keys[i] = _Key(*base, repeat=repeat)

    groups: dict[_Key, list[int]] = defaultdict(list)
    for i in range(len(headers)):  # the given (spatial) order within each volume
        groups[keys[i]].append(i)
    ordered = sorted(groups, key=lambda k: (_KIND_ORDER.index(k.kind), k.echo, k.b_value,
                                            k.direction, k.temporal, k.stack, k.dimension,
                                            k.repeat))
    labels = _labels(ordered)
    return [VolumeGroup(tuple(groups[k]), labels[k], k.kind) for k in ordered]


def _labels(keys: Sequence[_Key]) -> dict[_Key, str]:
    """Each volume's label, naming only what varies across the series' volumes."""
    def varies(field: Callable[[_Key], object]) -> bool:
        return len({field(k) for k in keys}) > 1

    kinds, echoes, b_values = varies(lambda k: k.kind), varies(lambda k: k.echo), \
        varies(lambda k: k.b_value)
    stacks, temporal = varies(lambda k: k.stack), varies(lambda k: k.temporal)
    diffusion = any(k.b_value > 0 for k in keys)
    # directions and repeats are numbered 1.. within each b-value (and kind, echo)
    sub: dict[tuple[object, ...], list[_Key]] = defaultdict(list)
    for k in keys:
        sub[(k.kind, k.echo, k.b_value, k.stack, k.temporal)].append(k)
    labels = {}
    for k in keys:
        siblings = sub[(k.kind, k.echo, k.b_value, k.stack, k.temporal)]
        parts: list[str] = []
        if kinds or k.kind is not ImageKind.MAGNITUDE:
            parts.append(k.kind.value)
        if echoes:
            parts.append(f"echo {k.echo}")
        if b_values or k.b_value > 0:
            parts.append(f"b = {k.b_value:g}")
        if stacks:
            parts.append(f"stack {k.stack}")
        if temporal:
            parts.append(f"time point {k.temporal}")
        if len(siblings) > 1:
            number = siblings.index(k) + 1
            if k.b_value > 0:
                parts.append(f"direction {number}")
            else:
                parts.append(f"repeat {number}" if diffusion else f"time point {number}")
        labels[k] = ", ".join(parts)
    return labels
