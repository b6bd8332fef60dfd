"""NIfTI volumes as whole series: every slice of a head, in each of the three planes.

A clinic sends every slice from skull base to vertex; the healthy heads of
``normal/nifti/`` and the glioma volumes of ``volumes/`` (with voxel masks) give that. Each
volume is reoriented to RAS+ (``nib.as_closest_canonical``), cut along each axis into a Series
of every slice (edge slices included, nothing dropped), shown in radiological display
orientation (``sources._volume_slice``) and resampled in-plane to square pixels, as a scanner
would have stored them. The tumour mask is cut and resampled the same way.

A slice of a tumour volume counts as a tumour slice when its mask holds at least
``MIN_TUMOUR_AREA_MM2`` (1 cm^2: less is a sliver at the lesion's edge that no reader would
call from that slice alone); a slice without any mask voxel is a no-tumour slice; slices in
between are left out of slice-level counts (they stay in the series).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from workstation.imaging import Plane, PlaneSource, Series, SeriesInfo, Slice
from workstation.imaging.pixels import apply_window, frozen, percentile_window
from workstation.training.sources import _volume_slice

MIN_TUMOUR_AREA_MM2 = 100.0
PLANES = ((2, Plane.AXIAL), (1, Plane.CORONAL), (0, Plane.SAGITTAL))
TUMOUR_CONTRASTS = ("t1c", "t2f")  # every BraTS case here has these two


@dataclass(frozen=True)
class VolumeCase:
    """One NIfTI volume to triage as series: healthy (no mask) or glioma (with its mask)."""

    name: str  # "normal/nifti/ixi012_t1", "volumes/brats18_tcia10_628/t1c"
    path: Path
    truth: str  # "no_tumour" or "glioma"
    mask: Path | None = None


@dataclass(frozen=True, eq=False)
class PlaneSeries:
    """A volume cut in one plane: the series and each slice's tumour area (mm^2)."""

    case: VolumeCase
    series: Series
    tumour_area_mm2: npt.NDArray[np.float64]
    masks: tuple[npt.NDArray[np.bool_], ...]  # per slice, on the slice's grid

    @property
    def tumour_slices(self) -> npt.NDArray[np.bool_]:
        return self.tumour_area_mm2 >= MIN_TUMOUR_AREA_MM2

    @property
    def clear_slices(self) -> npt.NDArray[np.bool_]:
        return self.tumour_area_mm2 == 0


def volume_cases(datasets: Path) -> list[VolumeCase]:
    """Every healthy NIfTI head and every glioma volume with a mask, in name order."""
    cases = [VolumeCase(f"normal/nifti/{p.name.removesuffix('.nii.gz')}", p, "no_tumour")
             for p in sorted((datasets / "normal" / "nifti").glob("*.nii.gz"))]
    for folder in sorted((datasets / "volumes").glob("brats*")):
        masks = sorted(folder.glob("*_seg.nii.gz"))
        if not masks:
            continue  # brats_gli_00001 has no mask (and is in the 2D training set)
        for contrast in TUMOUR_CONTRASTS:
            found = sorted(folder.glob(f"*_{contrast}.nii.gz"))
            if found:
                cases.append(VolumeCase(f"volumes/{folder.name}/{contrast}", found[0],
                                        "glioma", masks[0]))
    return cases


def _square(plane: npt.NDArray[np.floating], spacing: tuple[float, float], order: int
            ) -> tuple[npt.NDArray[np.floating], float]:
    """Resample a slice (rows, cols with mm ``spacing``) to square pixels of the finer
    spacing; returns the image and its pixel size."""
    from skimage.transform import resize

    pixel = min(spacing)
    shape = (max(1, round(plane.shape[0] * spacing[0] / pixel)),
             max(1, round(plane.shape[1] * spacing[1] / pixel)))
    if shape == plane.shape:
        return plane, pixel
    return resize(plane, shape, order=order, preserve_range=True, anti_aliasing=False,
                  mode="edge"), pixel


def plane_series(case: VolumeCase) -> Iterator[PlaneSeries]:
    """The volume as three series: axial, coronal and sagittal, every slice."""
    import nibabel as nib

    image = nib.as_closest_canonical(nib.load(case.path))
    volume = np.asarray(image.get_fdata(dtype=np.float32))
    if volume.ndim == 4:
        volume = volume[..., 0]
    zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    mask = None
    if case.mask is not None:
        seg = nib.as_closest_canonical(nib.load(case.mask))
        mask = (np.asarray(seg.dataobj) > 0).astype(np.float32)  # converted once
    for axis, plane in PLANES:
        # display rows/cols of _volume_slice: the transposed remaining axes, in order
        remaining = [a for a in range(3) if a != axis]
        spacing = (zooms[remaining[1]], zooms[remaining[0]])
        slices, areas, masks = [], [], []
        for index in range(volume.shape[axis]):
            raw, pixel = _square(_volume_slice(volume, axis, index), spacing, order=1)
            raw = frozen(np.asarray(raw, dtype=np.float32))
            window = percentile_window(raw)
            slices.append(Slice(
                image=frozen(apply_window(raw, window)), raw=raw, window=window,
                source=f"{case.path}#{plane.value}{index}",
                position=float(index * zooms[axis]), instance_number=index + 1))
            if mask is not None:
                cut, _ = _square(_volume_slice(mask, axis, index), spacing, order=0)
                region = np.asarray(cut) >= 0.5
                masks.append(region)
                areas.append(float(region.sum()) * pixel * pixel)
            else:
                masks.append(np.zeros(raw.shape, bool))
                areas.append(0.0)
        series = Series(
            source=f"{case.name}/{plane.value}", series_uid=None,
            info=SeriesInfo(modality="MR", series_description=f"{case.name} {plane.value}",
                            pixel_spacing=(pixel, pixel), slice_thickness=zooms[axis]),
            slices=tuple(slices), plane=plane, plane_source=PlaneSource.DICOM, kind="volume")
        yield PlaneSeries(case, series, np.asarray(areas), tuple(masks))
