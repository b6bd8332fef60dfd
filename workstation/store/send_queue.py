"""The persistent queue of result files waiting to be sent to a DICOM destination.

Each queued file is copied into an outbox in ``data_dir()/outbox`` (the folder it came
from may be temporary) and recorded in ``data_dir()/send_queue.sqlite`` (WAL) with the
destination's name, its attempts and when to try again. ``process`` sends what is due,
grouped by destination over one association each; a destination that is down is tried
again later with exponential back-off (10 s, 20 s, 40 s ... at most 30 minutes), and the
queue survives restarts of the program. A file the destination refuses outright is marked
failed and kept for the user to see. Each delivery and each failure goes to the audit
trail (``store.audit``).

The destination is looked up by name at sending time, so a corrected address in the
DICOM network settings applies to what is already queued. No Qt here: the window and the
command line both use this.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workstation.dicomnet.config import NetworkSettings, NetworkSettingsError, RemoteNode
from workstation.dicomnet.send import (
    DestinationUnavailableError,
    SendResult,
    describe,
    send_files,
)
from workstation.settings import data_dir
from workstation.store.schema_version import MigrationError, NewerSchemaError, migrate

PENDING, SENT, FAILED = "pending", "sent", "failed"
BACKOFF_S = 10.0
MAX_BACKOFF_S = 1800.0
CLAIM_S = 600.0  # a send that was cut off (the program killed) is retried after this

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sends (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node TEXT NOT NULL,
    path TEXT NOT NULL,
    study_uid TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    next_try REAL NOT NULL,
    sent_at REAL,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS sends_due ON sends (state, next_try);
"""
# each step takes the file one version forward (store.schema_version); never edit a step
SCHEMA_STEPS = [_SCHEMA]

Sender = Callable[..., SendResult]


class SendQueueError(RuntimeError):
    """The send queue's database or outbox cannot be used (plain words)."""


@dataclass(frozen=True)
class QueuedSend:
    id: int
    node: str
    path: Path
    study_uid: str
    description: str
    state: str
    attempts: int
    created: float
    next_try: float
    sent_at: float | None
    last_error: str


@dataclass(frozen=True)
class ProcessReport:
    """What one ``process`` pass did."""

    sent: int
    failed: int  # refused for good in this pass
    waiting: int  # still pending after the pass (the destination was down...)
    messages: tuple[str, ...]  # each problem, in plain words
    next_try: float | None  # the earliest time a pending send is due again

    @property
    def delivered_all(self) -> bool:
        return self.failed == 0 and self.waiting == 0


def default_path() -> Path:
    return data_dir() / "send_queue.sqlite"


def backoff(attempts: int, base: float = BACKOFF_S, most: float = MAX_BACKOFF_S) -> float:
    """Seconds to wait after the ``attempts``-th failed try (1, 2, ...)."""
    return float(min(most, base * 2 ** max(0, attempts - 1)))


def _record(event_study: str, outcome: str, detail: str) -> None:
    try:
        from workstation.store.audit import RESULTS_SENT, record_event
    except ImportError:  # an installation without the audit trail
        return
    record_event(RESULTS_SENT, study_uid=event_study, outcome=outcome, detail=detail)


class SendQueue:
    def __init__(self, path: Path | None = None, outbox: Path | None = None, *,
                 base_backoff_s: float = BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.outbox = Path(outbox) if outbox is not None else self.path.parent / "outbox"
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                migrate(db, "the send queue", SCHEMA_STEPS)
        except (NewerSchemaError, MigrationError) as exc:
            raise SendQueueError(str(exc)) from exc
        except (OSError, sqlite3.Error) as exc:
            raise SendQueueError(f"the send queue {self.path} cannot be opened: {exc}") from exc

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    # ------------------------------------------------------------------ adding
    def enqueue(self, node: str, files: Iterable[Path], *, study_uid: str = "",
                description: str = "") -> list[int]:
        """Queue ``files`` (copied into the outbox) for the destination named ``node``."""
        folder = self.outbox / uuid.uuid4().hex
        copies = []
        try:
            folder.mkdir(parents=True)
            for source in files:
                target = folder / Path(source).name
                shutil.copyfile(source, target)
                copies.append(target)
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise SendQueueError(f"the results could not be queued in {self.outbox}: "
                                 f"{exc.strerror or exc}") from exc
        now = self.clock()
        ids = []
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            for copy in copies:
                cursor = db.execute(
                    "INSERT INTO sends (node, path, study_uid, description, state, created, "
                    "next_try) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (node, str(copy), study_uid, description, PENDING, now, now))
                ids.append(int(cursor.lastrowid or 0))
            db.execute("COMMIT")
        return ids

    # ----------------------------------------------------------------- reading
    def items(self, state: str | None = None) -> list[QueuedSend]:
        query = "SELECT * FROM sends" + (" WHERE state = ?" if state else "") + " ORDER BY id"
        with self._connect() as db:
            rows = db.execute(query, (state,) if state else ()).fetchall()
        return [_item(row) for row in rows]

    def pending(self) -> list[QueuedSend]:
        return self.items(PENDING)

    # ----------------------------------------------------------------- sending
    def _claim(self, now: float, force: bool) -> list[QueuedSend]:
        """The due sends, marked as being tried (so a second process leaves them)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            condition = "state = ?" + ("" if force else " AND next_try <= ?")
            args: tuple[Any, ...] = (PENDING,) if force else (PENDING, now)
            rows = db.execute(f"SELECT * FROM sends WHERE {condition} ORDER BY id",
                              args).fetchall()
            db.executemany("UPDATE sends SET next_try = ?, attempts = attempts + 1 "
                           "WHERE id = ?", [(now + CLAIM_S, row["id"]) for row in rows])
            db.execute("COMMIT")
        return [_item(row) for row in rows]

    def process(self, settings: NetworkSettings | None = None, *,
                sender: Sender = send_files, force: bool = False,
                progress: Callable[[int, int], None] | None = None) -> ProcessReport:
        """Send every due file (``force``: every pending one, due or not)."""
        settings = settings or NetworkSettings.load()
        now = self.clock()
        claimed = self._claim(now, force)
        messages: list[str] = []
        sent = failed = 0
        by_node: dict[str, list[QueuedSend]] = {}
        for item in claimed:
            by_node.setdefault(item.node, []).append(item)
        done = 0
        for name, items in by_node.items():
            try:
                node = settings.node(name)
            except NetworkSettingsError as exc:
                self._retry(items, str(exc))
                messages.append(str(exc))
                continue
            result = self._send(node, items, settings, sender, messages, progress, done,
                                len(claimed))
            done += len(items)
            if result is not None:
                sent += result[0]
                failed += result[1]
        waiting = len(self.pending())
        due = [i.next_try for i in self.pending()]
        return ProcessReport(sent, failed, waiting, tuple(messages), min(due) if due else None)

    def _send(self, node: RemoteNode, items: Sequence[QueuedSend], settings: NetworkSettings,
              sender: Sender, messages: list[str],
              progress: Callable[[int, int], None] | None, done: int, total: int
              ) -> tuple[int, int] | None:
        tls = None
        if node.tls:
            from workstation.dicomnet.query import client_tls

            tls = client_tls(settings)
        missing = [i for i in items if not i.path.is_file()]
        for item in missing:
            self._finish(item, FAILED, "the queued file is gone from the outbox")
            messages.append(f"{item.path.name}: the queued file is gone from the outbox")
        items = [i for i in items if i.path.is_file()]
        if not items:
            return 0, len(missing)

        def step(n: int, _: int) -> None:
            if progress is not None:
                progress(done + n, total)
        try:
            result = sender(node, [i.path for i in items], calling_ae=settings.ae_title,
                            tls=tls, progress=step)
        except (DestinationUnavailableError, OSError) as exc:
            self._retry(items, str(exc))
            messages.append(str(exc))
            for study in sorted({i.study_uid for i in items}):
                _record(study, "minor failure",
                        f"to {describe(node)}: {exc}; will try again")
            return None
        by_path = {o.path: o for o in result.outcomes}
        sent = failed = 0
        delivered: dict[str, int] = {}
        for item in items:
            outcome = by_path.get(item.path)
            if outcome is None:
                self._retry([item], "no outcome reported")
                continue
            if outcome.stored:
                self._finish(item, SENT, outcome.message)
                sent += 1
                delivered[item.study_uid] = delivered.get(item.study_uid, 0) + 1
            elif outcome.retry:
                self._retry([item], outcome.message)
                messages.append(outcome.message)
            else:
                self._finish(item, FAILED, outcome.message)
                failed += 1
                messages.append(outcome.message)
                _record(item.study_uid, "serious failure",
                        f"{item.description or item.path.name} to {describe(node)}: "
                        f"{outcome.message}")
        for study, count in delivered.items():
            _record(study, "success", f"{count} result object{'s' if count != 1 else ''} "
                                      f"stored on {describe(node)} ({node.ae_title})")
        return sent, failed

    def _retry(self, items: Iterable[QueuedSend], error: str) -> None:
        now = self.clock()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            for item in items:
                attempts = max(1, item.attempts + 1)
                db.execute("UPDATE sends SET next_try = ?, last_error = ? WHERE id = ?",
                           (now + backoff(attempts, self.base_backoff_s, self.max_backoff_s),
                            error, item.id))
            db.execute("COMMIT")

    def _finish(self, item: QueuedSend, state: str, message: str) -> None:
        now = self.clock()
        with self._connect() as db:
            db.execute("UPDATE sends SET state = ?, sent_at = ?, last_error = ? WHERE id = ?",
                       (state, now if state == SENT else None,
                        "" if state == SENT else message, item.id))
        if state == SENT:
            with contextlib.suppress(OSError):
                item.path.unlink()
            with contextlib.suppress(OSError):
                item.path.parent.rmdir()  # the batch folder, once its last file went

    def forget_finished(self) -> int:
        """Remove the sent entries from the queue; returns how many."""
        with self._connect() as db:
            return db.execute("DELETE FROM sends WHERE state = ?", (SENT,)).rowcount


def _item(row: sqlite3.Row) -> QueuedSend:
    return QueuedSend(int(row["id"]), row["node"], Path(row["path"]), row["study_uid"],
                      row["description"], row["state"], int(row["attempts"]),
                      float(row["created"]), float(row["next_try"]),
                      None if row["sent_at"] is None else float(row["sent_at"]),
                      row["last_error"])
