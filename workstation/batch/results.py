"""Where an archive run's results go: one triage JSON per study and one SQLite table.

``OUT/studies/<stem>.json`` is the ``workstation triage --json`` document of each study,
written to a temporary file and renamed, before its row is committed to
``OUT/results.sqlite``; a study with a row is done, so a run killed at any point and
started again skips exactly the studies whose results are complete.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from workstation.batch.job import StudyOutcome

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    study_key TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    state TEXT NOT NULL,            -- done | failed
    verdict TEXT NOT NULL,          -- tumour | review | cannot_assess | no_tumour | ''
    headline TEXT NOT NULL,
    predicted_class TEXT NOT NULL,
    series_count INTEGER NOT NULL,
    images INTEGER NOT NULL,
    seconds REAL NOT NULL,
    error TEXT NOT NULL,
    result_file TEXT NOT NULL,      -- relative to the output folder; '' when it failed
    model_sha256 TEXT NOT NULL,
    backend TEXT NOT NULL,
    worker TEXT NOT NULL,
    finished_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS series (
    study_key TEXT NOT NULL REFERENCES studies(study_key),
    series_uid TEXT NOT NULL,
    description TEXT NOT NULL,
    verdict TEXT NOT NULL,
    predicted_class TEXT NOT NULL,
    confidence REAL NOT NULL,
    images INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS series_of_study ON series(study_key);
"""


class ResultsTable:
    def __init__(self, out: Path) -> None:
        self.out = out
        (out / "studies").mkdir(parents=True, exist_ok=True)
        for left in (out / "studies").glob("*.json.tmp"):  # a run killed while writing
            left.unlink(missing_ok=True)
        self.db = sqlite3.connect(out / "results.sqlite")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def done_keys(self, retry_failed: bool = False) -> set[str]:
        query = "SELECT study_key FROM studies" + (" WHERE state = 'done'" if retry_failed
                                                   else "")
        return {row[0] for row in self.db.execute(query)}

    def _write_document(self, stem: str, document: dict[str, object]) -> str:
        relative = f"studies/{stem}.json"
        final = self.out / relative
        temporary = final.with_suffix(".json.tmp")
        with temporary.open("w") as handle:
            json.dump(document, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(final)
        return relative

    def record(self, outcome: StudyOutcome, stem: str) -> None:
        relative = (self._write_document(stem, outcome.document)
                    if outcome.document is not None else "")
        state = "failed" if outcome.error else "done"
        with self.db:
            self.db.execute("DELETE FROM series WHERE study_key = ?", (outcome.key,))
            self.db.execute(
                "INSERT OR REPLACE INTO studies VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (outcome.key, outcome.label, outcome.study_uid, state, outcome.verdict,
                 outcome.headline, outcome.predicted_class, outcome.series_count,
                 outcome.images, round(outcome.seconds, 3), outcome.error, relative,
                 outcome.model_sha256, outcome.backend, outcome.worker,
                 time.strftime("%Y-%m-%dT%H:%M:%S%z")))
            for series in (outcome.document or {}).get("series", []):
                self.db.execute(
                    "INSERT INTO series VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (outcome.key, series["series_uid"] or "", series["description"] or "",
                     series["verdict"], series["predicted_class"], series["confidence"],
                     len(series["slices"])))

    def rows(self) -> Iterator[sqlite3.Row]:
        self.db.row_factory = sqlite3.Row
        try:
            yield from self.db.execute("SELECT * FROM studies ORDER BY study_key")
        finally:
            self.db.row_factory = None

    def close(self) -> None:
        self.db.close()
