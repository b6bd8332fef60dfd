"""Slice geometry from DICOM Image Orientation (Patient), PS3.3 C.7.6.2.1.1.

The patient coordinate system is LPS: x to the patient's left, y to posterior, z to head.
A slice's normal (row x column direction cosines) that points mostly along x is a sagittal
slice, along y coronal, along z axial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from workstation.imaging.series import Plane

_AXIS_PLANES = (Plane.SAGITTAL, Plane.CORONAL, Plane.AXIAL)


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    """Unit normal of a slice from its six direction cosines (row, then column)."""
    if len(orientation) != 6:
        raise ValueError(f"Image Orientation (Patient) needs 6 values, got {len(orientation)}")
    row = np.asarray(orientation[:3], dtype=float)
    col = np.asarray(orientation[3:], dtype=float)
    normal = np.cross(row, col)
    norm = float(np.linalg.norm(normal))
    if not math.isfinite(norm) or norm < 1e-6:
        raise ValueError("Image Orientation (Patient) has parallel or zero direction cosines")
    return normal / norm


def plane_from_orientation(orientation: Sequence[float] | None) -> tuple[Plane, float | None]:
    """Return the plane and its obliquity in degrees (angle between normal and the axis).

    ``(Plane.UNKNOWN, None)`` when the orientation is absent or malformed.
    """
    if orientation is None:
        return Plane.UNKNOWN, None
    try:
        normal = slice_normal(orientation)
    except ValueError:
        return Plane.UNKNOWN, None
    axis = int(np.argmax(np.abs(normal)))
    cosine = min(1.0, float(abs(normal[axis])))
    return _AXIS_PLANES[axis], math.degrees(math.acos(cosine))


def position_along_normal(
    position: Sequence[float], orientation: Sequence[float]
) -> float:
    """Distance of Image Position (Patient) along the slice normal, in mm."""
    return float(np.dot(np.asarray(position, dtype=float), slice_normal(orientation)))


def orientation_key(orientation: Sequence[float] | None, decimals: int = 2) -> tuple[float, ...]:
    """A hashable, rounded orientation used to split a series that mixes orientations."""
    if orientation is None:
        return ()
    return tuple(round(float(v), decimals) + 0.0 for v in orientation)


_LETTERS = (("R", "L"), ("A", "P"), ("F", "H"))


def direction_letters(direction: Sequence[float]) -> str:
    """Patient-orientation letters a direction points towards (e.g. 'L', 'PH').

    Letters are ordered by the size of each component, as PS3.3 C.7.6.1.1.1 describes
    for Patient Orientation; components below 0.25 are left out.
    """
    parts = []
    for axis in np.argsort(-np.abs(np.asarray(direction, dtype=float))):
        value = float(direction[int(axis)])
        if abs(value) < 0.25:
            continue
        negative, positive = _LETTERS[int(axis)]
        parts.append(positive if value > 0 else negative)
    return "".join(parts)
