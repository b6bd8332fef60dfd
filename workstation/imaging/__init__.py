"""Files -> Series of Slices. No Qt, no torch here."""

from workstation.imaging.errors import NotAnImageError, UnreadableImageError
from workstation.imaging.series import (
    Plane,
    PlaneSource,
    Problem,
    Series,
    SeriesInfo,
    Severity,
    Slice,
    Study,
    Volume,
    Window,
)
from workstation.imaging.study import iter_study, load_study

__all__ = [
    "NotAnImageError",
    "Plane",
    "PlaneSource",
    "Problem",
    "Series",
    "SeriesInfo",
    "Severity",
    "Slice",
    "Study",
    "UnreadableImageError",
    "Volume",
    "Window",
    "iter_study",
    "load_study",
]
