"""Decoding compressed pixel data in worker processes, so a crashing codec fails one file.

gdcm, openjpeg, the RLE and JPEG-LS decoders and libjpeg-turbo are native code: a
``gdcm::Exception`` escaping into ``std::terminate`` (SIGABRT) or a segfault on a damaged file
would end the whole application with no message. Here they run in a warm
``ProcessPoolExecutor`` ('forkserver' context, 'spawn' where there is none: never 'fork',
which is unsafe beside Qt's and torch's threads), created on first use and reused:

* the main process sends the file's Image Pixel elements and its encoded Pixel Data (not the
  path: the worker reads nothing), the worker runs ``decode.decode_in_process`` (the same
  plugin fallback chain and blank-decode guard as in-process) and pickles the frames back;
* ``prefetch`` (``decode.prefetch``, called by ``dicom.build_series`` with the files of a
  series in decode order) submits them in batches (1, 2, 4... files, then up to
  BATCH_FILES / BATCH_PIXELS), one task per batch, so the round trips overlap the main
  process's work; ``decode`` then waits for its file's batch (a file not prefetched, e.g.
  a preview, is one round trip);
* a worker that dies (``BrokenProcessPool``) or a batch that does not finish within
  ``TIMEOUT_S`` (its workers are killed) replaces the pool, and the files of every batch
  that was lost are decoded again one at a time; the file that still kills its worker when
  alone is reported "could not decode (decoder crashed)" (an UnreadableImageError: a
  Problem for that file), one that still hangs "could not decode (the decoder did not finish
  within 30 s)" (after twice the timeout: once in its batch, once alone); the other files
  load;
* the worker imports pydicom, numpy and the plugins only (no torch, no Qt), and not the
  parent's main module (``_preparation_data``): a script without a main guard is not run
  again in each worker.

Switch: ``WORKSTATION_DECODE_IN_PROCESS=1`` (read at import) or ``isolated.IN_PROCESS =
True`` decodes in-process (debugging, profiling a codec). ``WORKSTATION_DECODE_TIMEOUT``
sets ``TIMEOUT_S`` (seconds a file, default 30), ``WORKSTATION_DECODE_WORKERS`` the pool size.

Test hook: ``TEST_HOOKS`` maps a file name to "abort" (``os.abort()``), "segv" (SIGSEGV),
"hang" (sleeps an hour) or "raise"; only the worker entry point honours it, just before it
decodes that file. Empty in normal use.

Cost (re-runnable): ``python -m workstation.imaging.decode_benchmark FOLDER [--runs 15]``
times ``load_study(FOLDER)`` in-process and out-of-process with a warm pool (``benchmark``
here) and prints the medians and the overhead. 150-file GE EPI series (64 x 64) re-encoded
with ``gdcmconv``, 2-core machine, 2 workers, medians of 15 alternating runs: RLE 360 ->
357 ms (-1 %), JPEG-LS 389 -> 402 ms (+3 %), JPEG 2000 783 -> 577 ms (-26 %: two decode at
once). A cold start (first compressed file of a process) adds about 0.15-0.4 s: ``start``
or ``warm_up`` ahead hides it.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import statistics
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import spawn
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID

from workstation.imaging import decode as decoding
from workstation.imaging.errors import UnreadableImageError
from workstation.imaging.guard import DECODE_FAILED, PASS_THROUGH, reason


def _env_number(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        return default
    return value if math.isfinite(value) and value > 0 else default


IN_PROCESS = os.environ.get("WORKSTATION_DECODE_IN_PROCESS", "").strip() not in ("", "0")
TIMEOUT_S = _env_number("WORKSTATION_DECODE_TIMEOUT", 30.0)
# one worker per core but the one the main process uses, 2 to 4: two decode at the same
# time even on a 2-core machine (measured faster than one there: see decode_benchmark)
WORKERS = int(_env_number("WORKSTATION_DECODE_WORKERS",
                          max(2, min(4, (os.cpu_count() or 2) - 1))))
# A batch holds up to this many files and about this many pixels: enough to amortise a
# round trip (about 1 ms), small enough that several batches keep the workers busy.
BATCH_FILES = 32
BATCH_PIXELS = 1 << 22
TEST_HOOKS: dict[str, str] = {}

CRASHED = "could not decode (decoder crashed)"

# What decode_in_process reads (pydicom's Image Pixel options, the extended offset table).
_PIXEL_TAGS = (0x00280002, 0x00280004, 0x00280006, 0x00280008, 0x00280010, 0x00280011,
               0x00280100, 0x00280101, 0x00280102, 0x00280103, 0x7FE00001, 0x7FE00002,
               0x7FE00010)


_unavailable = False  # set when no worker process can be started here


def enabled() -> bool:
    """Whether compressed data is decoded in the workers: not when switched off, not in a
    daemonic process (e.g. a DataLoader worker: it may not have children), not where no
    worker could start."""
    return not (IN_PROCESS or _unavailable or multiprocessing.current_process().daemon)


# ------------------------------------------------------------------------- the worker
@dataclass(frozen=True)
class _Task:
    """One file as the worker gets it: its transfer syntax and pixel elements."""

    name: str
    transfer_syntax: str
    elements: tuple[tuple[int, str, Any], ...]
    hook: str | None = None

    @classmethod
    def of(cls, ds: Dataset) -> _Task:
        name = Path(str(getattr(ds, "filename", "") or "")).name
        ts = decoding.transfer_syntax(ds)
        elements = []
        for tag in _PIXEL_TAGS:
            if tag in ds:
                elem = ds[tag]
                elements.append((tag, elem.VR, elem.value))
        return cls(name, str(ts), tuple(elements), TEST_HOOKS.get(name) if name else None)

    def dataset(self) -> Dataset:
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = UID(self.transfer_syntax)
        for tag, vr, value in self.elements:
            ds.add_new(tag, vr, value)
        return ds


def _run_hook(hook: str) -> None:
    """Test hook (TEST_HOOKS): simulate a codec that aborts, segfaults, hangs or raises."""
    if hook in ("abort", "segv"):
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file for a test
        except (ImportError, ValueError, OSError):
            pass
        if hook == "abort":
            os.abort()
        os.kill(os.getpid(), signal.SIGSEGV)
    elif hook == "hang":
        time.sleep(3600)
    elif hook == "raise":
        raise RuntimeError("test hook: the decoder raised")


def _work(tasks: list[_Task]) -> list[tuple[bool, Any]]:
    """Worker entry point: (True, Decoded) or (False, the plain reason) for each task."""
    results: list[tuple[bool, Any]] = []
    for task in tasks:
        try:
            if task.hook:
                _run_hook(task.hook)
            results.append((True, decoding.decode_in_process(task.dataset())))
        except UnreadableImageError as exc:
            results.append((False, str(exc)))
        except PASS_THROUGH:
            raise
        except BaseException as exc:  # as imaging.guard words it in-process (a PanicException)
            results.append((False, f"{DECODE_FAILED} ({reason(exc)})"))
    return results


def _worker_started() -> None:
    """Import the installed plugins now rather than on the first file."""
    try:
        from pydicom.pixels import get_decoder
        from pydicom.uid import (
            JPEG2000Lossless,
            JPEGLosslessSV1,
            JPEGLSLossless,
            RLELossless,
        )

        for uid in (JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless):
            get_decoder(uid).available_plugins  # noqa: B018 - imports the plugins
    except Exception:
        pass


# --------------------------------------------------------------------------- the pool
_launching: set[int] = set()  # threads starting one of our workers now
_original_preparation = spawn.get_preparation_data


def _preparation_data(name: str) -> dict[str, Any]:
    """spawn's preparation data, without the main module for the launches of our workers.

    A spawned or forkserver child imports the parent's main module again (to unpickle what
    it defines): a script without an ``if __name__ == "__main__"`` guard would run again in
    every worker, and an application's main module may import Qt or torch. Our workers need
    only this module, so their launches leave the main module out; every other launch in
    this process is unchanged.
    """
    data = _original_preparation(name)
    if threading.get_ident() in _launching:
        data.pop("init_main_from_name", None)
        data.pop("init_main_from_path", None)
    return data


@contextlib.contextmanager
def lean_launches() -> Iterator[None]:
    """Workers that ProcessPoolExecutor starts in this thread now (it starts them in
    ``submit``) do not import the main module (``_preparation_data``)."""
    if spawn.get_preparation_data is not _preparation_data:
        spawn.get_preparation_data = _preparation_data
    ident = threading.get_ident()
    _launching.add(ident)
    try:
        yield
    finally:
        _launching.discard(ident)


class _Pool:
    def __init__(self) -> None:
        context: BaseContext
        if "forkserver" in multiprocessing.get_all_start_methods():
            context = forkserver = multiprocessing.get_context("forkserver")
            # the fork server (a fresh single-threaded process) imports only this module,
            # so a replacement worker starts in milliseconds
            forkserver.set_forkserver_preload([__name__])
        else:
            context = multiprocessing.get_context("spawn")
        self.executor = ProcessPoolExecutor(
            max_workers=WORKERS, mp_context=context, initializer=_worker_started)
        # the executor's own map of its workers, kept: shutdown sets the executor's
        # attribute to None while its thread still joins every process in this map (the
        # same dict object, empty until workers start)
        workers = getattr(self.executor, "_processes", None)
        self._workers: dict[int, Any] = workers if workers is not None else {}
        self.inflight = 0
        self._lock = threading.Lock()

    def submit(self, tasks: list[_Task]) -> Future[list[tuple[bool, Any]]]:
        with lean_launches():
            future = self.executor.submit(_work, tasks)
        with self._lock:
            self.inflight += 1
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future[Any]) -> None:
        with self._lock:
            self.inflight -= 1

    def has_live_workers(self) -> bool:
        return any(process.is_alive() for process in self._processes())

    def _processes(self) -> list[Any]:
        return list(self._workers.values())

    def kill(self) -> None:
        """End the workers now (a hung decoder does not return)."""
        # ProcessPoolExecutor has no public way to end a busy worker before Python 3.14
        for process in self._processes():
            with contextlib.suppress(Exception):
                process.kill()
        self.executor.shutdown(wait=False, cancel_futures=True)


_pool: _Pool | None = None
_pool_lock = threading.Lock()
# pools given up (broken or hung): their workers are killed when discarded and again at exit
_retired: list[_Pool] = []


def _kill_every_worker() -> None:
    """At interpreter exit, before concurrent.futures joins its pools' threads: kill the
    workers of every pool. A pool that broke while another thread's submit started a
    replacement worker has a live worker nobody will send work or a stop to, and the
    executor's thread joins it for ever (seen once in CI: pytest hung after its summary)."""
    with _pool_lock:
        pools = [*_retired, *([_pool] if _pool is not None else [])]
    for pool in pools:
        pool.kill()


# threading's exit hooks run before the atexit module's, and in reverse order of
# registration: this one (registered after concurrent.futures') runs before its join
_register_exit_hook = getattr(threading, "_register_atexit", None)
if _register_exit_hook is not None:
    _register_exit_hook(_kill_every_worker)


def _get_pool() -> _Pool:
    global _pool, _unavailable
    with _pool_lock:
        if _pool is None:
            try:
                _pool = _Pool()
            except Exception:
                _unavailable = True
                raise
        return _pool


def _discard(pool: _Pool) -> None:
    """Forget a broken or hung pool and kill its workers (a broken pool's queues may be in
    a dirty state; a hung worker does not return); the next submit starts a fresh pool."""
    global _pool
    with _pool_lock:
        if _pool is pool:
            _pool = None
        # a long-running receiver discards a pool per crashed decoder: keep only those
        # whose workers are still alive (the race above), not every one ever discarded
        _retired[:] = [p for p in _retired if p is not pool and p.has_live_workers()]
        _retired.append(pool)
    pool.kill()


def start() -> list[Future[list[tuple[bool, Any]]]]:
    """Start the workers now, without waiting (e.g. when the first compressed file is read,
    or when a window opens): the first decode then finds them warm. Never raises."""
    if not enabled():
        return []
    try:
        pool = _get_pool()
        return [pool.submit([]) for _ in range(WORKERS)]
    except Exception:
        return []


def warm_up(timeout_s: float = 60.0) -> None:
    """``start`` and wait until every worker is ready."""
    for future in start():
        future.result(timeout=timeout_s)


def shutdown(kill: bool = False) -> None:
    """Stop the workers: wait for them, or with ``kill`` end them at once (the window
    closing: a worker stuck in a native decoder must not keep the app from exiting)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is None:
        return
    if kill:
        _discard(pool)
    else:
        pool.executor.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------ dispatching
_LOST = object()  # the file's batch died with its worker: decode it again, alone


@dataclass(eq=False)
class _Batch:
    pool: _Pool
    future: Future[list[tuple[bool, Any]]]
    entries: list[_Entry] = field(default_factory=list)


@dataclass(eq=False)
class _Entry:
    ds: Dataset
    batch: _Batch | None = None
    outcome: Any = None  # (ok, value) once collected, or _LOST


class _Pending(threading.local):
    def __init__(self) -> None:
        self.entries: dict[int, _Entry] = {}


_pending = _Pending()


def _pixels(ds: Dataset) -> int:
    try:
        return int(ds.Rows) * int(ds.Columns) * decoding.number_of_frames(ds) * int(
            ds.get("SamplesPerPixel") or 1)
    except (AttributeError, TypeError, ValueError):
        return 1 << 20


def _batches(datasets: list[Dataset]) -> list[list[Dataset]]:
    """Consecutive groups, within BATCH_FILES files and BATCH_PIXELS pixels: 1, 2, 4...
    files at first so that the first results come back at once, then about a third of a
    worker's share, so that several batches keep every worker busy."""
    target = max(1, min(BATCH_FILES, math.ceil(len(datasets) / (3 * WORKERS))))
    groups: list[list[Dataset]] = []
    current: list[Dataset] = []
    size, pixels = 1, 0
    for ds in datasets:
        current.append(ds)
        pixels += _pixels(ds)
        if len(current) >= size or pixels >= BATCH_PIXELS:
            groups.append(current)
            current, pixels = [], 0
            size = min(target, 2 * size)
    if current:
        groups.append(current)
    return groups


def prefetch(datasets: Iterable[Dataset]) -> None:
    """Submit the compressed ``datasets`` in batches; replaces this thread's earlier
    prefetch (results not picked up by ``decode`` are dropped). Never raises: a file whose
    batch could not be submitted is decoded alone."""
    _pending.entries = {}
    try:
        seen: set[int] = set()
        wanted = []
        for ds in datasets:
            if id(ds) not in seen and decoding.is_compressed(ds):
                seen.add(id(ds))
                wanted.append(ds)
        if len(wanted) < 2:
            return  # one file is one round trip either way
        pool = _get_pool()
        for group in _batches(wanted):
            tasks = [_Task.of(ds) for ds in group]
            batch = _Batch(pool, pool.submit(tasks))
            for ds in group:
                entry = _Entry(ds, batch)
                batch.entries.append(entry)
                _pending.entries[id(ds)] = entry
    except Exception:  # e.g. no worker can start here: decode() tries each file alone
        pass


def decode(ds: Dataset) -> decoding.Decoded:
    """Decode compressed ``ds`` in a worker (its prefetched batch, else alone)."""
    entry = _pending.entries.pop(id(ds), None)
    if entry is not None and entry.ds is ds and entry.batch is not None:
        if entry.outcome is None:
            _collect(entry.batch)
        if entry.outcome is not _LOST:
            return _unpack(entry.outcome)
    return _decode_alone(ds)


def _collect(batch: _Batch) -> None:
    try:
        results = batch.future.result(timeout=TIMEOUT_S)
    except BrokenProcessPool:
        _discard(batch.pool)
        results = None
    except FutureTimeout:
        _discard(batch.pool)
        results = None
    except Exception:
        results = None
    for index, entry in enumerate(batch.entries):
        entry.outcome = results[index] if results is not None and index < len(
            results) else _LOST


def _decode_alone(ds: Dataset) -> decoding.Decoded:
    global _unavailable
    task = _Task.of(ds)
    for attempt in (1, 2):
        pool = None
        try:
            pool = _get_pool()
            alone = pool.inflight == 0
            future = pool.submit([task])
        except Exception:  # broken by another file just now, or no worker can start here
            if pool is not None:
                _discard(pool)
            if attempt == 1:
                continue
            _unavailable = True
            return decoding.decode_in_process(ds)
        try:
            (outcome,) = future.result(timeout=TIMEOUT_S)
        except BrokenProcessPool as exc:
            _discard(pool)
            if alone or attempt == 2:
                raise UnreadableImageError(CRASHED) from exc
            continue  # another file's task may have been the one that crashed
        except FutureTimeout as exc:
            _discard(pool)
            raise UnreadableImageError(
                f"could not decode (the decoder did not finish within {TIMEOUT_S:g} s)"
            ) from exc
        return _unpack(outcome)
    raise UnreadableImageError(CRASHED)  # not reached


def _unpack(outcome: tuple[bool, Any]) -> decoding.Decoded:
    ok, value = outcome
    if not ok:
        raise UnreadableImageError(str(value))
    assert isinstance(value, decoding.Decoded)
    return value


# -------------------------------------------------------------------------- benchmark
def benchmark(folder: str, runs: int = 15) -> dict[str, float]:
    """Median ``load_study(folder)`` seconds in-process and out-of-process (warm pool),
    the two alternating run by run so that a busy machine's drift hits both alike."""
    global IN_PROCESS
    from workstation.imaging.study import load_study

    def timed(in_process: bool) -> float:
        global IN_PROCESS
        IN_PROCESS = in_process
        start = time.perf_counter()
        load_study([folder])
        return time.perf_counter() - start

    saved = IN_PROCESS
    try:
        IN_PROCESS = False
        start = time.perf_counter()
        warm_up()
        startup = time.perf_counter() - start
        timed(True), timed(False)  # warm: page cache, plugins
        inside: list[float] = []
        outside: list[float] = []
        for run in range(runs):
            order = (True, False) if run % 2 == 0 else (False, True)
            for in_process in order:
                (inside if in_process else outside).append(timed(in_process))
    finally:
        IN_PROCESS = saved
    med_in, med_out = statistics.median(inside), statistics.median(outside)
    return {"in_process_s": med_in, "out_of_process_s": med_out,
            "overhead_pct": 100.0 * (med_out - med_in) / med_in, "pool_start_s": startup,
            "workers": float(WORKERS), "runs": float(runs)}
