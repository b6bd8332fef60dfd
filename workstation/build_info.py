"""What this installation is: the application version, the model it ships (version and
sha256) and when and how it was built.

A packaged build (``make package``: PyInstaller onedir) carries ``build_info.json`` beside its
``models/`` folder, written at packaging time; a source checkout has none and says so.
Nothing here imports more than the standard library, so ``workstation --version`` stays
instant.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from workstation import __version__

BUILD_FILE = "build_info.json"
SOURCE_CHECKOUT = "source checkout"
DEFAULT_MODEL = "triage-v2"


def is_frozen() -> bool:
    """Whether this runs from a packaged (PyInstaller) build rather than from Python."""
    return bool(getattr(sys, "frozen", False)) and hasattr(sys, "_MEIPASS")


def resource_root() -> Path:
    """The folder holding ``models/`` (and, in a package, ``build_info.json``): the bundle's
    data folder when frozen, else the repository root of the source checkout."""
    if is_frozen():
        return Path(str(getattr(sys, "_MEIPASS", "")))
    return Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ModelStamp:
    name: str
    version: str
    sha256: str  # of the weights archive the model description names
    onnx_sha256: str  # of the ONNX Runtime graph; "" for a model without one

    @classmethod
    def of(cls, description: Path) -> ModelStamp | None:
        """The stamp of ``models/<name>.json``; None when it is missing or unreadable."""
        try:
            data = json.loads(description.read_text())
            onnx = data.get("onnx") if isinstance(data.get("onnx"), dict) else {}
            return cls(name=str(data["name"]), version=str(data["version"]),
                       sha256=str(data["sha256"]), onnx_sha256=str(onnx.get("sha256", "")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None


@dataclass(frozen=True)
class BuildInfo:
    version: str  # the application's version (workstation.__version__)
    package_version: str  # the installer's version; the same unless repackaged
    built: str  # ISO 8601 date and time of `make package`, or "source checkout"
    variant: str  # e.g. "cpu: ONNX Runtime, without PyTorch"; "" in a source checkout
    model: ModelStamp | None

    @property
    def packaged(self) -> bool:
        return self.built != SOURCE_CHECKOUT

    def lines(self) -> list[str]:
        """What ``workstation --version`` prints and Help > About shows."""
        package = (f" (package {self.package_version})"
                   if self.package_version != self.version else "")
        lines = [f"workstation {self.version}{package}"]
        if self.model is None:
            lines.append("model: not installed")
        else:
            lines.append(f"model: {self.model.name} {self.model.version}, "
                         f"sha256 {self.model.sha256}")
            if self.model.onnx_sha256:
                lines.append(f"model ONNX graph: sha256 {self.model.onnx_sha256}")
        built = f"built {self.built}" if self.packaged else SOURCE_CHECKOUT
        lines.append(f"build: {built}" + (f" ({self.variant})" if self.variant else ""))
        return lines

    def text(self) -> str:
        return "\n".join(self.lines())

    def document(self) -> dict[str, object]:
        return asdict(self)


def load_build_info(root: Path | None = None) -> BuildInfo:
    """This installation's build information (read from ``root``, default
    ``resource_root()``): the packaged ``build_info.json`` when there is one, else the
    source checkout's version and model description."""
    root = root or resource_root()
    model = ModelStamp.of(root / "models" / f"{DEFAULT_MODEL}.json")
    try:
        data = json.loads((root / BUILD_FILE).read_text())
        return BuildInfo(version=str(data.get("version", __version__)),
                         package_version=str(data.get("package_version", __version__)),
                         built=str(data["built"]), variant=str(data.get("variant", "")),
                         model=model)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return BuildInfo(version=__version__, package_version=__version__,
                         built=SOURCE_CHECKOUT, variant="", model=model)


def write_build_file(root: Path, built: str, variant: str,
                     package_version: str | None = None) -> Path:
    """Write ``root/build_info.json`` (packaging time: ``packaging/build.py``)."""
    path = root / BUILD_FILE
    path.write_text(json.dumps({"version": __version__,
                                "package_version": package_version or __version__,
                                "built": built, "variant": variant}, indent=2) + "\n")
    return path
