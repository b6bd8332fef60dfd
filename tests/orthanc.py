"""A real Orthanc PACS for the tests, on loopback, with a temporary configuration and storage.

``start_orthanc(directory, modalities)`` writes ``directory/orthanc.json``, starts the Debian
package's ``Orthanc`` binary on two free loopback ports (DICOM and HTTP) with its storage
under ``directory/storage`` and waits until its REST API answers. ``modalities`` are the DICOM
nodes Orthanc may talk to, ``{name: (ae_title, host, port)}``: only they may query and
retrieve (``DicomAlwaysAllowFind/Get/Move`` are off, as on a real PACS); anyone may C-ECHO
and C-STORE to it. The returned ``Orthanc`` can be stopped and started again on the same
ports and storage, and is a context manager::

    with start_orthanc(tmp_path, {"ws": ("BRAINTRIAGE", "127.0.0.1", 11112)}) as pacs:
        pacs.upload_files(paths)
        pacs.rest("/studies")

Tests use ``orthanc_or_skip()`` (or ``requires_orthanc``), which skip, naming the Debian
package, when Orthanc is not installed. Nothing here touches the Debian service's own
configuration or database in /etc/orthanc and /var/lib/orthanc.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

BINARY = "Orthanc"
DEBIAN_PACKAGE = "orthanc"
AE_TITLE = "ORTHANCTEST"
HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0

requires_orthanc = pytest.mark.skipif(
    shutil.which(BINARY) is None,
    reason=f"Orthanc is not installed (Debian package {DEBIAN_PACKAGE!r}: "
           f"apt-get install {DEBIAN_PACKAGE})")


class OrthancError(RuntimeError):
    """Orthanc did not start, or its REST API answered with an error."""


def orthanc_or_skip() -> str:
    """The Orthanc binary's path; skips the test when it is not installed."""
    found = shutil.which(BINARY)
    if found is None:
        pytest.skip(f"Orthanc is not installed (Debian package {DEBIAN_PACKAGE!r})")
    return found


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Orthanc:
    directory: Path
    ae_title: str
    host: str
    dicom_port: int
    http_port: int
    modalities: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.directory / "orthanc.json"

    @property
    def log_path(self) -> Path:
        return self.directory / "orthanc.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def write_config(self) -> None:
        storage = self.directory / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "brain-triage-tests",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "Plugins": [],  # not the Debian package's plugin folder
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,  # the REST API answers loopback only
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.ae_title,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowGet": False,
            "DicomAlwaysAllowMove": False,
            "DicomCheckModalityHost": False,
            "DicomModalities": {name: list(node) for name, node in self.modalities.items()},
            "DicomScuTimeout": 10,
            "DicomScpTimeout": 30,
            "StableAge": 2,
            "SaveJobs": False,
            "ConcurrentJobs": 2,
            "DefaultEncoding": "Utf8",
        }
        self.config_path.write_text(json.dumps(config, indent=2))

    def start(self) -> None:
        """Start (again, on the same ports and storage); returns when the REST API answers."""
        if self.running:
            return
        binary = orthanc_or_skip()
        self.write_config()
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [binary, str(self.config_path)], cwd=self.directory,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise OrthancError(f"Orthanc exited with status {self.process.returncode} "
                                   f"at start:\n{self.log_tail()}")
            try:
                self.rest("/system")
            except (OSError, OrthancError):
                time.sleep(0.1)
                continue
            if self._dicom_listening():
                return
            time.sleep(0.1)
        self.stop()
        raise OrthancError(f"Orthanc did not answer within {START_TIMEOUT_S:.0f} s:\n"
                           f"{self.log_tail()}")

    def _dicom_listening(self) -> bool:
        try:
            with socket.create_connection((self.host, self.dicom_port), timeout=1):
                return True
        except OSError:
            return False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -------------------------------------------------------------------------- REST
    def _request(self, method: str, path: str, body: bytes | None = None,
                 content_type: str = "application/json") -> Any:
        request = urllib.request.Request(f"{self.url}{path}", data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                payload = answer.read()
        except urllib.error.HTTPError as exc:
            raise OrthancError(f"{method} {path}: HTTP {exc.code} "
                               f"{exc.read().decode(errors='replace')}") from exc
        return json.loads(payload) if payload else None

    def rest(self, path: str) -> Any:
        """GET ``path`` of the REST API, as JSON."""
        return self._request("GET", path)

    def post(self, path: str, body: bytes | dict[str, Any] | list[Any],
             content_type: str = "application/json") -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self._request("POST", path, data, content_type)

    def delete(self, path: str) -> Any:
        return self._request("DELETE", path)

    def upload(self, dicom_file: Path) -> dict[str, Any]:
        """Store one DICOM file through ``POST /instances``; Orthanc's answer (ID, status)."""
        answer = self.post("/instances", dicom_file.read_bytes(), "application/dicom")
        if not isinstance(answer, dict) or answer.get("Status") not in ("Success",
                                                                        "AlreadyStored"):
            raise OrthancError(f"Orthanc did not store {dicom_file}: {answer}")
        return answer

    def upload_files(self, files: Iterable[Path]) -> list[dict[str, Any]]:
        return [self.upload(path) for path in files]

    def instance_file(self, orthanc_id: str) -> bytes:
        request = urllib.request.Request(f"{self.url}/instances/{orthanc_id}/file")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return bytes(answer.read())

    # --------------------------------------------------------------- context manager
    def __enter__(self) -> Orthanc:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def start_orthanc(directory: Path,
                  modalities: dict[str, tuple[str, str, int]] | None = None) -> Orthanc:
    """A running Orthanc on free loopback ports, its files under ``directory``."""
    orthanc_or_skip()
    directory.mkdir(parents=True, exist_ok=True)
    last: OrthancError | None = None
    for _ in range(3):  # a free port can be taken between choosing it and Orthanc binding it
        server = Orthanc(directory=directory, ae_title=AE_TITLE, host=HOST,
                         dicom_port=free_port(), http_port=free_port(),
                         modalities=dict(modalities or {}))
        try:
            server.start()
            return server
        except OrthancError as exc:
            last = exc
    assert last is not None
    raise last


def orthanc_holding(directory: Path, studies: dict[str, list[Path]],
                    caller_ae: str) -> Orthanc:
    """A running Orthanc that holds ``studies`` (uploaded through its REST API) and lets
    the AE title ``caller_ae`` on loopback search and retrieve (use it with ``with``)."""
    server = start_orthanc(directory, {"workstation": (caller_ae, HOST, 11112)})
    try:
        for paths in studies.values():
            server.upload_files(paths)
    except BaseException:
        server.stop()
        raise
    return server
