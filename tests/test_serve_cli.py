"""``workstation serve | worklist | audit`` as a user runs them: a real series sent by
DCMTK's storescu to ``workstation serve`` (real model), triaged on arrival, listed by
``worklist --json`` (checked against its schema), and the audit log verified, then
tampered with."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import jsonschema
import pytest

from tests.test_json_schemas import schema, validate
from workstation.analysis.model_file import default_description
from workstation.commands import serve
from workstation.dicomnet.completion import wait_until
from workstation.dicomnet.config import NetworkSettings
from workstation.dicomnet.load_test import ServeProcess, free_port, run_load_test
from workstation.store.worklist import DONE, FAILED


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BRAIN_TRIAGE_DATA_DIR": str(folder / "data"),
           "BRAIN_TRIAGE_CONFIG_DIR": str(folder / "config")}
    return subprocess.run([sys.executable, "-m", "workstation", *args], capture_output=True,
                          text=True, timeout=120, env=env, check=False)


def test_the_worklist_schema_is_valid_and_agrees_with_the_code() -> None:
    document = schema("worklist")
    jsonschema.Draft202012Validator.check_schema(document)
    assert document["properties"]["schema"]["const"] == serve.WORKLIST_SCHEMA_VERSION


def test_flags_override_the_settings_file(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAIN_TRIAGE_CONFIG_DIR", str(tmp_path))
    NetworkSettings(ae_title="SAVED", port=4000, allowed_callers=("MRI1",),
                    stable_age_s=60).save()
    parser = argparse.ArgumentParser()
    serve.add_parsers(parser.add_subparsers(dest="command"))
    settings = serve.settings_for(parser.parse_args(
        ["serve", "--port", "11113", "--store", str(tmp_path / "s"), "--allow-ae", "CT2"]))
    assert (settings.ae_title, settings.port, settings.allowed_callers) == (
        "SAVED", 11113, ("CT2",))
    assert (settings.store_path(), settings.stable_age_s) == (tmp_path / "s", 60)


@pytest.mark.skipif(shutil.which("storescu") is None,
                    reason="DCMTK's storescu is not installed (Debian package dcmtk)")
@pytest.mark.skipif(not default_description().is_file(), reason="no shipped model")
def test_a_study_sent_by_storescu_is_triaged_and_listed(tmp_path: Path,
                                                        datasets: Path) -> None:
    files = sorted((datasets / "dicom" / "ge_epi_axial").glob("*.dcm"))[:40]
    process = ServeProcess(tmp_path, free_port(), "--stable-age", "1", "--device", "cpu",
                           "--allow-ae", "SCANNER")
    try:
        sent = subprocess.run(["storescu", "-aet", "SCANNER", "-aec", "BRAINTRIAGE",
                               "127.0.0.1", str(process.port), *map(str, files)],
                              capture_output=True, text=True, timeout=120, check=False)
        assert sent.returncode == 0, sent.stderr
        with process.worklist() as worklist:
            assert wait_until(lambda: worklist.studies()[0].state in (DONE, FAILED), 120)
    finally:
        process.stop()
    listed = cli(tmp_path, "worklist", "--json")
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)
    validate(document, "worklist")
    (study,) = document["studies"]
    assert (study["state"], study["instance_count"], study["series_count"]) == ("done", 40, 1)
    assert study["verdict"] in ("tumour", "no_tumour", "review", "cannot_assess")
    assert study["priority"] == {"tumour": 1, "review": 2, "cannot_assess": 3,
                                 "no_tumour": 5}[study["verdict"]]
    assert study["headline"]
    text = cli(tmp_path, "worklist")
    assert text.returncode == 0 and study["patient_name"] in text.stdout

    verified = cli(tmp_path, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "the audit log is intact" in verified.stdout
    exported = cli(tmp_path, "audit", "export", "--output", str(tmp_path / "audit.xml"))
    assert exported.returncode == 0, exported.stderr
    messages = ElementTree.parse(tmp_path / "audit.xml").getroot().findall("AuditMessage")
    codes = [m.find("EventIdentification/EventID").get("csd-code")  # type: ignore[union-attr]
             for m in messages]
    assert codes[0] == "110100" and "110104" in codes and codes[-1] == "110101"

    db = sqlite3.connect(tmp_path / "data" / "audit.sqlite")
    db.execute("DROP TRIGGER events_no_update")
    db.execute("UPDATE events SET detail = '1 instances from SCANNER' WHERE event = "
               "'instances_received'")
    db.commit()
    db.close()
    tampered = cli(tmp_path, "audit", "verify")
    assert tampered.returncode == 1
    assert "was changed after it was written" in tampered.stdout


def test_a_small_load_test_stores_everything_once(tmp_path: Path, datasets: Path) -> None:
    """The benchmark's checks on 60 instances (2 studies over 4 associations), without
    waiting for verdicts; ``python -m workstation.dicomnet.load_test`` runs 1000."""
    printed = io.StringIO()
    result = run_load_test(_two_studies(tmp_path, datasets), 60, 4, tmp_path / "work",
                           wait_for_verdicts=False, out=printed)
    assert "PASSED" in printed.getvalue(), printed.getvalue()
    assert result.passed
    assert (result.studies, result.studies_in_worklist, result.partial_files) == (2, 2, 0)
    assert result.stored_once and result.hashes_identical and result.instances_per_second > 0


def _two_studies(tmp_path: Path, datasets: Path) -> Path:
    """30 files of the real series, so that 60 instances make two studies."""
    source = tmp_path / "source"
    source.mkdir()
    for path in sorted((datasets / "dicom" / "ge_epi_axial").glob("*.dcm"))[:30]:
        (source / path.name).symlink_to(path)
    return source
