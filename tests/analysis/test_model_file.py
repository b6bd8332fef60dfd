"""A damaged model description is a plain refusal (exit 3), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dicom_factory import gradient, mr_dataset, write
from workstation.analysis.model_file import ModelInfo, ModelIntegrityError, default_description
from workstation.cli import main

GOOD = {"name": "triage-v1", "version": "1.0.0", "sha256": "ab" * 32, "weights": "w.pt"}


@pytest.mark.parametrize(("text", "says"), [
    (json.dumps(GOOD)[:40], "is damaged or truncated (not valid JSON"),
    ("", "is damaged or truncated (not valid JSON"),
    (json.dumps({"name": "x"}), "lacks the model's name, version, sha256 or weights file"),
    (json.dumps(["a", "b"]), "lacks the model's name, version, sha256 or weights file"),
])
def test_damaged_description_is_an_integrity_error(tmp_path: Path, text: str,
                                                   says: str) -> None:
    description = tmp_path / "triage-v1.json"
    description.write_text(text)
    with pytest.raises(ModelIntegrityError, match="the model description") as caught:
        ModelInfo.load(description)
    assert says in str(caught.value) and str(description) in str(caught.value)


def test_shipped_description_still_loads() -> None:
    if not default_description().is_file():
        pytest.skip("no model installed")
    assert ModelInfo.load(default_description()).name


def test_triage_with_a_truncated_description_exits_3(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(mr_dataset(gradient(), series_uid="1.2.3.77", instance=1), tmp_path / "s" / "a.dcm")
    description = tmp_path / "triage-v1.json"
    description.write_text(json.dumps(GOOD)[:25])
    assert main(["triage", str(tmp_path / "s"), "--model", str(description)]) == 3
    err = capsys.readouterr().err
    assert "the triage model cannot be used: the model description" in err
    assert "is damaged or truncated" in err and "Traceback" not in err
