from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from workstation.store.worklist import (
    DONE,
    FAILED,
    RECEIVING,
    WAITING,
    Worklist,
    default_path,
)


def arrival(worklist: Worklist, study: str, sop: str, series: str = "1.9", *,
            now: float = 1000.0, **header: str) -> bool:
    stored = SimpleNamespace(path=Path(f"/store/{study}/{series}/{sop}.dcm"), study_uid=study,
                             series_uid=series, sop_instance_uid=sop)
    dataset = {"PatientName": "Doe^Jane", "PatientID": "P1", "StudyDate": "20261201",
               "StudyDescription": "MRI brain", **header}
    return worklist.note_arrival(stored, dataset, now=now)


def analysed(worklist: Worklist, study: str, verdict: str, now: float = 2000.0) -> None:
    worklist.complete_quiet(30, now=now)
    claim = worklist.claim_next()
    assert claim is not None and claim.study_uid == study
    worklist.finish(claim, verdict, f"{verdict} headline", [f"T1: {verdict} reason"],
                    {"series": []}, now=now)


def test_one_row_per_study_with_its_counts_and_header(tmp_path: Path) -> None:
    with Worklist(tmp_path / "w.sqlite") as worklist:
        assert arrival(worklist, "1.1", "1.1.1", "1.1.10")
        assert arrival(worklist, "1.1", "1.1.2", "1.1.10")
        assert arrival(worklist, "1.1", "1.1.3", "1.1.11", StudyDescription="other")
        assert not arrival(worklist, "1.1", "1.1.3", "1.1.11")  # the same instance again
        (row,) = worklist.studies()
    assert (row.study_uid, row.instance_count, row.series_count) == ("1.1", 3, 2)
    assert (row.patient_name, row.patient_id, row.study_date, row.description) == (
        "Doe^Jane", "P1", "20261201", "MRI brain")
    assert (row.state, row.verdict, row.priority_name, row.read) == (
        RECEIVING, "", "pending", False)
    assert row.folder == Path("/store/1.1")
    assert row.document()["verdict"] is None


def test_priority_order_then_arrival(tmp_path: Path) -> None:
    with Worklist(tmp_path / "w.sqlite") as worklist:
        verdicts = {"1.1": "no_tumour", "1.2": "cannot_assess", "1.3": "tumour",
                    "1.4": "review", "1.5": "tumour"}
        for k, (study, verdict) in enumerate(verdicts.items()):
            arrival(worklist, study, f"{study}.1", now=100.0 + k)
            analysed(worklist, study, verdict)
        arrival(worklist, "1.6", "1.6.1", now=50.0)  # not analysed yet
        claim_failed = "1.7"
        arrival(worklist, claim_failed, "1.7.1", now=40.0)
        worklist.complete_quiet(30, now=2000)
        claim = worklist.claim_next()
        assert claim is not None and claim.study_uid == claim_failed
        worklist.fail(claim, "the analysis failed: no image could be read")
        rows = worklist.studies()
    assert [r.study_uid for r in rows] == ["1.3", "1.5", "1.4", "1.7", "1.2", "1.6", "1.1"]
    assert [r.priority for r in rows] == [1, 1, 2, 3, 3, 4, 5]
    failed = rows[3]
    assert (failed.state, failed.reason) == (FAILED, "the analysis failed: no image could be read")
    assert rows[0].headline == "tumour headline" and rows[0].reasons == ("T1: tumour reason",)


def test_new_instances_after_the_verdict_reopen_the_study(tmp_path: Path) -> None:
    with Worklist(tmp_path / "w.sqlite") as worklist:
        arrival(worklist, "1.1", "1.1.1")
        analysed(worklist, "1.1", "review")
        worklist.mark_read("1.1")
        assert worklist.studies()[0].read
        arrival(worklist, "1.1", "1.1.1", now=3000)  # a copy: nothing changes
        assert worklist.studies()[0].state == DONE
        arrival(worklist, "1.1", "1.1.2", now=3000)
        row = worklist.studies()[0]
    assert (row.state, row.read, row.verdict) == (RECEIVING, False, "review")
    assert row.last_instance_at == 3000


def test_an_arrival_during_the_analysis_keeps_the_study_receiving(tmp_path: Path) -> None:
    with Worklist(tmp_path / "w.sqlite") as worklist:
        arrival(worklist, "1.1", "1.1.1")
        worklist.complete_quiet(30, now=2000)
        claim = worklist.claim_next()
        assert claim is not None
        arrival(worklist, "1.1", "1.1.2", now=2001)
        worklist.finish(claim, "no_tumour", "routine", [], {})
        row = worklist.studies()[0]
        assert (row.state, row.verdict) == (RECEIVING, "no_tumour")
        assert worklist.complete_quiet(30, now=2031) == ["1.1"]


def test_survives_a_restart_and_resumes_unfinished_analyses(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    with Worklist(path) as worklist:
        arrival(worklist, "1.1", "1.1.1")
        arrival(worklist, "1.2", "1.2.1")
        worklist.complete_quiet(30, now=2000)
        assert worklist.claim_next() is not None  # then the process dies
    with Worklist(path) as again:
        assert again.resume_unfinished() == 1
        assert {r.state for r in again.studies()} == {WAITING}
        mode = again._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_triage_document_is_kept_beside_the_row(tmp_path: Path) -> None:
    with Worklist(tmp_path / "w.sqlite") as worklist:
        arrival(worklist, "1.1", "1.1.1")
        assert worklist.triage_document("1.1") is None
        analysed(worklist, "1.1", "tumour")
        assert worklist.triage_document("1.1") == {"series": []}
        assert worklist.instance_paths("1.1") == [Path("/store/1.1/1.9/1.1.1.dcm")]


def test_the_database_lives_in_the_data_folder(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRAIN_TRIAGE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "brain-mri-triage" / "worklist.sqlite"
    with Worklist() as worklist:
        arrival(worklist, "1.1", "1.1.1")
    assert sqlite3.connect(default_path()).execute("SELECT COUNT(*) FROM studies").fetchone() \
        == (1,)

