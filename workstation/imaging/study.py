"""Opening paths: discover files, split them into DICOM and raster series, load each.

A bad file is reported and skipped; it never stops the rest of the study. Each file passes
one guarded boundary per step (imaging.guard): ``dicom.read_file`` reads its header and
computes everything grouping needs of it, ``dicom.file_slices`` decodes it, and
``raster.read_raster_slices`` reads an image file; any failure in a step becomes a Problem
naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from workstation.imaging.dicom import (
    DicomFile,
    build_series,
    first_slice,
    group_series,
    read_file,
)
from workstation.imaging.errors import NotAnImageError, UnreadableImageError
from workstation.imaging.naming import natural_key
from workstation.imaging.raster import is_raster, load_raster_series
from workstation.imaging.series import Problem, Series, Severity, Slice, Study

_NIFTI_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img")


@dataclass(frozen=True, eq=False)
class Preview:
    """The first image read from a large folder, shown while the rest is still read.

    A series can only be ordered once every file is read; a viewer shows this meanwhile and
    then opens the finished series at its start, as any series opens.
    """

    slice: Slice
    files: int  # DICOM files being read


PREVIEW_FROM = 8  # folders with fewer DICOM files load too fast to need a preview


@dataclass
class Discovery:
    """What a walk over the input paths found, before anything is decoded."""

    dicom_candidates: list[Path] = field(default_factory=list)
    raster_groups: list[tuple[Path, list[Path]]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _is_dicomdir(path: Path) -> bool:
    return path.name.upper() == "DICOMDIR"


def _dicomdir_files(path: Path, found: Discovery) -> None:
    from pydicom.fileset import FileSet

    try:
        instances = list(FileSet(path))
    except Exception as exc:
        found.problems.append(Problem(str(path), f"the DICOMDIR index could not be read ({exc})"))
        return
    for instance in instances:
        referenced = Path(instance.path)
        if referenced.is_file():
            found.dicom_candidates.append(referenced)
        else:
            found.problems.append(Problem(str(referenced), "listed in the DICOMDIR but missing"))


def discover(paths: Sequence[str | os.PathLike[str]]) -> Discovery:
    """Walk the inputs. Folders: image files in one directory form one series."""
    found = Discovery()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            found.problems.append(Problem(str(path), "does not exist"))
        elif path.is_file():
            if _is_dicomdir(path):
                _dicomdir_files(path, found)
            elif is_raster(path):
                found.raster_groups.append((path, [path]))
            else:
                found.dicom_candidates.append(path)
        elif path.is_dir():
            _walk_folder(path, found)
        else:
            found.problems.append(Problem(str(path), "is not a regular file or folder"))
    return found


def _walk_folder(root: Path, found: Discovery) -> None:
    any_file = False
    for folder, dirnames, filenames in os.walk(root, onerror=None):
        dirnames.sort(key=natural_key)
        here = Path(folder)
        images = []
        for name in sorted(filenames, key=natural_key):
            path = here / name
            if not path.is_file():
                continue
            any_file = True
            if is_raster(path):
                images.append(path)
            elif _is_dicomdir(path):
                found.problems.append(Problem(
                    str(path), "DICOMDIR index (the images it lists are read from their files)",
                    Severity.SKIPPED))
            elif name.lower().endswith(_NIFTI_SUFFIXES):
                found.problems.append(Problem(
                    str(path), "NIfTI volume: not opened here; open the DICOM series instead",
                    Severity.SKIPPED))
            else:
                found.dicom_candidates.append(path)
        if images:
            found.raster_groups.append((here, images))
    if not any_file:
        found.problems.append(Problem(str(root), "the folder holds no files"))


def _preview(item: DicomFile, files: int) -> Preview | None:
    if not item.headers or item.headers[0].tile is not None:
        return None  # a mosaic's first tile is rarely a useful picture
    image = first_slice(item)  # guarded; a problem is reported when the series is built
    return Preview(image, files) if image is not None else None


def iter_study(paths: Sequence[str | os.PathLike[str]], previews: bool = False
               ) -> Iterator[Series | Problem | Preview]:
    """Yield each series as soon as it is loaded, and each problem as it is met.

    With ``previews``, a large DICOM folder first yields a Preview of its first image.
    """
    found = discover(paths)
    yield from found.problems
    dicom_files: list[DicomFile] = []
    want_preview = previews and len(found.dicom_candidates) >= PREVIEW_FROM
    for path in found.dicom_candidates:
        try:
            dicom_files.append(read_file(path))
            if want_preview:
                preview = _preview(dicom_files[-1], len(found.dicom_candidates))
                if preview is not None:
                    want_preview = False
                    yield preview
        except NotAnImageError as exc:
            yield Problem(str(path), str(exc), Severity.SKIPPED)
        except UnreadableImageError as exc:
            yield Problem(str(path), str(exc))
    for group in group_series(dicom_files):
        series_list, problems = build_series(group)
        yield from series_list
        if not series_list:
            yield from problems
    for source, images in found.raster_groups:
        series, problems = load_raster_series(images, source)
        if series is not None:
            yield series
        else:
            yield from problems


def load_study(
    paths: Sequence[str | os.PathLike[str]],
    on_series: Callable[[Series], None] | None = None,
) -> Study:
    """Load everything under ``paths``. Problems of a loaded series stay on that series."""
    series: list[Series] = []
    problems: list[Problem] = []
    for item in iter_study(paths):
        if isinstance(item, Preview):
            continue
        if isinstance(item, Series):
            series.append(item)
            if on_series is not None:
                on_series(item)
        else:
            problems.append(item)
    for s in series:
        problems.extend(p for p in s.problems if p.severity is not Severity.WARNING)
    if not series and not any(p.severity is Severity.ERROR for p in problems):
        problems.append(Problem(", ".join(str(p) for p in paths),
                                "no images were found", Severity.ERROR))
    return Study(series=tuple(series), problems=tuple(problems))
