"""Durable storage of received DICOM instances: ``store/Study/Series/SOP.dcm``.

Each instance is written to a temporary file inside the store, flushed to disk (fsync),
then linked into place and the folder flushed, so that once ``write_instance`` returns the
instance survives a crash or a power cut, and a file at its final name is always whole.
Folder and file names come from the instance's UIDs after checking that they are UIDs
(digits and dots); anything else a sender wrote is replaced by a digest of it, so no name
a sender controls can reach outside the store. A second copy of an instance already stored
is accepted and leaves the first one untouched.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset
from pydicom.filewriter import dcmwrite

INCOMING = ".incoming"  # temporary files, on the store's own file system
PART_SUFFIX = ".part"
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


class StorageError(OSError):
    """An instance could not be stored (said in plain words); nothing stored before is
    lost."""


class StorageFullError(StorageError):
    """The store's disk has too little free space for the instance."""


@dataclass(frozen=True)
class StoredInstance:
    path: Path
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    size: int  # bytes of the stored file
    duplicate: bool  # the instance was already stored; the first copy was kept

    @property
    def study_folder(self) -> Path:
        return self.path.parent.parent


def safe_name(uid: str) -> str:
    """A file-system name for ``uid``: the UID itself when it is one (digits and dots, at
    most 64 characters), else ``x`` and a digest of whatever was sent."""
    text = str(uid).strip().rstrip("\0")
    if 0 < len(text) <= 64 and _UID.match(text):
        return text
    return "x" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:40]


def instance_path(store_root: Path, study_uid: str, series_uid: str, sop_uid: str) -> Path:
    return Path(store_root) / safe_name(study_uid) / safe_name(series_uid) / (
        safe_name(sop_uid) + ".dcm")


def study_folder(store_root: Path, study_uid: str) -> Path:
    return Path(store_root) / safe_name(study_uid)


def free_bytes(path: Path) -> int:
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _uid_of(dataset: Dataset, keyword: str, what: str) -> str:
    value = str(dataset.get(keyword, "") or "").strip()
    if not value:
        raise StorageError(f"the instance has no {what}; it was not stored")
    return value


def _encode(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    try:
        dcmwrite(buffer, dataset, enforce_file_format=True)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise StorageError(f"the instance could not be written as a DICOM file: {exc}") from exc
    return buffer.getvalue()


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":  # folders cannot be opened for fsync on Windows
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _make_folders(store_root: Path, target: Path) -> None:
    """Create the study and series folders, flushing each new entry to disk."""
    missing = []
    folder = target.parent
    while not folder.exists() and folder != store_root:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        _fsync_folder(folder.parent)


def _inside(store_root: Path, target: Path) -> bool:
    root = store_root.resolve()
    return target.resolve().is_relative_to(root)


def _failure(exc: OSError, sop_uid: str) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(f"the store's disk is full; instance {sop_uid} was not stored")
    return StorageError(f"instance {sop_uid} could not be stored: {exc.strerror or exc}")


def write_instance(store_root: Path, dataset: Dataset, *, min_free_bytes: int = 0,
                   encoded: bytes | None = None) -> StoredInstance:
    """Store ``dataset`` (with its ``file_meta``) durably under ``store_root``.
    ``encoded``: the instance's bytes as a DICOM file when the caller has them already (a
    receiver's ``event.encoded_dataset()``: the sender's bytes, kept as they came);
    else ``dataset`` is encoded here.

    Raises ``StorageFullError`` when the disk would keep less than ``min_free_bytes`` free
    or runs out of space, ``StorageError`` for any other failure; in both cases no file is
    left at the instance's name and nothing stored before is touched.
    """
    store_root = Path(store_root)
    study_uid = _uid_of(dataset, "StudyInstanceUID", "Study Instance UID")
    series_uid = _uid_of(dataset, "SeriesInstanceUID", "Series Instance UID")
    sop_uid = _uid_of(dataset, "SOPInstanceUID", "SOP Instance UID")
    sop_class = str(dataset.get("SOPClassUID", "") or "")
    target = instance_path(store_root, study_uid, series_uid, sop_uid)

    def stored(duplicate: bool) -> StoredInstance:
        return StoredInstance(target, study_uid, series_uid, sop_uid, sop_class,
                              target.stat().st_size, duplicate)

    if target.is_file():
        return stored(True)
    if encoded is None:
        encoded = _encode(dataset)
    incoming = store_root / INCOMING
    try:
        incoming.mkdir(parents=True, exist_ok=True)
        if free_bytes(incoming) - len(encoded) < min_free_bytes:
            raise StorageFullError(
                f"the store's disk has less than {min_free_bytes // 2**20} MB free; instance "
                f"{sop_uid} was not stored")
        _make_folders(store_root, target)
    except StorageError:
        raise
    except OSError as exc:
        raise _failure(exc, sop_uid) from exc
    if not _inside(store_root, target):  # unreachable with safe names; kept as a guard
        raise StorageError(f"instance {sop_uid} would be stored outside the store")
    temporary = incoming / f"{uuid.uuid4().hex}{PART_SUFFIX}"
    try:
        with open(temporary, "xb") as handle:
            handle.write(encoded)
            handle.flush()
            os.fsync(handle.fileno())
        duplicate = not _link_into_place(temporary, target)
        _fsync_folder(target.parent)
    except OSError as exc:
        raise _failure(exc, sop_uid) from exc
    finally:
        temporary.unlink(missing_ok=True)
    return stored(duplicate)


def _link_into_place(temporary: Path, target: Path) -> bool:
    """Give ``temporary`` the name ``target`` unless another copy got there first
    (returns False then). A hard link never replaces an existing file."""
    try:
        os.link(temporary, target)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
    if target.exists():  # a file system without hard links
        return False
    os.replace(temporary, target)
    return True


def remove_partial_files(store_root: Path) -> int:
    """Delete temporary files a stopped receiver left behind (they were never
    acknowledged); returns how many."""
    incoming = Path(store_root) / INCOMING
    removed = 0
    for leftover in incoming.glob(f"*{PART_SUFFIX}") if incoming.is_dir() else ():
        leftover.unlink(missing_ok=True)
        removed += 1
    return removed
