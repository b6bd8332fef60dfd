from __future__ import annotations

from pathlib import Path

import pytest

from workstation.dicomnet.config import (
    NetworkSettings,
    NetworkSettingsError,
    RemoteNode,
    check_ae_title,
)


def test_round_trip_keeps_nodes(tmp_path: Path) -> None:
    settings = NetworkSettings(ae_title="TRIAGE1", port=11113, allowed_callers=("SCANNER",))
    settings = settings.with_node(RemoteNode("pacs", "ORTHANC", "127.0.0.1", 4242))
    settings.save(tmp_path / "dicom.json")
    loaded = NetworkSettings.load(tmp_path / "dicom.json")
    assert loaded == settings
    assert loaded.node("pacs").ae_title == "ORTHANC"


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert NetworkSettings.load(tmp_path / "absent.json") == NetworkSettings()


@pytest.mark.parametrize("text", ["{", "[1, 2]", '{"port": 0}', '{"ae_title": "x\\\\y"}'])
def test_bad_file_is_refused_in_words(tmp_path: Path, text: str) -> None:
    path = tmp_path / "dicom.json"
    path.write_text(text)
    with pytest.raises(NetworkSettingsError):
        NetworkSettings.load(path)


def test_ae_title_rules() -> None:
    assert check_ae_title("  PACS ") == "PACS"
    for bad in ("", "   ", "A" * 17, "é"):
        with pytest.raises(NetworkSettingsError):
            check_ae_title(bad)


def test_unknown_node_names_the_known_ones() -> None:
    settings = NetworkSettings().with_node(RemoteNode("pacs", "ORTHANC", "localhost", 4242))
    with pytest.raises(NetworkSettingsError, match="pacs"):
        settings.node("archive")
