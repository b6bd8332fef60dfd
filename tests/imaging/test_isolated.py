"""Compressed pixel data decodes in worker processes (imaging.isolated): a decoder that
aborts, segfaults or hangs fails its own file only, the pool recovers, and the results equal
in-process decoding."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless, generate_uid

from workstation.imaging import decode as decoding
from workstation.imaging import isolated, load_study
from workstation.imaging.dicom import read_dataset
from workstation.imaging.errors import UnreadableImageError
from workstation.imaging.series import Severity

SLICES = 6


@pytest.fixture(scope="module", autouse=True)
def warm_pool() -> Iterator[None]:
    """One warm pool for the module (the workers start once, about a second)."""
    saved = isolated.IN_PROCESS
    isolated.IN_PROCESS = False
    isolated.warm_up()
    yield
    isolated.IN_PROCESS = saved


@pytest.fixture(autouse=True)
def no_hooks() -> Iterator[None]:
    yield
    isolated.TEST_HOOKS.clear()


@pytest.fixture(scope="module")
def rle_series(tmp_path_factory: pytest.TempPathFactory, pydicom_files: Path) -> Path:
    """SLICES RLE-compressed slices of MR_small, one file each, stacked 5 mm apart."""
    folder = tmp_path_factory.mktemp("rle_series")
    series_uid = generate_uid()
    for index in range(SLICES):
        ds = pydicom.dcmread(pydicom_files / "MR_small.dcm")
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = index + 1
        ds.ImagePositionPatient = [0.0, 0.0, 5.0 * index]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.compress(RLELossless, encoding_plugin="pydicom")
        ds.save_as(folder / f"slice{index + 1}.dcm")
    return folder


def _loaded(folder: Path) -> tuple[int, list[tuple[str, str]]]:
    study = load_study([folder])
    slices = sum(len(s.slices) for s in study.series)
    errors = [(Path(p.path).name, p.message) for p in study.problems
              if p.severity is Severity.ERROR]
    return slices, errors


@pytest.mark.parametrize("hook", ["abort", "segv"])
def test_a_crashing_decoder_fails_only_its_file(rle_series: Path, hook: str) -> None:
    isolated.TEST_HOOKS["slice3.dcm"] = hook
    slices, errors = _loaded(rle_series)
    assert errors == [("slice3.dcm", "could not decode (decoder crashed)")]
    assert slices == SLICES - 1


def test_the_pool_recovers_after_a_crash(rle_series: Path) -> None:
    isolated.TEST_HOOKS["slice1.dcm"] = "abort"
    ds = read_dataset(rle_series / "slice1.dcm")
    with pytest.raises(UnreadableImageError, match=r"decoder crashed"):
        decoding.decode(ds)
    # the broken pool's other workers are killed with it, not left for exit to join
    broken = isolated._retired[-1]
    deadline = time.monotonic() + 5
    while broken.has_live_workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not broken.has_live_workers()
    isolated.TEST_HOOKS.clear()
    decoded = decoding.decode(read_dataset(rle_series / "slice1.dcm"))
    assert decoded.frames.shape == (1, 64, 64)
    assert _loaded(rle_series) == (SLICES, [])


def test_a_hanging_decoder_is_stopped_and_reported(
    rle_series: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(isolated, "TIMEOUT_S", 0.5)
    isolated.TEST_HOOKS["slice4.dcm"] = "hang"
    start = time.monotonic()
    slices, errors = _loaded(rle_series)
    assert errors == [("slice4.dcm", "could not decode (the decoder did not finish within "
                                     "0.5 s)")]
    assert slices == SLICES - 1
    assert time.monotonic() - start < 10
    isolated.TEST_HOOKS.clear()
    assert _loaded(rle_series) == (SLICES, [])


def test_a_decoder_that_raises_is_a_plain_problem(rle_series: Path) -> None:
    isolated.TEST_HOOKS["slice2.dcm"] = "raise"
    slices, errors = _loaded(rle_series)
    assert errors == [("slice2.dcm", "the image data could not be decoded (RuntimeError: "
                                     "test hook: the decoder raised)")]
    assert slices == SLICES - 1


def test_the_switch_decodes_in_process(
    rle_series: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(isolated, "IN_PROCESS", True)
    isolated.TEST_HOOKS["slice3.dcm"] = "abort"  # honoured by the worker only

    def no_pool() -> None:
        raise AssertionError("the pool was used")

    monkeypatch.setattr(isolated, "_get_pool", no_pool)
    assert _loaded(rle_series) == (SLICES, [])


def test_uncompressed_data_stays_in_process(
    pydicom_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pool() -> None:
        raise AssertionError("the pool was used")

    monkeypatch.setattr(isolated, "_get_pool", no_pool)
    decoded = decoding.decode(read_dataset(pydicom_files / "MR_small.dcm"))
    assert decoded.plugin == "native"


def test_the_worker_imports_nothing_heavy() -> None:
    # eval is pickled by reference, so this asks a worker for its own sys.modules
    future = isolated._get_pool().executor.submit(eval, "sorted(__import__('sys').modules)")
    modules = set(future.result(timeout=30))
    assert "pydicom" in modules
    heavy = {"torch", "PySide6", "PyQt5", "PyQt6", "matplotlib", "workstation.gui"}
    assert not modules & heavy
    # nor is the main script (pytest's here; an unguarded script would run again there)
    main_file = isolated._get_pool().executor.submit(
        eval, "getattr(__import__('sys').modules['__main__'], '__file__', None)")
    assert main_file.result(timeout=30) is None


def test_a_series_goes_to_the_workers_in_batches(
    rle_series: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    submit = isolated._Pool.submit

    def counted(self: isolated._Pool, tasks: list[isolated._Task]):  # type: ignore[no-untyped-def]
        sizes.append(len(tasks))
        return submit(self, tasks)

    monkeypatch.setattr(isolated._Pool, "submit", counted)
    monkeypatch.setattr(isolated, "WORKERS", 1)  # batch sizing only: 1, 2, 2, 1 files
    assert _loaded(rle_series) == (SLICES, [])
    assert sum(sizes) == SLICES  # every file once, in a batch
    assert len(sizes) < SLICES


UNGUARDED_SCRIPT = """
import sys
with open(sys.argv[2], "a") as marker:
    marker.write("ran\\n")
from workstation.imaging import load_study
study = load_study([sys.argv[1]])
print(sum(len(s.slices) for s in study.series))
"""


def test_a_script_without_a_main_guard_is_not_run_again_by_the_workers(
    rle_series: Path, tmp_path: Path
) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    marker = tmp_path / "runs.txt"
    env = {k: v for k, v in os.environ.items() if k != "WORKSTATION_DECODE_IN_PROCESS"}
    done = subprocess.run([sys.executable, str(script), str(rle_series), str(marker)],
                          capture_output=True, text=True, timeout=60, env=env,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(SLICES)]
    assert marker.read_text().splitlines() == ["ran"]


def test_batches_start_small_and_stay_bounded() -> None:
    datasets = [pydicom.Dataset() for _ in range(200)]
    for ds in datasets:
        ds.Rows, ds.Columns = 64, 64
    sizes = [len(batch) for batch in isolated._batches(datasets)]
    assert sizes[:3] == [1, 2, 4]
    assert sum(sizes) == 200 and max(sizes) <= isolated.BATCH_FILES
    big = [pydicom.Dataset() for _ in range(4)]
    for ds in big:
        ds.Rows, ds.Columns, ds.NumberOfFrames = 512, 512, 20  # 5 M pixels a file
    assert [len(b) for b in isolated._batches(big)] == [1, 1, 1, 1]


# --------------------------------------------------------- equal to in-process decoding
COMPRESSED_TEST_FILES = [
    "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
    "JPEG2000.dcm", "SC_rgb_jpeg.dcm", "SC_rgb_rle.dcm", "JPEGLSNearLossless_16.dcm",
    "SC_rgb_jpeg_gdcm.dcm", "examples_ybr_color.dcm", "JPEG-lossy.dcm", "JPGExtended.dcm",
]
COMPRESSED_DATA_FILES = [
    "emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm",
    "MR2_J2KR.dcm", "693_J2KR.dcm", "MR2_J2KI.dcm", "JPEG-LL.dcm",
]


def _both_ways(path: Path) -> None:
    ds = read_dataset(path)
    assert decoding.is_compressed(ds)
    try:
        expected = decoding.decode_in_process(ds)
    except UnreadableImageError as exc:
        with pytest.raises(UnreadableImageError) as raised:
            isolated.decode(read_dataset(path))
        assert str(raised.value) == str(exc)
        return
    got = isolated.decode(read_dataset(path))
    assert (got.plugin, got.warnings) == (expected.plugin, expected.warnings)
    assert got.frames.dtype == expected.frames.dtype
    np.testing.assert_array_equal(got.frames, expected.frames)


@pytest.mark.parametrize("name", COMPRESSED_TEST_FILES)
def test_pydicom_test_files_decode_as_in_process(pydicom_files: Path, name: str) -> None:
    _both_ways(pydicom_files / name)


@pytest.mark.parametrize("name", COMPRESSED_DATA_FILES)
def test_pydicom_data_files_decode_as_in_process(pydicom_data_files: Path, name: str) -> None:
    _both_ways(pydicom_data_files / name)


def test_siemens_jpeg_lossless_and_jpeg2000_mosaics_load_as_in_process(
    datasets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = datasets / "dicom" / "siemens_epi_mosaic_orientation" / "axmb"
    outside = load_study([folder])
    monkeypatch.setattr(isolated, "IN_PROCESS", True)
    inside = load_study([folder])
    assert len(outside.series) == len(inside.series) == 2
    syntaxes = set()
    for a, b in zip(outside.series, inside.series, strict=True):
        syntaxes.update(a.transfer_syntaxes)
        np.testing.assert_array_equal(np.stack([s.raw for s in a.slices]),
                                      np.stack([s.raw for s in b.slices]))
    assert any("JPEG Lossless" in t for t in syntaxes)
    assert any("JPEG 2000" in t for t in syntaxes)


def test_closing_the_window_ends_the_workers_at_once_and_the_next_read_restarts_them(
    rle_series: Path,
) -> None:
    """The window warms the pool when it opens (``start``) and kills it when it closes."""
    assert isolated.start()  # the window opening: workers started, nothing waited for
    processes = list(getattr(isolated._get_pool().executor, "_processes", {}).values())
    began = time.monotonic()
    isolated.shutdown(kill=True)
    assert time.monotonic() - began < 5
    for process in processes:
        process.join(timeout=5)
        assert not process.is_alive()
    assert _loaded(rle_series) == (SLICES, [])  # a fresh pool decodes as before


def test_a_worker_left_in_a_given_up_pool_is_killed_before_exit_joins_it() -> None:
    """The race seen once in CI: a pool breaks while another thread's submit starts a
    replacement worker; nothing sends that worker work or a stop, and concurrent.futures'
    exit joins it for ever. The exit hook (run by threading before that join) kills it."""
    import multiprocessing
    import threading

    pool = isolated._get_pool()
    assert pool._workers is pool.executor._processes  # type: ignore[attr-defined]
    isolated._discard(pool)
    stray = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(600,))
    stray.start()
    try:
        pool._workers[stray.pid] = stray  # the executor's map, which its thread joins
        assert pool in isolated._retired and pool.has_live_workers()
        isolated._kill_every_worker()
        # dead, whoever reaps it: the given-up executor's own thread may be joining the stray
        # too, and a waitpid that loses that race leaves is_alive() saying True
        from multiprocessing.connection import wait

        assert wait([stray.sentinel], timeout=5), "the stray worker is still running"
    finally:
        if stray.is_alive():
            stray.kill()
    hooks = [getattr(h, "func", h) for h in getattr(threading, "_threading_atexits", [])]
    if hooks:  # run last to first: ours before concurrent.futures' join
        from concurrent.futures import process

        assert hooks.index(isolated._kill_every_worker) > hooks.index(process._python_exit)
