"""Every training/test image from the shared datasets, as one kind of record.

Sources: Nickparvar 224 (zip), figshare (Cheng; with masks and patient folds), slices of the
DICOM series (exact planes; healthy volunteers' EPI) and of the BraTS volume (exact planes).
Images go through ``workstation.imaging`` exactly as the app reads them.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from workstation.imaging import Series, Slice, load_study
from workstation.imaging.naming import natural_key
from workstation.imaging.pixels import apply_window, percentile_window
from workstation.imaging.raster import read_raster_slices

CLASSES = ("glioma", "meningioma", "pituitary", "no_tumour")
PLANES = ("axial", "coronal", "sagittal")
_NICKPARVAR_CLASS = {"glioma": "glioma", "meningioma": "meningioma", "pituitary": "pituitary",
                     "notumor": "no_tumour"}


@dataclass(frozen=True, eq=False)
class Item:
    """One 2D image with what is known about it."""

    uid: str  # stable id, e.g. "nickparvar/Training/glioma/Tr-gl_0001.jpg"
    source: str  # nickparvar | figshare | dicom | brats
    label: str  # one of CLASSES
    plane: str  # one of PLANES, or "" when unknown
    plane_method: str  # dicom | volume | "" (2D sets get labels from planes.csv)
    group: str  # items of one group must stay on one side of the split ("" = free)
    image: npt.NDArray[np.float32]  # display image in [0, 1], as the app reads it
    mask: npt.NDArray[np.uint8] | None = None  # tumour mask on the image grid, if known
    mask_known: bool = False  # False: no supervision for the mask head


Wanted = Callable[[str], bool]


def _everything(uid: str) -> bool:
    return True


def nickparvar_items(datasets: Path, cache: Path, wanted: Wanted = _everything
                     ) -> Iterator[Item]:
    root = cache / "nickparvar224"
    if not (root / "Training").is_dir():
        with zipfile.ZipFile(datasets / "nickparvar224.zip") as archive:
            archive.extractall(root)
    for split in ("Training", "Testing"):
        for folder, label in _NICKPARVAR_CLASS.items():
            for path in sorted((root / split / folder).glob("*.jpg")):
                uid = f"nickparvar/{split}/{folder}/{path.name}"
                if not wanted(uid):
                    continue
                slices, _ = read_raster_slices(path)
                yield Item(uid=uid, source="nickparvar",
                           label=label, plane="", plane_method="", group="",
                           image=np.asarray(slices[0].image), mask=None,
                           mask_known=label == "no_tumour")


def figshare_items(datasets: Path, wanted: Wanted = _everything) -> Iterator[Item]:
    root = datasets / "figshare_cheng"
    with (root / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if not wanted(f"figshare/{row['image']}"):
            continue
        slices, _ = read_raster_slices(root / row["image"])
        mask_slices, _ = read_raster_slices(root / row["mask"])
        mask = (np.asarray(mask_slices[0].raw) > 0).astype(np.uint8)
        yield Item(uid=f"figshare/{row['image']}", source="figshare", label=row["label"],
                   plane="", plane_method="", group=f"figshare-fold{row['cv_fold']}",
                   image=np.asarray(slices[0].image), mask=mask, mask_known=True)


def _dicom_group(relative: str) -> str:
    """Split the volunteers' series by subject and, for the one subject scanned in all three
    planes, by slice-order variant (asc / int / desc), so each variant stays on one side."""
    if relative.startswith("siemens_epi_mosaic_orientation"):
        name = relative.rsplit("/", 1)[-1].lower()
        variant = next((v for v in ("asc", "int", "desc") if v in name), "other")
        return f"dicom-mosaic-{variant}"
    return "dicom-" + relative.split("/", 1)[0]


def manifest_order(series: Series) -> list[Slice]:
    """The series' slices in the order the training manifest numbers them (``dicom/<series>/
    <index>``): as the reader sorted them before it split series into volumes, by position
    along the normal, then Instance Number and file name; a mosaic's tiles file after file in
    stored order. Kept so that the manifest, its split and the shipped weights stay the same.
    """
    def name(s: Slice) -> tuple[object, ...]:
        return (natural_key(Path(s.source).name), s.frame or 0)

    mosaic = any(p.message.startswith("Siemens mosaic") for p in series.problems)
    if not mosaic and all(s.position is not None for s in series.slices):
        return sorted(series.slices, key=lambda s: (round(s.position or 0.0, 3),
                                                    s.instance_number or 0, *name(s)))
    if all(s.instance_number is not None for s in series.slices):
        return sorted(series.slices, key=lambda s: (s.instance_number or 0, *name(s)))
    return sorted(series.slices, key=name)


def dicom_items(datasets: Path, wanted: Wanted = _everything, min_foreground: float = 0.12
                ) -> Iterator[Item]:
    root = datasets / "dicom"
    study = load_study([root])
    for series in study.series:
        relative = str(Path(series.source).relative_to(root))
        group = _dicom_group(relative)
        for index, slice_ in enumerate(manifest_order(series)):
            image = np.asarray(slice_.image)
            if (image > 0.1).mean() < min_foreground or not wanted(
                    f"dicom/{relative}/{index}"):
                continue  # tiles above/below the head, empty mosaic tiles
            yield Item(uid=f"dicom/{relative}/{index}", source="dicom", label="no_tumour",
                       plane=series.plane.value, plane_method="dicom", group=group,
                       image=image, mask=np.zeros(image.shape, np.uint8), mask_known=True)


def _volume_slice(volume: npt.NDArray[np.floating], axis: int, index: int) -> np.ndarray:
    """Radiological display orientation from a RAS+ volume: superior/anterior up, patient's
    right on the viewer's left."""
    plane = np.take(volume, index, axis=axis).T
    return np.ascontiguousarray(plane[::-1, ::-1])


def brats_items(datasets: Path, wanted: Wanted = _everything, step: int = 3,
                min_foreground: float = 0.12) -> Iterator[Item]:
    """Slices of the one BraTS glioma case in all three planes and four contrasts.

    There is no ground-truth mask: the lesion extent is estimated from FLAIR
    hyperintensity; slices through it are glioma (mask unsupervised), slices at least 10 mm
    away from it are no_tumour (empty mask), the rest are left out.
    """
    import nibabel as nib

    folder = datasets / "volumes" / "brats_gli_00001"
    flair = nib.as_closest_canonical(nib.load(next(folder.glob("*-t2f.nii.gz")))).get_fdata()
    brain = flair > 0
    values = flair[brain]
    lesion = flair > (values.mean() + 2.5 * values.std())
    extents = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(lesion.sum(axis=other) > 50)
        extents.append((int(present.min()), int(present.max())) if present.size else (0, -1))
    for path in sorted(folder.glob("*.nii.gz")):
        contrast = path.name.split("-")[-1].split(".")[0]
        volume = nib.as_closest_canonical(nib.load(path)).get_fdata().astype(np.float32)
        for axis, plane in ((2, "axial"), (1, "coronal"), (0, "sagittal")):
            low, high = extents[axis]
            for index in range(0, volume.shape[axis], step):
                if not wanted(f"brats/{contrast}/{plane}/{index}"):
                    continue
                raw = _volume_slice(volume, axis, index)
                if (raw > 0).mean() < min_foreground:
                    continue
                if low - 10 <= index <= high + 10 and not low <= index <= high:
                    continue  # too close to the lesion to call normal
                through_lesion = low <= index <= high
                image = apply_window(raw, percentile_window(raw))
                yield Item(uid=f"brats/{contrast}/{plane}/{index}", source="brats",
                           label="glioma" if through_lesion else "no_tumour", plane=plane,
                           plane_method="volume", group=f"brats-{contrast}", image=image,
                           mask=None if through_lesion else np.zeros(image.shape, np.uint8),
                           mask_known=not through_lesion)


def all_items(datasets: Path, cache: Path, wanted: Wanted = _everything) -> Iterator[Item]:
    """Every source in a fixed order (the manifest's order)."""
    yield from nickparvar_items(datasets, cache, wanted)
    yield from figshare_items(datasets, wanted)
    yield from dicom_items(datasets, wanted)
    yield from brats_items(datasets, wanted)


def all_items_for(datasets: Path, cache: Path, uids: set[str]) -> Iterator[Item]:
    return all_items(datasets, cache, uids.__contains__)
