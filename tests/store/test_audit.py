from __future__ import annotations

import socket
import sqlite3
from pathlib import Path
from xml.etree import ElementTree

import pytest

from workstation.store import audit
from workstation.store.audit import AuditLog, record_event


def filled(path: Path, count: int = 5) -> AuditLog:
    log = AuditLog(path)
    events = [audit.INSTANCES_RECEIVED, audit.STUDY_OPENED, audit.READING_SAVED,
              audit.REPORT_EXPORTED, audit.RESULTS_SENT, audit.SETTINGS_CHANGED]
    for k in range(count):
        log.append(events[k % len(events)], study_uid=f"1.2.3.{k}", detail=f"event {k}")
    return log


def tamper(path: Path, statement: str) -> None:
    """What someone with the file could do: drop the guard triggers and edit rows."""
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER events_no_update")
    db.execute("DROP TRIGGER events_no_delete")
    db.execute(statement)
    db.commit()
    db.close()


def test_a_clean_log_verifies(tmp_path: Path) -> None:
    with filled(tmp_path / "audit.sqlite") as log:
        check = log.verify()
        events = list(log.events())
    assert check.intact and check.events == 5 and check.problems == ()
    assert check.head == events[-1].hash
    assert [e.previous for e in events[1:]] == [e.hash for e in events[:-1]]
    assert events[0].host == socket.gethostname() and events[0].user


def test_the_log_refuses_updates_and_deletes(tmp_path: Path) -> None:
    filled(tmp_path / "audit.sqlite").close()
    db = sqlite3.connect(tmp_path / "audit.sqlite")
    for statement in ("UPDATE events SET detail = 'x'", "DELETE FROM events"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(statement)


@pytest.mark.parametrize("statement, found", [
    ("UPDATE events SET detail = 'nothing happened' WHERE seq = 3", "event 3"),
    ("UPDATE events SET study_uid = '9.9' WHERE seq = 1", "event 1"),
    ("DELETE FROM events WHERE seq = 2", "missing"),
    ("DELETE FROM events WHERE seq = 5", "rows at the end were removed"),
])
def test_an_edited_or_deleted_row_is_found(tmp_path: Path, statement: str, found: str) -> None:
    filled(tmp_path / "audit.sqlite").close()
    tamper(tmp_path / "audit.sqlite", statement)
    with AuditLog(tmp_path / "audit.sqlite") as log:
        check = log.verify()
    assert not check.intact
    assert any(found in problem for problem in check.problems), check.problems


def test_a_rewritten_chain_does_not_match_its_anchor(tmp_path: Path) -> None:
    """Rewriting a row and every hash after it still leaves the anchor file's hash."""
    filled(tmp_path / "audit.sqlite").close()
    db = sqlite3.connect(tmp_path / "audit.sqlite")
    rows = db.execute("SELECT seq, time, event, outcome, user, host, study_uid, detail "
                      "FROM events ORDER BY seq").fetchall()
    tamper(tmp_path / "audit.sqlite", "DELETE FROM events")
    previous = audit.GENESIS
    db = sqlite3.connect(tmp_path / "audit.sqlite")
    for row in rows:
        values = dict(zip(("seq", "time", "event", "outcome", "user", "host", "study_uid",
                           "detail"), row, strict=True))
        values["detail"] = "rewritten"
        digest = audit.row_hash(previous, values)
        db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (*values.values(), previous, digest))
        previous = digest
    db.commit()
    with AuditLog(tmp_path / "audit.sqlite") as log:
        check = log.verify()
    assert not check.intact and check.problems == ("event 5 is not the one that was written",)


def test_export_writes_ps3_15_audit_messages(tmp_path: Path) -> None:
    with filled(tmp_path / "audit.sqlite", 6) as log:
        root = ElementTree.fromstring(log.export_xml())
    messages = root.findall("AuditMessage")
    assert len(messages) == 6
    ids = [m.find("EventIdentification/EventID").get("csd-code") for m in messages]  # type: ignore[union-attr]
    assert ids == ["110104", "110103", "110103", "110106", "110104", "110113"]
    first = messages[0]
    assert first.find("EventIdentification").get("EventActionCode") == "C"  # type: ignore[union-attr]
    assert first.find("EventIdentification").get("EventOutcomeIndicator") == "0"  # type: ignore[union-attr]
    study = first.find("ParticipantObjectIdentification")
    assert study is not None and study.get("ParticipantObjectID") == "1.2.3.0"
    assert study.find("ParticipantObjectIDTypeCode").get("csd-code") == "110180"  # type: ignore[union-attr]
    settings = messages[5].find("EventIdentification/EventTypeCode")
    assert settings is not None and settings.get("originalText") == "Software Configuration"


def test_record_event_goes_to_the_data_folder(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAIN_TRIAGE_DATA_DIR", str(tmp_path))
    record_event(audit.STUDY_OPENED, study_uid="1.2.3", detail="2 series")
    with AuditLog(tmp_path / "audit.sqlite") as log:
        (event,) = log.events()
    assert (event.event, event.study_uid, event.outcome) == ("study_opened", "1.2.3", "success")
    with pytest.raises(ValueError, match="unknown audit event"):
        record_event("coffee_made")


def test_an_unwritable_log_does_not_stop_the_action(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BRAIN_TRIAGE_DATA_DIR", str(blocker / "data"))
    record_event(audit.READING_SAVED)
    assert "audit event reading_saved not recorded" in caplog.text


def test_readings_and_network_settings_are_audited(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes import make_series
    from workstation.dicomnet.config import NetworkSettings
    from workstation.imaging.series import SeriesInfo, Study
    from workstation.store.readings import Reading, save_reading

    monkeypatch.setenv("BRAIN_TRIAGE_DATA_DIR", str(tmp_path))
    series = make_series()
    series = type(series)(**{**series.__dict__,
                             "info": SeriesInfo(study_instance_uid="1.2.840.99")})
    save_reading(Study(series=(series,)), Reading.now("1.2.3", "agree"), tmp_path / "r")
    NetworkSettings(ae_title="NEW").save(tmp_path / "dicom.json")
    with AuditLog(tmp_path / "audit.sqlite") as log:
        events = [(e.event, e.study_uid) for e in log.events()]
    assert events == [(audit.READING_SAVED, "1.2.840.99"), (audit.SETTINGS_CHANGED, "")]
