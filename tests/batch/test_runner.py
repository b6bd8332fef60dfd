"""Archive runs on real files: results per study, resumable after kill -9, the same results
on one process, two processes and a local Dask cluster."""

from __future__ import annotations

import io
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workstation.analysis.model_file import default_description
from workstation.batch.runner import BatchOptions, run_batch

pytestmark = pytest.mark.skipif(not default_description().is_file(), reason="no shipped model")
SCHEMA = Path(__file__).resolve().parents[2] / "workstation" / "schemas" / "triage.schema.json"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, datasets: Path) -> Path:
    root = tmp_path_factory.mktemp("archive")
    shutil.copytree(datasets / "dicom" / "siemens_epi_axial", root / "patient1" / "mr")
    images = datasets / "figshare_cheng" / "images"
    (root / "pictures1").mkdir()
    (root / "pictures2").mkdir()
    for name in ("0001.jpg", "0002.jpg"):
        shutil.copy(images / name, root / "pictures1" / name)
    shutil.copy(images / "0003.jpg", root / "pictures2" / "0003.jpg")
    # compressed files: decoded in the workers' own decoder processes, which must not keep
    # a worker from exiting
    shutil.copytree(datasets / "dicom" / "siemens_epi_mosaic_orientation" / "axmb" /
                    "AxAsc36mb2a", root / "patient2" / "jpeg")
    (root / "damaged").mkdir()
    source = datasets / "dicom" / "siemens_epi_axial" / "mr_0003" / "epi_pe_ap-00001.dcm"
    (root / "damaged" / "cut.dcm").write_bytes(source.read_bytes()[:300])
    return root


def _rows(out: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(out / "results.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return list(db.execute("SELECT * FROM studies ORDER BY study_key"))
    finally:
        db.close()


def _finished(out: Path) -> int:
    """Studies recorded so far (0 while the run has not made its table yet)."""
    if not (out / "results.sqlite").exists():
        return 0
    try:
        return len(_rows(out))
    except sqlite3.OperationalError:
        return 0


@pytest.fixture(scope="module")
def one_process(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("one")
    log = io.StringIO()
    summary = run_batch([archive], out, BatchOptions(workers=1), stream=log)
    assert summary["studies"] == 5 and summary["failed"] == 0, log.getvalue()
    assert "ETA" in log.getvalue()
    return out


def test_each_study_has_a_valid_result(one_process: Path) -> None:
    from jsonschema import validate

    schema = json.loads(SCHEMA.read_text())
    rows = _rows(one_process)
    assert len(rows) == 5
    for row in rows:
        document = json.loads((one_process / row["result_file"]).read_text())
        validate(document, schema)
        assert row["verdict"] in ("tumour", "review", "cannot_assess", "no_tumour")
    damaged = next(r for r in rows if r["study_key"].endswith("damaged"))
    assert damaged["verdict"] == "cannot_assess"  # said in its result, the run went on
    errors = json.loads((one_process / damaged["result_file"]).read_text())["errors"]
    assert errors and errors[0]["path"].endswith("cut.dcm")


def test_a_second_run_skips_what_is_done(archive: Path, one_process: Path) -> None:
    before = {r["study_key"]: r["finished_at"] for r in _rows(one_process)}
    summary = run_batch([archive], one_process, BatchOptions(), stream=io.StringIO())
    assert summary["triaged_now"] == 0 and summary["skipped_as_done"] == 5
    assert {r["study_key"]: r["finished_at"] for r in _rows(one_process)} == before


def _verdicts(out: Path) -> dict[str, tuple[str, str, list[list[float]]]]:
    found = {}
    for row in _rows(out):
        document = json.loads((out / row["result_file"]).read_text())
        probabilities = [list(s["probabilities"].values())
                         for series in document["series"] for s in series["slices"]]
        found[row["study_key"]] = (row["verdict"], row["predicted_class"], probabilities)
    return found


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key][:2] == b[key][:2], key
        for x, y in zip(a[key][2], b[key][2], strict=True):
            assert x == pytest.approx(y, abs=1e-3)


def test_two_processes_give_the_same_results(archive: Path, one_process: Path,
                                             tmp_path: Path) -> None:
    # a process of its own, so that a worker that never exits fails the test, not the suite
    done = subprocess.run([sys.executable, "-m", "workstation", "batch", str(archive),
                           "--out", str(tmp_path), "--workers", "2", "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["failed"] == 0 and summary["workers"] == 2
    assert len({r["worker"] for r in _rows(tmp_path)}) >= 1
    _same(_verdicts(one_process), _verdicts(tmp_path))


def test_a_local_dask_cluster_gives_the_same_results(archive: Path, one_process: Path,
                                                     tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    summary = run_batch([archive], tmp_path, BatchOptions(workers=1, cluster="local"),
                        stream=io.StringIO())
    assert summary["failed"] == 0 and summary["engine"] == "dask local"
    _same(_verdicts(one_process), _verdicts(tmp_path))


def test_killed_run_resumes_without_repeating_or_losing_studies(archive: Path,
                                                                tmp_path: Path) -> None:
    command = [sys.executable, "-m", "workstation", "batch", str(archive), "--out",
               str(tmp_path)]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            if _finished(tmp_path) >= 1:
                break
            if first.poll() is not None:
                pytest.fail("the run ended before it could be killed")
            time.sleep(0.05)
        else:
            pytest.fail("no study finished within 180 s")
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait()
    finished_before = {r["study_key"] for r in _rows(tmp_path)}
    assert 1 <= len(finished_before) < 5
    second = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stderr
    assert f"{len(finished_before)} already done" in second.stderr
    rows = _rows(tmp_path)
    assert sorted(r["study_key"] for r in rows) == sorted({r["study_key"] for r in rows})
    assert len(rows) == 5 and all(r["state"] == "done" for r in rows)
    assert not list((tmp_path / "studies").glob("*.tmp"))
    assert len(list((tmp_path / "studies").glob("*.json"))) == 5
