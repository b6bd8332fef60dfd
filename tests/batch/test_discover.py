from __future__ import annotations

import shutil
from pathlib import Path

from tests.dicom_factory import gradient, mr_dataset, write
from workstation.batch.discover import discover


def test_studies_are_grouped_by_uid_pictures_by_folder(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    first = mr_dataset(gradient(), series_uid="1.2.3.1", instance=1)
    first.StudyInstanceUID = "1.2.3"
    second = mr_dataset(gradient(), series_uid="1.2.3.2", instance=1)
    second.StudyInstanceUID = "1.2.3"
    write(first, archive / "a" / "one.dcm")
    write(second, archive / "b" / "deep" / "two.dcm")  # same study, other folder
    (archive / "pictures").mkdir(parents=True)
    for name in ("x.png", "y.jpg"):
        (archive / "pictures" / name).write_bytes(b"not really a picture")
    (archive / "a" / "notes.txt").write_text("the referrer's note")
    (archive / "a" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    (archive / "a" / "scan.dcm").write_bytes(b"no preamble, no header: a damaged file")
    (archive / ".hidden").mkdir()
    write(mr_dataset(gradient(), series_uid="9.9", instance=1), archive / ".hidden" / "h.dcm")

    found = discover([archive])
    keys = [s.key for s in found.studies]
    assert "dicom:1.2.3" in keys
    study = next(s for s in found.studies if s.key == "dicom:1.2.3")
    assert sorted(Path(f).name for f in study.files) == ["one.dcm", "two.dcm"]
    pictures = next(s for s in found.studies if s.key.endswith("pictures"))
    assert len(pictures.files) == 2
    # the damaged DICOM file goes with its folder, so its study's result names it
    damaged = next(s for s in found.studies if s.key == f"folder:{archive / 'a'}")
    assert sorted(Path(f).name for f in damaged.files) == ["broken.dcm", "scan.dcm"]
    assert found.files_left_out == 1  # the note
    assert not any("h.dcm" in f for s in found.studies for f in s.files)
    assert len({s.file_stem for s in found.studies}) == len(found.studies)


def test_missing_root_is_named(tmp_path: Path) -> None:
    found = discover([tmp_path / "absent"])
    assert found.studies == [] and found.unreadable_roots == [str(tmp_path / "absent")]


def test_order_is_stable(tmp_path: Path, datasets: Path) -> None:
    archive = tmp_path / "copy"
    shutil.copytree(datasets / "dicom" / "siemens_epi_axial", archive)
    assert discover([archive]).studies == discover([archive]).studies
