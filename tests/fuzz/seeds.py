"""The seed corpus: pydicom's and pydicom-data's test files, the shared brain MRI data.

Files are found by path (never ``get_testdata_file``, which may try the network) and only
small ones are kept so that one execution stays in the tens of milliseconds.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

MAX_SEED_BYTES = 600_000
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class Seed:
    path: Path
    data: bytes

    @property
    def is_raster(self) -> bool:
        return self.path.suffix.lower() in RASTER_SUFFIXES

    @property
    def looks_dicom(self) -> bool:
        return self.data[128:132] == b"DICM" or self.data[:2] in (b"\x02\x00", b"\x08\x00")


def shared_datasets() -> Path | None:
    """BRAIN_TRIAGE_DATA, else ../shared/datasets beside the checkout."""
    env = os.environ.get("BRAIN_TRIAGE_DATA")
    candidates = [Path(env)] if env else []
    repo = Path(__file__).resolve().parents[2]
    candidates += [repo.parent / "shared" / "datasets"]
    return next((c for c in candidates if c.is_dir()), None)


def _package_folder(module: str, *parts: str) -> Path | None:
    try:
        mod = __import__(module, fromlist=["__file__"])
    except ImportError:
        return None
    folder = Path(mod.__file__).parent.joinpath(*parts)
    return folder if folder.is_dir() else None


def _small_files(folder: Path | None, limit: int | None = None,
                 max_bytes: int = MAX_SEED_BYTES) -> list[Path]:
    if folder is None:
        return []
    found = sorted(p for p in folder.rglob("*")
                   if p.is_file() and 0 < p.stat().st_size <= max_bytes
                   and "__pycache__" not in p.parts and p.suffix != ".py")
    if limit is not None and len(found) > limit:
        step = len(found) / limit
        found = [found[int(i * step)] for i in range(limit)]
    return found


@functools.cache
def seed_paths() -> tuple[Path, ...]:
    paths: list[Path] = []
    paths += _small_files(_package_folder("pydicom.data", "test_files"))
    paths += _small_files(_package_folder("data_store", "data"))
    shared = shared_datasets()
    if shared is not None:
        for sub, limit in (("dicom/ge_epi_axial", 3), ("dicom/siemens_epi_axial", 4),
                           ("dicom/siemens_epi_mosaic_orientation", 8),
                           ("normal/dicom/canon_dti_sag", 2),
                           ("normal/dicom/ge_se_epi_fieldmap_ax", 2),
                           ("normal/dicom/philips_gre_fieldmap_ax", 2),
                           ("normal/dicom/siemens_t1_mprage_sag_enhanced", 1),
                           ("figshare_cheng/images", 4), ("figshare_cheng/masks", 3)):
            max_bytes = 4_000_000 if "enhanced" in sub else MAX_SEED_BYTES
            paths += [p for p in _small_files(shared / sub, limit, max_bytes)
                      if p.suffix.lower() not in (".txt", ".md")]
    return tuple(paths)


@functools.cache
def seeds() -> tuple[Seed, ...]:
    return tuple(Seed(p, p.read_bytes()) for p in seed_paths())


def dicom_seeds() -> tuple[Seed, ...]:
    return tuple(s for s in seeds() if not s.is_raster and s.looks_dicom)


def raster_seeds() -> tuple[Seed, ...]:
    return tuple(s for s in seeds() if s.is_raster)


def good_dicom() -> Path:
    """A file that must load whatever lies beside it."""
    shared = shared_datasets()
    if shared is not None:
        files = sorted((shared / "dicom" / "ge_epi_axial").glob("*.dcm"))
        if files:
            return files[0]
    folder = _package_folder("pydicom.data", "test_files")
    assert folder is not None
    return folder / "CT_small.dcm"
