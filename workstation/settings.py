"""User settings shared by the window and the command line, persisted per user as JSON in
the platform's config folder (e.g. ~/.config/brain-mri-triage/settings.json)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from platformdirs import user_config_dir, user_data_dir

APP_NAME = "brain-mri-triage"
MAX_RECENT = 10


def config_dir() -> Path:
    return Path(os.environ.get("BRAIN_TRIAGE_CONFIG_DIR") or user_config_dir(APP_NAME))


def data_dir() -> Path:
    return Path(os.environ.get("BRAIN_TRIAGE_DATA_DIR") or user_data_dir(APP_NAME))


@dataclass(frozen=True)
class Settings:
    device: str = "auto"  # auto | cpu | cuda
    institution: str = ""
    page_size: str = "A4"  # A4 | Letter
    overlay_style: str = "outline"  # outline | fill
    overlay_opacity: float = 0.45
    show_mask: bool = True
    show_gradcam: bool = False
    reader_name: str = ""
    recent: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = path or config_dir() / "settings.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "recent" in values:
            values["recent"] = tuple(str(p) for p in values["recent"])[:MAX_RECENT]
        try:
            return cls(**values)
        except TypeError:
            return cls()

    def save(self, path: Path | None = None) -> None:
        path = path or config_dir() / "settings.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        temporary.replace(path)

    def with_recent(self, study: str) -> Settings:
        recent = (study, *[p for p in self.recent if p != study])[:MAX_RECENT]
        return replace(self, recent=recent)
