"""``workstation readings PATH... [--record agree|disagree ...] [--json]``: the readers'
readings of a study, listed or recorded from the command line.

The same readings the window's reading form saves (``store.readings``: one JSON file per
study in the data folder), so IT can check after an upgrade or a restore that they are
there, and scripts can record one. Exit status: 0 done, 1 no series in PATH, 2 a wrong
series number or class.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

CORRECTIONS = ("glioma", "meningioma", "pituitary", "no_tumour", "other")


def add_readings(commands: argparse._SubParsersAction) -> None:
    readings = commands.add_parser(
        "readings", help="list the readings saved for a study, or record one")
    readings.add_argument("paths", nargs="+", metavar="PATH", help="file, folder or DICOMDIR")
    readings.add_argument("--record", choices=("agree", "disagree"),
                          help="record a reading: agree or disagree with the triage")
    readings.add_argument("--series", type=int, default=1, metavar="N",
                          help="with --record: the series, numbered as `workstation inspect` "
                               "lists them (default 1)")
    readings.add_argument("--class", dest="corrected", choices=CORRECTIONS, default="",
                          help="with --record disagree: the reader's class")
    readings.add_argument("--note", default="", help="with --record: a free-text note")
    readings.add_argument("--reader", default="", help="with --record: the reader's name")
    readings.add_argument("--json", action="store_true", help="print one JSON document")


def run_readings(args: argparse.Namespace) -> int:
    from workstation.imaging import load_study
    from workstation.store.readings import (
        Reading,
        load_readings,
        readings_path,
        save_reading,
        series_key,
    )

    study = load_study(args.paths)
    if not study.series:
        sys.stderr.write("workstation: no image series found in the given paths\n")
        return 1
    if args.record:
        if not 1 <= args.series <= len(study.series):
            sys.stderr.write(f"workstation: there is no series {args.series} (the study has "
                             f"{len(study.series)})\n")
            return 2
        if args.record == "agree" and args.corrected:
            sys.stderr.write("workstation: --class goes with --record disagree\n")
            return 2
        key = series_key(study.series[args.series - 1])
        save_reading(study, Reading.now(key, args.record, args.corrected, args.note,
                                        args.reader))
    saved = load_readings(study)
    if args.json:
        json.dump({"readings_file": str(readings_path(study)),
                   "readings": [asdict(r) for r in saved.values()]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not saved:
        print(f"no readings saved for this study ({readings_path(study)})")
    for number, series in enumerate(study.series, start=1):
        reading = saved.get(series_key(series))
        if reading is not None:
            corrected = f" ({reading.corrected_class})" if reading.corrected_class else ""
            reader = f" by {reading.reader}" if reading.reader else ""
            note = f": {reading.note}" if reading.note else ""
            print(f"series {number} {series.description}: {reading.agreement}{corrected}"
                  f"{reader} at {reading.recorded_at}{note}")
    return 0
