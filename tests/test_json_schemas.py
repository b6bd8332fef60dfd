"""The committed JSON Schemas (workstation/schemas) hold the real ``--json`` documents:
``inspect`` and ``triage`` run as a user runs them, on real series (one of several volumes)
and on a synthetic folder with a broken file, a CT image and a note."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.dicom_factory import gradient, mr_dataset, write
from workstation.analysis.model_file import default_description
from workstation.analysis.run import TRIAGE_SCHEMA_VERSION
from workstation.inspect import SCHEMA_VERSION

MULTI_VOLUME = ("dicom", "siemens_epi_axial", "mr_0003")  # two time points of 5 slices


def schema(name: str) -> dict[str, Any]:
    text = resources.files("workstation").joinpath(f"schemas/{name}.schema.json").read_text()
    document: dict[str, Any] = json.loads(text)
    return document


def validate(document: dict[str, Any], name: str) -> None:
    validator = jsonschema.Draft202012Validator(schema(name))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workstation", *args], capture_output=True,
                          text=True, timeout=900, check=False)


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    """Two MR slices, one CT image, a truncated DICOM file, a broken PNG and a text note."""
    folder = tmp_path / "synthetic"
    for k in range(2):
        write(mr_dataset(gradient(offset=k), series_uid="1.2.3.21", instance=k + 1,
                         position=(0, 0, float(k))), folder / f"mr{k}.dcm")
    ct = mr_dataset(gradient(), series_uid="1.2.3.22", instance=1, description="CT head")
    ct.Modality = "CT"
    write(ct, folder / "ct.dcm")
    whole = write(mr_dataset(gradient(), series_uid="1.2.3.23", instance=1), folder / "cut.dcm")
    (folder / "broken.dcm").write_bytes(whole.read_bytes()[:-1000])  # pixel data cut short
    whole.unlink()
    (folder / "junk.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("acquired on the second scanner\n")
    return folder


def test_the_schemas_are_valid_and_agree_with_the_code() -> None:
    inspect_schema, triage_schema = schema("inspect"), schema("triage")
    for document in (inspect_schema, triage_schema):
        jsonschema.Draft202012Validator.check_schema(document)
    assert inspect_schema["properties"]["schema"]["const"] == SCHEMA_VERSION == 3
    assert triage_schema["properties"]["schema"]["const"] == TRIAGE_SCHEMA_VERSION == 4
    # the triage document lists the volumes "as in inspect --json"
    assert triage_schema["$defs"]["volume"] == inspect_schema["$defs"]["volume"]


def test_inspect_json_of_real_and_broken_input_holds_its_schema(datasets: Path,
                                                                synthetic: Path) -> None:
    result = run("inspect", str(datasets.joinpath(*MULTI_VOLUME)),
                 str(datasets / "dicom" / "ge_epi_axial"),
                 str(datasets / "figshare_cheng" / "images" / "0001.jpg"), str(synthetic),
                 "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    validate(document, "inspect")
    assert document["schema"] == 3
    volumes = {Path(s["source"]).name: len(s["volumes"]) for s in document["series"]}
    assert volumes["mr_0003"] == 2 and volumes["ge_epi_axial"] == 10
    assert {p["severity"] for p in document["problems"]} == {"error", "skipped"}
    assert any(p["path"].endswith("broken.dcm") for p in document["problems"])


def test_inspect_json_of_nothing_readable_holds_its_schema(synthetic: Path) -> None:
    for name in ("mr0.dcm", "mr1.dcm", "ct.dcm"):
        (synthetic / name).unlink()
    result = run("inspect", str(synthetic), "--json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    validate(document, "inspect")
    assert document["series"] == [] and document["problems"]


@pytest.mark.skipif(not default_description().is_file(), reason="no shipped model")
def test_triage_json_of_real_and_broken_input_holds_its_schema(datasets: Path,
                                                               synthetic: Path) -> None:
    result = run("triage", str(datasets.joinpath(*MULTI_VOLUME)),
                 str(datasets / "figshare_cheng" / "images" / "0001.jpg"), str(synthetic),
                 "--json", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    validate(document, "triage")
    assert document["schema"] == 4
    assert document["backend"] in ("onnxruntime", "torch")
    by_source = {(Path(s["source"]).name, s["description"]): s for s in document["series"]}
    multi = next(s for (name, _), s in by_source.items() if name == "mr_0003")
    assert len(multi["volumes"]) == 2 and multi["assessed_on"] is not None
    ct = by_source[("synthetic", "CT head")]
    assert ct["verdict"] == "cannot_assess" and ct["predicted_class"] == ""
    assert any(e["path"].endswith("broken.dcm") for e in document["errors"])
    assert any(e["path"].endswith("junk.png") for e in document["errors"])
