"""A real C-STORE SCP on loopback (pynetdicom) that answers what the test asks, for the
sending tests: it keeps what it received and can refuse or run out of resources."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from tests.orthanc import HOST, free_port


@dataclass
class StoreScp:
    ae_title: str
    port: int
    received: list[Dataset] = field(default_factory=list)
    host: str = HOST


@contextmanager
def store_scp(status: Callable[[Dataset], int] | None = None,
              ae_title: str = "DESTINATION") -> Iterator[StoreScp]:
    """Listen on a free loopback port; each C-STORE is answered ``status(dataset)``
    (default success) and kept when that is success."""
    scp = StoreScp(ae_title, free_port())

    def handle(event: evt.Event) -> int:
        dataset = event.dataset
        dataset.file_meta = event.file_meta
        code = status(dataset) if status is not None else 0x0000
        if code == 0x0000:
            scp.received.append(dataset)
        return code

    ae = AE(ae_title=ae_title)
    ae.require_called_aet = True
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, ["1.2.840.10008.1.2.1",
                                                           "1.2.840.10008.1.2"])
    ae.add_supported_context(Verification)
    server = ae.start_server((HOST, scp.port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, handle)])
    try:
        yield scp
    finally:
        server.shutdown()
