"""C-STORE of result files to a configured DICOM node (a PACS, a viewer's archive).

``send_files`` opens one association to the node, offers each file's SOP class in the
file's own transfer syntax (and explicit / implicit VR little endian beside it), stores the
files one by one and reports each file's outcome. A node that cannot be reached or refuses
the association raises ``DestinationUnavailableError`` (worth trying again later: the send
queue does); a file the node refuses is a failed ``SendOutcome`` (trying again does not
help unless the node said it is out of resources).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.presentation import PresentationContext, build_context

from workstation.dicomnet.config import DEFAULT_AE_TITLE, RemoteNode

# C-STORE statuses (PS3.4 B.2.3): warnings still mean stored
_WARNINGS = {0xB000: "stored after coercion of data elements",
             0xB006: "stored, some elements discarded",
             0xB007: "stored, the data set does not match the SOP class"}


class DestinationUnavailableError(ConnectionError):
    """The destination did not answer or refused the association (plain words)."""


def describe(node: RemoteNode) -> str:
    return f"{node.host}:{node.port} ({node.name})"


@dataclass(frozen=True)
class SendOutcome:
    path: Path
    sop_instance_uid: str
    stored: bool
    status: int | None  # the C-STORE status; None when no answer came
    message: str  # plain words: "stored", or why not
    retry: bool = False  # worth sending again later (out of resources, no answer)


@dataclass(frozen=True)
class SendResult:
    node: RemoteNode
    outcomes: tuple[SendOutcome, ...]

    @property
    def stored(self) -> tuple[SendOutcome, ...]:
        return tuple(o for o in self.outcomes if o.stored)

    @property
    def failed(self) -> tuple[SendOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.stored)


def _contexts(datasets: Sequence[Dataset]) -> list[PresentationContext]:
    wanted: dict[str, list[str]] = {}
    for ds in datasets:
        syntaxes = wanted.setdefault(str(ds.SOPClassUID), [])
        for syntax in (str(ds.file_meta.TransferSyntaxUID), ExplicitVRLittleEndian,
                       ImplicitVRLittleEndian):
            if syntax not in syntaxes:
                syntaxes.append(syntax)
    return [build_context(sop_class, syntaxes) for sop_class, syntaxes in wanted.items()]


def _outcome(path: Path, ds: Dataset, status: Dataset | None, node: RemoteNode
             ) -> SendOutcome:
    uid = str(ds.SOPInstanceUID)
    code = int(status.Status) if status is not None and "Status" in status else None
    if code is None:
        return SendOutcome(path, uid, False, None,
                           f"{describe(node)} gave no answer for {path.name}", retry=True)
    if code == 0x0000:
        return SendOutcome(path, uid, True, code, "stored")
    if code in _WARNINGS:
        return SendOutcome(path, uid, True, code, _WARNINGS[code])
    comment = str(status.get("ErrorComment", "")) if status is not None else ""
    why = f" ({comment})" if comment else ""
    if 0xA700 <= code <= 0xA7FF:
        return SendOutcome(path, uid, False, code,
                           f"{describe(node)} is out of resources (status 0x{code:04X})"
                           f"{why}", retry=True)
    return SendOutcome(path, uid, False, code,
                       f"{describe(node)} refused {path.name} (status 0x{code:04X}){why}")


def send_files(node: RemoteNode, paths: Sequence[Path], *,
               calling_ae: str = DEFAULT_AE_TITLE, timeout: float = 30.0,
               tls: ssl.SSLContext | None = None,
               progress: Callable[[int, int], None] | None = None) -> SendResult:
    """Store ``paths`` (DICOM files) on ``node`` over one association.

    Raises DestinationUnavailableError when the node does not answer or refuses the
    association; each file's own outcome is in the result.
    """
    datasets = []
    outcomes: list[SendOutcome] = []
    for path in paths:
        try:
            datasets.append((Path(path), pydicom.dcmread(path)))
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            outcomes.append(SendOutcome(Path(path), "", False, None,
                                        f"{Path(path).name} cannot be read ({exc})"))
    if not datasets:
        return SendResult(node, tuple(outcomes))
    ae = AE(ae_title=calling_ae)
    for attribute in ("acse_timeout", "dimse_timeout", "network_timeout",
                      "connection_timeout"):
        setattr(ae, attribute, timeout)
    ae.requested_contexts = _contexts([ds for _, ds in datasets])
    tls_args = None
    if node.tls:
        tls_args = (tls or ssl.create_default_context(ssl.Purpose.SERVER_AUTH), node.host)
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, tls_args=tls_args)
    if not assoc.is_established:
        if assoc.is_rejected:
            raise DestinationUnavailableError(
                f"{describe(node)} refused the connection from {calling_ae!r} (is this "
                "workstation's AE title known there, and is the destination's AE title "
                f"{node.ae_title!r}?)")
        raise DestinationUnavailableError(f"the destination did not answer at "
                                          f"{describe(node)}")
    try:
        for number, (path, ds) in enumerate(datasets, start=1):
            if not assoc.is_established:
                outcomes.append(SendOutcome(path, str(ds.SOPInstanceUID), False, None,
                                            f"{describe(node)} closed the connection",
                                            retry=True))
                continue
            try:
                status = assoc.send_c_store(ds)
            except ValueError as exc:  # no accepted presentation context for the class
                outcomes.append(SendOutcome(
                    path, str(ds.SOPInstanceUID), False, None,
                    f"{describe(node)} does not accept this kind of object "
                    f"({ds.SOPClassUID.name}): {exc}"))
                continue
            outcomes.append(_outcome(path, ds, status, node))
            if progress is not None:
                progress(number, len(datasets))
    finally:
        if assoc.is_established:
            assoc.release()
    return SendResult(node, tuple(outcomes))
