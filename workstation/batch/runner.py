"""Run an archive: discover its studies, skip those already done, triage the rest on the
chosen engine (this process, N local processes, or a Dask cluster) and record each result
as it arrives.

Dask distributed, not Ray, is the cluster engine: it is pure Python (the workers are plain
``dask worker`` processes a hospital's IT can start on any Linux or Windows server, with no
object store or extra daemons), it is an optional extra (``pip install
'brain-mri-triage-workstation[cluster]'``), and a study is a natural task: a few files in,
one small JSON document out.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import as_completed as futures_completed
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TextIO

from workstation.batch.discover import StudyUnit, discover
from workstation.batch.job import StudyOutcome, triage_unit, worker_started
from workstation.batch.progress import Progress
from workstation.batch.results import ResultsTable


class ClusterUnavailableError(RuntimeError):
    """The Dask cluster cannot be used (not installed, or not reachable), in words."""


@dataclass(frozen=True)
class BatchOptions:
    workers: int = 1  # local worker processes (or local Dask workers with cluster="local")
    cluster: str = ""  # "" (no Dask), "local", or a scheduler address (tcp://host:8786)
    model: str = ""  # a model description; "" is the shipped model
    device: str = "cpu"
    retry_failed: bool = False


def _outcome_of_failure(unit: StudyUnit, error: BaseException) -> StudyOutcome:
    return StudyOutcome(unit.key, unit.label, "", "", "", "", 0, 0, 0.0,
                        f"the worker running this study stopped ({type(error).__name__}: "
                        f"{error})", None, "", "", "")


def _local_results(units: Sequence[StudyUnit], options: BatchOptions
                   ) -> Iterator[tuple[StudyUnit, StudyOutcome]]:
    executor: Executor
    if options.workers <= 1:
        executor, threads = ThreadPoolExecutor(max_workers=1), 0
    else:
        # spawn, not fork: each worker imports the engine afresh (no inherited threads)
        executor = ProcessPoolExecutor(max_workers=options.workers,
                                       mp_context=get_context("spawn"),
                                       initializer=worker_started)
        threads = max(1, (os.cpu_count() or 1) // options.workers)
    with executor:
        futures: dict[Future[StudyOutcome], StudyUnit] = {
            executor.submit(triage_unit, unit, options.model, options.device, threads): unit
            for unit in units}
        for future in futures_completed(futures):
            unit = futures[future]
            try:
                yield unit, future.result()
            except Exception as exc:  # a worker process that died takes only its studies
                yield unit, _outcome_of_failure(unit, exc)


@contextmanager
def dask_client(options: BatchOptions) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ClusterUnavailableError(
            "Dask is not installed: pip install 'brain-mri-triage-workstation[cluster]'"
        ) from exc
    if options.cluster == "local":
        cluster = LocalCluster(n_workers=max(1, options.workers), threads_per_worker=1,
                               processes=True, dashboard_address=None)
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    try:
        client = Client(options.cluster, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise ClusterUnavailableError(
            f"the Dask scheduler at {options.cluster} did not answer ({exc})") from exc
    try:
        yield client
    finally:
        client.close()


def _dask_results(units: Sequence[StudyUnit], options: BatchOptions
                  ) -> Iterator[tuple[StudyUnit, StudyOutcome]]:
    from distributed import as_completed

    with dask_client(options) as client:
        threads = 1 if options.cluster == "local" else 0
        futures = {client.submit(triage_unit, unit, options.model, options.device, threads,
                                 key=f"triage-{unit.file_stem}", pure=False): unit
                   for unit in units}
        for future in as_completed(futures):
            unit = futures[future]
            try:
                yield unit, future.result()
            except Exception as exc:
                yield unit, _outcome_of_failure(unit, exc)


def _words(outcome: StudyOutcome) -> str:
    return outcome.error if outcome.error else outcome.headline


def run_batch(roots: Sequence[Path], out: Path, options: BatchOptions,
              stream: TextIO = sys.stderr) -> dict[str, Any]:
    """Triage every study under ``roots`` into ``out``; returns the run's summary."""
    started = time.perf_counter()
    discovery = discover(roots)
    table = ResultsTable(out)
    try:
        done = table.done_keys(options.retry_failed)
        todo = [unit for unit in discovery.studies if unit.key not in done]
        skipped = len(discovery.studies) - len(todo)
        stream.write(f"{len(discovery.studies)} studies in {discovery.files_seen} files "
                     f"({discovery.files_left_out} files neither DICOM nor pictures left out); "
                     f"{skipped} already done, {len(todo)} to triage\n")
        for root in discovery.unreadable_roots:
            stream.write(f"! {root}: not found or not readable\n")
        progress = Progress(len(discovery.studies), skipped, stream)
        results = (_dask_results(todo, options) if options.cluster
                   else _local_results(todo, options))
        images = 0
        for unit, outcome in results:
            table.record(replace(outcome, label=unit.label), unit.file_stem)
            images += outcome.images
            progress.report(unit.label, _words(outcome))
        seconds = time.perf_counter() - started
        rows = list(table.rows())
        return {
            "studies": len(rows), "triaged_now": len(todo), "skipped_as_done": skipped,
            "failed": sum(r["state"] == "failed" for r in rows),
            "verdicts": dict(Counter(r["verdict"] for r in rows if r["state"] == "done")),
            "images_now": images, "seconds": round(seconds, 1),
            "studies_per_second": round(len(todo) / seconds, 3) if seconds > 0 else None,
            "engine": (f"dask {options.cluster}" if options.cluster else
                       f"{max(1, options.workers)} local process(es)"),
            "workers": max(1, options.workers) if options.cluster in ("", "local") else None,
            "models": sorted({r["model_sha256"] for r in rows if r["model_sha256"]}),
            "backends": sorted({r["backend"] for r in rows if r["backend"]}),
            "results": str(out / "results.sqlite"),
        }
    finally:
        table.close()
