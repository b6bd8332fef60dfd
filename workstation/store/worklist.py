"""The local worklist: one row per study received or retrieved, in priority order.

SQLite in write-ahead mode (``data_dir()/worklist.sqlite``), shared by the receiver
process, the window and ``workstation worklist``. A study moves through
``receiving`` (instances arriving) -> ``waiting`` (quiet for the stable age, queued for
triage) -> ``analysing`` -> ``done`` or ``failed`` (with the reason); an instance arriving
later sends it back to ``receiving`` and it is analysed again. Priority: tumour, then
review, then cannot assess, then not yet analysed, then routine; then arrival.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from workstation.settings import data_dir
from workstation.store.schema_version import migrate

RECEIVING, WAITING, ANALYSING, DONE, FAILED = (
    "receiving", "waiting", "analysing", "done", "failed")
STATES = (RECEIVING, WAITING, ANALYSING, DONE, FAILED)

# priority number (1 first) and name, from the study's verdict
PRIORITIES = {"tumour": 1, "review": 2, "cannot_assess": 3, "pending": 4, "routine": 5}
_PRIORITY_OF_VERDICT = {"tumour": "tumour", "review": "review",
                        "cannot_assess": "cannot_assess", "no_tumour": "routine"}
PRIORITY_WORDS = {"tumour": "priority read (tumour suspected)", "review": "needs review",
                  "cannot_assess": "cannot assess", "pending": "not yet analysed",
                  "routine": "routine"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    study_uid TEXT PRIMARY KEY,
    patient_name TEXT NOT NULL DEFAULT '',
    patient_id TEXT NOT NULL DEFAULT '',
    study_date TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    accession TEXT NOT NULL DEFAULT '',
    folder TEXT NOT NULL,
    arrived_at REAL NOT NULL,
    last_instance_at REAL NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    verdict TEXT NOT NULL DEFAULT '',
    headline TEXT NOT NULL DEFAULT '',
    reasons TEXT NOT NULL DEFAULT '[]',
    triage TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    analysed_at REAL,
    read INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS instances (
    sop_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_by_study ON instances (study_uid, series_uid);
"""
# each step takes the file one version forward (store.schema_version); never edit a step
SCHEMA_STEPS = [_SCHEMA]


class StoredLike(Protocol):
    """What ``dicomnet.storage.StoredInstance`` gives (kept structural: the store does not
    import the network layer)."""

    @property
    def path(self) -> Path: ...
    @property
    def study_uid(self) -> str: ...
    @property
    def series_uid(self) -> str: ...
    @property
    def sop_instance_uid(self) -> str: ...


@dataclass(frozen=True)
class WorklistRow:
    study_uid: str
    patient_name: str
    patient_id: str
    study_date: str  # DICOM DA (YYYYMMDD) as sent, "" when absent
    description: str
    accession: str
    arrived_at: float  # seconds since the epoch, first instance
    last_instance_at: float
    series_count: int
    instance_count: int
    state: str
    reason: str  # why it failed, in words; "" otherwise
    verdict: str  # tumour | review | cannot_assess | no_tumour; "" until analysed
    headline: str
    reasons: tuple[str, ...]
    priority: int  # 1 (tumour) .. 5 (routine)
    priority_name: str  # tumour | review | cannot_assess | pending | routine
    read: bool
    folder: Path
    analysed_at: float | None

    def document(self) -> dict[str, Any]:
        """The row as ``workstation worklist --json`` prints it."""
        return {
            "study_uid": self.study_uid, "patient_name": self.patient_name,
            "patient_id": self.patient_id, "study_date": self.study_date,
            "description": self.description, "accession": self.accession,
            "arrived_at": _iso(self.arrived_at),
            "last_instance_at": _iso(self.last_instance_at),
            "series_count": self.series_count, "instance_count": self.instance_count,
            "state": self.state, "reason": self.reason, "verdict": self.verdict or None,
            "headline": self.headline, "reasons": list(self.reasons),
            "priority": self.priority, "priority_name": self.priority_name,
            "read": self.read, "folder": str(self.folder),
            "analysed_at": _iso(self.analysed_at) if self.analysed_at is not None else None,
        }


@dataclass(frozen=True)
class Claim:
    """A study taken from the queue for analysis (``generation``: its arrivals so far)."""

    study_uid: str
    generation: int
    folder: Path


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")


def priority_of(verdict: str, state: str) -> str:
    if verdict:
        return _PRIORITY_OF_VERDICT.get(verdict, "cannot_assess")
    return "cannot_assess" if state == FAILED else "pending"


def default_path() -> Path:
    return data_dir() / "worklist.sqlite"


def _text(dataset: Any, keyword: str) -> str:
    if dataset is None:
        return ""
    try:
        value = dataset.get(keyword, "")
    except Exception:  # a malformed element must not stop the arrival being noted
        return ""
    return str(value or "").strip()


class Worklist:
    """The worklist database; safe to share between threads of one process, and between
    processes (SQLite locking)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._lock:  # NewerSchemaError / MigrationError say why, in words
            migrate(self._db, "the worklist", SCHEMA_STEPS)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Worklist:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ------------------------------------------------------------------ arrivals
    def note_arrival(self, stored: StoredLike, dataset: Any = None,
                     now: float | None = None) -> bool:
        """Record a received or retrieved instance (``dataset``: its header, for the
        patient and study fields). A new instance (re)starts the study's quiet-time
        clock and marks it unread; a copy of one already noted changes nothing. Returns
        whether the instance was new."""
        now = time.time() if now is None else now
        uid = stored.study_uid
        folder = str(Path(stored.path).parent.parent)
        fields = {k: _text(dataset, k) for k in (
            "PatientName", "PatientID", "StudyDate", "StudyDescription", "AccessionNumber")}
        with self._write() as db:
            added = db.execute(
                "INSERT OR IGNORE INTO instances (sop_uid, study_uid, series_uid, path) "
                "VALUES (?, ?, ?, ?)",
                (stored.sop_instance_uid, uid, stored.series_uid, str(stored.path))).rowcount
            db.execute(
                "INSERT OR IGNORE INTO studies (study_uid, folder, arrived_at, "
                "last_instance_at, state) VALUES (?, ?, ?, ?, ?)",
                (uid, folder, now, now, RECEIVING))
            db.execute(
                "UPDATE studies SET "
                "patient_name = CASE WHEN patient_name = '' THEN ? ELSE patient_name END, "
                "patient_id = CASE WHEN patient_id = '' THEN ? ELSE patient_id END, "
                "study_date = CASE WHEN study_date = '' THEN ? ELSE study_date END, "
                "description = CASE WHEN description = '' THEN ? ELSE description END, "
                "accession = CASE WHEN accession = '' THEN ? ELSE accession END "
                "WHERE study_uid = ?",
                (fields["PatientName"], fields["PatientID"], fields["StudyDate"],
                 fields["StudyDescription"], fields["AccessionNumber"], uid))
            if added:
                db.execute(
                    "UPDATE studies SET last_instance_at = ?, state = ?, reason = '', "
                    "generation = generation + 1, read = 0 WHERE study_uid = ?",
                    (now, RECEIVING, uid))
        return bool(added)

    # ------------------------------------------------------------------ the queue
    def complete_quiet(self, stable_age_s: float, now: float | None = None) -> list[str]:
        """Queue for triage every receiving study with no new instance for
        ``stable_age_s``; returns their UIDs."""
        now = time.time() if now is None else now
        with self._write() as db:
            due = [r[0] for r in db.execute(
                "SELECT study_uid FROM studies WHERE state = ? AND last_instance_at <= ?",
                (RECEIVING, now - stable_age_s))]
            db.executemany("UPDATE studies SET state = ? WHERE study_uid = ?",
                           [(WAITING, uid) for uid in due])
        return due

    def seconds_to_next_completion(self, stable_age_s: float,
                                   now: float | None = None) -> float | None:
        now = time.time() if now is None else now
        with self._lock:
            row = self._db.execute("SELECT MIN(last_instance_at) FROM studies WHERE state = ?",
                                   (RECEIVING,)).fetchone()
        if row[0] is None:
            return None
        return max(0.0, float(row[0]) + stable_age_s - now)

    def claim_next(self) -> Claim | None:
        """Take the longest-waiting queued study for analysis (state ``analysing``)."""
        with self._write() as db:
            row = db.execute(
                "SELECT study_uid, generation, folder FROM studies WHERE state = ? "
                "ORDER BY last_instance_at LIMIT 1", (WAITING,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE studies SET state = ? WHERE study_uid = ?",
                       (ANALYSING, row["study_uid"]))
        return Claim(row["study_uid"], int(row["generation"]), Path(row["folder"]))

    def finish(self, claim: Claim, verdict: str, headline: str, reasons: Sequence[str],
               document: dict[str, Any], now: float | None = None) -> None:
        """Keep the analysis' verdict and triage document. The study is ``done`` unless
        instances arrived while it was analysed: then it stays ``receiving`` and is
        analysed again once quiet."""
        now = time.time() if now is None else now
        with self._write() as db:
            db.execute(
                "UPDATE studies SET verdict = ?, headline = ?, reasons = ?, triage = ?, "
                "analysed_at = ?, reason = '', "
                "state = CASE WHEN generation = ? THEN ? ELSE state END "
                "WHERE study_uid = ?",
                (verdict, headline, json.dumps(list(reasons)), json.dumps(document), now,
                 claim.generation, DONE, claim.study_uid))

    def fail(self, claim: Claim, reason: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._write() as db:
            db.execute(
                "UPDATE studies SET reason = ?, analysed_at = ?, "
                "state = CASE WHEN generation = ? THEN ? ELSE state END "
                "WHERE study_uid = ?",
                (reason, now, claim.generation, FAILED, claim.study_uid))

    def resume_unfinished(self) -> int:
        """After a restart: analyses that were under way are queued again. Returns how
        many."""
        with self._write() as db:
            return int(db.execute("UPDATE studies SET state = ? WHERE state = ?",
                                  (WAITING, ANALYSING)).rowcount)

    # ------------------------------------------------------------------ reading
    def studies(self) -> list[WorklistRow]:
        """Every study, highest priority first, then earliest arrival."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.*, COUNT(i.sop_uid) AS instance_count, "
                "COUNT(DISTINCT i.series_uid) AS series_count FROM studies s "
                "LEFT JOIN instances i ON i.study_uid = s.study_uid "
                "GROUP BY s.study_uid").fetchall()
        found = [self._row(r) for r in rows]
        return sorted(found, key=lambda r: (r.priority, r.arrived_at, r.study_uid))

    def study(self, study_uid: str) -> WorklistRow | None:
        return next((r for r in self.studies() if r.study_uid == study_uid), None)

    def triage_document(self, study_uid: str) -> dict[str, Any] | None:
        """The study's last ``workstation triage --json`` document, if analysed."""
        with self._lock:
            row = self._db.execute("SELECT triage FROM studies WHERE study_uid = ?",
                                   (study_uid,)).fetchone()
        if row is None or row[0] is None:
            return None
        document: dict[str, Any] = json.loads(row[0])
        return document

    def instance_paths(self, study_uid: str) -> list[Path]:
        with self._lock:
            rows = self._db.execute("SELECT path FROM instances WHERE study_uid = ? "
                                    "ORDER BY series_uid, path", (study_uid,)).fetchall()
        return [Path(r[0]) for r in rows]

    def mark_read(self, study_uid: str, read: bool = True) -> None:
        with self._write() as db:
            db.execute("UPDATE studies SET read = ? WHERE study_uid = ?",
                       (int(read), study_uid))

    @staticmethod
    def _row(row: sqlite3.Row) -> WorklistRow:
        verdict, state = str(row["verdict"]), str(row["state"])
        name = priority_of(verdict, state)
        return WorklistRow(
            study_uid=row["study_uid"], patient_name=row["patient_name"],
            patient_id=row["patient_id"], study_date=row["study_date"],
            description=row["description"], accession=row["accession"],
            arrived_at=float(row["arrived_at"]),
            last_instance_at=float(row["last_instance_at"]),
            series_count=int(row["series_count"]), instance_count=int(row["instance_count"]),
            state=state, reason=row["reason"], verdict=verdict, headline=row["headline"],
            reasons=tuple(json.loads(row["reasons"] or "[]")), priority=PRIORITIES[name],
            priority_name=name, read=bool(row["read"]), folder=Path(row["folder"]),
            analysed_at=None if row["analysed_at"] is None else float(row["analysed_at"]))
