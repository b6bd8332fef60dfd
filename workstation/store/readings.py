"""The reviewer's own reading of each series, kept with the study for the report.

Readings are stored per study in the user's data folder (the study folder itself may be
read-only media), keyed by a digest of the study's series identities.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from workstation.imaging.series import Series, Study
from workstation.settings import data_dir
from workstation.store.audit import READING_SAVED, record_event, study_uid_of

AGREEMENTS = ("agree", "disagree")


@dataclass(frozen=True)
class Reading:
    series_key: str
    agreement: str  # agree | disagree
    corrected_class: str  # "" when agreeing; else glioma/meningioma/pituitary/no_tumour/other
    note: str
    reader: str
    recorded_at: str  # ISO 8601, local time with offset

    def __post_init__(self) -> None:
        if self.agreement not in AGREEMENTS:
            raise ValueError(f"agreement must be one of {AGREEMENTS}")

    @classmethod
    def now(cls, series_key: str, agreement: str, corrected_class: str = "", note: str = "",
            reader: str = "") -> Reading:
        stamp = datetime.now().astimezone().isoformat(timespec="seconds")
        return cls(series_key, agreement, corrected_class, note.strip(), reader.strip(), stamp)


def series_key(series: Series) -> str:
    return series.series_uid or series.source


def study_key(study: Study) -> str:
    identities = sorted(series_key(s) for s in study.series)
    return hashlib.sha256("\n".join(identities).encode()).hexdigest()[:24]


def readings_path(study: Study, folder: Path | None = None) -> Path:
    return (folder or data_dir() / "readings") / f"{study_key(study)}.json"


def load_readings(study: Study, folder: Path | None = None) -> dict[str, Reading]:
    try:
        data = json.loads(readings_path(study, folder).read_text())
        return {k: Reading(**v) for k, v in data.items()}
    except (OSError, ValueError, TypeError):
        return {}


def save_reading(study: Study, reading: Reading, folder: Path | None = None) -> None:
    readings = load_readings(study, folder)
    readings[reading.series_key] = reading
    path = readings_path(study, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({k: asdict(v) for k, v in readings.items()}, indent=2))
    temporary.replace(path)
    record_event(READING_SAVED, study_uid=study_uid_of(study), detail=reading.agreement)
