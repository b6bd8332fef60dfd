"""The "Open from PACS" dialog against a real Orthanc on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog

from tests.dicomnet.test_query import orthanc_loaded, pixel_digest, study_uid
from tests.orthanc import Orthanc, free_port, requires_orthanc
from workstation.dicomnet.config import NetworkSettings, RemoteNode
from workstation.gui.main_window import MainWindow
from workstation.gui.pacs_dialog import ERROR_INK, PacsDialog
from workstation.store.worklist import Worklist

AE_TITLE = "BRAINTRIAGE"


@pytest.fixture(scope="module")
def loaded(datasets: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Orthanc, dict[str, list[Path]]]]:
    yield from orthanc_loaded(datasets, tmp_path_factory)


@pytest.fixture
def settings(loaded: tuple[Orthanc, dict[str, list[Path]]], tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> NetworkSettings:
    monkeypatch.setenv("BRAIN_TRIAGE_DATA_DIR", str(tmp_path / "data"))
    server, _ = loaded
    node = RemoteNode("pacs", server.ae_title, server.host, server.dicom_port)
    return NetworkSettings(ae_title=AE_TITLE, store_dir=str(tmp_path / "store"), min_free_mb=0,
                           pacs="pacs", nodes=(node,))


@pytest.fixture
def dialog(qtbot, settings: NetworkSettings, tmp_path: Path) -> PacsDialog:  # type: ignore[no-untyped-def]
    shown = PacsDialog(settings, worklist_path=tmp_path / "worklist.sqlite")
    qtbot.addWidget(shown)
    shown.show()
    return shown


def search(qtbot, dialog: PacsDialog, **fields: str) -> None:  # type: ignore[no-untyped-def]
    for name, value in fields.items():
        widget = getattr(dialog, name)
        if name == "modality":
            widget.setCurrentText(value)
        else:
            widget.setText(value)
    dialog.search_button.click()
    assert dialog.busy
    qtbot.waitUntil(lambda: not dialog.busy, timeout=20_000)


def rows(dialog: PacsDialog) -> list[list[str]]:
    return [[dialog.table.item(r, c).text() for c in range(dialog.table.columnCount())]
            for r in range(dialog.table.rowCount())]


@requires_orthanc
def test_search_lists_the_matching_studies(qtbot, dialog: PacsDialog) -> None:  # type: ignore[no-untyped-def]
    search(qtbot, dialog)
    found = rows(dialog)
    assert sorted(found) == [
        ["2014-03-10", "stc_test", "crlab", "MR", "Research^MCBI_TESTING", "3", "6"],
        ["2018-09-18", "Test Regression", "DEV", "MR", "", "1", "150"],
        ["2018-09-18", "Test Regression", "DEV", "MR", "FMRIF^QA", "4", "8"]]
    assert [r[0] for r in found] == ["2018-09-18", "2018-09-18", "2014-03-10"]  # newest first
    assert dialog.status.text() == "3 studies found on pacs."
    search(qtbot, dialog, patient="stc", date="2014-03-10", modality="MR",
           description="mcbi")
    assert [r[1] for r in rows(dialog)] == ["stc_test"]
    search(qtbot, dialog, patient="nobody", date="", modality="", description="")
    assert rows(dialog) == []
    assert dialog.status.text() == "No study on pacs matches the search."
    assert not dialog.retrieve_button.isEnabled()


def test_a_wrong_date_is_said_before_anything_is_sent(qtbot, settings: NetworkSettings  # type: ignore[no-untyped-def]
                                                      ) -> None:
    shown = PacsDialog(settings)
    qtbot.addWidget(shown)
    shown.date.setText("31/12/2020")
    shown.search_button.click()
    assert not shown.busy
    assert shown.status.text().startswith("Study date '31/12/2020' must be YYYYMMDD")
    assert ERROR_INK in shown.status.styleSheet()


def test_an_unreachable_pacs_is_said_in_words(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    shown = PacsDialog(NetworkSettings(nodes=(RemoteNode("far", "PACS", "127.0.0.1", port),)))
    qtbot.addWidget(shown)
    search(qtbot, shown)
    assert shown.status.text() == f"The PACS did not answer at 127.0.0.1:{port} (far)."
    assert ERROR_INK in shown.status.styleSheet()


def test_no_pacs_configured_is_said(qtbot) -> None:  # type: ignore[no-untyped-def]
    shown = PacsDialog(NetworkSettings())
    qtbot.addWidget(shown)
    assert not shown.search_button.isEnabled()
    assert shown.status.text().startswith("No PACS is configured.")


@requires_orthanc
def test_retrieve_and_open_brings_the_study_into_the_store_and_the_worklist(
        qtbot, dialog: PacsDialog, settings: NetworkSettings, tmp_path: Path,  # type: ignore[no-untyped-def]
        loaded: tuple[Orthanc, dict[str, list[Path]]]) -> None:
    sent = loaded[1]["mosaic"]
    search(qtbot, dialog, patient="stc")
    assert dialog.retrieve_button.isEnabled()  # the one study found is selected
    with qtbot.waitSignal(dialog.study_retrieved, timeout=30_000) as retrieved:
        dialog.retrieve_button.click()
    folder, uid = Path(retrieved.args[0]), retrieved.args[1]
    assert uid == study_uid(sent)
    assert dialog.result() == QDialog.DialogCode.Accepted and dialog.retrieved == folder
    assert folder.parent == settings.store_path()
    assert {pixel_digest(p) for p in folder.rglob("*.dcm")} == {pixel_digest(p) for p in sent}
    with Worklist(tmp_path / "worklist.sqlite") as worklist:
        row = worklist.study(uid)
    assert row is not None and row.instance_count == len(sent)


@requires_orthanc
def test_a_retrieval_shows_progress_and_can_be_cancelled(qtbot, dialog: PacsDialog,  # type: ignore[no-untyped-def]
                                                         settings: NetworkSettings) -> None:
    search(qtbot, dialog, description="")
    big = next(r for r, m in enumerate(dialog.matches) if m.instance_count == 150)
    dialog.table.selectRow(big)
    dialog.retrieve_button.click()
    assert dialog.busy and dialog.cancel_button.isEnabled()
    assert not dialog.search_button.isEnabled() and not dialog.retrieve_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.progress.value() >= 3, timeout=20_000)
    assert dialog.progress.maximum() == 150
    assert dialog.status.text().startswith("Received ")
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=20_000)
    assert dialog.status.text().startswith("Retrieval cancelled. The ")
    assert dialog.status.text().endswith("images received are kept in the local store and "
                                         "the worklist.")
    assert dialog.retrieved is None and dialog.isVisible()
    stored = list(settings.store_path().rglob("*.dcm"))
    assert 3 <= len(stored) < 150


@requires_orthanc
def test_the_window_has_the_dialog_in_its_file_menu(window: MainWindow) -> None:
    actions = {a.text(): a for a in window.menuBar().actions()[0].menu().actions()}
    assert "Open from P&ACS..." in actions
    assert actions["Open from P&ACS..."].shortcut().toString() == "Ctrl+Shift+R"


@requires_orthanc
def test_a_full_store_is_said_and_nothing_is_opened(qtbot, settings: NetworkSettings,  # type: ignore[no-untyped-def]
                                                    tmp_path: Path) -> None:
    from dataclasses import replace

    shown = PacsDialog(replace(settings, min_free_mb=10**9),  # no disk has a petabyte free
                       worklist_path=tmp_path / "worklist.sqlite")
    qtbot.addWidget(shown)
    shown.show()
    search(qtbot, shown, patient="stc")
    shown.retrieve_button.click()
    qtbot.waitUntil(lambda: not shown.busy, timeout=30_000)
    assert shown.status.text().startswith("Only 0 images arrived, ")
    assert "the study was not opened. The store's disk has less than" in shown.status.text()
    assert ERROR_INK in shown.status.styleSheet()
    assert shown.retrieved is None and shown.isVisible()
    assert not list(settings.store_path().rglob("*.dcm"))
