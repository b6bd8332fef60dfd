"""The persistent send queue: retries with back-off while the destination is down,
survives a restart, delivers when it is back, and writes each send to the audit trail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dicomnet.store_scp import store_scp
from tests.orthanc import free_port, requires_orthanc, start_orthanc
from tests.reporting.dicom_cases import GE, triaged
from workstation.dicomnet.config import NetworkSettings, RemoteNode
from workstation.reporting.dicom_export import DicomExport, export_results
from workstation.store.send_queue import FAILED, PENDING, SENT, SendQueue, backoff


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def export(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> DicomExport:
    result = triaged(datasets, GE, tumour=[5, 6, 7])
    return export_results(result, tmp_path_factory.mktemp("results"), readings={})


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("BRAIN_TRIAGE_DATA_DIR", str(folder))
    return folder


def settings_for(name: str, ae_title: str, host: str, port: int) -> NetworkSettings:
    return NetworkSettings(ae_title="BRAINTRIAGE").with_node(
        RemoteNode(name, ae_title, host, port))


def audit_events() -> list[tuple[str, str, str]]:
    from workstation.store.audit import AuditLog, default_path

    with AuditLog(default_path()) as log:
        return [(e.event, e.outcome, e.study_uid) for e in log.events()]


def test_backoff_doubles_up_to_a_ceiling() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [10.0, 20.0, 40.0, 80.0]
    assert backoff(30) == 1800.0


def test_queue_in_the_data_folder_and_files_copied_to_its_outbox(export: DicomExport,
                                                                 data_dir: Path) -> None:
    queue = SendQueue()
    queue.enqueue("pacs", export.paths, study_uid=export.study_uid)
    assert queue.path == data_dir / "send_queue.sqlite"
    pending = queue.pending()
    assert len(pending) == len(export.objects)
    for item, original in zip(pending, export.paths, strict=True):
        assert item.path.parent.parent == data_dir / "outbox"
        assert item.path.read_bytes() == original.read_bytes()


def test_retries_with_backoff_survives_a_restart_and_delivers(export: DicomExport) -> None:
    clock = Clock()
    port = free_port()
    settings = settings_for("archive", "DESTINATION", "127.0.0.1", port)
    queue = SendQueue(clock=clock)
    queue.enqueue("archive", export.paths, study_uid=export.study_uid)
    first = queue.process(settings)
    assert (first.sent, first.waiting) == (0, len(export.objects))
    assert first.messages == (f"the destination did not answer at 127.0.0.1:{port} (archive)",)
    assert first.next_try == clock.now + 10.0
    assert {i.last_error for i in queue.pending()} == set(first.messages)

    restarted = SendQueue(clock=clock)  # the program was closed and opened again
    with store_scp(ae_title="DESTINATION") as scp:
        # the destination is back, but the next try is not due yet: nothing is sent
        not_due = restarted.process(settings_for("archive", "DESTINATION", scp.host, scp.port))
        assert (not_due.sent, not_due.waiting) == (0, len(export.objects))
        assert scp.received == []
        clock.now += 10.0
        back = restarted.process(settings_for("archive", "DESTINATION", scp.host, scp.port))
    assert back.sent == len(export.objects) and back.delivered_all
    assert {d.SOPInstanceUID for d in scp.received} == {o.sop_instance_uid
                                                        for o in export.objects}
    sent = restarted.items(SENT)
    assert len(sent) == len(export.objects) and not restarted.pending()
    assert all(not item.path.exists() for item in sent)  # the outbox copy is gone
    assert {i.attempts for i in sent} == {2}
    assert audit_events() == [("results_sent", "minor failure", export.study_uid),
                              ("results_sent", "success", export.study_uid)]


def test_a_refused_file_is_kept_as_failed_and_not_sent_again(export: DicomExport) -> None:
    pdf = export.of_kind("PDF")[0].sop_instance_uid
    clock = Clock()
    with store_scp(lambda ds: 0xC000 if ds.SOPInstanceUID == pdf else 0x0000) as scp:
        settings = settings_for("archive", scp.ae_title, scp.host, scp.port)
        queue = SendQueue(clock=clock)
        queue.enqueue("archive", export.paths, study_uid=export.study_uid)
        report = queue.process(settings)
        clock.now += 3600
        again = queue.process(settings)
    assert (report.sent, report.failed, report.waiting) == (len(export.objects) - 1, 1, 0)
    assert (again.sent, again.failed) == (0, 0)
    failed = queue.items(FAILED)
    assert len(failed) == 1 and "0xC000" in failed[0].last_error
    assert failed[0].path.is_file()  # kept for the user to see
    assert ("results_sent", "serious failure", export.study_uid) in audit_events()


def test_an_unknown_destination_waits_in_the_queue_in_plain_words(export: DicomExport
                                                                  ) -> None:
    queue = SendQueue()
    queue.enqueue("gone", export.paths[:1])
    report = queue.process(NetworkSettings())
    assert report.waiting == 1 and "no DICOM node named 'gone'" in report.messages[0]
    assert [i.state for i in queue.items()] == [PENDING]


@requires_orthanc
def test_orthanc_stopped_then_started_receives_from_the_queue(export: DicomExport,
                                                             datasets: Path,
                                                             tmp_path: Path) -> None:
    clock = Clock()
    with start_orthanc(tmp_path / "orthanc") as pacs:
        settings = settings_for("pacs", pacs.ae_title, pacs.host, pacs.dicom_port)
        pacs.stop()
        queue = SendQueue(clock=clock)
        queue.enqueue("pacs", export.paths, study_uid=export.study_uid)
        down = queue.process(settings)
        assert down.sent == 0 and down.waiting == len(export.objects)
        assert f"did not answer at {pacs.host}:{pacs.dicom_port} (pacs)" in down.messages[0]
        pacs.start()
        clock.now += backoff(1)
        up = SendQueue(clock=clock).process(settings)  # after a restart of the program
        assert up.sent == len(export.objects) and up.delivered_all
        studies = pacs.rest("/studies")
        assert len(studies) == 1
        study = pacs.rest(f"/studies/{studies[0]}")
        assert study["MainDicomTags"]["StudyInstanceUID"] == export.study_uid
        instances = {pacs.rest(f"/instances/{i}/simplified-tags")["SOPInstanceUID"]
                     for s in study["Series"] for i in pacs.rest(f"/series/{s}")["Instances"]}
        assert instances == {o.sop_instance_uid for o in export.objects}


def test_the_receiver_sends_what_waits_in_the_queue(export: DicomExport, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from workstation.commands.serve import drain_send_queue

    monkeypatch.setenv("BRAIN_TRIAGE_CONFIG_DIR", str(tmp_path / "config"))
    stop = threading.Event()
    with store_scp(ae_title="DESTINATION") as scp:
        settings_for("archive", "DESTINATION", scp.host, scp.port).save()
        SendQueue().enqueue("archive", export.paths, study_uid=export.study_uid)
        drainer = threading.Thread(target=drain_send_queue, args=(stop, 0.1))
        drainer.start()
        try:
            deadline = time.monotonic() + 60
            while len(scp.received) < len(export.objects) and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            stop.set()
            drainer.join(timeout=30)
    assert {d.SOPInstanceUID for d in scp.received} == {o.sop_instance_uid
                                                        for o in export.objects}
    assert not SendQueue().pending()
