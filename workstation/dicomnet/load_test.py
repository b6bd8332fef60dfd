"""Load test of the receiver: ``python -m workstation.dicomnet.load_test``.

Starts ``workstation serve`` (a separate process, on a free loopback port, with its store,
worklist and audit log in a temporary folder), makes ``--instances`` instances from a real
series (new study, series and instance UIDs; pixel data unchanged; one study per copy of
the series), sends them over ``--associations`` concurrent associations (round robin, so
each study arrives over every association), then checks that every instance was answered
Success and stored exactly once with the same pixel data (SHA-256), that every study is in
the worklist, and waits for each study's verdict. Prints instances per second and the time
from each study's last instance to its verdict. A benchmark, not a timed test.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pydicom
from pydicom import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE

from workstation.dicomnet.completion import wait_until
from workstation.dicomnet.receiver import no_delay
from workstation.dicomnet.storage import INCOMING, PART_SUFFIX
from workstation.store.worklist import DONE, FAILED, Worklist

DATASETS = Path(os.environ.get("BRAIN_TRIAGE_DATA")
                or Path(__file__).resolve().parents[3] / "shared" / "datasets")
DEFAULT_SOURCE = DATASETS / "dicom" / "ge_epi_axial"
NEVER = 24 * 3600.0  # the stable age when verdicts are not waited for


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServeProcess:
    """``workstation serve`` in a child process, its data in ``folder``."""

    def __init__(self, folder: Path, port: int, *args: str, timeout: float = 60.0) -> None:
        self.folder, self.port = Path(folder), port
        self.store = self.folder / "data" / "store"
        env = {**os.environ, "BRAIN_TRIAGE_DATA_DIR": str(self.folder / "data"),
               "BRAIN_TRIAGE_CONFIG_DIR": str(self.folder / "config")}
        self.log = open(self.folder / "serve.log", "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workstation", "serve", "--bind", "127.0.0.1",
             "--port", str(port), *args], env=env, stdout=subprocess.PIPE, stderr=self.log,
            text=True)
        self.banner = self._wait_for_banner(timeout)

    def _wait_for_banner(self, timeout: float) -> str:
        found: list[str] = []
        stdout: IO[str] = self.process.stdout  # type: ignore[assignment]
        reader = threading.Thread(target=lambda: found.append(stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        if not found or not found[0].startswith("receiving"):
            self.stop()
            log = (self.folder / "serve.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"workstation serve did not start: {log}")
        return found[0]

    def worklist(self) -> Worklist:
        return Worklist(self.folder / "data" / "worklist.sqlite")

    def kill(self) -> None:
        """kill -9: no chance to finish anything."""
        self.process.kill()
        self.process.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


def pixel_hash(dataset: Dataset) -> str:
    return hashlib.sha256(bytes(dataset.PixelData)).hexdigest()


def synthesize(source: Sequence[Dataset], count: int) -> list[Dataset]:
    """``count`` instances: copies of ``source`` (one series) with new UIDs, one study
    per copy of the whole series."""
    made: list[Dataset] = []
    study_uid = series_uid = ""
    for number in range(count):
        if number % len(source) == 0:
            study_uid, series_uid = generate_uid(), generate_uid()
        copy = deepcopy(source[number % len(source)])
        copy.StudyInstanceUID, copy.SeriesInstanceUID = study_uid, series_uid
        copy.SOPInstanceUID = copy.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        copy.PatientID = f"LOAD-{number // len(source) + 1:03d}"
        copy.PatientName = f"Load^Test^{number // len(source) + 1}"
        made.append(copy)
    return made


def read_series(folder: Path) -> list[Dataset]:
    found: list[Dataset] = []
    for path in sorted(folder.iterdir()):
        try:
            dataset = pydicom.dcmread(path)
        except (pydicom.errors.InvalidDicomError, OSError, ValueError):
            continue
        if "PixelData" in dataset:
            found.append(dataset)
    if not found:
        raise SystemExit(f"no DICOM image in {folder}")
    return found


@dataclass(frozen=True)
class SendResult:
    statuses: dict[str, int]  # SOP instance UID -> status
    seconds: float  # first send to last answer
    last_answer: float  # time.time() of the last answer


def send(instances: Sequence[Dataset], port: int, associations: int,
         calling_ae: str = "LOADTEST", called_ae: str = "BRAINTRIAGE") -> SendResult:
    """Send ``instances`` round robin over ``associations`` concurrent associations."""
    shares = [list(instances[k::associations]) for k in range(associations)]
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    problems: list[str] = []

    def sender(share: list[Dataset]) -> None:
        ae = AE(ae_title=calling_ae)
        for context in {(d.SOPClassUID, d.file_meta.TransferSyntaxUID) for d in share}:
            ae.add_requested_context(*context)
        assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
        if not assoc.is_established:
            problems.append("the association was not accepted")
            return
        no_delay(assoc)
        for dataset in share:
            answer = assoc.send_c_store(dataset)
            with lock:
                statuses[dataset.SOPInstanceUID] = int(answer.Status) if answer else -1
        assoc.release()

    started = time.perf_counter()
    threads = [threading.Thread(target=sender, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if problems:
        raise RuntimeError("; ".join(problems))
    return SendResult(statuses, time.perf_counter() - started, time.time())


@dataclass(frozen=True)
class LoadTestResult:
    instances: int
    associations: int
    studies: int
    send_seconds: float
    instances_per_second: float
    stored_once: bool
    hashes_identical: bool
    partial_files: int
    studies_in_worklist: int
    verdict_seconds: tuple[float, ...]  # per study: last instance -> verdict
    states: dict[str, str]

    @property
    def passed(self) -> bool:
        return (self.stored_once and self.hashes_identical and not self.partial_files
                and self.studies_in_worklist == self.studies)


def run_load_test(source: Path, instances: int = 1000, associations: int = 4,
                  folder: Path | None = None, stable_age: float = 2.0,
                  device: str = "cpu", wait_for_verdicts: bool = True,
                  verdict_timeout: float = 1800.0, out: IO[str] = sys.stdout) -> LoadTestResult:
    made = synthesize(read_series(source), instances)
    expected = {d.SOPInstanceUID: pixel_hash(d) for d in made}
    study_uids = {d.StudyInstanceUID for d in made}
    with tempfile.TemporaryDirectory(prefix="loadtest-") as scratch:
        work = Path(folder) if folder is not None else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        quiet = stable_age if wait_for_verdicts else NEVER
        serve = ServeProcess(work, free_port(), "--stable-age", str(quiet),
                             "--device", device, "--min-free-mb", "0",
                             "--max-associations", str(max(associations, 8)))
        try:
            out.write(f"sending {instances} instances ({len(study_uids)} studies) from "
                      f"{source} over {associations} associations\n")
            sent = send(made, serve.port, associations)
            stored = _stored(serve.store)
            with serve.worklist() as worklist:
                listed = {r.study_uid: r for r in worklist.studies()}
                if wait_for_verdicts:
                    wait_until(lambda: _all_analysed(worklist, study_uids),
                               verdict_timeout, interval=0.5)
                rows = {r.study_uid: r for r in worklist.studies()}
        finally:
            serve.stop()
    delays = tuple(r.analysed_at - r.last_instance_at for uid, r in rows.items()
                   if uid in study_uids and r.analysed_at is not None
                   and r.state in (DONE, FAILED))
    result = LoadTestResult(
        instances=instances, associations=associations, studies=len(study_uids),
        send_seconds=sent.seconds, instances_per_second=instances / sent.seconds,
        stored_once=(sorted(stored["uids"]) == sorted(expected)
                     and all(s == 0 for s in sent.statuses.values())
                     and len(sent.statuses) == instances),
        hashes_identical=stored["hashes"] == expected,
        partial_files=len(stored["partial"]),
        studies_in_worklist=len(study_uids & set(listed)),
        verdict_seconds=delays,
        states={uid: rows[uid].state if uid in rows else "missing" for uid in study_uids})
    _print(result, stable_age, out)
    return result


def _all_analysed(worklist: Worklist, study_uids: set[str]) -> bool:
    states = {r.study_uid: r.state for r in worklist.studies()}
    return all(states.get(uid) in (DONE, FAILED) for uid in study_uids)


def _stored(store: Path) -> dict[str, Any]:
    uids: list[str] = []
    hashes: dict[str, str] = {}
    for path in store.rglob("*.dcm"):
        dataset = pydicom.dcmread(path)
        uids.append(str(dataset.SOPInstanceUID))
        hashes[str(dataset.SOPInstanceUID)] = pixel_hash(dataset)
    partial = list((store / INCOMING).glob(f"*{PART_SUFFIX}"))
    return {"uids": uids, "hashes": hashes, "partial": partial}


def _print(result: LoadTestResult, stable_age: float, out: IO[str]) -> None:
    out.write(f"stored: {result.instances} instances in {result.send_seconds:.1f} s, "
              f"{result.instances_per_second:.1f} instances/s over {result.associations} "
              "associations\n")
    out.write(f"every instance answered Success and stored once: {result.stored_once}; "
              f"pixel data identical (SHA-256): {result.hashes_identical}; partial files "
              f"left: {result.partial_files}\n")
    out.write(f"studies in the worklist: {result.studies_in_worklist} of {result.studies}\n")
    if result.verdict_seconds:
        delays = result.verdict_seconds
        out.write(f"last instance to verdict: median {statistics.median(delays):.1f} s, "
                  f"max {max(delays):.1f} s over {len(delays)} studies (of which the "
                  f"stable age {stable_age:g} s; the first study includes loading the "
                  "model)\n")
    states = sorted(set(result.states.values()))
    out.write(f"study states: {', '.join(states)}\n")
    out.write("PASSED\n" if result.passed else "FAILED\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workstation.dicomnet.load_test",
                                     description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="a folder holding one real DICOM series (default: "
                             "../shared/datasets/dicom/ge_epi_axial)")
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--associations", type=int, default=4)
    parser.add_argument("--stable-age", type=float, default=2.0)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--no-verdicts", action="store_true",
                        help="check storage and the worklist only; do not wait for triage")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the store, worklist and serve.log in DIR")
    args = parser.parse_args(argv)
    result = run_load_test(args.source, args.instances, args.associations, args.keep,
                           args.stable_age, args.device, not args.no_verdicts)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
