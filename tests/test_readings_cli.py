"""``workstation readings``: the readers' readings listed and recorded from the command line
(the same files the window's reading form writes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dicom_factory import gradient, mr_dataset, write
from workstation.cli import main
from workstation.imaging import load_study
from workstation.store.readings import load_readings


@pytest.fixture
def study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BRAIN_TRIAGE_DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / "study"
    folder.mkdir()
    for k in range(3):
        write(mr_dataset(gradient(offset=k), series_uid="1.2.3.9", instance=k + 1,
                         position=(0, 0, float(k))), folder / f"s{k}")
    return folder


def test_record_then_list(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["readings", str(study)]) == 0
    assert capsys.readouterr().out.startswith("no readings saved for this study")
    assert main(["readings", str(study), "--record", "disagree", "--class", "meningioma",
                 "--note", " dural tail ", "--reader", "Dr A"]) == 0
    listed = capsys.readouterr().out
    assert ": disagree (meningioma) by Dr A at " in listed and listed.endswith(": dural tail\n")
    assert main(["readings", str(study), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    (reading,) = document["readings"]
    assert (reading["series_key"], reading["agreement"], reading["corrected_class"],
            reading["note"]) == ("1.2.3.9", "disagree", "meningioma", "dural tail")
    # what the window reads back for this study
    saved = load_readings(load_study([str(study)]))
    assert saved["1.2.3.9"].reader == "Dr A"


def test_wrong_series_or_class_is_refused(study: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["readings", str(study), "--record", "agree", "--series", "2"]) == 2
    assert "there is no series 2 (the study has 1)" in capsys.readouterr().err
    assert main(["readings", str(study), "--record", "agree", "--class", "glioma"]) == 2
    assert "--class goes with --record disagree" in capsys.readouterr().err
    assert load_readings(load_study([str(study)])) == {}


def test_no_series(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("no images")
    assert main(["readings", str(tmp_path)]) == 1
    assert "no image series" in capsys.readouterr().err
