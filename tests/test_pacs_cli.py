"""``workstation pacs find | get`` against a real Orthanc on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.dicomnet.test_query import pixel_digest, study_files, study_uid
from tests.orthanc import Orthanc, free_port, orthanc_holding, requires_orthanc
from workstation.cli import main
from workstation.dicomnet.config import NetworkSettings, RemoteNode

AE_TITLE = "BRAINTRIAGE"


@pytest.fixture(scope="module")
def loaded(datasets: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Orthanc, dict[str, list[Path]]]]:
    files = study_files(datasets)
    del files["ge"]  # the two small studies are enough here
    with orthanc_holding(tmp_path_factory.mktemp("orthanc"), files, AE_TITLE) as server:
        yield server, files


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BRAIN_TRIAGE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("BRAIN_TRIAGE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture
def configured(loaded: tuple[Orthanc, dict[str, list[Path]]], folders: Path
               ) -> dict[str, list[Path]]:
    """The PACS written into the user's dicom.json, as an IT person would."""
    server, files = loaded
    node = RemoteNode("pacs", server.ae_title, server.host, server.dicom_port)
    NetworkSettings(ae_title=AE_TITLE, min_free_mb=0, pacs="pacs", nodes=(node,)).save()
    return files


@requires_orthanc
def test_find_prints_the_studies_as_json(configured: dict[str, list[Path]],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pacs", "find", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["pacs"] == "pacs"
    by_uid = {s["study_uid"]: s for s in document["studies"]}
    assert set(by_uid) == {study_uid(f) for f in configured.values()}
    mosaic = by_uid[study_uid(configured["mosaic"])]
    assert (mosaic["patient_name"], mosaic["patient_id"], mosaic["study_date"],
            mosaic["modalities"], mosaic["instance_count"]) == (
        "stc_test", "crlab", "20140310", ["MR"], 6)


@requires_orthanc
def test_find_filters_and_prints_one_line_a_study(configured: dict[str, list[Path]],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pacs", "find", "--patient", "regression", "--date", "2018-09-18",
                 "--modality", "MR", "--description", "qa"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "1 studies on pacs"
    assert lines[0].startswith("2018-09-18  Test Regression  ID DEV  MR  FMRIF^QA")
    assert lines[0].endswith(study_uid(configured["siemens"]))
    assert main(["pacs", "find", "--modality", "CT"]) == 1  # nothing found
    assert capsys.readouterr().out.strip() == "0 studies on pacs"


@requires_orthanc
def test_get_retrieves_into_the_store_and_the_worklist(configured: dict[str, list[Path]],
                                                       folders: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    sent = configured["mosaic"]
    uid = study_uid(sent)
    assert main(["pacs", "get", uid, "--json"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert (document["received"], document["failed"], document["complete"]) == (6, 0, True)
    folder = Path(document["folder"])
    assert folder.parent == folders / "data" / "store"  # the data folder's store
    assert {pixel_digest(p) for p in folder.rglob("*.dcm")} == {pixel_digest(p) for p in sent}
    assert "Received 6 of 6 images" in captured.err
    assert main(["worklist", "--json"]) == 0
    studies = json.loads(capsys.readouterr().out)["studies"]
    assert [(s["study_uid"], s["instance_count"], s["state"]) for s in studies] == [
        (uid, 6, "receiving")]


@requires_orthanc
def test_get_into_another_store_in_words(configured: dict[str, list[Path]], folders: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    uid = study_uid(configured["siemens"])
    assert main(["pacs", "get", uid, "--store", str(folders / "elsewhere")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"retrieved 8 images of study {uid} from pacs into "
                          f"{folders / 'elsewhere' / uid}")
    assert sorted(pydicom.dcmread(p).SOPInstanceUID for p in (folders / "elsewhere").rglob(
        "*.dcm")) == sorted(pydicom.dcmread(p).SOPInstanceUID for p in configured["siemens"])


def test_no_pacs_configured_is_said_with_status_2(folders: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pacs", "find"]) == 2
    assert "no PACS is configured" in capsys.readouterr().err


def test_a_bad_date_is_said_with_status_2(folders: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    NetworkSettings(nodes=(RemoteNode("pacs", "PACS", "127.0.0.1", 104),)).save()
    assert main(["pacs", "find", "--date", "31/12/2020"]) == 2
    assert "study date '31/12/2020' must be YYYYMMDD" in capsys.readouterr().err


def test_an_unreachable_pacs_is_said_with_status_3(folders: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    NetworkSettings(nodes=(RemoteNode("main", "PACS", "127.0.0.1", port),),
                    pacs="main").save()
    assert main(["pacs", "get", "1.2.3"]) == 3
    err = capsys.readouterr().err
    assert err == f"workstation: the PACS did not answer at 127.0.0.1:{port} (main)\n"
