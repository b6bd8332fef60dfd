"""The shipped model: one weights file verified by sha256 before anything reads it.

``models/<name>.json`` names the weights file and its sha256 and carries the headline
figures; the weights file (a torch archive of plain tensors and numbers) holds the network
weights, the calibration temperature, the review threshold and the out-of-distribution
statistics, so that what is verified is everything the verdict depends on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from workstation.build_info import resource_root

# the repository's models/ in a source checkout, the bundle's in a package (make package)
MODELS_DIR = resource_root() / "models"
DEFAULT_MODEL = "triage-v2"


class ModelIntegrityError(Exception):
    """The weights file is missing, or is not the file the model description names."""


@dataclass(frozen=True)
class OnnxFiles:
    """The ONNX Runtime form of the model: the graph and the calibration (numpy), each with
    its sha256, and the sha256 of the weights archive they were exported from (a graph
    exported from other weights is not used)."""

    graph: Path
    graph_sha256: str
    calibration: Path
    calibration_sha256: str
    from_weights: str

    @classmethod
    def of(cls, data: object, folder: Path) -> OnnxFiles | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(graph=folder / str(data["file"]), graph_sha256=str(data["sha256"]),
                       calibration=folder / str(data["calibration"]),
                       calibration_sha256=str(data["calibration_sha256"]),
                       from_weights=str(data["from_weights_sha256"]))
        except KeyError:
            return None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    sha256: str
    weights: Path
    description: Path
    onnx: OnnxFiles | None = None

    @classmethod
    def load(cls, description: Path) -> ModelInfo:
        if not description.is_file():
            raise ModelIntegrityError(
                f"no model description at {description}: the triage model is not installed")
        try:
            data = json.loads(description.read_text())
            return cls(name=str(data["name"]), version=str(data["version"]),
                       sha256=str(data["sha256"]),
                       weights=description.parent / str(data["weights"]),
                       description=description,
                       onnx=OnnxFiles.of(data.get("onnx"), description.parent))
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelIntegrityError(
                f"the model description {description} cannot be read ({exc})") from exc
        except json.JSONDecodeError as exc:
            raise ModelIntegrityError(
                f"the model description {description} is damaged or truncated (not valid "
                f"JSON: {exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
        except (KeyError, TypeError) as exc:
            raise ModelIntegrityError(
                f"the model description {description} lacks the model's name, version, "
                f"sha256 or weights file ({exc})") from exc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(path: Path, sha256: str, what: str = "weights file") -> Path:
    """``path``, after checking its sha256 against the one the model description records."""
    if not path.is_file():
        raise ModelIntegrityError(f"the {what} {path.name} is missing")
    actual = sha256_of(path)
    if actual != sha256:
        raise ModelIntegrityError(
            f"the {what} {path.name} does not match its recorded sha256 "
            f"(expected {sha256[:12]}..., found {actual[:12]}...): refusing to use it")
    return path


def verified_weights(info: ModelInfo) -> Path:
    """The weights path, after checking its sha256 against the model description."""
    return verified(info.weights, info.sha256)


def default_description() -> Path:
    return MODELS_DIR / f"{DEFAULT_MODEL}.json"
