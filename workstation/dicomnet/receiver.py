"""The DICOM receiver: a C-STORE and C-ECHO SCP (pynetdicom).

Scanners and PACS send studies to it. An association is refused when the calling AE title
or the sender's address is not on the allow-list (when one is set) or when the maximum
number of associations is reached. Each instance is stored durably
(``storage.write_instance``) and noted in the worklist before Success is answered; a
failure to store answers a failure status (out of resources when the disk is below the
free-space threshold or full) and the sender may send again. Optional DICOM over TLS.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom.uid import UID
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    evt,
)

from workstation.dicomnet.config import NetworkSettings, NetworkSettingsError
from workstation.dicomnet.storage import (
    StorageError,
    StorageFullError,
    StoredInstance,
    remove_partial_files,
    write_instance,
)
from workstation.store import audit
from workstation.store.worklist import Worklist

LOG = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110
VERIFICATION = UID("1.2.840.10008.1.1")


def server_ssl_context(settings: NetworkSettings) -> ssl.SSLContext | None:
    """The TLS context the settings ask for, or None for plain TCP."""
    if not settings.tls_certificate and not settings.tls_key:
        return None
    if not settings.tls_certificate or not settings.tls_key:
        raise NetworkSettingsError("TLS needs both a certificate and its key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_certificate, settings.tls_key)
        if settings.tls_ca_certificates:
            context.load_verify_locations(settings.tls_ca_certificates)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise NetworkSettingsError(f"the TLS certificate or key cannot be used: {exc}") from exc
    return context


def _addresses(hosts: tuple[str, ...]) -> frozenset[str]:
    """The IP addresses of the allowed hosts (names resolved once, at start)."""
    found: set[str] = set()
    for host in hosts:
        try:
            found.update(str(info[4][0]) for info in socket.getaddrinfo(host, None))
        except OSError:
            LOG.warning("allowed host %s could not be resolved; it is ignored", host)
    return frozenset(found)


class Receiver:
    """Serves C-STORE and C-ECHO on ``settings.bind_address:settings.port`` (``start``
    returns at once; associations are served on pynetdicom's threads)."""

    def __init__(self, settings: NetworkSettings, worklist: Worklist, *,
                 store_root: Path | None = None,
                 on_instance: Callable[[StoredInstance], None] | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.worklist = worklist
        self.store_root = Path(store_root) if store_root is not None else settings.store_path()
        self.on_instance = on_instance
        self.ssl_context = ssl_context
        self.min_free_bytes = max(0, settings.min_free_mb) * 2**20
        self._server: Any = None
        self._received: dict[int, Counter[str]] = {}
        self._lock = threading.Lock()
        self._allowed_addresses = _addresses(settings.allowed_hosts)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        return int(self._server.server_address[1])

    def _application_entity(self) -> AE:
        ae = AE(ae_title=self.settings.ae_title)
        ae.maximum_associations = self.settings.max_associations
        ae.require_calling_aet = list(self.settings.allowed_callers)
        for context in AllStoragePresentationContexts:
            if context.abstract_syntax is not None:
                ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(VERIFICATION)
        return ae

    def start(self) -> None:
        self.store_root.mkdir(parents=True, exist_ok=True)
        left = remove_partial_files(self.store_root)
        if left:
            LOG.info("removed %d unacknowledged partial files from the store", left)
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, lambda event: SUCCESS),
            (evt.EVT_REQUESTED, self._on_requested), (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_CONN_OPEN, _no_delay), (evt.EVT_CONN_CLOSE, self._on_closed)]
        address = (self.settings.bind_address, self.settings.port)
        try:
            self._server = self._application_entity().start_server(
                address, block=False, ssl_context=self.ssl_context, evt_handlers=handlers)
        except OSError as exc:
            raise NetworkSettingsError(
                f"the receiver cannot listen on {address[0]}:{address[1]}: "
                f"{exc.strerror or exc}") from exc
        audit.record_event(audit.APPLICATION_STARTED,
                           detail=f"DICOM receiver {self.settings.ae_title} on port {self.port}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
            audit.record_event(audit.APPLICATION_STOPPED,
                               detail=f"DICOM receiver {self.settings.ae_title}")

    # ------------------------------------------------------------------ handlers
    @staticmethod
    def _peer(event: Any) -> tuple[str, str]:
        requestor = event.assoc.requestor
        return str(requestor.ae_title).strip(), str(requestor.address)

    def _on_requested(self, event: Any) -> None:
        if not self._allowed_addresses:
            return
        calling, host = self._peer(event)
        if host not in self._allowed_addresses:
            LOG.warning("association from %s at %s refused: host not allowed", calling, host)
            event.assoc.acse.send_reject(0x01, 0x01, 0x01)
            audit.record_event(audit.NODE_REJECTED, outcome="minor failure",
                               detail=f"{calling} at {host}: host not on the allow-list")

    def _on_rejected(self, event: Any) -> None:
        calling, host = self._peer(event)
        LOG.warning("association from %s at %s refused", calling, host)
        audit.record_event(audit.NODE_REJECTED, outcome="minor failure",
                           detail=f"{calling} at {host}: calling AE title not on the "
                                  "allow-list or too many associations")

    def _on_store(self, event: Any) -> int:
        try:
            dataset = event.dataset
            dataset.file_meta = event.file_meta
            encoded = event.encoded_dataset()
        except Exception as exc:  # the sender's bytes cannot be decoded
            LOG.warning("an instance could not be decoded: %s", exc)
            return CANNOT_UNDERSTAND
        try:
            stored = write_instance(self.store_root, dataset, encoded=encoded,
                                    min_free_bytes=self.min_free_bytes)
        except StorageFullError as exc:
            LOG.error("%s", exc)
            return OUT_OF_RESOURCES
        except StorageError as exc:
            LOG.error("%s", exc)
            return PROCESSING_FAILURE if stored_uids(dataset) else CANNOT_UNDERSTAND
        try:
            new = self.worklist.note_arrival(stored, dataset)
        except Exception as exc:  # the instance is safe on disk; the sender may resend
            LOG.error("instance %s stored but not added to the worklist: %s",
                      stored.sop_instance_uid, exc)
            return PROCESSING_FAILURE
        if new:
            with self._lock:
                self._received.setdefault(id(event.assoc), Counter())[stored.study_uid] += 1
        if self.on_instance is not None:
            self.on_instance(stored)
        return SUCCESS

    def _on_closed(self, event: Any) -> None:
        with self._lock:
            received = self._received.pop(id(event.assoc), Counter())
        calling, host = self._peer(event)
        for study_uid, count in received.items():
            audit.record_event(audit.INSTANCES_RECEIVED, study_uid=study_uid,
                               detail=f"{count} instances from {calling} at {host}")


def _no_delay(event: Any) -> None:
    """Answer each C-STORE at once rather than when the sender's next packet comes
    (Nagle's algorithm would hold the small response back)."""
    no_delay(event.assoc)


def no_delay(assoc: Any) -> None:
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def stored_uids(dataset: Any) -> bool:
    """Whether the instance names its study, series and itself (else it cannot be
    understood, rather than failed to store)."""
    return all(str(dataset.get(k, "") or "").strip() for k in (
        "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
