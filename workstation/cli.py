"""Command line: ``workstation inspect PATH... [--json]``.

Heavy imports (pydicom, later torch and Qt) happen inside the subcommands so that
``workstation --version`` and ``--help`` stay instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Sequence

from workstation import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workstation",
        description="Offline brain MRI triage workstation (decision support, not a diagnosis).",
    )
    parser.add_argument("--version", action="version", version=f"workstation {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    inspect = commands.add_parser(
        "inspect", help="list the series found in files or folders (DICOM, PNG, JPEG, TIFF)"
    )
    inspect.add_argument("paths", nargs="+", metavar="PATH", help="file, folder or DICOMDIR")
    inspect.add_argument("--json", action="store_true", help="print one JSON document")
    inspect.add_argument("--all-problems", action="store_true",
                         help="also list skipped non-image files (text notes, NIfTI...)")
    inspect.add_argument("--timing", type=int, default=0, metavar="N",
                         help="load N more times and print the median load time")
    return parser


def quiet_library_logs() -> None:
    """Decoder libraries log tracebacks for files we already report in plain words."""
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?")
    warnings.filterwarnings("ignore", module=r"PIL(\..*)?")


def _inspect(args: argparse.Namespace) -> int:
    from workstation.imaging import load_study
    from workstation.inspect import inspect_document, render_text

    study = load_study(args.paths)
    if args.json:
        json.dump(inspect_document(study), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(study, show_skipped=args.all_problems))
    if args.timing > 0:
        times = []
        for _ in range(args.timing):
            start = time.perf_counter()
            load_study(args.paths)
            times.append(time.perf_counter() - start)
        slices = sum(len(s.slices) for s in study.series)
        sys.stderr.write(
            f"load time: median {statistics.median(times) * 1000:.0f} ms, "
            f"min {min(times) * 1000:.0f} ms over {len(times)} runs "
            f"({slices} slices, {len(study.series)} series)\n")
    return 0 if study.series else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    quiet_library_logs()
    if args.command == "inspect":
        return _inspect(args)
    parser.print_help()
    return 2
