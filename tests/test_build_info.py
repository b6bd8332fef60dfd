"""workstation.build_info: what --version and Help > About say, in a source checkout and
in a packaged build (build_info.json beside models/)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from workstation import __version__
from workstation.build_info import (
    SOURCE_CHECKOUT,
    load_build_info,
    resource_root,
    write_build_file,
)

REPO = Path(__file__).resolve().parents[1]


def test_source_checkout_reads_the_repository_model() -> None:
    info = load_build_info()
    assert resource_root() == REPO
    assert info.built == SOURCE_CHECKOUT and not info.packaged
    described = json.loads((REPO / "models" / "triage-v2.json").read_text())
    assert info.model is not None
    assert (info.model.version, info.model.sha256) == (described["version"],
                                                       described["sha256"])
    assert info.model.onnx_sha256 == described["onnx"]["sha256"]
    assert info.lines()[0] == f"workstation {__version__}"
    assert info.lines()[-1] == "build: source checkout"


def test_packaged_build_names_its_date_variant_and_package(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    shutil.copy(REPO / "models" / "triage-v2.json", tmp_path / "models")
    write_build_file(tmp_path, "2026-12-01T16:40:00+00:00", "cpu: ONNX Runtime, without PyTorch",
                     package_version=f"{__version__}+1")
    info = load_build_info(tmp_path)
    assert info.packaged
    assert info.lines()[0] == f"workstation {__version__} (package {__version__}+1)"
    assert info.lines()[-1] == ("build: built 2026-12-01T16:40:00+00:00 "
                                "(cpu: ONNX Runtime, without PyTorch)")
    assert json.loads(json.dumps(info.document()))["model"]["name"] == "triage-v2"


def test_missing_or_damaged_files_are_said_not_raised(tmp_path: Path) -> None:
    (tmp_path / "build_info.json").write_text("{not json")
    info = load_build_info(tmp_path)
    assert info.built == SOURCE_CHECKOUT
    assert info.model is None and "model: not installed" in info.text()


def test_frozen_bundle_is_the_resource_root(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resource_root() == tmp_path
