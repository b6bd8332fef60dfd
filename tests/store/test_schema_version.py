"""workstation.store.schema_version: older files migrate forward, newer ones are refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from workstation.store.schema_version import (
    MigrationError,
    NewerSchemaError,
    migrate,
    schema_version,
    statements,
)

V1 = "CREATE TABLE reading (id INTEGER PRIMARY KEY, verdict TEXT NOT NULL)"
V2 = "ALTER TABLE reading ADD COLUMN reader TEXT NOT NULL DEFAULT ''"


def add_index(connection: sqlite3.Connection) -> None:
    connection.execute("CREATE INDEX reading_reader ON reading (reader)")


def open_db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path)


def test_new_file_gets_every_step(tmp_path: Path) -> None:
    with open_db(tmp_path / "w.sqlite") as db:
        result = migrate(db, "the worklist", [V1, V2, add_index])
        assert (result.from_version, result.to_version, result.changed) == (0, 3, True)
        assert schema_version(db) == 3
        columns = [row[1] for row in db.execute("PRAGMA table_info(reading)")]
        assert columns == ["id", "verdict", "reader"]
        assert db.execute("SELECT name FROM sqlite_master WHERE type='index'").fetchall() \
            == [("reading_reader",)]


def test_older_file_keeps_its_rows_and_moves_forward(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    with open_db(path) as db:  # written by version N: one step
        migrate(db, "the worklist", [V1])
        db.execute("INSERT INTO reading (verdict) VALUES ('review')")
        db.commit()
    db.close()
    with open_db(path) as db:  # opened by version N+1: two more steps
        result = migrate(db, "the worklist", [V1, V2, add_index])
        assert (result.from_version, result.to_version) == (1, 3)
        assert db.execute("SELECT verdict, reader FROM reading").fetchall() == [("review", "")]
    db.close()
    with open_db(path) as db:  # opened again: nothing to do
        assert not migrate(db, "the worklist", [V1, V2, add_index]).changed
    db.close()


def test_newer_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with open_db(path) as db:
        migrate(db, "the audit log", [V1, V2, add_index])
        db.execute("INSERT INTO reading (verdict, reader) VALUES ('clear', 'dr a')")
        db.commit()
    db.close()
    before = path.read_bytes()
    with open_db(path) as db, pytest.raises(NewerSchemaError) as refused:
        migrate(db, "the audit log", [V1])
    db.close()
    message = str(refused.value)
    assert message.startswith("the audit log (audit.sqlite) was written by a newer version")
    assert "version 3, this version knows up to 1" in message
    assert path.read_bytes() == before


def test_failed_step_rolls_back_and_keeps_the_last_good_version(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    broken = "ALTER TABLE reading ADD COLUMN sent INTEGER; ALTER TABLE nowhere ADD COLUMN x"
    with open_db(path) as db:
        migrate(db, "the send queue", [V1])
        with pytest.raises(MigrationError, match=r"from format version 1 to 2 .*no such table"):
            migrate(db, "the send queue", [V1, broken])
        assert schema_version(db) == 1
        columns = [row[1] for row in db.execute("PRAGMA table_info(reading)")]
        assert columns == ["id", "verdict"]  # the first half of the step was rolled back
    db.close()


def test_a_python_step_error_is_not_hidden(tmp_path: Path) -> None:
    def wrong(connection: sqlite3.Connection) -> None:
        connection.execute(V2)
        raise ValueError("unexpected row")

    with open_db(tmp_path / "w.sqlite") as db:
        with pytest.raises(ValueError, match="unexpected row"):
            migrate(db, "the worklist", [V1, wrong])
        assert schema_version(db) == 1
        assert not db.in_transaction
    db.close()


def test_a_trigger_body_stays_one_statement(tmp_path: Path) -> None:
    audit = """
    CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, event TEXT NOT NULL);
    CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """
    assert len(statements(audit)) == 2
    with open_db(tmp_path / "audit.sqlite") as db:
        migrate(db, "the audit log", [audit])
        db.execute("INSERT INTO events (event) VALUES ('study_opened')")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE events SET event = 'x'")
    db.close()


@pytest.mark.parametrize("store", ["worklist", "audit", "send_queue"])
def test_each_store_records_its_version_and_refuses_a_newer_file(store: str,
                                                                 tmp_path: Path) -> None:
    from workstation.store import audit, send_queue, worklist

    module, opener, error = {
        "worklist": (worklist, worklist.Worklist, NewerSchemaError),
        "audit": (audit, audit.AuditLog, audit.AuditError),
        "send_queue": (send_queue, send_queue.SendQueue, send_queue.SendQueueError),
    }[store]
    path = tmp_path / f"{store}.sqlite"
    opened = opener(path)  # a new file: created at the current version
    if hasattr(opened, "close"):
        opened.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(module.SCHEMA_STEPS)
    db.execute(f"PRAGMA user_version = {len(module.SCHEMA_STEPS) + 1}")
    db.commit()
    db.close()
    with pytest.raises(error, match="newer version of the workstation"):
        opener(path)
