"""Shared fixtures: real datasets (skip when absent) and installed DICOM test files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _private_data_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The tests' audit log, worklist and readings go to a temporary data folder, never
    the user's own (``BRAIN_TRIAGE_DATA_DIR``; a test may point it elsewhere)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("BRAIN_TRIAGE_DATA_DIR", str(tmp_path_factory.mktemp("user-data")))
    yield
    patch.undo()


def shared_datasets() -> Path | None:
    """``$BRAIN_TRIAGE_DATA``, else ``../shared/datasets`` beside the checkout, else None."""
    configured = os.environ.get("BRAIN_TRIAGE_DATA")
    candidate = Path(configured) if configured else REPO.parent / "shared" / "datasets"
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="session")
def datasets() -> Path:
    found = shared_datasets()
    if found is None:
        pytest.skip("real datasets not available (set BRAIN_TRIAGE_DATA)")
    return found


@pytest.fixture(scope="session")
def pydicom_files() -> Path:
    """pydicom's bundled test files (read by path; nothing is downloaded)."""
    import pydicom.data

    return Path(pydicom.data.__file__).parent / "test_files"


@pytest.fixture(scope="session")
def pydicom_data_files() -> Path:
    """The pydicom-data package's larger test files."""
    data_store = pytest.importorskip("data_store")
    return Path(data_store.__file__).parent / "data"
