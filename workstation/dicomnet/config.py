"""DICOM network settings, shared by the receiver, query/retrieve and result sending.

This workstation's own node (the receiver's AE title, port, who may send to it, where
instances are stored) and the remote nodes it talks to (a PACS to query, destinations for
results), kept per user as JSON in ``config_dir()/dicom.json``. Command-line flags override
them for one run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from workstation.settings import config_dir, data_dir
from workstation.store.audit import SETTINGS_CHANGED, record_event

DEFAULT_AE_TITLE = "BRAINTRIAGE"
DEFAULT_PORT = 11112


class NetworkSettingsError(ValueError):
    """A DICOM network setting the user must correct (said in plain words)."""


def check_ae_title(title: str) -> str:
    """An AE title as DICOM allows it: 1-16 characters, printable ASCII, no backslash,
    not only spaces. Returns it stripped; raises NetworkSettingsError otherwise."""
    stripped = title.strip()
    if not stripped or len(stripped) > 16:
        raise NetworkSettingsError(f"AE title {title!r} must be 1 to 16 characters")
    if any(not (32 <= ord(c) < 127) or c == "\\" for c in stripped):
        raise NetworkSettingsError(
            f"AE title {title!r} may hold only printable ASCII characters, no backslash")
    return stripped


def check_port(port: int) -> int:
    if not 1 <= int(port) <= 65535:
        raise NetworkSettingsError(f"port {port} must be between 1 and 65535")
    return int(port)


@dataclass(frozen=True)
class RemoteNode:
    """A PACS or another DICOM node, known to the user by a short name."""

    name: str
    ae_title: str
    host: str
    port: int
    tls: bool = False

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise NetworkSettingsError("a DICOM node needs a name")
        if not self.host.strip():
            raise NetworkSettingsError(f"DICOM node {self.name!r} needs a host")
        object.__setattr__(self, "ae_title", check_ae_title(self.ae_title))
        object.__setattr__(self, "port", check_port(self.port))


@dataclass(frozen=True)
class NetworkSettings:
    ae_title: str = DEFAULT_AE_TITLE
    port: int = DEFAULT_PORT
    bind_address: str = "0.0.0.0"
    # calling AE titles and hosts allowed to send; empty means anyone who reaches the port
    allowed_callers: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    max_associations: int = 8
    store_dir: str = ""  # empty: data_dir()/store
    stable_age_s: float = 30.0  # a study is complete after this long with no new instance
    min_free_mb: int = 500  # below this, C-STORE answers "out of resources"
    # TLS for the receiver (DICOM over TLS): PEM certificate and key; with a CA file, only
    # senders holding a certificate it signed may connect. Empty: plain TCP
    tls_certificate: str = ""
    tls_key: str = ""
    tls_ca_certificates: str = ""
    pacs: str = ""  # name of the node to query/retrieve from
    destination: str = ""  # name of the node results are sent to by default
    nodes: tuple[RemoteNode, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ae_title", check_ae_title(self.ae_title))
        object.__setattr__(self, "port", check_port(self.port))
        if self.max_associations < 1:
            raise NetworkSettingsError("maximum associations must be at least 1")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise NetworkSettingsError("two DICOM nodes have the same name")

    def store_path(self) -> Path:
        return Path(self.store_dir) if self.store_dir else data_dir() / "store"

    def node(self, name: str) -> RemoteNode:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes) or "none configured"
        raise NetworkSettingsError(f"no DICOM node named {name!r} (known: {known})")

    def with_node(self, node: RemoteNode) -> NetworkSettings:
        others = tuple(n for n in self.nodes if n.name != node.name)
        return replace(self, nodes=(*others, node))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("allowed_callers", "allowed_hosts"):
            if key in values:
                values[key] = tuple(str(v) for v in values[key])
        if "nodes" in values:
            node_fields = {f.name for f in fields(RemoteNode)}
            values["nodes"] = tuple(
                RemoteNode(**{k: v for k, v in n.items() if k in node_fields})
                for n in values["nodes"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise NetworkSettingsError(f"DICOM network settings not understood: {exc}") from exc

    @classmethod
    def load(cls, path: Path | None = None) -> NetworkSettings:
        """The saved settings; defaults when there is no file. A file that exists but
        cannot be used raises NetworkSettingsError (a receiver must not silently start
        with other settings than the ones the IT person wrote)."""
        path = path or default_path()
        try:
            text = path.read_text()
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise NetworkSettingsError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise NetworkSettingsError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise NetworkSettingsError(f"{path} must hold one JSON object")
        return cls.from_dict(data)

    def save(self, path: Path | None = None) -> None:
        path = path or default_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        temporary.replace(path)
        record_event(SETTINGS_CHANGED, detail="DICOM network settings")


def default_path() -> Path:
    return config_dir() / "dicom.json"
