"""The Worklist panel on a real worklist database filled with real DICOM series."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest

from workstation.analysis.findings import Verdict
from workstation.dicomnet.storage import write_instance
from workstation.gui.main_window import MainWindow
from workstation.gui.panels import BADGE
from workstation.gui.worklist_panel import WAITING_BADGE, WorklistPanel, arrival_words
from workstation.store.audit import STUDY_OPENED, AuditLog
from workstation.store.worklist import Worklist

MOSAIC = ("siemens_epi_mosaic_orientation/ax/axint35",
          "siemens_epi_mosaic_orientation/axmb/AxAsc36mb2a")


def store_study(worklist: Worklist, store: Path, files: list[Path], *, patient: str,
                arrived: float, copy: bool = True) -> str:
    """Store ``files`` as one study (a copy with new UIDs and ``patient``'s name, unless
    ``copy`` is false) and note each arrival; returns the study UID."""
    study_uid = generate_uid()
    series = {}
    for path in files:
        ds = pydicom.dcmread(path)
        if copy:
            series.setdefault(ds.SeriesInstanceUID, generate_uid())
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series[ds.SeriesInstanceUID]
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.PatientName = patient
        study_uid = str(ds.StudyInstanceUID)
        worklist.note_arrival(write_instance(store, ds), ds, now=arrived)
    return study_uid


def analyse(worklist: Worklist, verdicts: dict[str, str]) -> None:
    """What the receiver's completion does: queue the quiet studies, claim each, keep its
    verdict ("failed": the analysis failed; "claimed": still being analysed)."""
    worklist.complete_quiet(0.0)
    while (claim := worklist.claim_next()) is not None:
        verdict = verdicts.pop(claim.study_uid)
        if verdict == "claimed":
            continue
        if verdict == "failed":
            worklist.fail(claim, "no image could be read")
        else:
            worklist.finish(claim, verdict, f"{verdict} headline", [f"{verdict} reason"], {})
    assert not verdicts  # each was claimed


@pytest.fixture
def series(datasets: Path) -> list[Path]:
    return sorted((datasets / "dicom" / "siemens_epi_axial" / "mr_0003").glob("*.dcm"))


@pytest.fixture
def worklist(tmp_path: Path) -> Iterator[Worklist]:
    with Worklist(tmp_path / "worklist.sqlite") as opened:
        yield opened


def panel_words(panel: WorklistPanel) -> list[tuple[str, str]]:
    return [(panel.table.item(r, 0).text(), panel.table.item(r, 1).text())
            for r in range(panel.table.rowCount())]


def test_studies_are_sorted_by_priority_then_arrival_with_the_banner_colours(
        qtbot, worklist: Worklist, series: list[Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "store"
    # arrival order (seconds): each verdict's study, and two routine ones to order by arrival
    plan = [("routine^early", 10.0, "no_tumour"), ("review^one", 20.0, "review"),
            ("cannot^assess", 30.0, "failed"), ("tumour^one", 40.0, "tumour"),
            ("routine^late", 50.0, "no_tumour"), ("analysing^one", 60.0, "claimed")]
    analyse(worklist, {store_study(worklist, store, series, patient=patient, arrived=arrived):
                       verdict for patient, arrived, verdict in plan})
    panel = WorklistPanel(worklist.path, interval_ms=100)
    qtbot.addWidget(panel)
    qtbot.waitUntil(lambda: panel.table.rowCount() == len(plan), timeout=10_000)
    assert panel_words(panel) == [
        ("TUMOUR", "tumour one"), ("REVIEW", "review one"),
        ("CANNOT ASSESS", "cannot assess"), ("ANALYSING", "analysing one"),
        ("NO TUMOUR", "routine early"), ("NO TUMOUR", "routine late")]
    expected = [BADGE[Verdict.TUMOUR], BADGE[Verdict.REVIEW], BADGE[Verdict.CANNOT_ASSESS],
                ("ANALYSING", *WAITING_BADGE), BADGE[Verdict.NO_TUMOUR],
                BADGE[Verdict.NO_TUMOUR]]
    for row, (words, background, ink) in enumerate(expected):
        item = panel.table.item(row, 0)
        assert item.text() == words
        assert item.background().color().name() == QColor(background).name()
        assert item.foreground().color().name() == QColor(ink).name()
    failed = next(r for r in panel.rows if r.verdict == "" and r.state == "failed")
    assert panel.table.item(2, 3).text() == f"failed: {failed.reason}"
    assert panel.table.item(0, 6).text() == "1"  # series
    assert panel.summary.text() == "6 studies, 6 unread, 1 unread with a tumour suspected"
    assert panel.table.item(0, 1).font().bold()  # unread


def test_the_panel_follows_the_database_live(qtbot, worklist: Worklist, series: list[Path],  # type: ignore[no-untyped-def]
                                              tmp_path: Path) -> None:
    panel = WorklistPanel(tmp_path / "worklist.sqlite", interval_ms=100)
    qtbot.addWidget(panel)
    store = tmp_path / "store"
    first = store_study(worklist, store, series, patient="first^patient", arrived=100.0)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=10_000)
    assert panel.table.item(0, 3).text() == "receiving images"
    second = store_study(worklist, store, series, patient="second^patient", arrived=200.0)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 2, timeout=10_000)
    assert panel_words(panel) == [("NOT ANALYSED", "first patient"),
                                  ("NOT ANALYSED", "second patient")]
    analyse(worklist, {first: "no_tumour", second: "tumour"})
    # the later study with a tumour suspected moves to the top
    qtbot.waitUntil(lambda: panel_words(panel) == [("TUMOUR", "second patient"),
                                                   ("NO TUMOUR", "first patient")],
                    timeout=10_000)
    assert panel.table.item(0, 3).text() == "analysed"


def test_an_empty_worklist_says_what_will_appear_and_creates_nothing(qtbot, tmp_path: Path  # type: ignore[no-untyped-def]
                                                                     ) -> None:
    panel = WorklistPanel(tmp_path / "none.sqlite", interval_ms=100)
    qtbot.addWidget(panel)
    qtbot.waitUntil(lambda: panel._polling is None, timeout=5000)
    assert panel.table.rowCount() == 0
    assert panel.summary.text().startswith("No study has arrived yet")
    assert not (tmp_path / "none.sqlite").exists()


def test_arrival_is_a_time_today_else_a_date() -> None:
    from datetime import datetime

    now = datetime(2026, 3, 2, 18, 0).timestamp()
    assert arrival_words(datetime(2026, 3, 2, 14, 5).timestamp(), now) == "14:05"
    assert arrival_words(datetime(2026, 3, 1, 9, 30).timestamp(), now) == "2026-03-01 09:30"


def test_double_click_marks_read_and_opens_the_study_in_the_window(
        qtbot, datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BRAIN_TRIAGE_DATA_DIR", str(tmp_path / "data"))  # the audit log
    path = tmp_path / "worklist.sqlite"
    store = tmp_path / "store"
    files = [f for folder in MOSAIC for f in sorted((datasets / "dicom" / folder).iterdir())]
    with Worklist(path) as worklist:
        uid = store_study(worklist, store, files, patient="", arrived=1.0, copy=False)
    window = MainWindow(settings_path=tmp_path / "settings.json",
                        readings_dir=tmp_path / "readings", worklist_path=path)
    qtbot.addWidget(window)
    window.show()
    panel = window.worklist
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=10_000)
    assert panel.table.item(0, 1).text() == "stc_test"
    cell = panel.table.visualItemRect(panel.table.item(0, 1)).center()
    with qtbot.waitSignal(panel.open_study, timeout=5000) as opened:
        # a press then a double click, as a mouse sends them (a view acts on a double
        # click only on the item pressed)
        QTest.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=cell)
        QTest.mouseDClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=cell)
    folder = store / uid
    assert opened.args == [str(folder), uid]
    assert window.session.paths == (str(folder),)
    qtbot.waitUntil(lambda: len(window.session.series) == 2, timeout=30_000)
    qtbot.waitUntil(lambda: panel.rows[0].read, timeout=10_000)
    assert not panel.table.item(0, 1).font().bold()
    with Worklist(path) as worklist:
        assert worklist.studies()[0].read

    def opened_events() -> list[tuple[str, str]]:
        log = AuditLog(tmp_path / "data" / "audit.sqlite")
        try:
            return [(e.event, e.study_uid) for e in log.events() if e.event == STUDY_OPENED]
        finally:
            log.close()
    qtbot.waitUntil(lambda: bool(opened_events()), timeout=10_000)  # once the study is read
    assert opened_events() == [(STUDY_OPENED, uid)]  # opened once, audited once
    window.cancel()
