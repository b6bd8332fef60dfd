"""``workstation triage``: load, analyse, print (text or JSON), write masks."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from workstation.analysis.model_file import ModelIntegrityError
from workstation.imaging import Severity, load_study

if TYPE_CHECKING:
    from workstation.analysis.run import StudyTriage


def run_triage(args: argparse.Namespace) -> int:
    if args.report is not None and args.report.exists() and not args.force:
        sys.stderr.write(f"workstation: {args.report} already exists (use --force to "
                         "overwrite it)\n")
        return 4
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
    return 0 if result.verdicts else 1


def _write_report(args: argparse.Namespace, result: StudyTriage) -> int:
    from workstation.reporting.content import build_content
    from workstation.reporting.pdf import ReportExistsError, write_report
    from workstation.settings import Settings
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
    slices = sum(len(v.findings) for v in result.verdicts)
    sys.stderr.write(f"report written to {path} in {time.perf_counter() - started:.2f} s "
                     f"({slices} images)\n")
    return 0
