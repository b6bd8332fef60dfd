from pathlib import Path

import pytest

from tests.analysis.test_triage import series
from workstation.imaging import Study
from workstation.settings import Settings
from workstation.store.readings import Reading, load_readings, save_reading


def test_readings_round_trip_per_study(tmp_path: Path) -> None:
    study = Study(series=(series(2),))
    reading = Reading.now("1.2", "disagree", "glioma", " note ", "Dr A")
    save_reading(study, reading, tmp_path)
    loaded = load_readings(study, tmp_path)
    assert loaded == {"1.2": reading}
    assert loaded["1.2"].note == "note"
    assert load_readings(Study(series=()), tmp_path) == {}


def test_reading_refuses_unknown_agreement() -> None:
    with pytest.raises(ValueError):
        Reading.now("k", "maybe")


def test_settings_persist_and_survive_garbage(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    Settings(institution="Clinic", page_size="Letter").with_recent("/a").save(path)
    loaded = Settings.load(path)
    assert (loaded.institution, loaded.page_size, loaded.recent) == ("Clinic", "Letter", ("/a",))
    path.write_text("{not json")
    assert Settings.load(path) == Settings()
