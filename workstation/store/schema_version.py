"""The schema version of the workstation's SQLite files (worklist, audit log, send queue):
migrate an older file forward, refuse a newer one.

Each store keeps its schema version in SQLite's ``PRAGMA user_version`` (0 in a new or a
pre-versioning file). On open it calls ``migrate(connection, what, steps)`` with its list of
steps: ``steps[k]`` takes the file from version ``k`` to ``k + 1`` (step 0 creates the first
schema, or brings an unversioned file to version 1), so the current version is
``len(steps)``. A file written by a newer workstation (a version above that) is refused in
words rather than opened and damaged; an upgrade installed over an older one migrates each
file the first time it is opened, each step in its own transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

Step = Callable[[sqlite3.Connection], None] | str  # a function, or SQL statements


class NewerSchemaError(RuntimeError):
    """The file was written by a newer version of the workstation than this one."""


class MigrationError(RuntimeError):
    """A step that brings the file forward failed; the file is left at the last good
    version."""


@dataclass(frozen=True)
class Migrated:
    what: str
    from_version: int
    to_version: int

    @property
    def changed(self) -> bool:
        return self.from_version != self.to_version


def schema_version(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def _where(connection: sqlite3.Connection) -> str:
    row = connection.execute("PRAGMA database_list").fetchone()
    name = str(row[2]) if row is not None and row[2] else ""
    return f" ({Path(name).name})" if name else ""


def statements(script: str) -> list[str]:
    """The SQL statements of ``script`` one by one (a trigger's body keeps its own ``;``):
    ``executescript`` would commit the migration's transaction half-way."""
    found, buffer = [], ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n\t;"):
                found.append(buffer.strip())
            buffer = ""
    if buffer.strip(" \n\t;"):
        found.append(buffer.strip())  # the last statement without its ";": SQLite says why
    return found


def migrate(connection: sqlite3.Connection, what: str, steps: Sequence[Step]) -> Migrated:
    """Bring ``connection``'s file to version ``len(steps)``; ``what`` names the store in the
    messages ("the worklist", "the audit log"). Raises ``NewerSchemaError`` for a file of a
    newer version and ``MigrationError`` when a step fails (its changes rolled back)."""
    current = len(steps)
    found = schema_version(connection)
    if found > current:
        raise NewerSchemaError(
            f"{what}{_where(connection)} was written by a newer version of the workstation "
            f"(its format is version {found}, this version knows up to {current}): it was "
            f"not opened, and nothing in it was changed. Install that newer version again, "
            f"or ask IT to restore a backup made with this version")
    for version in range(found, current):
        step = steps[version]
        try:
            # an explicit transaction: Python's sqlite3 does not open one before DDL
            connection.execute("BEGIN IMMEDIATE")
            if isinstance(step, str):
                for statement in statements(step):
                    connection.execute(statement)
            else:
                step(connection)
            # PRAGMA takes no parameters; the value is an int we computed
            connection.execute(f"PRAGMA user_version = {version + 1:d}")
            connection.execute("COMMIT")
        except Exception as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            if not isinstance(exc, sqlite3.Error):
                raise
            raise MigrationError(
                f"{what}{_where(connection)} could not be brought from format version "
                f"{version} to {version + 1} ({exc}); it was left at version {version}") from exc
    return Migrated(what, found, current)
