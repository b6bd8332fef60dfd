"""``workstation pacs find | get``: search the configured PACS, retrieve a study into the store.

``find`` prints one line per study (or ``--json``: ``{"pacs": ..., "studies": [...]}``);
``get STUDY_UID`` retrieves the study by C-GET into the local store, notes it in the
worklist and prints where it is. Exit status: 0 done, 1 nothing found / retrieval
incomplete, 2 settings to correct, 3 the PACS could not be reached or refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from workstation.dicomnet.config import NetworkSettings, RemoteNode
    from workstation.dicomnet.query import RetrieveProgress, StudyMatch


def add_pacs(commands: argparse._SubParsersAction) -> None:
    pacs = commands.add_parser("pacs", help="search the PACS and retrieve studies from it "
                                            "(C-FIND, C-GET)")
    actions = pacs.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--pacs", default="", metavar="NAME",
                        help="the DICOM node to use (default: the settings' PACS)")
    common.add_argument("--ae", default="", metavar="AE_TITLE",
                        help="this workstation's AE title (default: the settings')")
    common.add_argument("--settings", type=Path, default=None, metavar="JSON",
                        help="DICOM network settings file (default: dicom.json in the "
                             "config folder)")
    find = actions.add_parser("find", parents=[common], help="list the PACS's studies")
    find.add_argument("--patient", default="",
                      help="patient name (any part; * and ? as wildcards) or patient ID")
    find.add_argument("--date", default="",
                      help="study date YYYYMMDD or YYYY-MM-DD, or a range FROM-TO "
                           "(YYYYMMDD-YYYYMMDD; either end may be left out)")
    find.add_argument("--modality", default="", help="a modality in the study, e.g. MR")
    find.add_argument("--description", default="",
                      help="any part of the study description (case does not matter)")
    find.add_argument("--json", action="store_true", help="print one JSON document")
    get = actions.add_parser("get", parents=[common],
                             help="retrieve a study into the local store (C-GET)")
    get.add_argument("study_uid", metavar="STUDY_UID", help="the study's Study Instance UID")
    get.add_argument("--store", type=Path, default=None, metavar="DIR",
                     help="the local store (default: the settings', else the data folder's)")
    get.add_argument("--json", action="store_true", help="print one JSON document")


def run_pacs(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from workstation.dicomnet.config import NetworkSettings, NetworkSettingsError, check_ae_title
    from workstation.dicomnet.query import PacsError, configured_pacs

    try:
        settings = NetworkSettings.load(args.settings)
        if args.ae:
            settings = replace(settings, ae_title=check_ae_title(args.ae))
        if getattr(args, "store", None) is not None:
            settings = replace(settings, store_dir=str(args.store))
        node = configured_pacs(settings, args.pacs)
        if args.pacs_command == "find":
            return _find(args, settings, node)
        return _get(args, settings, node)
    except NetworkSettingsError as exc:
        sys.stderr.write(f"workstation: {exc}\n")
        return 2
    except PacsError as exc:
        sys.stderr.write(f"workstation: {exc}\n")
        return 3


def _find(args: argparse.Namespace, settings: NetworkSettings, node: RemoteNode) -> int:
    from workstation.dicomnet.query import QueryInputError, StudyQuery, search_studies

    try:
        query = StudyQuery(patient=args.patient, date=args.date, modality=args.modality,
                           description=args.description)
    except QueryInputError as exc:
        sys.stderr.write(f"workstation: {exc}\n")
        return 2
    studies = search_studies(settings, query, node)
    if args.json:
        json.dump({"pacs": node.name, "studies": [s.to_json() for s in studies]},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for study in studies:
            sys.stdout.write(study_line(study) + "\n")
        sys.stdout.write(f"{len(studies)} studies on {node.name}\n")
    return 0 if studies else 1


def study_line(study: StudyMatch) -> str:
    counts = []
    if study.series_count is not None:
        counts.append(f"{study.series_count} series")
    if study.instance_count is not None:
        counts.append(f"{study.instance_count} images")
    return "  ".join([
        _date(study.study_date) or "no date", study.patient_name or "(no name)",
        f"ID {study.patient_id or '-'}", "/".join(study.modalities) or "-",
        study.description or "(no description)", ", ".join(counts), study.study_uid])


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else value


class _Progress:
    """Progress on stderr: rewritten in place on a terminal, else every tenth of the way."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.shown = -1

    def __call__(self, progress: RetrieveProgress) -> None:
        if self.tty:
            self.stream.write(f"\r{progress.text}")
            self.stream.flush()
            return
        step = max(1, (progress.total or 100) // 10)
        moved = progress.received // step != self.shown // step
        last = progress.received == progress.total
        if (moved or last) and progress.received != self.shown:
            self.stream.write(progress.text + "\n")
            self.shown = progress.received

    def end(self) -> None:
        if self.tty:
            self.stream.write("\n")


def _get(args: argparse.Namespace, settings: NetworkSettings, node: RemoteNode) -> int:
    from workstation.dicomnet.query import retrieve_study

    progress = _Progress(sys.stderr)
    try:
        result = retrieve_study(settings, args.study_uid, node, progress=progress)
    finally:
        progress.end()
    if args.json:
        json.dump({"pacs": node.name, "study_uid": result.study_uid,
                   "received": result.received, "failed": result.failed,
                   "warnings": result.warnings, "complete": result.complete,
                   "folder": str(result.folder) if result.folder else None,
                   "problems": list(result.problems)}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        failed = f", {result.failed} failed" if result.failed else ""
        sys.stdout.write(f"retrieved {result.received} images{failed} of study "
                         f"{result.study_uid} from {node.name} into {result.folder}\n")
        for problem in result.problems:
            sys.stdout.write(f"! {problem}\n")
        if result.received:
            sys.stdout.write("the study is in the worklist; it is analysed once complete "
                             "by the running receiver (workstation serve) or when opened "
                             "in the window\n")
    return 0 if result.complete else 1
