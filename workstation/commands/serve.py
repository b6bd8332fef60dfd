"""``workstation serve``, ``workstation worklist`` and ``workstation audit verify|export``.

``serve`` runs the DICOM receiver with automatic triage: studies sent to it are stored,
and each is analysed once complete (no new instance for the stable age), in this process,
with one model loaded at the first study. The worklist and the audit log live in the data
folder (``data_dir()``), the store where the DICOM settings say.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workstation.dicomnet.completion import Analyse
    from workstation.dicomnet.config import NetworkSettings

COMMANDS = ("serve", "worklist", "audit")
WORKLIST_SCHEMA_VERSION = 1


def add_parsers(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve", help="receive studies over DICOM (C-STORE) and triage each on arrival")
    serve.add_argument("--port", type=int, help="TCP port (default: the DICOM settings, "
                                                "else 11112)")
    serve.add_argument("--ae", metavar="AE_TITLE", help="this workstation's AE title")
    serve.add_argument("--store", type=Path, metavar="DIR",
                       help="where received instances are kept (default: the DICOM "
                            "settings, else the data folder's store/)")
    serve.add_argument("--bind", metavar="ADDRESS",
                       help="address to listen on (default 0.0.0.0: every interface)")
    serve.add_argument("--allow-ae", action="append", metavar="AE_TITLE",
                       help="accept only these calling AE titles (repeat the flag)")
    serve.add_argument("--allow-host", action="append", metavar="HOST",
                       help="accept only these sender hosts or addresses (repeat the flag)")
    serve.add_argument("--max-associations", type=int, metavar="N")
    serve.add_argument("--stable-age", type=float, metavar="SECONDS",
                       help="a study is complete after this long with no new instance "
                            "(default 30)")
    serve.add_argument("--min-free-mb", type=int, metavar="MB",
                       help="answer 'out of resources' below this much free disk")
    serve.add_argument("--tls-cert", metavar="PEM", help="TLS certificate (DICOM over TLS)")
    serve.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    serve.add_argument("--tls-ca", metavar="PEM",
                       help="accept only senders with a certificate signed by these CAs")
    serve.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    serve.add_argument("--model", type=Path, metavar="JSON",
                       help="model description (default: models/triage-v2.json)")
    worklist = commands.add_parser("worklist",
                                   help="the received studies, highest priority first")
    worklist.add_argument("--json", action="store_true", help="print one JSON document")
    audit = commands.add_parser("audit", help="check or export the audit trail")
    action = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    action.add_parser("verify", help="check that no event was changed or removed")
    export = action.add_parser("export", help="write the events as DICOM PS3.15 XML "
                                              "audit messages")
    export.add_argument("--output", type=Path, metavar="XML",
                        help="file to write (default: standard output)")


def run(args: argparse.Namespace) -> int:
    from workstation.store.schema_version import MigrationError, NewerSchemaError

    try:
        if args.command == "serve":
            return run_serve(args)
        if args.command == "worklist":
            return run_worklist(args)
        return run_audit(args)
    except (NewerSchemaError, MigrationError) as exc:  # a database this version cannot use
        sys.stderr.write(f"workstation: {exc}\n")
        return 2


# ---------------------------------------------------------------------- serve
def settings_for(args: argparse.Namespace) -> NetworkSettings:
    """The saved DICOM settings with this run's flags over them."""
    from workstation.dicomnet.config import NetworkSettings

    settings = NetworkSettings.load()
    flags: dict[str, Any] = {
        "port": args.port, "ae_title": args.ae, "bind_address": args.bind,
        "store_dir": str(args.store) if args.store is not None else None,
        "allowed_callers": tuple(args.allow_ae) if args.allow_ae else None,
        "allowed_hosts": tuple(args.allow_host) if args.allow_host else None,
        "max_associations": args.max_associations, "stable_age_s": args.stable_age,
        "min_free_mb": args.min_free_mb, "tls_certificate": args.tls_cert,
        "tls_key": args.tls_key, "tls_ca_certificates": args.tls_ca}
    return replace(settings, **{k: v for k, v in flags.items() if v is not None})


def triage_pipeline(model: Path | None, device: str, engine: Any = None) -> Analyse:
    """Study folder -> TriageOutcome with the workstation's own pipeline; the engine
    (``analysis.engine.Engine``) is loaded once, at the first study, unless given."""
    from workstation.dicomnet.completion import TriageOutcome

    engines: list[Any] = [] if engine is None else [engine]
    lock = threading.Lock()

    def analyse(folder: Path) -> TriageOutcome:
        from workstation.analysis.engine import Engine
        from workstation.analysis.model_file import ModelIntegrityError
        from workstation.analysis.run import triage_document, triage_study
        from workstation.imaging import load_study
        from workstation.reporting.content import overall

        with lock:
            if not engines:
                try:
                    engines.append(Engine(model, device=device))
                except (ModelIntegrityError, RuntimeError) as exc:
                    raise RuntimeError(f"the triage model cannot be used: {exc}") from exc
        result = triage_study(load_study([str(folder)]), engines[0])
        verdict, headline, reasons = overall(result.verdicts)
        return TriageOutcome(verdict.value, headline, reasons, triage_document(result))

    return analyse


def run_serve(args: argparse.Namespace) -> int:
    import logging

    from workstation.dicomnet.completion import StudyCompletion
    from workstation.dicomnet.config import NetworkSettingsError
    from workstation.dicomnet.receiver import Receiver, server_ssl_context
    from workstation.store.worklist import Worklist

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    try:
        settings = settings_for(args)
        context = server_ssl_context(settings)
    except NetworkSettingsError as exc:
        sys.stderr.write(f"workstation: {exc}\n")
        return 2
    worklist = Worklist()
    completion = StudyCompletion(worklist, triage_pipeline(args.model, args.device),
                                 settings.stable_age_s)
    receiver = Receiver(settings, worklist, ssl_context=context,
                        on_instance=lambda stored: completion.poke())
    try:
        receiver.start()
    except NetworkSettingsError as exc:
        sys.stderr.write(f"workstation: {exc}\n")
        return 2
    completion.start()
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    sys.stdout.write(
        f"receiving as {settings.ae_title} on {settings.bind_address}:{receiver.port}"
        f"{' (TLS)' if context else ''}; store {receiver.store_root}; worklist "
        f"{worklist.path}; a study is analysed {settings.stable_age_s:g} s after its last "
        "instance\n")
    sys.stdout.flush()
    sending = threading.Thread(target=drain_send_queue, args=(stop,), daemon=True,
                               name="send-queue")
    sending.start()
    stop.wait()
    receiver.stop()
    completion.stop()
    worklist.close()
    sending.join(timeout=30)
    return 0


SEND_QUEUE_EVERY_S = 60.0


def drain_send_queue(stop: threading.Event, every_s: float = SEND_QUEUE_EVERY_S,
                     path: Path | None = None) -> None:
    """While the receiver runs, send what waits in the results send queue (``triage
    --send`` or the window queued it while the destination was down) every ``every_s``, so
    that it goes out without a window open. Each problem is logged, in words."""
    import logging

    from workstation.store.send_queue import SendQueue, SendQueueError, default_path

    log = logging.getLogger("workstation.serve")
    queue_path = path or default_path()
    while not stop.wait(every_s):
        if not queue_path.exists():  # nothing was ever queued: do not make the file
            continue
        try:
            report = SendQueue(queue_path).process()
        except (SendQueueError, OSError) as exc:
            log.warning("the results send queue could not be processed: %s", exc)
            continue
        if report.sent or report.failed:
            log.info("results send queue: %d sent, %d refused, %d waiting", report.sent,
                     report.failed, report.waiting)
        for message in report.messages:
            log.warning("results send queue: %s", message)


# ---------------------------------------------------------------------- worklist
def worklist_document() -> dict[str, Any]:
    from workstation import __version__
    from workstation.store.worklist import Worklist

    with Worklist() as worklist:
        rows = worklist.studies()
    return {"schema": WORKLIST_SCHEMA_VERSION, "software_version": __version__,
            "studies": [row.document() for row in rows]}


def run_worklist(args: argparse.Namespace) -> int:
    from workstation.store.worklist import PRIORITY_WORDS

    document = worklist_document()
    if args.json:
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    studies = document["studies"]
    if not studies:
        sys.stdout.write("the worklist is empty\n")
        return 0
    for study in studies:
        arrived = datetime.fromisoformat(study["arrived_at"]).strftime("%Y-%m-%d %H:%M")
        mark = " " if study["read"] else "*"
        state = study["state"] + (f" ({study['reason']})" if study["reason"] else "")
        sys.stdout.write(
            f"{mark} {PRIORITY_WORDS[study['priority_name']]:<33} {state:<10} "
            f"{study['patient_name'] or '(no name)'} [{study['patient_id']}] "
            f"{study['study_date']} {study['description']!r}, {study['series_count']} "
            f"series, arrived {arrived}\n")
        if study["headline"]:
            sys.stdout.write(f"    {study['headline']}\n")
    sys.stdout.write("* unread\n")
    return 0


# ---------------------------------------------------------------------- audit
def run_audit(args: argparse.Namespace) -> int:
    from workstation.store.audit import AUDIT_LOG_USED, AuditError, AuditLog

    try:
        log = AuditLog()
    except AuditError as exc:
        sys.stderr.write(f"workstation: {exc}\n")
        return 2
    with log:
        if args.audit_command == "verify":
            check = log.verify()
            if check.intact:
                sys.stdout.write(f"the audit log is intact: {check.events} events, last "
                                 f"hash {check.head}\n")
                return 0
            sys.stdout.write(f"the audit log was altered ({log.path}):\n")
            sys.stdout.writelines(f"- {problem}\n" for problem in check.problems)
            return 1
        log.append(AUDIT_LOG_USED, detail="exported as PS3.15 XML")
        data = log.export_xml()
        if args.output is None:
            sys.stdout.buffer.write(data + b"\n")
        else:
            args.output.write_bytes(data)
            sys.stderr.write(f"audit messages written to {args.output}\n")
    return 0
