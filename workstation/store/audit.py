"""The audit trail: an append-only, hash-chained SQLite log (``data_dir()/audit.sqlite``).

Each row holds what happened (an event named in the DICOM PS3.15 audit vocabulary), when,
by which user on which host, to which study, and the SHA-256 of its own fields chained to
the previous row's hash; triggers refuse UPDATE and DELETE. ``verify`` recomputes the chain
and compares its end with an anchor file beside the database, so an edited, inserted or
deleted row (the last one included) is found. ``export_xml`` writes the PS3.15 A.5 audit
messages. Nothing is sent anywhere: the log and its export stay on this machine, and no
patient name or ID is written into it (only study UIDs).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from workstation.settings import data_dir
from workstation.store.schema_version import MigrationError, NewerSchemaError, migrate

LOG = logging.getLogger(__name__)

# our event names; each is coded as PS3.15 A.5.3 codes it (EVENTS below)
INSTANCES_RECEIVED = "instances_received"
INSTANCES_TRANSFERRED = "instances_transferred"
RESULTS_SENT = "results_sent"
QUERY = "query"
STUDY_OPENED = "study_opened"
REPORT_EXPORTED = "report_exported"
READING_SAVED = "reading_saved"
SETTINGS_CHANGED = "settings_changed"
APPLICATION_STARTED = "application_started"
APPLICATION_STOPPED = "application_stopped"
NODE_REJECTED = "node_rejected"
AUDIT_LOG_USED = "audit_log_used"


@dataclass(frozen=True)
class EventCode:
    """How PS3.15 codes an event: EventID (DCM code and meaning), EventActionCode
    (C create, R read, U update, D delete, E execute) and an optional EventTypeCode."""

    code: str
    meaning: str
    action: str
    type_code: str = ""
    type_meaning: str = ""


EVENTS: dict[str, EventCode] = {
    INSTANCES_RECEIVED: EventCode("110104", "DICOM Instances Transferred", "C"),
    INSTANCES_TRANSFERRED: EventCode("110104", "DICOM Instances Transferred", "C"),
    RESULTS_SENT: EventCode("110104", "DICOM Instances Transferred", "R"),
    QUERY: EventCode("110112", "Query", "E"),
    STUDY_OPENED: EventCode("110103", "DICOM Instances Accessed", "R"),
    REPORT_EXPORTED: EventCode("110106", "Export", "R"),
    READING_SAVED: EventCode("110103", "DICOM Instances Accessed", "U"),
    SETTINGS_CHANGED: EventCode("110113", "Security Alert", "E", "110131",
                                "Software Configuration"),
    APPLICATION_STARTED: EventCode("110100", "Application Activity", "E", "110120",
                                   "Application Start"),
    APPLICATION_STOPPED: EventCode("110100", "Application Activity", "E", "110121",
                                   "Application Stop"),
    NODE_REJECTED: EventCode("110113", "Security Alert", "E", "110126",
                             "Node Authentication"),
    AUDIT_LOG_USED: EventCode("110101", "Audit Log Used", "R"),
}

# PS3.15 EventOutcomeIndicator
OUTCOMES = {"success": "0", "minor failure": "4", "serious failure": "8",
            "major failure": "12"}

GENESIS = "0" * 64
_FIELDS = ("seq", "time", "event", "outcome", "user", "host", "study_uid", "detail")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    event TEXT NOT NULL,
    outcome TEXT NOT NULL,
    user TEXT NOT NULL,
    host TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    detail TEXT NOT NULL,
    previous TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
"""
# each step takes the file one version forward (store.schema_version); never edit a step
SCHEMA_STEPS = [_SCHEMA]


class AuditError(RuntimeError):
    """The audit log cannot be read or written (said in plain words)."""


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    time: str  # ISO 8601, UTC
    event: str
    outcome: str
    user: str
    host: str
    study_uid: str
    detail: str
    previous: str
    hash: str


@dataclass(frozen=True)
class Verification:
    intact: bool
    events: int
    head: str  # hash of the last row
    problems: tuple[str, ...]


def default_path() -> Path:
    return data_dir() / "audit.sqlite"


def row_hash(previous: str, values: dict[str, object]) -> str:
    canonical = json.dumps([previous, *(values[k] for k in _FIELDS)], ensure_ascii=False,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USERNAME", "unknown")


class AuditLog:
    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.anchor_path = self.path.with_name(self.path.name + ".head")
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            migrate(self._db, "the audit log", SCHEMA_STEPS)
        except (NewerSchemaError, MigrationError) as exc:
            raise AuditError(str(exc)) from exc
        except (OSError, sqlite3.Error) as exc:
            raise AuditError(f"the audit log {self.path} cannot be opened: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, event: str, *, study_uid: str = "", outcome: str = "success",
               detail: str = "", user: str | None = None, host: str | None = None) -> AuditEvent:
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {tuple(OUTCOMES)}")
        values: dict[str, object] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": event, "outcome": outcome,
            "user": _user() if user is None else user,
            "host": socket.gethostname() if host is None else host,
            "study_uid": study_uid, "detail": detail}
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    last = self._db.execute(
                        "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
                    values["seq"] = 1 if last is None else int(last[0]) + 1
                    previous = GENESIS if last is None else str(last[1])
                    digest = row_hash(previous, values)
                    self._db.execute(
                        "INSERT INTO events (seq, time, event, outcome, user, host, study_uid, "
                        "detail, previous, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (*(values[k] for k in _FIELDS), previous, digest))
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise AuditError(f"the audit log {self.path} cannot be written: {exc}") from exc
            self._write_anchor(int(values["seq"]), digest)  # type: ignore[call-overload]
        return AuditEvent(**{k: values[k] for k in _FIELDS},  # type: ignore[arg-type]
                          previous=previous, hash=digest)

    def _write_anchor(self, seq: int, digest: str) -> None:
        """The last row's number and hash, outside the database: a deleted last row
        shows as a missing anchor. A later writer may briefly leave an older anchor; it
        still matches its row."""
        temporary = self.anchor_path.with_name(f"{self.anchor_path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps({"seq": seq, "hash": digest}))
            temporary.replace(self.anchor_path)
        except OSError as exc:
            LOG.error("the audit log's anchor %s was not written: %s", self.anchor_path, exc)

    def events(self) -> Iterator[AuditEvent]:
        columns = ", ".join((*_FIELDS, "previous", "hash"))
        with self._lock:
            rows = self._db.execute(f"SELECT {columns} FROM events ORDER BY seq").fetchall()
        for row in rows:
            yield AuditEvent(*row)

    def verify(self) -> Verification:
        problems: list[str] = []
        previous, expected_seq, count = GENESIS, 1, 0
        hashes: dict[int, str] = {}
        for event in self.events():
            count += 1
            values = {k: getattr(event, k) for k in _FIELDS}
            if event.seq != expected_seq:
                gap = (f"event {expected_seq} is" if event.seq == expected_seq + 1
                       else f"events {expected_seq} to {event.seq - 1} are")
                problems.append(f"{gap} missing")
            if event.previous != previous:
                problems.append(f"event {event.seq} does not follow the one before it "
                                "(a row before it was changed, removed or inserted)")
            if row_hash(event.previous, values) != event.hash:
                problems.append(f"event {event.seq} ({event.event}, {event.time}) was "
                                "changed after it was written")
            hashes[event.seq] = event.hash
            previous, expected_seq = event.hash, event.seq + 1
        problems.extend(self._check_anchor(hashes))
        return Verification(not problems, count, previous, tuple(problems))

    def _check_anchor(self, hashes: dict[int, str]) -> list[str]:
        try:
            anchor = json.loads(self.anchor_path.read_text())
            seq, digest = int(anchor["seq"]), str(anchor["hash"])
        except FileNotFoundError:
            return [] if not hashes else [
                f"the anchor file {self.anchor_path} is missing"]
        except (OSError, ValueError, KeyError, TypeError):
            return [f"the anchor file {self.anchor_path} cannot be read"]
        if seq not in hashes:
            return [f"the log ends before event {seq}, which was written (rows at the end "
                    "were removed)"]
        if hashes[seq] != digest:
            return [f"event {seq} is not the one that was written"]
        return []

    def export_xml(self) -> bytes:
        """Every event as a PS3.15 A.5 ``AuditMessage``, inside one ``AuditMessages``
        root (UTF-8 XML)."""
        root = ElementTree.Element("AuditMessages")
        for event in self.events():
            root.append(audit_message(event))
        ElementTree.indent(root)
        return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def audit_message(event: AuditEvent) -> ElementTree.Element:
    code = EVENTS.get(event.event, EventCode("110100", "Application Activity", "E"))
    message = ElementTree.Element("AuditMessage")
    ident = ElementTree.SubElement(message, "EventIdentification", {
        "EventActionCode": code.action, "EventDateTime": event.time,
        "EventOutcomeIndicator": OUTCOMES.get(event.outcome, "4")})
    ElementTree.SubElement(ident, "EventID", {
        "csd-code": code.code, "codeSystemName": "DCM", "originalText": code.meaning})
    if code.type_code:
        ElementTree.SubElement(ident, "EventTypeCode", {
            "csd-code": code.type_code, "codeSystemName": "DCM",
            "originalText": code.type_meaning})
    if event.detail and event.outcome != "success":
        ElementTree.SubElement(ident, "EventOutcomeDescription").text = event.detail
    ElementTree.SubElement(message, "ActiveParticipant", {
        "UserID": event.user, "UserIsRequestor": "true",
        "NetworkAccessPointID": event.host, "NetworkAccessPointTypeCode": "1"})
    source = ElementTree.SubElement(message, "AuditSourceIdentification",
                                    {"AuditSourceID": event.host})
    ElementTree.SubElement(source, "AuditSourceTypeCode", {
        "csd-code": "4", "codeSystemName": "DCM",
        "originalText": "Application Server Process"})
    if event.study_uid:
        study = ElementTree.SubElement(message, "ParticipantObjectIdentification", {
            "ParticipantObjectID": event.study_uid, "ParticipantObjectTypeCode": "2",
            "ParticipantObjectTypeCodeRole": "3"})
        ElementTree.SubElement(study, "ParticipantObjectIDTypeCode", {
            "csd-code": "110180", "codeSystemName": "DCM",
            "originalText": "Study Instance UID"})
        if event.detail:
            ElementTree.SubElement(study, "ParticipantObjectDetail", {
                "type": "Description",
                "value": base64.b64encode(event.detail.encode()).decode("ascii")})
    return message


_default: AuditLog | None = None
_default_lock = threading.Lock()


def default_log() -> AuditLog:
    """The log in this user's data folder (reopened when ``data_dir()`` changes)."""
    global _default
    with _default_lock:
        if _default is None or _default.path != default_path():
            _default = AuditLog(default_path())
        return _default


def record_event(event: str, *, study_uid: str = "", outcome: str = "success",
                 detail: str = "") -> None:
    """Append ``event`` to the default log with this user's name and this host. A log
    that cannot be written is reported in the application log; the action it records
    goes on (an unwritable audit file must not stop a reading or a receipt)."""
    try:
        default_log().append(event, study_uid=study_uid, outcome=outcome, detail=detail)
    except AuditError as exc:
        LOG.error("audit event %s not recorded: %s", event, exc)


def study_uid_of(study: Any) -> str:
    """The Study Instance UID(s) of an ``imaging.Study`` for an event (several joined by
    a backslash, as DICOM joins values; empty for images without one)."""
    uids = {getattr(s.info, "study_instance_uid", None) for s in study.series}
    return "\\".join(sorted(u for u in uids if u))
