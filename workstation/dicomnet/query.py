"""Query/retrieve from a PACS: C-FIND at study level, C-GET of one study into the local store.

``find_studies`` asks the PACS for the studies matching a ``StudyQuery`` (patient name or ID,
study date or date range, modality, description) and returns ``StudyMatch`` values, newest
first. ``get_study`` retrieves one study by C-GET: the PACS sends its instances back on the
same association, each is handed to ``on_instance`` (which stores it), progress is reported
after every instance and the retrieval can be cancelled (C-CANCEL, then an abort if the PACS
does not stop). ``retrieve_study`` is the whole job for the window and the command line:
C-GET into the store with ``storage.write_instance``, each instance noted in the worklist,
the transfer written to the audit trail.

The association's C-STORE handler runs on pynetdicom's thread; it only writes the file and
counts. Everything else (callbacks, the worklist's SQLite connection) runs on the calling
thread, between the PACS's responses.
"""

from __future__ import annotations

import datetime as dt
import queue
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    MRImageStorage,
    SecondaryCaptureImageStorage,
)
from pynetdicom import AE, StoragePresentationContexts, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # made at import time
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)

from workstation.dicomnet.config import (
    DEFAULT_AE_TITLE,
    NetworkSettings,
    NetworkSettingsError,
    RemoteNode,
    default_path,
)

if TYPE_CHECKING:
    from workstation.dicomnet.storage import StoredInstance

# the transfer syntaxes offered for the image classes a brain study holds, each in its own
# presentation context, so that the PACS sends every file as it stored it (no transcoding:
# the retrieved pixels are the sent ones, byte for byte)
IMAGE_TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.1",  # explicit VR little endian
    "1.2.840.10008.1.2",  # implicit VR little endian
    "1.2.840.10008.1.2.4.70",  # JPEG lossless, first-order prediction
    "1.2.840.10008.1.2.4.57",  # JPEG lossless
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE lossless
)
IMAGE_CLASSES = (MRImageStorage, EnhancedMRImageStorage, CTImageStorage,
                 EnhancedCTImageStorage, SecondaryCaptureImageStorage)
UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
MAX_CONTEXTS = 128  # DICOM's limit of presentation contexts in one association
CANCEL_GRACE_S = 5.0  # after C-CANCEL, how long the PACS has to stop before the abort
STOP_POLL_S = 0.1  # how often a running C-GET checks whether to stop
GET_MESSAGE_ID = 1  # the C-GET's message ID, which its C-CANCEL names

# C-STORE statuses the workstation answers the PACS with
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_STORE = 0xC001  # "cannot understand" range: the file could not be written
STATUS_CANCEL = 0xFE00
STATUS_PENDING = (0xFF00, 0xFF01)


class PacsError(Exception):
    """The PACS could not be queried or retrieved from (said in plain words)."""


class QueryInputError(PacsError, ValueError):
    """A search field the user must correct."""


@dataclass(frozen=True)
class StudyQuery:
    """What to search for; empty fields match everything. ``patient`` matches the patient's
    name (any part of it; ``*`` and ``?`` as wildcards) or their ID (exactly); ``date`` is
    YYYYMMDD, YYYY-MM-DD or a range FROM-TO (YYYYMMDD-YYYYMMDD, either end may be left
    out); ``description`` matches any part of the study description, whatever the case
    (matched here: PACSs match description text case-sensitively)."""

    patient: str = ""
    date: str = ""
    modality: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        for name in ("patient", "description"):
            value = getattr(self, name).strip()
            if "\\" in value:
                raise QueryInputError(f"the {name} may not contain a backslash")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "date", dicom_date_range(self.date))
        modality = self.modality.strip().upper()
        if modality and not re.fullmatch(r"[A-Z0-9_]{1,16}", modality):
            raise QueryInputError(f"modality {self.modality!r} is not a DICOM modality "
                                  "such as MR or CT")
        object.__setattr__(self, "modality", modality)

    def identifiers(self) -> list[Dataset]:
        """The C-FIND identifiers: one, or two when a patient is given (by name, by ID)."""
        if not self.patient:
            return [self._identifier()]
        by_name = self._identifier()
        by_name.PatientName = _contains(self.patient)
        by_id = self._identifier()
        by_id.PatientID = self.patient
        return [by_name, by_id]

    def matches(self, match: StudyMatch) -> bool:
        """What the PACS does not filter: the description, whatever its case."""
        return _wildcard(self.description, match.description)

    def _identifier(self) -> Dataset:
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.StudyInstanceUID = ""
        ds.PatientName = ""
        ds.PatientID = ""
        ds.PatientBirthDate = ""
        ds.StudyDate = self.date
        ds.StudyTime = ""
        ds.AccessionNumber = ""
        ds.StudyDescription = ""
        ds.ModalitiesInStudy = self.modality
        ds.NumberOfStudyRelatedSeries = None
        ds.NumberOfStudyRelatedInstances = None
        return ds


def _contains(text: str) -> str:
    return text if any(c in text for c in "*?") else f"*{text}*"


def _wildcard(pattern: str, text: str) -> bool:
    """DICOM's ``*``/``?`` matching of ``pattern`` anywhere in ``text``, ignoring case."""
    if not pattern:
        return True
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                    for c in _contains(pattern))
    return re.fullmatch(regex, text, re.IGNORECASE | re.DOTALL) is not None


def dicom_date_range(text: str) -> str:
    """A study date or range as DICOM writes it (YYYYMMDD, YYYYMMDD-YYYYMMDD, -YYYYMMDD,
    YYYYMMDD-); raises QueryInputError for anything else."""
    text = text.strip()
    if not text:
        return ""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return _checked_date(text.replace("-", ""), text)
    match = re.fullmatch(r"(\d{8})?(-)?(\d{8})?", text)
    if match is None or not (match.group(1) or match.group(3)) or (
            match.group(3) and not match.group(2)):
        raise QueryInputError(f"study date {text!r} must be YYYYMMDD, YYYY-MM-DD or a "
                              "range YYYYMMDD-YYYYMMDD")
    start, dash, end = match.group(1) or "", match.group(2) or "", match.group(3) or ""
    for part in (start, end):
        if part:
            _checked_date(part, text)
    if start and end and start > end:
        raise QueryInputError(f"study date range {text!r} ends before it starts")
    return f"{start}{dash}{end}"


def _checked_date(value: str, text: str) -> str:
    try:
        dt.datetime.strptime(value, "%Y%m%d")
    except ValueError:
        raise QueryInputError(f"{text!r} is not a real date") from None
    return value


@dataclass(frozen=True)
class StudyMatch:
    """One study the PACS holds, as its C-FIND answer describes it."""

    study_uid: str
    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    study_date: str = ""
    study_time: str = ""
    description: str = ""
    accession: str = ""
    modalities: tuple[str, ...] = ()
    series_count: int | None = None
    instance_count: int | None = None

    @classmethod
    def from_identifier(cls, ds: Dataset) -> StudyMatch:
        modalities = ds.get("ModalitiesInStudy", "")
        if isinstance(modalities, str):
            modalities = [m for m in modalities.split("\\") if m]
        return cls(
            study_uid=str(ds.get("StudyInstanceUID", "")),
            patient_name=_person(ds.get("PatientName", "")),
            patient_id=str(ds.get("PatientID", "")),
            birth_date=str(ds.get("PatientBirthDate", "")),
            study_date=str(ds.get("StudyDate", "")),
            study_time=str(ds.get("StudyTime", "")),
            description=str(ds.get("StudyDescription", "")),
            accession=str(ds.get("AccessionNumber", "")),
            modalities=tuple(str(m) for m in modalities),
            series_count=_count(ds.get("NumberOfStudyRelatedSeries")),
            instance_count=_count(ds.get("NumberOfStudyRelatedInstances")))

    def to_json(self) -> dict[str, Any]:
        return {"study_uid": self.study_uid, "patient_name": self.patient_name,
                "patient_id": self.patient_id, "birth_date": self.birth_date,
                "study_date": self.study_date, "study_time": self.study_time,
                "description": self.description, "accession": self.accession,
                "modalities": list(self.modalities), "series_count": self.series_count,
                "instance_count": self.instance_count}


def _person(value: object) -> str:
    """A person name as people read it: "Test Regression" for "Test^Regression"."""
    return " ".join(part for part in str(value or "").split("^") if part).strip()


def _count(value: object) -> int | None:
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


@dataclass(frozen=True)
class RetrieveProgress:
    """How far a retrieval is: instances received (and stored), the total the PACS
    announced (None until it says), failures on either side."""

    received: int
    total: int | None
    failed: int

    @property
    def text(self) -> str:
        of = f" of {self.total}" if self.total else ""
        failed = f", {self.failed} failed" if self.failed else ""
        return f"Received {self.received}{of} images{failed}"


@dataclass(frozen=True)
class RetrieveResult:
    study_uid: str
    received: int  # instances stored in the local store
    failed: int  # sub-operations that failed at the PACS or could not be stored here
    warnings: int
    cancelled: bool
    folder: Path | None  # the study's folder in the store (None when nothing arrived)
    problems: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.cancelled and not self.failed and self.received > 0


def _describe(node: RemoteNode) -> str:
    return f"{node.host}:{node.port} ({node.name})"


@dataclass
class _Connection:
    """An application entity for one node, with timeouts and TLS when the node asks."""

    node: RemoteNode
    calling_ae: str
    timeout: float
    tls: ssl.SSLContext | None = None
    ae: AE = field(init=False)

    def __post_init__(self) -> None:
        self.ae = AE(ae_title=self.calling_ae)
        self.ae.acse_timeout = self.timeout
        self.ae.dimse_timeout = self.timeout
        self.ae.network_timeout = self.timeout
        self.ae.connection_timeout = self.timeout

    def associate(self, **kwargs: Any) -> Association:
        tls = None
        if self.node.tls:
            tls = (self.tls or ssl.create_default_context(ssl.Purpose.SERVER_AUTH),
                   self.node.host)
        assoc = self.ae.associate(self.node.host, self.node.port, ae_title=self.node.ae_title,
                                  tls_args=tls, **kwargs)
        if assoc.is_established:
            return assoc
        where = _describe(self.node)
        if assoc.is_rejected:
            raise PacsError(f"the PACS at {where} refused the connection from "
                            f"{self.calling_ae!r} (is this workstation's AE title known to "
                            "the PACS, and is the PACS's AE title "
                            f"{self.node.ae_title!r}?)")
        raise PacsError(f"the PACS did not answer at {where}")


def client_tls(settings: NetworkSettings) -> ssl.SSLContext:
    """TLS for talking to a node marked ``tls``: its certificate checked against the
    settings' CA file (else the system's authorities); this workstation's certificate and
    key presented when the settings name them."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                         cafile=settings.tls_ca_certificates or None)
    if settings.tls_certificate and settings.tls_key:
        context.load_cert_chain(settings.tls_certificate, settings.tls_key)
    return context


def find_studies(node: RemoteNode, query: StudyQuery, *, calling_ae: str = DEFAULT_AE_TITLE,
                 timeout: float = 30.0, tls: ssl.SSLContext | None = None
                 ) -> list[StudyMatch]:
    """The studies on ``node`` matching ``query``, newest first (one per study UID)."""
    connection = _Connection(node, calling_ae, timeout, tls)
    connection.ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = connection.associate()
    found: dict[str, StudyMatch] = {}
    try:
        for identifier in query.identifiers():
            for match in _find(assoc, node, identifier, calling_ae):
                if query.matches(match):
                    found.setdefault(match.study_uid, match)
    finally:
        assoc.release()
    return sorted(found.values(), key=lambda m: (m.study_date, m.study_time), reverse=True)


def _find(assoc: Association, node: RemoteNode, identifier: Dataset, calling_ae: str
          ) -> Iterator[StudyMatch]:
    answered = False
    for status, answer in assoc.send_c_find(identifier,
                                            StudyRootQueryRetrieveInformationModelFind):
        code = _status(status)
        if code is None:
            if not answered:  # Orthanc, DCMTK: an abort for a caller not allowed to query
                raise PacsError(f"the PACS at {_describe(node)} ended the connection "
                                f"without answering the search from {calling_ae!r} (is "
                                "this workstation's AE title allowed to query the PACS?)")
            raise PacsError(f"the PACS at {_describe(node)} stopped answering the search")
        answered = True
        if code in STATUS_PENDING:
            if answer is not None and answer.get("StudyInstanceUID"):
                yield StudyMatch.from_identifier(answer)
            continue
        if code != STATUS_SUCCESS:
            raise PacsError(f"the PACS at {_describe(node)} refused the search "
                            f"(status 0x{code:04X}{_comment(status)})")


def _status(status: Dataset | None) -> int | None:
    if status is None or "Status" not in status:
        return None
    return int(status.Status)


def _comment(status: Dataset) -> str:
    comment = str(status.get("ErrorComment", "")).strip()
    return f": {comment}" if comment else ""


def _get_contexts(ae: AE) -> list[Any]:
    """The C-GET context and the storage contexts (with the SCP role) the PACS may send on."""
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    roles = []
    for sop_class in IMAGE_CLASSES:
        for syntax in IMAGE_TRANSFER_SYNTAXES:
            ae.add_requested_context(sop_class, syntax)
        roles.append(build_role(sop_class, scp_role=True))
    for context in StoragePresentationContexts:
        if len(ae.requested_contexts) >= MAX_CONTEXTS:
            break
        uid = context.abstract_syntax
        if uid is None or uid in IMAGE_CLASSES:
            continue
        ae.add_requested_context(uid, list(UNCOMPRESSED))
        roles.append(build_role(uid, scp_role=True))
    return roles


class _Receiver:
    """The C-STORE side of a C-GET: writes each instance, counts, queues it for the caller."""

    def __init__(self, on_instance: Callable[[Dataset], StoredInstance | None]) -> None:
        self.on_instance = on_instance
        self.arrived: queue.Queue[tuple[StoredInstance | None, Dataset]] = queue.Queue()
        self.received = 0
        self.failed = 0
        self.problems: list[str] = []
        self.store_full = threading.Event()
        self._lock = threading.Lock()

    def handle(self, event: evt.Event) -> int:
        from workstation.dicomnet.storage import StorageError, StorageFullError

        if self.store_full.is_set():
            return STATUS_OUT_OF_RESOURCES
        try:
            dataset = event.dataset
            dataset.file_meta = event.file_meta
            stored = self.on_instance(dataset)
        except StorageFullError as exc:
            self._fail(str(exc))
            self.store_full.set()
            return STATUS_OUT_OF_RESOURCES
        except StorageError as exc:
            self._fail(str(exc))
            return STATUS_CANNOT_STORE
        except Exception as exc:  # a file this side cannot decode: named, not fatal
            self._fail(f"an image could not be stored: {exc}")
            return STATUS_CANNOT_STORE
        with self._lock:
            self.received += 1
        self.arrived.put((stored, _header(dataset)))
        return STATUS_SUCCESS

    def _fail(self, problem: str) -> None:
        with self._lock:
            self.failed += 1
            if problem not in self.problems:
                self.problems.append(problem)


def _header(dataset: Dataset) -> Dataset:
    """The dataset without its pixels (what the worklist reads), to keep the queue small."""
    header = Dataset()
    header.update({elem.tag: elem for elem in dataset if elem.tag != 0x7FE00010})
    return header


def get_study(node: RemoteNode, study_uid: str,
              on_instance: Callable[[Dataset], StoredInstance | None], *,
              calling_ae: str = DEFAULT_AE_TITLE, timeout: float = 60.0,
              progress: Callable[[RetrieveProgress], None] | None = None,
              cancelled: Callable[[], bool] | None = None,
              arrived: Callable[[StoredInstance | None, Dataset], None] | None = None,
              tls: ssl.SSLContext | None = None) -> RetrieveResult:
    """C-GET the study ``study_uid`` from ``node``. ``on_instance`` stores each instance (on
    pynetdicom's thread; raises ``StorageError``/``StorageFullError`` when it cannot);
    ``arrived`` (the stored instance and its header) and ``progress`` are called on this
    thread; ``cancelled`` is polled, and when it turns true the PACS is asked to stop."""
    if not study_uid.strip():
        raise QueryInputError("a study UID is needed to retrieve a study")
    wants_cancel = cancelled or (lambda: False)
    receiver = _Receiver(on_instance)
    connection = _Connection(node, calling_ae, timeout, tls)
    roles = _get_contexts(connection.ae)
    assoc = connection.associate(ext_neg=roles,
                                 evt_handlers=[(evt.EVT_C_STORE, receiver.handle)])
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid.strip()
    folder: Path | None = None
    total: int | None = None
    pacs_failed = warnings = 0
    final: int | None = None
    final_status = Dataset()
    stopper = _Stopper(assoc, lambda: wants_cancel() or receiver.store_full.is_set())

    def drain() -> None:
        nonlocal folder
        while True:
            try:
                stored, header = receiver.arrived.get_nowait()
            except queue.Empty:
                return
            if folder is None and stored is not None:
                folder = study_folder(stored)
            if arrived is not None:
                arrived(stored, header)

    try:
        responses = assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet,
                                     msg_id=GET_MESSAGE_ID)
        stopper.start()
        for status, _ in responses:
            drain()
            code = _status(status)
            if code is None:
                break  # aborted or timed out: said below
            total = _announced(status, total)
            if code in STATUS_PENDING:
                if progress is not None:
                    progress(RetrieveProgress(receiver.received, total, receiver.failed))
                continue
            final, final_status = code, status
            pacs_failed = _count(status.get("NumberOfFailedSuboperations")) or 0
            warnings = _count(status.get("NumberOfWarningSuboperations")) or 0
    finally:
        stopper.finish()
        if assoc.is_established:
            assoc.release()
    drain()
    cancel_sent = stopper.sent
    user_cancelled = wants_cancel()
    if progress is not None:
        progress(RetrieveProgress(receiver.received, total, receiver.failed))
    problems = list(receiver.problems)
    where = _describe(node)
    if final is None and not (cancel_sent or user_cancelled):
        raise PacsError(f"the PACS at {where} stopped answering during the retrieval "
                        f"({receiver.received} images received)")
    if final is not None and final not in (STATUS_SUCCESS, STATUS_CANCEL) and (
            final >> 12 != 0xB):  # 0xBxxx: warnings, some sub-operations failed
        if receiver.received == 0 and not problems:
            raise PacsError(f"the PACS at {where} sent nothing for study {study_uid} "
                            f"(status 0x{final:04X}{_comment(final_status)}: it may not "
                            "hold that study, or may not allow this workstation to "
                            "retrieve)")
        problems.append(f"the PACS reported status 0x{final:04X} at the end")
    if final == STATUS_SUCCESS and receiver.received == 0 and not pacs_failed:
        raise PacsError(f"the PACS at {where} holds no study with UID {study_uid}")
    return RetrieveResult(study_uid=study_uid, received=receiver.received,
                          failed=max(pacs_failed, receiver.failed), warnings=warnings,
                          cancelled=user_cancelled, folder=folder,
                          problems=tuple(problems))


class _Stopper(threading.Thread):
    """Watches, while a C-GET runs, for a reason to stop it (the user cancelled, the store
    is full): then sends C-CANCEL, and aborts the association if the PACS goes on sending
    past the grace time. Independent of the PACS's responses, so a PACS that sends no
    pending responses can be stopped too."""

    def __init__(self, assoc: Association, should_stop: Callable[[], bool]) -> None:
        super().__init__(name="c-get-stopper", daemon=True)
        self.assoc = assoc
        self.should_stop = should_stop
        self.ended = threading.Event()
        self.sent = False

    def run(self) -> None:
        while not self.should_stop():
            if self.ended.wait(STOP_POLL_S):
                return
        self.sent = True
        if self.assoc.is_established:
            _send_cancel(self.assoc)
        if not self.ended.wait(CANCEL_GRACE_S) and self.assoc.is_established:
            self.assoc.abort()

    def finish(self) -> None:
        self.ended.set()
        if self.is_alive():
            self.join()


def _announced(status: Dataset, total: int | None) -> int | None:
    counts = [_count(status.get(name)) for name in (
        "NumberOfRemainingSuboperations", "NumberOfCompletedSuboperations",
        "NumberOfFailedSuboperations", "NumberOfWarningSuboperations")]
    if all(c is None for c in counts):
        return total
    return sum(c or 0 for c in counts)


def _send_cancel(assoc: Association) -> None:
    """C-CANCEL the association's running C-GET."""
    context = next(c for c in assoc.accepted_contexts
                   if c.abstract_syntax == StudyRootQueryRetrieveInformationModelGet)
    assoc.send_c_cancel(GET_MESSAGE_ID, context.context_id)


def study_folder(stored: StoredInstance) -> Path:
    """The study's folder in the store (``Study/Series/SOP.dcm``)."""
    return stored.study_folder


def search_studies(settings: NetworkSettings, query: StudyQuery,
                   node: RemoteNode | None = None) -> list[StudyMatch]:
    """``find_studies`` on ``node`` (default: the settings' PACS) as this workstation's AE,
    recorded in the audit trail (the node and how many studies answered; not the query)."""
    from workstation.store import audit

    node = node or configured_pacs(settings)
    try:
        found = find_studies(node, query, calling_ae=settings.ae_title,
                             tls=client_tls(settings) if node.tls else None)
    except PacsError as exc:
        audit.record_event(audit.QUERY, outcome="serious failure",
                           detail=f"study search on {node.name}: {exc}")
        raise
    audit.record_event(audit.QUERY, detail=f"study search on {node.name}: "
                                           f"{len(found)} studies")
    return found


def retrieve_study(settings: NetworkSettings, study_uid: str, node: RemoteNode | None = None,
                   *, progress: Callable[[RetrieveProgress], None] | None = None,
                   cancelled: Callable[[], bool] | None = None,
                   worklist_path: Path | None = None) -> RetrieveResult:
    """C-GET ``study_uid`` from ``node`` (default: the settings' PACS) into the settings'
    store; each instance is noted in the worklist (``worklist_path``, default the data
    folder's: its quiet-time clock starts, and the study is triaged once complete by the
    running receiver) and the transfer is recorded in the audit trail."""
    from workstation.dicomnet.storage import write_instance
    from workstation.store import audit
    from workstation.store.worklist import Worklist

    node = node or configured_pacs(settings)
    store = settings.store_path()
    min_free = settings.min_free_mb * 2**20
    with Worklist(worklist_path) as worklist:
        def arrived(stored: StoredInstance | None, header: Dataset) -> None:
            if stored is not None:
                worklist.note_arrival(stored, header)

        try:
            result = get_study(node, study_uid,
                               lambda ds: write_instance(store, ds, min_free_bytes=min_free),
                               calling_ae=settings.ae_title, progress=progress,
                               cancelled=cancelled, arrived=arrived,
                               tls=client_tls(settings) if node.tls else None)
        except PacsError as exc:
            audit.record_event(audit.INSTANCES_TRANSFERRED, study_uid=study_uid,
                               outcome="serious failure", detail=f"from {node.name}: {exc}")
            raise
    outcome = ("success" if result.complete else
               "serious failure" if not result.received else "minor failure")
    audit.record_event(audit.INSTANCES_TRANSFERRED, study_uid=study_uid, outcome=outcome,
                       detail=f"{result.received} instances from {node.name}"
                              + (" (cancelled)" if result.cancelled else ""))
    return result


def configured_pacs(settings: NetworkSettings, name: str = "") -> RemoteNode:
    """The node to query: ``name``, else the settings' PACS, else the only node there is."""
    chosen = name or settings.pacs
    if chosen:
        return settings.node(chosen)
    if len(settings.nodes) == 1:
        return settings.nodes[0]
    if not settings.nodes:
        raise NetworkSettingsError("no PACS is configured: add one to the DICOM network "
                                   f"settings ({default_path()})")
    raise NetworkSettingsError("several DICOM nodes are configured and none is the PACS: "
                               "name one (\"pacs\" in dicom.json, or --pacs NAME)")
