from __future__ import annotations

from copy import deepcopy
from pathlib import Path

import pydicom
import pytest

from tests.dicomnet.conftest import instance, stored_files
from workstation.dicomnet.storage import (
    INCOMING,
    StorageError,
    StorageFullError,
    remove_partial_files,
    safe_name,
    write_instance,
)


def test_an_instance_is_stored_under_its_uids_and_reads_back_the_same(tmp_path: Path) -> None:
    ds = instance()
    stored = write_instance(tmp_path / "store", ds)
    assert stored.path == (tmp_path / "store" / ds.StudyInstanceUID / ds.SeriesInstanceUID
                           / f"{ds.SOPInstanceUID}.dcm")
    assert not stored.duplicate and stored.size == stored.path.stat().st_size
    back = pydicom.dcmread(stored.path)
    assert back.SOPInstanceUID == ds.SOPInstanceUID
    assert bytes(back.PixelData) == bytes(ds.PixelData)
    assert list((tmp_path / "store" / INCOMING).iterdir()) == []  # no temporary file left


def test_a_duplicate_is_accepted_and_the_first_copy_kept(tmp_path: Path) -> None:
    first = instance()
    stored = write_instance(tmp_path, first)
    before = stored.path.read_bytes()
    second = deepcopy(first)
    second.PatientName = "Someone^Else"
    again = write_instance(tmp_path, second)
    assert again.duplicate and again.path == stored.path
    assert stored.path.read_bytes() == before
    assert len(stored_files(tmp_path)) == 1


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
@pytest.mark.parametrize("field", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
def test_a_crafted_uid_cannot_write_outside_the_store(tmp_path: Path, field: str) -> None:
    store = tmp_path / "deep" / "store"
    ds = instance()
    setattr(ds, field, "../../../escaped")
    stored = write_instance(store, ds)
    assert stored.path.resolve().is_relative_to(store.resolve())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["store"]
    assert ".." not in stored.path.relative_to(store).parts
    assert pydicom.dcmread(stored.path).get(field) == "../../../escaped"


def test_safe_names() -> None:
    assert safe_name("1.2.840.10008.1.1") == "1.2.840.10008.1.1"
    for bad in ("../x", "/etc/passwd", "1.2.3/../4", "1..2", "C:\\x", "", "1." + "9" * 70):
        name = safe_name(bad)
        assert name.startswith("x") and len(name) == 41 and name.isalnum()
    assert safe_name("../a") != safe_name("../b")


def test_an_instance_without_uids_is_refused_in_words(tmp_path: Path) -> None:
    ds = instance()
    del ds.SOPInstanceUID
    with pytest.raises(StorageError, match="no SOP Instance UID"):
        write_instance(tmp_path, ds)
    assert stored_files(tmp_path) == []


def test_below_the_free_space_threshold_nothing_is_written(tmp_path: Path) -> None:
    write_instance(tmp_path, instance())
    with pytest.raises(StorageFullError, match="MB free"):
        write_instance(tmp_path, instance(), min_free_bytes=2**62)
    assert len(stored_files(tmp_path)) == 1
    assert list((tmp_path / INCOMING).iterdir()) == []


def test_partial_files_of_a_stopped_receiver_are_removed(tmp_path: Path) -> None:
    write_instance(tmp_path, instance())
    (tmp_path / INCOMING / "abc.part").write_bytes(b"DICM half")
    assert remove_partial_files(tmp_path) == 1
    assert list((tmp_path / INCOMING).iterdir()) == []
    assert len(stored_files(tmp_path)) == 1
