"""``workstation batch ARCHIVE... --out DIR``: triage a whole archive, resumably."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_batch(commands: argparse._SubParsersAction) -> None:
    batch = commands.add_parser(
        "batch", help="triage every study of DICOM/PNG archive trees into a results table "
                      "(resumable; optionally on a Dask cluster)")
    batch.add_argument("archives", nargs="+", type=Path, metavar="ARCHIVE",
                       help="folders (or files) to walk")
    batch.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="results folder: results.sqlite, studies/*.json, summary.json")
    batch.add_argument("--workers", type=int, default=1, metavar="N",
                       help="worker processes on this machine (default 1; with --cluster "
                            "local: the local Dask workers)")
    batch.add_argument("--cluster", default="", metavar="ADDRESS",
                       help="run on a Dask cluster: its scheduler address "
                            "(tcp://host:8786), or 'local' for a local one of --workers")
    batch.add_argument("--model", default="", metavar="JSON",
                       help="model description (default: the shipped model)")
    batch.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    batch.add_argument("--retry-failed", action="store_true",
                       help="triage again the studies that failed in an earlier run")
    batch.add_argument("--json", action="store_true", help="print the summary as JSON")


def run_batch_command(args: argparse.Namespace) -> int:
    from workstation.batch.runner import BatchOptions, ClusterUnavailableError, run_batch

    if args.workers < 1:
        sys.stderr.write("workstation: --workers must be at least 1\n")
        return 2
    options = BatchOptions(workers=args.workers, cluster=args.cluster, model=args.model,
                           device=args.device, retry_failed=args.retry_failed)
    try:
        summary = run_batch(args.archives, args.out, options)
    except ClusterUnavailableError as exc:
        sys.stderr.write(f"workstation: {exc}\n")
        return 3
    except OSError as exc:
        sys.stderr.write(f"workstation: cannot write the results to {args.out}: "
                         f"{exc.strerror or exc}\n")
        return 4
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(summary["verdicts"].items()))
        sys.stdout.write(
            f"{summary['studies']} studies in {args.out}: {verdicts or 'none triaged'}; "
            f"{summary['failed']} failed; this run {summary['triaged_now']} studies in "
            f"{summary['seconds']} s ({summary['engine']})\n")
    return 0 if summary["failed"] == 0 else 1
