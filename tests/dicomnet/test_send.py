"""C-STORE of the DICOM results: to a real Orthanc on loopback, and to a loopback SCP that
refuses, runs out of resources or does not know this workstation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dicomnet.store_scp import store_scp
from tests.orthanc import free_port, requires_orthanc, start_orthanc
from tests.reporting.dicom_cases import GE, triaged
from tests.reporting.test_dicom_export import SOP_CLASSES
from workstation.dicomnet.config import RemoteNode
from workstation.dicomnet.send import DestinationUnavailableError, send_files
from workstation.reporting.dicom_export import DicomExport, export_results


@pytest.fixture(scope="module")
def export(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> DicomExport:
    result = triaged(datasets, GE, tumour=[5, 6, 7])
    return export_results(result, tmp_path_factory.mktemp("results"), readings={})


def source_files(export: DicomExport, datasets: Path) -> list[Path]:
    import pydicom

    files = sorted((datasets / GE).glob("*.dcm"))
    wanted = []
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.StudyInstanceUID == export.study_uid and int(ds.InstanceNumber) <= 15:
            wanted.append(path)
    return wanted


@requires_orthanc
def test_orthanc_files_the_results_in_the_source_study(export: DicomExport, datasets: Path,
                                                      tmp_path: Path) -> None:
    with start_orthanc(tmp_path / "orthanc") as pacs:
        pacs.upload_files(source_files(export, datasets))
        node = RemoteNode("pacs", pacs.ae_title, pacs.host, pacs.dicom_port)
        progress: list[tuple[int, int]] = []
        result = send_files(node, list(export.paths), calling_ae="BRAINTRIAGE",
                            progress=lambda n, total: progress.append((n, total)))
        assert [o.message for o in result.outcomes] == ["stored"] * len(export.objects)
        assert progress[-1] == (len(export.objects), len(export.objects))
        studies = [pacs.rest(f"/studies/{s}") for s in pacs.rest("/studies")]
        assert [s["MainDicomTags"]["StudyInstanceUID"] for s in studies] == [export.study_uid]
        classes: dict[str, str] = {}
        for series_id in studies[0]["Series"]:
            for instance_id in pacs.rest(f"/series/{series_id}")["Instances"]:
                tags = pacs.rest(f"/instances/{instance_id}/simplified-tags")
                classes[tags["SOPInstanceUID"]] = tags["SOPClassUID"]
        sent = {o.sop_instance_uid: SOP_CLASSES[o.kind] for o in export.objects}
        assert {uid: classes.get(uid) for uid in sent} == sent
        assert len(studies[0]["Series"]) == 1 + len({o.series_uid for o in export.objects})


def test_a_destination_that_does_not_answer_is_said_in_words(export: DicomExport) -> None:
    node = RemoteNode("PACS", "NOBODY", "127.0.0.1", free_port())
    with pytest.raises(DestinationUnavailableError,
                       match=rf"did not answer at 127\.0\.0\.1:{node.port} \(PACS\)"):
        send_files(node, list(export.paths), timeout=5)


def test_a_destination_that_does_not_know_its_own_ae_title_refuses(export: DicomExport
                                                                   ) -> None:
    with store_scp(ae_title="DESTINATION") as scp:
        node = RemoteNode("archive", "WRONGTITLE", scp.host, scp.port)
        with pytest.raises(DestinationUnavailableError, match="refused the connection"):
            send_files(node, list(export.paths), timeout=5)
        assert scp.received == []


def test_each_file_has_its_own_outcome(export: DicomExport) -> None:
    sr = export.of_kind("SR")[0].sop_instance_uid
    pdf = export.of_kind("PDF")[0].sop_instance_uid

    def answer(ds: object) -> int:
        uid = getattr(ds, "SOPInstanceUID", "")
        return 0xA700 if uid == sr else 0xC000 if uid == pdf else 0x0000

    with store_scp(answer) as scp:
        node = RemoteNode("archive", scp.ae_title, scp.host, scp.port)
        result = send_files(node, list(export.paths), timeout=10)
    by_uid = {o.sop_instance_uid: o for o in result.outcomes}
    assert not by_uid[sr].stored and by_uid[sr].retry
    assert "out of resources" in by_uid[sr].message
    assert not by_uid[pdf].stored and not by_uid[pdf].retry
    assert "refused" in by_uid[pdf].message and "0xC000" in by_uid[pdf].message
    assert len(result.stored) == len(export.objects) - 2
    assert {d.SOPInstanceUID for d in scp.received} == {
        o.sop_instance_uid for o in export.objects} - {sr, pdf}


def test_command_line_sends_and_queues_what_a_down_destination_did_not_take(
        datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from workstation.cli import main
    from workstation.dicomnet.config import NetworkSettings
    from workstation.store.send_queue import SendQueue

    monkeypatch.setenv("BRAIN_TRIAGE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("BRAIN_TRIAGE_DATA_DIR", str(tmp_path / "data"))
    down = free_port()
    NetworkSettings().with_node(RemoteNode("archive", "DESTINATION", "127.0.0.1", down)).save()
    source = str(datasets / GE)
    assert main(["triage", source, "--device", "cpu", "--send", "archive"]) == 6
    err = capsys.readouterr().err
    assert f"the destination did not answer at 127.0.0.1:{down} (archive)" in err
    assert "wait in the send queue" in err
    waiting = len(SendQueue().pending())
    assert waiting >= 3  # SR, PDF and the key images (no region: no SEG)
    with store_scp(ae_title="DESTINATION") as scp:
        NetworkSettings().with_node(
            RemoteNode("archive", "DESTINATION", scp.host, scp.port)).save()
        # the next send delivers its own results and the ones that waited
        assert main(["triage", source, "--device", "cpu", "--send", "archive"]) == 0
    assert len(scp.received) == 2 * waiting
    assert f"{2 * waiting} result objects sent to archive" in capsys.readouterr().err
    assert not SendQueue().pending()


def test_command_line_refuses_an_unknown_destination_before_reading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from workstation.cli import main

    monkeypatch.setenv("BRAIN_TRIAGE_CONFIG_DIR", str(tmp_path / "config"))
    assert main(["triage", str(tmp_path / "missing"), "--send", "nowhere"]) == 2
    assert "no DICOM node named 'nowhere'" in capsys.readouterr().err
