"""The command line as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dicom_factory import gradient, mr_dataset, write
from workstation import __version__
from workstation.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workstation", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"workstation {__version__}"
    assert lines[1].startswith("model: triage-v2 ") and "sha256 " in lines[1]
    assert lines[-1] == "build: source checkout"


def test_inspect_json_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for k in range(3):
        write(mr_dataset(gradient(offset=k), series_uid="1.2.3.9", instance=k + 1,
                         position=(0, 0, float(k))), tmp_path / f"s{k}")
    (tmp_path / "broken.dcm").write_bytes(b"DICM")
    assert main(["inspect", str(tmp_path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    (series,) = document["series"]
    assert series["plane"] == "axial" and series["plane_source"] == "dicom"
    assert series["slice_count"] == 3 and series["rows"] == 32
    assert series["volumes"] == [{"index": 0, "label": "", "first_slice": 0, "slice_count": 3,
                                  "anatomical": True, "assessed": True,
                                  "not_assessed_reason": None}]
    assert series["modality"] == "MR" and series["series_uid"] == "1.2.3.9"
    assert series["transfer_syntaxes"] == ["Explicit VR Little Endian"]
    assert series["info"]["patient_id"] == "PID-001"
    assert [p["path"].endswith("broken.dcm") for p in document["problems"]] == [True]


def test_inspect_lists_each_volume_of_a_repeated_series(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for t in range(2):  # two time points of the same three positions, one series
        for k in range(3):
            write(mr_dataset(gradient(offset=k + t), series_uid="1.2.3.11",
                             instance=t * 3 + k + 1, position=(0, 0, float(k))),
                  tmp_path / f"t{t}s{k}")
    assert main(["inspect", str(tmp_path), "--json"]) == 0
    (series,) = json.loads(capsys.readouterr().out)["series"]
    assert [(v["label"], v["first_slice"], v["slice_count"], v["assessed"])
            for v in series["volumes"]] == [("time point 1", 0, 3, True),
                                            ("time point 2", 3, 3, False)]
    assert main(["inspect", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "volume 1 (time point 1): 3 slice(s)" in text
    assert ("volume 2 (time point 2): 3 slice(s); not assessed: the model reads one volume "
            "of the series (volume 1 (time point 1))") in text


def test_inspect_text_lists_series_and_problems(tmp_path: Path) -> None:
    write(mr_dataset(gradient(), series_uid="1.2.3.10", instance=1), tmp_path / "a.dcm")
    (tmp_path / "zero.dcm").write_bytes(b"")
    result = run_cli("inspect", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "1 series found" in result.stdout
    assert "axial (from DICOM)" in result.stdout
    assert "zero.dcm: the file is empty (0 bytes)" in result.stdout
    assert "Traceback" not in result.stderr


def test_inspect_nothing_found_exits_non_zero(tmp_path: Path) -> None:
    result = run_cli("inspect", str(tmp_path / "missing"))
    assert result.returncode == 1
    assert "does not exist" in result.stdout
    assert "Traceback" not in result.stderr


def test_mosaic_folder_json_planes(datasets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = datasets / "dicom" / "siemens_epi_mosaic_orientation"
    assert main(["inspect", str(root), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    planes = {Path(s["source"]).relative_to(root).parts[0]: set() for s in document["series"]}
    for s in document["series"]:
        planes[Path(s["source"]).relative_to(root).parts[0]].add(s["plane"])
    assert planes == {"ax": {"axial"}, "axmb": {"axial"}, "cor": {"coronal"},
                      "sag": {"sagittal"}}
    assert not [p for p in document["problems"] if p["severity"] == "error"]
