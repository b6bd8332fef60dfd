"""``workstation triage``: load, analyse, print (text or JSON), write masks."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from workstation.analysis.model_file import ModelIntegrityError
from workstation.imaging import Severity, load_study

if TYPE_CHECKING:
    from workstation.analysis.run import StudyTriage
    from workstation.reporting.dicom_export import DicomExport


def run_triage(args: argparse.Namespace) -> int:
    if args.report is not None and args.report.exists() and not args.force:
        sys.stderr.write(f"workstation: {args.report} already exists (use --force to "
                         "overwrite it)\n")
        return 4
    dicom_out = getattr(args, "dicom_out", None)
    send = getattr(args, "send", None)
    if (dicom_out is not None or send) and args.anonymize:
        from workstation.reporting.dicom_export import ANONYMIZED_REFUSAL

        sys.stderr.write(f"workstation: {ANONYMIZED_REFUSAL} (leave out --anonymize, or "
                         "--dicom-out and --send)\n")
        return 2
    if send:
        status = _check_destination(send)
        if status:
            return status
    study = load_study(args.paths)
    try:
        from workstation.analysis.engine import Engine
        from workstation.analysis.run import triage_document, triage_study, write_masks

        engine = Engine(args.model, device=args.device,
                        backend=getattr(args, "backend", "auto"))
    except (ModelIntegrityError, RuntimeError) as exc:
        sys.stderr.write(f"workstation: the triage model cannot be used: {exc}\n")
        return 3
    result = triage_study(study, engine)
    if args.report is not None:
        status = _write_report(args, result)
        if status:
            return status
    dicom_status = 0
    if dicom_out is not None or send:
        dicom_status = _dicom_results(args, result, dicom_out, send)
    if args.masks_dir is not None:
        for problem in write_masks(result, args.masks_dir):
            sys.stderr.write(f"{problem}\n")
    if args.json:
        json.dump(triage_document(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        lines = [f"model {result.model.name} {result.model.version} on {result.device}, "
                 f"{result.seconds:.1f} s"]
        for verdict in result.verdicts:
            lines.append(f"- {verdict.series.description} ({len(verdict.findings)} images, "
                         f"{verdict.plane} from {verdict.plane_source}): {verdict.headline}")
            lines.extend(f"    reason: {r.text}" for r in verdict.reasons)
            if verdict.assessed_on is not None:
                lines.append(f"    volumes: {verdict.assessed_on}")
        errors = [p for p in study.problems if p.severity is Severity.ERROR]
        lines.extend(f"! {p}" for p in errors)
        if not result.verdicts:
            lines.append("no images to analyse")
        sys.stdout.write("\n".join(lines) + "\n")
    if dicom_status:
        return dicom_status
    return 0 if result.verdicts else 1


def _write_report(args: argparse.Namespace, result: StudyTriage) -> int:
    from workstation.reporting.content import build_content
    from workstation.reporting.pdf import ReportExistsError, write_report
    from workstation.settings import Settings
    from workstation.store import audit
    from workstation.store.readings import load_readings

    settings = Settings.load()
    started = time.perf_counter()
    content = build_content(result, load_readings(result.study),
                            institution=args.institution or settings.institution,
                            anonymize=args.anonymize)
    try:
        path = write_report(content, args.report, page_size=args.page_size or settings.page_size,
                            force=args.force)
    except (ReportExistsError, OSError) as exc:
        sys.stderr.write(f"workstation: the report was not written: {exc}\n")
        return 4
    audit.record_event(audit.REPORT_EXPORTED, study_uid=audit.study_uid_of(result.study),
                       detail="PDF report, anonymized" if args.anonymize else "PDF report")
    slices = sum(len(v.findings) for v in result.verdicts)
    sys.stderr.write(f"report written to {path} in {time.perf_counter() - started:.2f} s "
                     f"({slices} images)\n")
    return 0


def _check_destination(name: str) -> int:
    from workstation.dicomnet.config import NetworkSettings, NetworkSettingsError

    try:
        NetworkSettings.load().node(name)
    except NetworkSettingsError as exc:
        sys.stderr.write(f"workstation: the results cannot be sent: {exc}\n")
        return 2
    return 0


def _dicom_results(args: argparse.Namespace, result: StudyTriage, folder: Path | None,
                   send: str | None) -> int:
    """Write the DICOM results (into ``folder``, else a temporary folder) and queue them
    for ``send``; 5 when nothing could be exported or a result was refused, 6 when they
    wait in the queue for the destination to answer."""
    from workstation.reporting.dicom_export import DicomExportError, export_results
    from workstation.reporting.dicom_source import NotExportableError
    from workstation.settings import Settings

    settings = Settings.load()
    pdf = args.report.read_bytes() if args.report is not None and args.report.exists() \
        else None
    with tempfile.TemporaryDirectory(prefix="triage-dicom-") as temporary:
        target = folder if folder is not None else Path(temporary)
        try:
            export = export_results(result, target, report_pdf=pdf,
                                    institution=args.institution or settings.institution,
                                    page_size=args.page_size or settings.page_size)
        except (NotExportableError, DicomExportError) as exc:
            sys.stderr.write(f"workstation: the DICOM results were not written: {exc}\n")
            return 5
        for note in export.notes:
            sys.stderr.write(f"  {note}\n")
        if folder is not None:
            kinds = ", ".join(f"{len(export.of_kind(k))} {k}" for k in ("SR", "SEG", "PDF", "SC")
                              if export.of_kind(k))
            sys.stderr.write(f"DICOM results written to {folder}: {kinds}\n")
        if not send:
            return 0
        return _send(export, send)


def _send(export: DicomExport, name: str) -> int:
    from workstation.store.send_queue import SendQueue, SendQueueError

    try:
        queue = SendQueue()
        queue.enqueue(name, export.paths, study_uid=export.study_uid,
                      description=f"triage results of study {export.study_uid}")
        report = queue.process(force=True)  # asked to send now: what waits goes too
    except SendQueueError as exc:
        sys.stderr.write(f"workstation: the results were not sent: {exc}\n")
        return 5
    for message in dict.fromkeys(report.messages):
        sys.stderr.write(f"  {message}\n")
    if report.sent:
        sys.stderr.write(f"{report.sent} result object{'s' if report.sent != 1 else ''} "
                         f"sent to {name}\n")
    if report.failed:
        sys.stderr.write(f"workstation: {report.failed} result object(s) refused by the "
                         "destination (see above)\n")
        return 5
    if report.waiting:
        sys.stderr.write(f"{report.waiting} result object(s) wait in the send queue; they "
                         "are sent again by the next `workstation triage --send` or by the "
                         "window's send queue\n")
        return 6
    return 0
