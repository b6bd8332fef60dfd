"""File > Send Results in the real window (offscreen): send to a loopback DICOM node,
see the queue keep what a down destination did not take, and send it when it is back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.dicomnet.store_scp import store_scp
from tests.orthanc import free_port
from tests.reporting.dicom_cases import GE, RegionEngine
from workstation.dicomnet.config import NetworkSettings, RemoteNode
from workstation.gui.main_window import MainWindow


@pytest.fixture(autouse=True)
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BRAIN_TRIAGE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("BRAIN_TRIAGE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def configure(port: int) -> None:
    NetworkSettings(destination="archive").with_node(
        RemoteNode("archive", "DESTINATION", "127.0.0.1", port)).save()


def open_triaged(qtbot, window: MainWindow, datasets: Path) -> None:  # type: ignore[no-untyped-def]
    engine = RegionEngine([5, 6, 7])
    window.holder.get = lambda device: engine  # type: ignore[method-assign]
    window.holder._engine = engine
    window.open_paths([str(datasets / GE)])
    qtbot.waitUntil(lambda: window.session.complete and not window.session.analysing,
                    timeout=60_000)


def menu_action(window: MainWindow, text: str):  # type: ignore[no-untyped-def]
    for action in window.actions():
        if action.text().replace("&", "") == text:
            return action
    raise AssertionError(f"no action {text!r}")


def test_send_results_reaches_the_destination(qtbot, window: MainWindow, datasets: Path,  # type: ignore[no-untyped-def]
                                              folders: Path) -> None:
    with store_scp(ae_title="DESTINATION") as scp:
        configure(scp.port)
        open_triaged(qtbot, window, datasets)
        menu_action(window, "Send Results to PACS...").trigger()
        dialog = window.results_sender.dialog
        assert dialog is not None and dialog.isVisible()
        assert dialog.destination.currentData() == "archive"
        dialog.send_button.click()
        qtbot.waitUntil(lambda: window.results_sender.last_summary is not None,
                        timeout=60_000)
    summary = window.results_sender.last_summary
    assert summary is not None and summary.report.delivered_all
    assert len(scp.received) == summary.exported == summary.report.sent
    kinds = {str(d.SOPClassUID) for d in scp.received}
    assert {"1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.66.4",
            "1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.5.1.4.1.1.7"} == kinds
    assert f"{summary.exported} result objects sent to archive" in dialog.status.text()
    assert dialog.queue_list.topLevelItemCount() == 0
    dialog.grab().save(str(folders / "send_results_sent.png"))


def test_a_down_destination_keeps_the_results_queued_until_it_answers(  # type: ignore[no-untyped-def]
        qtbot, window: MainWindow, datasets: Path, folders: Path) -> None:
    port = free_port()
    configure(port)
    open_triaged(qtbot, window, datasets)
    dialog = window.results_sender.open()
    assert dialog is not None
    dialog.send()
    qtbot.waitUntil(lambda: window.results_sender.last_summary is not None, timeout=60_000)
    summary = window.results_sender.last_summary
    assert summary is not None and summary.report.sent == 0
    assert summary.report.waiting == summary.exported
    status = dialog.status.text()
    assert "waiting in the send queue" in status
    assert f"the destination did not answer at 127.0.0.1:{port} (archive)" in status
    rows = [dialog.queue_list.topLevelItem(i) for i in range(dialog.queue_list.topLevelItemCount())]
    assert len(rows) == summary.exported
    assert all(r.text(0) == "waiting" and "did not answer" in r.text(4) for r in rows)
    dialog.grab().save(str(folders / "send_results_waiting.png"))
    with store_scp(ae_title="DESTINATION") as scp:
        # the destination answers now (its address corrected in the settings, which the
        # queue reads when it sends): "Try waiting sends now"
        configure(scp.port)
        dialog.retry_button.click()
        qtbot.waitUntil(lambda: window.results_sender.last_retry is not None, timeout=60_000)
    report = window.results_sender.last_retry
    assert getattr(report, "sent", 0) == summary.exported and len(scp.received) == summary.exported
    assert dialog.queue_list.topLevelItemCount() == 0
