"""The throughput pipeline (analysis.gpu_pipeline) on the CPU: two worker processes read
and prepare real DICOM files, the outputs agree with the engine on the same slices, a bad
file is a problem record that stops nothing, and the figures are filled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from workstation.analysis.model_file import default_description

pytest.importorskip("torch")

MODEL = default_description()
pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason="no shipped model")

EPI_FILES = 6  # single-frame GE EPI slices (64 x 64)


@dataclass(frozen=True)
class Ran:
    files: list[Path]
    bad: list[Path]
    run: Any  # gpu_pipeline.PipelineRun
    figures: Any  # gpu_pipeline.Figures
    options: Any  # gpu_pipeline.LoaderOptions


def _inputs(datasets: Path, tmp: Path) -> tuple[list[Path], list[Path]]:
    """Real files (EPI slices and one Siemens mosaic of 35 tiles) and two bad ones: a DICOM
    file cut short and random bytes named as a PNG."""
    epi = sorted((datasets / "dicom" / "ge_epi_axial").glob("*.dcm"))[:EPI_FILES]
    mosaic = sorted(p for p in (datasets / "dicom" / "siemens_epi_mosaic_orientation" / "ax"
                                / "axasc35").glob("MR.*"))[:1]
    truncated = tmp / "truncated.dcm"
    truncated.write_bytes(epi[0].read_bytes()[:1500])
    garbage = tmp / "garbage.png"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    return [*epi, *mosaic], [truncated, garbage]


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """The main process's network on one thread beside the two workers (on 2 cores torch's
    spinning threads made the run four times as long)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ran(datasets: Path, tmp_path_factory: pytest.TempPathFactory,
        one_torch_thread: None) -> Ran:
    from workstation.analysis import gpu_pipeline as gp

    files, bad = _inputs(datasets, tmp_path_factory.mktemp("gpu-pipeline"))
    model = gp.TriageOnDevice.load(device="cpu")
    options = gp.LoaderOptions(batch_size=8, workers=2, prefetch_factor=2)
    model.warm_up(options.batch_size)
    # the bad files in the middle: the files after them, in both workers, still come out
    paths = [*files[:3], *bad, *files[3:]]
    run = gp.run_pipeline(paths, model, options)
    figures = gp.figures_of(run, gp.time_model(model, options.batch_size, 2), model, options)
    return Ran(files, bad, run, figures, options)


def _engine_predictions(files: list[Path]) -> dict[tuple[str, int | None], Any]:
    from workstation.analysis.engine import Engine
    from workstation.imaging import load_study

    slices = [s for series in load_study(files).series for s in series.slices]
    predictions = Engine(device="cpu").analyse(slices)
    return {(s.source, s.frame): p for s, p in zip(slices, predictions, strict=True)}


def test_outputs_agree_with_the_engine(ran: Ran) -> None:
    from workstation.analysis.gpu_pipeline import OUTPUT_COLUMNS

    expected = _engine_predictions(ran.files)
    keys = list(zip(ran.run.sources, ran.run.frames, strict=True))
    assert sorted(keys, key=str) == sorted(expected, key=str)  # every slice, once
    assert len(keys) == EPI_FILES + 35
    assert ran.run.values.shape == (len(keys), len(OUTPUT_COLUMNS))
    engine = [expected[key] for key in keys]
    np.testing.assert_allclose(ran.run.probabilities,
                               np.stack([p.probabilities for p in engine]), atol=1e-3)
    np.testing.assert_allclose(
        ran.run.values[:, 4:7], np.stack([p.plane_probabilities for p in engine]), atol=1e-3)
    for name, attribute in (("ood_score", "ood_score"),
                            ("reference_ood_score", "reference_ood_score"),
                            ("ct_score", "ct_score"),
                            ("picture_score", "picture_score")):
        np.testing.assert_allclose(ran.run.column(name),
                                   [getattr(p, attribute) for p in engine], atol=1e-3)
    np.testing.assert_allclose(ran.run.foreground_fraction,
                               [p.foreground_fraction for p in engine], atol=1e-6)
    peak, area = ran.run.column("mask_peak"), ran.run.column("mask_area")
    assert ((peak >= 0) & (peak <= 1)).all() and ((area >= 0) & (area <= 1)).all()
    # the map at 160 x 160 peaks where the engine's map (resized to the image) peaks
    np.testing.assert_allclose(peak, [p.mask.max() for p in engine], atol=0.05)


def test_bad_files_are_problem_records_and_stop_nothing(ran: Ran) -> None:
    from workstation.imaging.series import Severity

    problems = {Path(p.path): p for p in ran.run.problems}
    assert set(problems) == set(ran.bad)
    assert all(p.severity is Severity.ERROR and p.message for p in problems.values())
    assert {Path(s) for s in ran.run.sources} == set(ran.files)


def test_figures_are_filled(ran: Ran) -> None:
    import torch

    figures = ran.figures
    assert figures.files == len(ran.files) + len(ran.bad)
    assert figures.slices == EPI_FILES + 35 and figures.problems == 2
    assert figures.seconds > 0 and figures.slices_per_second > 0
    assert 0 < figures.first_batch_seconds <= figures.seconds
    assert figures.model_only_slices == 2 * ran.options.batch_size
    assert figures.model_only_slices_per_second and figures.model_only_slices_per_second > 0
    assert (figures.batch_size, figures.workers) == (8, 2)
    assert (figures.device, figures.dtype) == ("cpu", "float32")
    assert figures.torch_version == torch.__version__
    assert figures.device_name and figures.model.startswith("triage-")


def test_half_precision_stays_close_to_float32(one_torch_thread: None) -> None:
    """--half is for the GPU; on the CPU it runs too (slowly), so its code path is tested
    here before a GPU machine runs it."""
    import torch

    from workstation.analysis.gpu_pipeline import TriageOnDevice

    grey = torch.rand(4, 1, 160, 160, generator=torch.Generator().manual_seed(0))
    single = TriageOnDevice.load(device="cpu")
    half = TriageOnDevice.load(device="cpu", half=True)
    assert half.dtype == torch.float16
    exact = single.forward_batch(grey, 8)
    rounded = half.forward_batch(grey.half(), 8)
    assert rounded.dtype == torch.float32 and rounded.shape == exact.shape
    torch.testing.assert_close(rounded, exact, atol=1e-2, rtol=0)


def test_collate_stacks_one_contiguous_tensor_and_keeps_problems() -> None:
    import torch

    from workstation.analysis.gpu_pipeline import INPUT_SIZE, Sample, collate
    from workstation.imaging.series import Problem

    image = np.zeros((1, INPUT_SIZE, INPUT_SIZE), np.float16)
    batch = collate([Sample(image, "a.dcm", None, 0.5, False), Problem("b.dcm", "damaged"),
                     Sample(image + 1, "c.dcm", 3, 0.25, True)])
    assert batch.images.shape == (2, 1, INPUT_SIZE, INPUT_SIZE)
    assert batch.images.dtype == torch.float16 and batch.images.is_contiguous()
    assert batch.sources == ("a.dcm", "c.dcm") and batch.frames == (None, 3)
    assert [p.path for p in batch.problems] == ["b.dcm"]
    assert len(collate([Problem("b.dcm", "damaged")])) == 0


def test_command_prints_the_figures(datasets: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from workstation.analysis.gpu_pipeline import main

    folder = datasets / "dicom" / "ge_epi_axial"
    out = tmp_path / "figures.json"
    files = [str(p) for p in sorted(folder.glob("*.dcm"))[:3]]
    assert main([*files, "--device", "cpu", "--workers", "0", "--batch", "4",
                 "--model-only-batches", "1", "--json-out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["slices"] == 3 and printed["workers"] == 0 and printed["device"] == "cpu"
    assert main([str(tmp_path / "missing"), "--device", "cpu"]) == 2
