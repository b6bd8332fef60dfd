"""Walk archive trees and group their files into studies, without decoding pixels.

DICOM files are grouped by Study Instance UID (read from the header alone); picture files
(PNG, JPEG, TIFF, BMP), DICOM files without a study UID and files that look like DICOM
(.dcm, no extension) but cannot be read, by their folder, so that a damaged file is
reported in its folder's study result rather than lost. Other files (notes, NIfTI,
spreadsheets) are counted and left out.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from workstation.imaging.raster import RASTER_SUFFIXES

_NOT_STUDY_FILES = frozenset({"dicomdir"})
# files named as DICOM (or with no extension, as scanners write them) that pydicom does not
# recognise are damaged DICOM: their folder's study reports them
_DICOM_LIKE_SUFFIXES = frozenset({"", ".dcm", ".dicom", ".dic", ".ima"})


@dataclass(frozen=True)
class StudyUnit:
    """One study to triage: its key (stable across runs), a label for the progress line,
    and its files."""

    key: str  # "dicom:<Study Instance UID>" or "folder:<folder path>"
    label: str
    files: tuple[str, ...]

    @property
    def file_stem(self) -> str:
        """A safe file name for the study's result (never the sender's text)."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:24]


@dataclass
class Discovery:
    studies: list[StudyUnit] = field(default_factory=list)
    files_seen: int = 0
    files_left_out: int = 0  # neither DICOM nor pictures
    unreadable_roots: list[str] = field(default_factory=list)


def _files(roots: Sequence[Path], discovery: Discovery) -> Iterable[Path]:
    for root in roots:
        if root.is_file():
            yield root
            continue
        if not root.is_dir():
            discovery.unreadable_roots.append(str(root))
            continue
        for folder, subfolders, names in os.walk(root, onerror=lambda _: None):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for name in sorted(names):
                if not name.startswith("."):
                    yield Path(folder) / name


def study_uid_of(path: Path) -> str | None:
    """The file's Study Instance UID; "" for a DICOM file without one (or that cannot be
    parsed); None when the file is not DICOM at all."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        header = dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
    except InvalidDicomError:
        return None
    except Exception:  # a damaged DICOM file: its folder's study reports it
        return ""
    return str(header.get("StudyInstanceUID", "") or "").strip()


def discover(roots: Sequence[Path]) -> Discovery:
    """Every study under ``roots`` (folders or files), in a stable order."""
    discovery = Discovery()
    by_study: dict[str, list[str]] = defaultdict(list)
    for path in _files(roots, discovery):
        discovery.files_seen += 1
        if path.name.lower() in _NOT_STUDY_FILES:
            continue
        if path.suffix.lower() in RASTER_SUFFIXES:
            by_study[f"folder:{path.parent}"].append(str(path))
            continue
        uid = study_uid_of(path)
        if uid is None and path.suffix.lower() not in _DICOM_LIKE_SUFFIXES:
            discovery.files_left_out += 1
        elif uid:
            by_study[f"dicom:{uid}"].append(str(path))
        else:
            by_study[f"folder:{path.parent}"].append(str(path))
    for key in sorted(by_study):
        files = tuple(by_study[key])
        common = Path(os.path.commonpath(files)) if len(files) > 1 else Path(files[0]).parent
        label = f"{common.name or common} ({len(files)} files)"
        discovery.studies.append(StudyUnit(key, label, files))
    return discovery
