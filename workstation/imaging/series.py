"""The data model of a loaded study: Study -> Series -> Slice.

Everything here is a frozen value. Pixels are numpy arrays that the loaders never mutate
after construction (they are marked read-only), so a Slice can be shared between the
viewer, the model and the report without copies.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatImage = npt.NDArray[np.float32]


class Plane(enum.StrEnum):
    """Anatomical plane of a slice or series."""

    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"
    UNKNOWN = "unknown"


class PlaneSource(enum.StrEnum):
    """Where the plane came from: the DICOM geometry, the model, or nowhere yet."""

    DICOM = "dicom"
    MODEL = "model"
    NONE = "none"


class Severity(enum.StrEnum):
    """How much a problem matters to the user."""

    ERROR = "error"  # a file or slice that should have loaded but did not
    WARNING = "warning"  # loaded, but with something the user should know
    SKIPPED = "skipped"  # not an image (text notes, NIfTI, DICOMDIR index...)


@dataclass(frozen=True)
class Problem:
    """Something that went wrong with one file, said in plain words."""

    path: str
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


# The start of a slice's warning when its window shows one flat grey although its modality
# values vary (pixels.blank_window_warning); such a slice is ``Slice.display_blank``.
BLANK_DISPLAY_WARNING = "the window leaves nothing visible"


def _flat(arr: npt.NDArray[np.generic]) -> bool:
    flat = np.asarray(arr).reshape(-1)
    return flat.size == 0 or bool(np.all(flat == flat[0]))


# VOI LUT Function (0028,1056), PS3.3 C.11.2.1.3: how a window maps modality values to grey
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class VoiLut:
    """One VOI LUT of a file's VOI LUT Sequence (PS3.3 C.11.2.1.1, C.8.11.3.1.5).

    Modality value ``first_mapped + i`` shows as ``table[i]`` out of ``2 ** bits - 1``;
    values below ``first_mapped`` take the first entry, values past the end the last.
    """

    first_mapped: int
    bits: int
    table: tuple[int, ...]
    explanation: str | None = None

    @property
    def entries(self) -> int:
        return len(self.table)


@dataclass(frozen=True)
class Window:
    """A display window (DICOM PS3.3 C.11.2.1.2) in modality units.

    ``function`` is the VOI LUT Function the window is read with: "LINEAR" (DICOM's
    ``c - 0.5``, ``w - 1`` convention), "LINEAR_EXACT" (``[c - w/2, c + w/2]`` exactly) or
    "SIGMOID". Left empty it is LINEAR for a window from the file and LINEAR_EXACT for a
    computed one (a percentile, preset or full range is an exact range). ``lut``, when set,
    is the file's VOI LUT, applied instead of the window; ``center``/``width`` then give
    the LUT's input range (what a window/level drag starts from).
    """

    center: float
    width: float
    source: str  # "dicom" (from the file), "percentile" (computed), "full-range", "user"...
    function: str = ""
    lut: VoiLut | None = None

    def __post_init__(self) -> None:
        function = (self.function or ("LINEAR" if self.source == "dicom" else "LINEAR_EXACT"))
        function = function.strip().upper()
        if function not in VOI_FUNCTIONS:
            raise ValueError(f"unknown VOI LUT Function {self.function!r}")
        object.__setattr__(self, "function", function)


@dataclass(frozen=True)
class SeriesInfo:
    """The metadata the GUI and the report show. ``None`` means not available."""

    patient_name: str | None = None
    patient_id: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    study_date: str | None = None
    study_description: str | None = None
    study_instance_uid: str | None = None
    accession_number: str | None = None
    modality: str | None = None
    series_number: int | None = None
    series_description: str | None = None
    body_part_examined: str | None = None
    protocol_name: str | None = None
    pixel_spacing: tuple[float, float] | None = None
    slice_thickness: float | None = None
    institution_name: str | None = None
    manufacturer: str | None = None


@dataclass(frozen=True, eq=False)
class Slice:
    """One 2D image ready for display and for the model.

    ``image`` is float32 in [0, 1] after modality LUT, VOI window and MONOCHROME1
    inversion: exactly ``pixels.display_image(raw, window, photometric)``, the one display
    function the viewer, the thumbnails and the report use. ``raw`` keeps the modality
    values (e.g. MR signal, CT HU) so the viewer can re-window without reading the file
    again; ``photometric`` is the file's Photometric Interpretation (MONOCHROME1 shows its
    lowest values white, at every window).
    """

    image: FloatImage
    raw: FloatImage
    window: Window
    source: str
    frame: int | None = None  # frame number inside a multi-frame file (0-based)
    instance_number: int | None = None
    position: float | None = None  # distance along the slice normal, mm
    image_position: tuple[float, float, float] | None = None
    orientation: tuple[float, float, float, float, float, float] | None = None
    warnings: tuple[str, ...] = ()
    photometric: str = "MONOCHROME2"

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.image.shape
        return int(rows), int(cols)

    @property
    def display_blank(self) -> bool:
        """The displayed image is one flat grey although the modality values vary: the
        window (a Window Center of 1e300, a rescale that moves every value past it) leaves
        nothing visible. The model does not assess such an image (analysis.triage)."""
        return _flat(self.image) and not _flat(self.raw)

    @property
    def monochrome1(self) -> bool:
        """True when the file asks for its lowest values to show white (PS3.3 C.7.6.3.1.2)."""
        return self.photometric == "MONOCHROME1"


@dataclass(frozen=True)
class Volume:
    """One 3D volume of a series: the slices of one acquisition of every position.

    A scanner sends repeats (fMRI time points), diffusion directions, echoes and
    magnitude/phase images under one series; dcm2niix, the viewers and this workstation
    split them into volumes. ``start``/``count`` address ``Series.slices``, which holds the
    volumes one after another, each ordered along its slice normal.
    """

    index: int  # 0-based within the series
    label: str  # in the standard's words: "b = 0", "magnitude, echo 1", "time point 3"
    start: int
    count: int
    anatomical: bool = True  # False for phase, field-map and other derived maps
    assessed: bool = True  # analysed by the model (one representative volume per series)
    not_assessed_reason: str | None = None

    @property
    def stop(self) -> int:
        return self.start + self.count

    def contains(self, index: int) -> bool:
        return self.start <= index < self.stop

    @property
    def name(self) -> str:
        """The volume as the user reads it: "volume 2 (b = 1000, direction 1)"."""
        return f"volume {self.index + 1} ({self.label})" if self.label else \
            f"volume {self.index + 1}"


@dataclass(frozen=True, eq=False)
class Series:
    """An ordered stack of slices that belong together.

    ``volumes`` splits ``slices`` into the series' volumes (one volume of every slice when
    the series is a single volume); every consumer addresses a slice by its index in
    ``slices``.
    """

    source: str
    series_uid: str | None
    info: SeriesInfo
    slices: tuple[Slice, ...]
    plane: Plane = Plane.UNKNOWN
    plane_source: PlaneSource = PlaneSource.NONE
    obliquity_deg: float | None = None
    transfer_syntaxes: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    kind: str = "dicom"  # "dicom" or "raster"
    volumes: tuple[Volume, ...] = ()

    def __post_init__(self) -> None:
        if not self.volumes:
            object.__setattr__(self, "volumes", (Volume(0, "", 0, len(self.slices)),))
        covered = sum(v.count for v in self.volumes)
        if covered != len(self.slices):
            raise ValueError(f"volumes cover {covered} slices, the series holds "
                             f"{len(self.slices)}")

    @property
    def is_multi_volume(self) -> bool:
        return len(self.volumes) > 1

    def volume_of(self, index: int) -> Volume:
        """The volume that holds slice ``index`` of ``slices``."""
        for volume in self.volumes:
            if volume.contains(index):
                return volume
        raise IndexError(f"slice {index} is outside the series ({len(self.slices)} slices)")

    @property
    def assessed_indices(self) -> tuple[int, ...]:
        """Indices into ``slices`` of the slices the model analyses."""
        return tuple(i for v in self.volumes if v.assessed for i in range(v.start, v.stop))

    @property
    def assessed_volumes(self) -> tuple[Volume, ...]:
        return tuple(v for v in self.volumes if v.assessed)

    @property
    def assessed_slices(self) -> tuple[Slice, ...]:
        return tuple(self.slices[i] for i in self.assessed_indices)

    def image_words(self, index: int) -> str:
        """Slice ``index`` for people: "image 5 of 15" (of its volume, named when the
        series holds several: "image 5 of 40, volume 2 (b = 1500, direction 1)")."""
        volume = self.volume_of(index)
        words = f"image {index - volume.start + 1} of {volume.count}"
        return f"{words}, {volume.name}" if self.is_multi_volume else words

    @property
    def description(self) -> str:
        if self.info.series_description:
            return self.info.series_description
        return Path(self.source).name or self.source

    @property
    def shape(self) -> tuple[int, int] | None:
        return self.slices[0].shape if self.slices else None


@dataclass(frozen=True)
class Study:
    """What came out of opening one or more paths: the series and every problem met."""

    series: tuple[Series, ...] = ()
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)
