"""A throughput pipeline for many files: decoding and preprocessing in worker processes,
large batches, pinned memory and (on the GPU) half precision.

The app's own path (``Engine.analyse`` after ``load_study``) does the per-slice Python work
(decode, ``prepare``, novelty, policy) in one process between small batches; on an H200 that
held the whole path to about 260 slices/s while the network alone runs far faster. Here:

- ``SliceFiles``, a torch ``IterableDataset`` over file paths: each DataLoader worker reads
  its share of the files with the app's own per-file readers (``imaging.dicom.read_file`` /
  ``file_slices``, ``imaging.raster.read_raster_slices``) and runs the one preprocessing
  function (``analysis.preprocess.prepare``), so what the network sees is what the engine
  gives it. A file that cannot be read becomes a ``Problem`` record in the stream, never an
  exception that would stop the loader;
- ``slice_loader``: the DataLoader (``collate`` stacks a batch into one contiguous tensor in
  the worker, so it travels to the main process through shared memory; pinned memory only
  for cuda);
- ``TriageOnDevice``: the batch-norm-folded triage and reference networks from the verified
  weights archive, channels_last, float16 with ``half`` on cuda; its ``forward`` keeps the
  per-slice outputs small on the device: calibrated class probabilities (the engine's
  temperature), plane probabilities, the suspect-region map's area share and peak at the
  network's 160 x 160 frame, the two novelty scores and the CT score (``OUTPUT_COLUMNS``),
  computed as ``Engine.predictions`` and ``analysis.ood`` do;
- ``measure``: end-to-end figures (file paths to per-slice outputs on the host) and a
  model-only figure (the same ``forward`` on a resident device batch), as ``Figures``.

Not the app's whole triage: series grouping, volume choice, the per-slice policy and the
masks at the input image size stay in ``analysis.run``; this measures and feeds the part
that scales. Imports torch when imported (call it lazily).

``python -m workstation.analysis.gpu_pipeline FILES_OR_DIRS... [--device auto|cpu|cuda]
[--batch 512] [--workers N] [--half] [--model-only-batches N] [--json-out PATH] [--repeat N]
[--prefetch N] [--model DESCRIPTION]`` prints the figures as JSON
(tools/device_gpu_benchmark.sh runs it on the GPU machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from workstation.analysis.engine import Calibration
from workstation.analysis.findings import CLASSES, PLANES
from workstation.analysis.model_file import ModelInfo, default_description, verified_weights
from workstation.analysis.ood import Novelty
from workstation.analysis.preprocess import INPUT_SIZE, prepare
from workstation.analysis.series_rule import MASK_THRESHOLD
from workstation.imaging.dicom import file_slices, read_file
from workstation.imaging.errors import NotAnImageError, UnreadableImageError
from workstation.imaging.isolated import lean_launches
from workstation.imaging.raster import is_raster, read_raster_slices
from workstation.imaging.series import Problem, Severity, Slice
from workstation.imaging.study import discover

# the per-slice outputs ``TriageOnDevice.forward`` returns, one column each: calibrated class
# and plane probabilities; the share of the 160 x 160 network frame at or above the map's
# MASK_THRESHOLD and the map's highest probability; the novelty scores, the CT score and the
# picture score
OUTPUT_COLUMNS = (*(f"p_{name}" for name in CLASSES), *(f"plane_{name}" for name in PLANES),
                  "mask_area", "mask_peak", "ood_score", "reference_ood_score", "ct_score",
                  "picture_score")
_PROBABILITIES = slice(0, len(CLASSES))
_COLUMN = {name: index for index, name in enumerate(OUTPUT_COLUMNS)}


# ------------------------------------------------------------------ the worker side
@dataclass(frozen=True, eq=False)
class Sample:
    """One slice as a worker made it: the network input and what names the slice (the
    ``Slice.source`` and ``Slice.frame`` the app gives it)."""

    image: npt.NDArray[np.floating]  # (1, INPUT_SIZE, INPUT_SIZE), float16 or float32
    source: str
    frame: int | None
    foreground_fraction: float
    display_blank: bool


def read_slices(path: Path) -> tuple[list[Slice], Problem | None]:
    """The file's slices as the app reads them, and at most one Problem naming the file
    (a file that is not an image is SKIPPED; one that cannot be read an ERROR)."""
    try:
        if is_raster(path):
            return read_raster_slices(path)[0], None
        made, problem = file_slices(read_file(path))
        return [image for _, image in made], problem
    except NotAnImageError as exc:
        return [], Problem(str(path), str(exc), Severity.SKIPPED)
    except UnreadableImageError as exc:
        return [], Problem(str(path), str(exc))


def sample_of(image: Slice, dtype: np.dtype[Any]) -> Sample:
    """``prepare`` as ``Engine.analyse`` calls it, the input cast to the loader's dtype."""
    prepared = prepare(np.asarray(image.image))
    return Sample(image=prepared.image[None].astype(dtype, copy=False), source=image.source,
                  frame=image.frame, foreground_fraction=prepared.foreground_fraction,
                  display_blank=image.display_blank)


def file_samples(path: Path, dtype: np.dtype[Any]) -> list[Sample | Problem]:
    """Every slice of one file, prepared, then its problem if any. Nothing raised here
    reaches the loader: a file that breaks preprocessing is one Problem, so one bad file
    never stops the other workers' files."""
    try:
        slices, problem = read_slices(path)
        made: list[Sample | Problem] = [sample_of(image, dtype) for image in slices]
    except Exception as exc:  # a defect in preparing this file: it fails alone
        return [Problem(str(path), f"could not be prepared ({type(exc).__name__}: {exc})")]
    return [*made, problem] if problem is not None else made


class SliceFiles(IterableDataset[Sample | Problem]):
    """File paths -> prepared slices and per-file problems, in the DataLoader's workers.

    Worker ``k`` of ``n`` takes every n-th file from the k-th, so each file is read once;
    a file yields a variable number of slices (a mosaic dozens), which a map-style dataset
    of files could not batch to a fixed size.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], dtype: str = "float32") -> None:
        self.paths = tuple(str(p) for p in paths)
        self.dtype = np.dtype(dtype)

    def __iter__(self) -> Iterator[Sample | Problem]:
        worker = get_worker_info()
        mine = self.paths if worker is None else self.paths[worker.id::worker.num_workers]
        for path in mine:
            yield from file_samples(Path(path), self.dtype)


@dataclass(frozen=True, eq=False)
class Batch:
    """A batch as the loader gives it: one contiguous (n, 1, S, S) tensor, the names of its
    slices, and the problems met on the way (a batch may hold problems and no slices)."""

    images: torch.Tensor
    sources: tuple[str, ...]
    frames: tuple[int | None, ...]
    foreground_fraction: tuple[float, ...]
    display_blank: tuple[bool, ...]
    problems: tuple[Problem, ...] = ()

    def __len__(self) -> int:
        return len(self.sources)

    def pin_memory(self) -> Batch:
        """The DataLoader's pinning thread calls this (``pin_memory=True``): page-locked
        images copy to the GPU asynchronously."""
        return replace(self, images=self.images.pin_memory())


def collate(items: Sequence[Sample | Problem]) -> Batch:
    """Stack a batch into one contiguous tensor (in the worker: torch tensors travel to the
    main process through shared memory, numpy arrays would be pickled)."""
    samples = [item for item in items if isinstance(item, Sample)]
    problems = tuple(item for item in items if isinstance(item, Problem))
    if samples:
        images = torch.from_numpy(np.stack([s.image for s in samples]))
    else:
        images = torch.empty((0, 1, INPUT_SIZE, INPUT_SIZE))
    return Batch(images=images, sources=tuple(s.source for s in samples),
                 frames=tuple(s.frame for s in samples),
                 foreground_fraction=tuple(s.foreground_fraction for s in samples),
                 display_blank=tuple(s.display_blank for s in samples), problems=problems)


def worker_started(_: int) -> None:
    """Each worker's numpy BLAS on one thread: the resize products are small, and a dozen
    workers each spinning a thread per core would fight each other and the GPU feeder."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


@dataclass(frozen=True)
class LoaderOptions:
    batch_size: int = 512
    workers: int = 8
    prefetch_factor: int = 4  # batches each worker keeps ready
    start_method: str = "spawn"  # never fork: the main process holds torch's (and CUDA's) threads


def default_workers() -> int:
    """All cores but two (the main process feeds the GPU), at most 12."""
    return max(1, min(12, (os.cpu_count() or 2) - 2))


def slice_loader(paths: Sequence[str | os.PathLike[str]], options: LoaderOptions,
                 device: str = "cpu", dtype: str = "float32") -> DataLoader[Any]:
    """The DataLoader over ``paths``: large batches made in ``options.workers`` persistent
    worker processes (none: in this process), pinned only when the batches go to cuda."""
    extra: dict[str, Any] = {}
    if options.workers > 0:
        extra = {"persistent_workers": True, "prefetch_factor": options.prefetch_factor,
                 "multiprocessing_context": options.start_method,
                 "worker_init_fn": worker_started}
    return DataLoader(SliceFiles(paths, dtype), batch_size=options.batch_size,
                      num_workers=options.workers, collate_fn=collate,
                      pin_memory=device == "cuda", **extra)


def pipeline_files(inputs: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[Problem]]:
    """The files under ``inputs`` as the app discovers them (``imaging.study.discover``):
    DICOM candidates and picture files, and the problems met walking the folders."""
    found = discover(inputs)
    rasters = [path for _, group in found.raster_groups for path in group]
    return [*found.dicom_candidates, *rasters], list(found.problems)


# ------------------------------------------------------------------ the device side
@dataclass(frozen=True, eq=False)
class NoveltyOnDevice:
    """``analysis.ood.Novelty.score`` in torch, on the device (float32)."""

    method: str
    neighbours: int
    bank: torch.Tensor | None
    mean: torch.Tensor | None
    precision: torch.Tensor | None

    @classmethod
    def of(cls, novelty: Novelty, device: str) -> NoveltyOnDevice:
        def tensor(value: npt.NDArray[np.float32] | None) -> torch.Tensor | None:
            return None if value is None else torch.from_numpy(value).float().to(device)

        return cls(novelty.method, novelty.neighbours, tensor(novelty.bank),
                   tensor(novelty.mean), tensor(novelty.precision))

    def score(self, features: torch.Tensor) -> torch.Tensor:
        unit = unit_rows(features)
        if self.method == "mahalanobis":
            assert self.mean is not None and self.precision is not None
            centred = unit - self.mean
            return ((centred @ self.precision) * centred).sum(dim=1)
        assert self.bank is not None
        similarity = unit @ self.bank.T
        # np.sort(similarity)[:, -k]: the k-th largest
        return 1.0 - similarity.topk(self.neighbours, dim=1).values[:, -1]


def unit_rows(features: torch.Tensor) -> torch.Tensor:
    """``analysis.ood.unit``: rows scaled to length 1 (at least 1e-6 before scaling)."""
    return features / features.norm(dim=1, keepdim=True).clamp_min(1e-6)


def _inference_copy(net: nn.Module, device: str, dtype: torch.dtype) -> nn.Module:
    """Batch norms folded in float32 on the CPU, then moved and cast (folding in float16
    would round the folded weights twice)."""
    from workstation.analysis.network import fold_batch_norms

    folded = fold_batch_norms(net)
    return folded.to(device=device, dtype=dtype).to(memory_format=torch.channels_last).eval()


class TriageOnDevice:
    """The folded triage (and reference) networks and the engine's calibration on one
    device, in one dtype; ``forward`` gives the small per-slice outputs of OUTPUT_COLUMNS."""

    def __init__(self, archive: dict[str, Any], device: str = "auto", half: bool = False,
                 name: str = "") -> None:
        # the networks' modules (timm: half of this module's import time) are imported here,
        # never in the workers, which only read and prepare files
        from workstation.analysis.torch_backend import pick_device, reference_net, triage_net

        self.device = pick_device(device)
        self.dtype = torch.float16 if half else torch.float32
        self.name = name
        self.calibration = Calibration.from_archive(archive)
        self.net = _inference_copy(triage_net(archive), self.device, self.dtype)
        reference = reference_net(archive)
        self.reference = (None if reference is None
                          else _inference_copy(reference, self.device, self.dtype))
        self.novelty = NoveltyOnDevice.of(self.calibration.novelty, self.device)
        self.reference_novelty = (None if self.calibration.reference is None else
                                  NoveltyOnDevice.of(self.calibration.reference, self.device))
        self.ct_weights = self._on_device(self.calibration.ct_weights)
        self.picture_weights = self._on_device(self.calibration.picture_weights)

    def _on_device(self, weights: np.ndarray | None) -> torch.Tensor | None:
        return None if weights is None else torch.from_numpy(weights).to(self.device)

    @classmethod
    def load(cls, description: Path | None = None, device: str = "auto",
             half: bool = False) -> TriageOnDevice:
        """The model a description names, its weights checked against the recorded sha256
        (as ``Engine`` loads them)."""
        from workstation.analysis.torch_backend import load_archive

        info = ModelInfo.load(description or default_description())
        archive = load_archive(verified_weights(info))
        return cls(archive, device, half, f"{info.name} {info.version} ({info.sha256[:12]})")

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        """Host batch -> device input (asynchronous from pinned memory)."""
        return images.to(self.device, dtype=self.dtype, non_blocking=True,
                         memory_format=torch.channels_last)

    def forward_batch(self, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        """``forward`` of a host batch. On cuda a short batch (each worker's last) is padded
        to ``batch_size``: every batch then has one shape, which cudnn's benchmark mode
        (``main`` turns it on) tunes once, in ``warm_up``, instead of once per new shape."""
        inputs = self.to_device(images)
        count = len(inputs)
        if self.device.startswith("cuda") and count < batch_size:
            padding = inputs.new_zeros((batch_size - count, *inputs.shape[1:]))
            inputs = torch.cat([inputs, padding]).contiguous(memory_format=torch.channels_last)
        return self.forward(inputs)[:count]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(n, 1, S, S) device inputs -> (n, len(OUTPUT_COLUMNS)) float32 on the device."""
        with torch.inference_mode():
            out = self.net(images)
            probabilities = F.softmax(out.class_logits.float() / self.calibration.temperature,
                                      dim=1)
            planes = F.softmax(out.plane_logits.float(), dim=1)
            masks = torch.sigmoid(F.interpolate(out.mask_logits.float(),
                                                size=(INPUT_SIZE, INPUT_SIZE),
                                                mode="bilinear", align_corners=False))[:, 0]
            features = out.features.float()
            columns = [probabilities, planes,
                       (masks >= MASK_THRESHOLD).float().mean(dim=(1, 2))[:, None],
                       masks.amax(dim=(1, 2))[:, None],
                       self.novelty.score(features)[:, None],
                       self._reference_score(images)[:, None],
                       self._logistic(features, self.ct_weights,
                                      self.calibration.ct_bias)[:, None],
                       self._logistic(features, self.picture_weights,
                                      self.calibration.picture_bias)[:, None]]
            return torch.cat(columns, dim=1)

    def _reference_score(self, images: torch.Tensor) -> torch.Tensor:
        if self.reference is None or self.reference_novelty is None:
            return torch.zeros(len(images), device=images.device)
        return self.reference_novelty.score(self._reference_features(images).float())

    def _reference_features(self, images: torch.Tensor) -> torch.Tensor:
        """``ReferenceNet.forward`` with its antialiased shrink in float32 (the CPU has no
        float16 kernel for it; on the GPU it is a small share of the work), the backbone in
        the model's dtype."""
        from workstation.analysis.network import imagenet_input

        reference: Any = self.reference
        side = int(reference.input_size)
        small = F.interpolate(images.float(), size=(side, side), mode="bilinear",
                              antialias=True, align_corners=False).to(self.dtype)
        backbone = reference.backbone
        features = backbone.forward_features(
            imagenet_input(small, reference.mean, reference.std))
        return backbone.forward_head(features, pre_logits=True)

    @staticmethod
    def _logistic(features: torch.Tensor, weights: torch.Tensor | None, bias: float
                  ) -> torch.Tensor:
        """``analysis.ood.logistic_probability`` (the CT and picture checks); zeros for a
        model without the check."""
        if weights is None:
            return torch.zeros(len(features), device=features.device)
        logit = unit_rows(features) @ weights + bias
        return torch.sigmoid(logit.clamp(-50, 50))

    def synchronise(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def warm_up(self, batch_size: int) -> None:
        """One full batch first, so the timings leave out CUDA's lazy start and kernel
        selection."""
        self.forward(self.to_device(torch.zeros(batch_size, 1, INPUT_SIZE, INPUT_SIZE)))
        self.synchronise()

    @property
    def device_name(self) -> str:
        if self.device.startswith("cuda"):
            return torch.cuda.get_device_name(torch.device(self.device))
        return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


# ------------------------------------------------------------------------- running
@dataclass(frozen=True, eq=False)
class PipelineRun:
    """Per-slice outputs on the host, in the order the workers delivered them (match them
    to slices by ``sources`` and ``frames``), every problem met, and how long it took."""

    values: npt.NDArray[np.float32]  # (slices, len(OUTPUT_COLUMNS))
    sources: tuple[str, ...]
    frames: tuple[int | None, ...]
    foreground_fraction: npt.NDArray[np.float32]
    display_blank: npt.NDArray[np.bool_]
    problems: tuple[Problem, ...]
    files: int
    seconds: float  # from starting the loader to the outputs on the host
    first_batch_seconds: float  # until the first batch reached the main process
    first_batch_slices: int

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def probabilities(self) -> npt.NDArray[np.float32]:
        return self.values[:, _PROBABILITIES]

    def column(self, name: str) -> npt.NDArray[np.float32]:
        return self.values[:, _COLUMN[name]]


@dataclass
class _Collected:
    outputs: list[torch.Tensor] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    frames: list[int | None] = field(default_factory=list)
    foreground: list[float] = field(default_factory=list)
    blank: list[bool] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def add(self, batch: Batch, outputs: torch.Tensor | None) -> None:
        self.problems.extend(batch.problems)
        if outputs is None:
            return
        self.outputs.append(outputs)
        self.sources.extend(batch.sources)
        self.frames.extend(batch.frames)
        self.foreground.extend(batch.foreground_fraction)
        self.blank.extend(batch.display_blank)


def run_pipeline(paths: Sequence[str | os.PathLike[str]], model: TriageOnDevice,
                 options: LoaderOptions) -> PipelineRun:
    """Every file through the loader and the model; the device outputs stay on the device
    (no synchronisation between batches) and come to the host once, at the end."""
    dtype = "float16" if model.dtype == torch.float16 else "float32"
    loader = slice_loader(paths, options, model.device, dtype)
    collected = _Collected()
    started = time.perf_counter()
    # the workers start here; they import this module, never the caller's main module (a
    # script without a main guard, or an application that imports Qt)
    with lean_launches():
        batches = iter(loader)
    first_batch, first_slices = 0.0, 0
    for batch in batches:
        if not first_batch:
            first_batch, first_slices = time.perf_counter() - started, len(batch)
        collected.add(batch, model.forward_batch(batch.images, options.batch_size)
                      if len(batch) else None)
    values = (torch.cat(collected.outputs).cpu().numpy() if collected.outputs
              else np.zeros((0, len(OUTPUT_COLUMNS)), np.float32))
    seconds = time.perf_counter() - started
    del batches, loader  # persistent workers end with their loader
    return PipelineRun(values=values, sources=tuple(collected.sources),
                       frames=tuple(collected.frames),
                       foreground_fraction=np.asarray(collected.foreground, np.float32),
                       display_blank=np.asarray(collected.blank, bool),
                       problems=tuple(collected.problems), files=len(paths), seconds=seconds,
                       first_batch_seconds=first_batch, first_batch_slices=first_slices)


@dataclass(frozen=True)
class ModelTiming:
    slices: int
    seconds: float


def time_model(model: TriageOnDevice, batch_size: int, batches: int) -> ModelTiming:
    """The same ``forward`` on one batch resident on the device, ``batches`` times after a
    warm-up, synchronised before and after: the network's own ceiling."""
    images = model.to_device(torch.rand(batch_size, 1, INPUT_SIZE, INPUT_SIZE,
                                        generator=torch.Generator().manual_seed(0)))
    model.forward(images)
    model.synchronise()
    started = time.perf_counter()
    for _ in range(batches):
        model.forward(images)
    model.synchronise()
    return ModelTiming(batch_size * batches, time.perf_counter() - started)


@dataclass(frozen=True)
class Figures:
    """What one measurement gives: end to end (file paths to per-slice outputs on the host,
    the workers' start included in ``seconds``; ``steady`` leaves it out) and model only."""

    files: int
    slices: int
    problems: int
    seconds: float
    slices_per_second: float
    first_batch_seconds: float
    steady_slices_per_second: float | None  # after the first batch arrived
    model_only_slices: int
    model_only_seconds: float
    model_only_slices_per_second: float | None
    batch_size: int
    workers: int
    prefetch_factor: int
    device: str
    device_name: str
    dtype: str
    cudnn_benchmark: bool
    torch_version: str
    model: str


def _rate(count: float, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 and count > 0 else None


def figures_of(run: PipelineRun, timing: ModelTiming, model: TriageOnDevice,
               options: LoaderOptions) -> Figures:
    return Figures(
        files=run.files, slices=len(run), problems=len(run.problems),
        seconds=round(run.seconds, 3), slices_per_second=_rate(len(run), run.seconds) or 0.0,
        first_batch_seconds=round(run.first_batch_seconds, 3),
        steady_slices_per_second=_rate(len(run) - run.first_batch_slices,
                                       run.seconds - run.first_batch_seconds),
        model_only_slices=timing.slices, model_only_seconds=round(timing.seconds, 3),
        model_only_slices_per_second=_rate(timing.slices, timing.seconds),
        batch_size=options.batch_size, workers=options.workers,
        prefetch_factor=options.prefetch_factor, device=model.device,
        device_name=model.device_name, dtype=str(model.dtype).removeprefix("torch."),
        cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
        torch_version=torch.__version__, model=model.name)


def measure(paths: Sequence[str | os.PathLike[str]], model: TriageOnDevice,
            options: LoaderOptions, model_only_batches: int = 20) -> Figures:
    """Warm the model, run every file end to end, then time the model alone."""
    model.warm_up(options.batch_size)
    run = run_pipeline(paths, model, options)
    timing = time_model(model, options.batch_size, model_only_batches)
    return figures_of(run, timing, model, options)


# ----------------------------------------------------------------------------- CLI
def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m workstation.analysis.gpu_pipeline",
        description="Slices/s from DICOM or picture files to per-slice outputs (end to end) "
                    "and of the network alone; prints the figures as JSON.")
    parser.add_argument("inputs", nargs="+", help="files or folders")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--prefetch", type=int, default=4, help="batches ready per worker")
    parser.add_argument("--half", action="store_true", help="float16 (cuda); else float32")
    parser.add_argument("--model-only-batches", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1,
                        help="go through the files this many times (a small folder gives "
                             "enough slices for a steady figure; later passes read the page "
                             "cache)")
    parser.add_argument("--model", type=Path, default=None, help="model description")
    parser.add_argument("--json-out", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    files, problems = pipeline_files(args.inputs)
    if not files:
        print("no files found: " + "; ".join(str(p) for p in problems), file=sys.stderr)
        return 2
    model = TriageOnDevice.load(args.model, args.device, args.half)
    options = LoaderOptions(batch_size=args.batch, workers=max(0, args.workers),
                            prefetch_factor=args.prefetch)
    if model.device.startswith("cuda"):
        # fastest kernels for the one batch shape (forward_batch pads short batches)
        torch.backends.cudnn.benchmark = True
    else:
        # the network's threads on the cores the workers leave: oversubscribed, torch's
        # threads spin against the workers (on 2 cores the run took four times as long)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - options.workers))
    figures = measure(files * max(1, args.repeat), model, options, args.model_only_batches)
    document = {**asdict(figures), "repeat": max(1, args.repeat),
                "inputs": [str(p) for p in args.inputs]}
    text = json.dumps(document, indent=2)
    print(text)
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    # run the imported module's main: the classes the spawned workers pickle back must be
    # workstation.analysis.gpu_pipeline's, not this script's copies under __main__
    from workstation.analysis import gpu_pipeline

    sys.exit(gpu_pipeline.main())
