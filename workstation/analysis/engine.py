"""Run the network on slices: verified model files, the shared preprocessing, batches,
CPU/GPU, and the backend that runs the network.

Two backends give the same outputs (to float rounding): ONNX Runtime
(``analysis.onnx_backend``, the CPU default: faster, and no torch import at start-up) and
PyTorch (``analysis.torch_backend``: the GPU, a model without an exported graph, and the
network Grad-CAM reads). The backend is chosen when the engine loads and is named in the
triage document.
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from workstation.analysis.findings import CLASSES, PLANES, AnalysisCancelled
from workstation.analysis.model_file import (
    ModelInfo,
    ModelIntegrityError,
    default_description,
    verified,
    verified_weights,
)
from workstation.analysis.ood import Novelty, logistic_probability
from workstation.analysis.preprocess import Prepared, mask_to_image, prepare
from workstation.analysis.series_rule import RuleParameters
from workstation.analysis.triage import Policy
from workstation.imaging.series import Slice

BACKENDS = ("auto", "onnxruntime", "torch")


def _array(value: Any) -> npt.NDArray[np.float32]:
    """A tensor of the torch archive or an array of the numpy calibration, as float32."""
    if hasattr(value, "numpy"):
        value = value.float().numpy()
    return np.asarray(value, dtype=np.float32)


@dataclass(frozen=True)
class Calibration:
    temperature: float
    review_threshold: float  # p(no_tumour) needed to clear a slice as no_tumour
    novelty: Novelty  # on the triage network's features
    # on the ImageNet reference network's features (None: a model exported without one)
    reference: Novelty | None = None
    # the CT score (logistic model on the unit features); None: no CT check
    ct_weights: npt.NDArray[np.float32] | None = None  # (D,)
    ct_bias: float = 0.0
    ct_threshold: float = 1.0
    # the picture score (logistic model on the unit features: photographs, textures and
    # drawings against MR slices); None: no picture check
    picture_weights: npt.NDArray[np.float32] | None = None  # (D,)
    picture_bias: float = 0.0
    picture_threshold: float = 1.0
    # the whole-series rule chosen on validation series; None: a model without one
    series_rule: RuleParameters | None = None
    # p(tumour) an image needs to be called tumour on its own (0.5: a model without one)
    tumour_call_threshold: float = 0.5

    @classmethod
    def from_archive(cls, archive: dict[str, object]) -> Calibration:
        novelty = Novelty.from_archive(archive, "ood")
        if novelty is None:
            raise ValueError("the model file has no out-of-distribution threshold")
        weights = archive.get("ct_weights")
        picture = archive.get("picture_weights")
        return cls(
            temperature=float(archive["temperature"]),  # type: ignore[arg-type]
            review_threshold=float(archive["review_threshold"]),  # type: ignore[arg-type]
            novelty=novelty,
            reference=Novelty.from_archive(archive, "reference_ood"),
            ct_weights=None if weights is None else _array(weights),
            ct_bias=float(archive.get("ct_bias", 0.0)),  # type: ignore[arg-type]
            ct_threshold=float(archive.get("ct_threshold", 1.0)),  # type: ignore[arg-type]
            picture_weights=None if picture is None else _array(picture),
            picture_bias=float(archive.get("picture_bias", 0.0)),  # type: ignore[arg-type]
            picture_threshold=float(
                archive.get("picture_threshold", 1.0)),  # type: ignore[arg-type]
            series_rule=series_rule_of(archive),
            tumour_call_threshold=float(
                archive.get("tumour_call_threshold", 0.5)),  # type: ignore[arg-type]
        )

    def policy(self) -> Policy:
        return Policy(review_threshold=self.review_threshold,
                      ood_threshold=self.novelty.threshold, ct_threshold=self.ct_threshold,
                      picture_threshold=self.picture_threshold,
                      reference_ood_threshold=(self.reference.threshold if self.reference
                                               else float("inf")),
                      series_rule=self.series_rule,
                      tumour_call_threshold=self.tumour_call_threshold)


SERIES_RULE_KEYS = ("min_extent_mm", "window_mm", "clear_below", "overlap")


def series_rule_of(archive: dict[str, object]) -> RuleParameters | None:
    """The series rule's parameters kept in the weights archive (``series_rule_<name>``),
    or None when the model has none."""
    if "series_rule_clear_below" not in archive:
        return None
    values = {k: archive[f"series_rule_{k}"] for k in SERIES_RULE_KEYS}
    return RuleParameters(min_extent_mm=float(values["min_extent_mm"]),  # type: ignore[arg-type]
                          window_mm=float(values["window_mm"]),  # type: ignore[arg-type]
                          clear_below=float(values["clear_below"]),  # type: ignore[arg-type]
                          overlap=bool(values["overlap"]))


@dataclass(frozen=True, eq=False)
class SlicePrediction:
    """What the network says of one slice, mapped back to the input image grid."""

    probabilities: npt.NDArray[np.float32]  # calibrated, order of CLASSES
    plane_probabilities: npt.NDArray[np.float32]  # order of PLANES
    mask: npt.NDArray[np.float32]  # suspect-region probability at the input image size
    ood_score: float
    foreground_fraction: float
    ct_score: float = 0.0  # probability that the image is CT, not MR
    reference_ood_score: float = 0.0  # novelty on the ImageNet reference features
    picture_score: float = 0.0  # probability that the image is a picture, not an MR slice


def cuda_present() -> bool:
    """Whether an NVIDIA driver with a device is there, asked of the driver library itself
    (milliseconds; importing torch to ask would cost seconds on every CPU start)."""
    name = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        driver = ctypes.CDLL(name)
    except OSError:
        return False
    count = ctypes.c_int(0)
    try:
        return driver.cuInit(0) == 0 and driver.cuDeviceGetCount(ctypes.byref(count)) == 0 \
            and count.value > 0
    except AttributeError:
        return False


def torch_installed() -> bool:
    """Whether PyTorch is there (the full install; the CPU package of ``make package`` leaves
    it out), asked without importing it."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


FULL_INSTALL_NEEDED = ("this installation runs the model on the CPU with ONNX Runtime only; "
                       "the GPU, Grad-CAM and models without an ONNX graph need the full "
                       "install (with PyTorch)")


def choose_backend(info: ModelInfo, device: str = "auto", backend: str = "auto") -> str:
    """The backend an engine for ``info`` runs on ``device``: ONNX Runtime on the CPU when
    the model has a graph exported from these weights and onnxruntime is installed, else
    torch. Asking for onnxruntime where it cannot run raises RuntimeError, in words."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
    has_torch = torch_installed()
    if not has_torch:
        if backend == "torch" or device == "cuda":
            raise RuntimeError(FULL_INSTALL_NEEDED)
        device = "cpu"  # a GPU is of no use without torch: ONNX Runtime on the CPU
    if backend == "torch":
        return "torch"
    on_cpu = device == "cpu" or (device == "auto" and not cuda_present())
    from workstation.analysis import onnx_backend

    problem = (
        "it runs on the CPU only" if not on_cpu else
        "onnxruntime is not installed" if not onnx_backend.available() else
        f"model {info.name} has no ONNX graph" if info.onnx is None else
        f"the ONNX graph of {info.name} was exported from other weights"
        if info.onnx.from_weights != info.sha256 else "")
    if not problem:
        return onnx_backend.NAME
    if backend == onnx_backend.NAME:
        raise RuntimeError(f"the onnxruntime backend cannot be used: {problem}")
    if not has_torch:
        raise RuntimeError(f"{problem}: {FULL_INSTALL_NEEDED}")
    return "torch"


def _check_score(features: npt.NDArray[np.float32], weights: npt.NDArray[np.float32] | None,
                 bias: float) -> npt.NDArray[np.float32]:
    """A logistic check's probability; zeros for a model without that check."""
    if weights is None:
        return np.zeros(len(features), dtype=np.float32)
    return logistic_probability(features, weights, bias)


def ct_score(features: npt.NDArray[np.float32], calibration: Calibration
             ) -> npt.NDArray[np.float32]:
    """The calibrated model's CT probability; zeros when the model has no CT check."""
    return _check_score(features, calibration.ct_weights, calibration.ct_bias)


def picture_score(features: npt.NDArray[np.float32], calibration: Calibration
                  ) -> npt.NDArray[np.float32]:
    """The calibrated model's probability that an image is a picture (photograph, texture,
    drawing) rather than an MR slice; zeros when the model has no picture check."""
    return _check_score(features, calibration.picture_weights, calibration.picture_bias)


_BLAS: list[Any] = []


def _one_blas_thread() -> Any:
    """A context in which numpy's BLAS runs on one thread (threadpoolctl)."""
    if not _BLAS:
        from threadpoolctl import ThreadpoolController

        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


def _softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


class Engine:
    """Loads the model once and analyses batches of slices.

    Parameters
    ----------
    description
        The model description (default: the shipped model).
    device
        ``auto`` (a GPU when one is there), ``cpu`` or ``cuda``.
    threads
        CPU threads for the network (default: the backend's own choice).
    backend
        ``auto`` (``choose_backend``), ``onnxruntime`` or ``torch``.
    """

    def __init__(self, description: Path | None = None, device: str = "auto",
                 threads: int | None = None, backend: str = "auto") -> None:
        self.info = ModelInfo.load(description or default_description())
        self.backend = choose_backend(self.info, device, backend)
        self._torch: Any = None
        self._threads = threads
        self._runner: Any
        if self.backend == "torch":
            from workstation.analysis.torch_backend import TorchBackend, load_archive

            archive = load_archive(verified_weights(self.info))
            self._torch = TorchBackend(archive, device, threads)
            self._runner = self._torch
        else:
            from workstation.analysis.onnx_backend import OnnxBackend

            files = self.info.onnx
            assert files is not None  # choose_backend checked it
            graph = verified(files.graph, files.graph_sha256, "ONNX graph")
            calibration = verified(files.calibration, files.calibration_sha256,
                                   "calibration file")
            try:
                with np.load(calibration, allow_pickle=False) as stored:
                    archive = {key: stored[key] for key in stored.files}
            except (OSError, ValueError) as exc:
                raise ModelIntegrityError(
                    f"the calibration file {calibration.name} cannot be read ({exc})") from exc
            self._runner = OnnxBackend(graph, threads)
        self.device: str = self._runner.device
        self.calibration = Calibration.from_archive(archive)
        self.last_seconds = 0.0

    def torch_backend(self) -> Any:
        """The torch networks (loaded on first use when the engine runs ONNX Runtime)."""
        if self._torch is None:
            from workstation.analysis.torch_backend import TorchBackend, load_archive

            self._torch = TorchBackend(load_archive(verified_weights(self.info)), "cpu",
                                       self._threads)
        return self._torch

    @property
    def net(self) -> Any:
        """The triage network as trained, in torch (Grad-CAM reads its layers)."""
        return self.torch_backend().net

    @property
    def inference_net(self) -> Any:
        """The torch network with its batch norms folded (what the torch backend runs)."""
        return self.torch_backend().inference_net

    @property
    def reference(self) -> Any:
        """The torch reference network, folded; None for a model without one."""
        return self.torch_backend().reference

    def predict_prepared(self, prepared: Sequence[Prepared]) -> dict[str, np.ndarray]:
        """Raw network outputs for already prepared inputs (also used by evaluation)."""
        raw = self._runner.run(np.stack([p.image for p in prepared])[:, None])
        return {"probabilities": _softmax(raw["logits"] / self.calibration.temperature),
                "plane_probabilities": _softmax(raw["plane_logits"]), **raw}

    def predictions(self, prepared: Sequence[Prepared]
                    ) -> tuple[list[SlicePrediction], dict[str, np.ndarray]]:
        """Each prepared input's prediction on its input image grid, with its
        out-of-distribution and CT scores; and the raw network outputs (for evaluation)."""
        raw = self.predict_prepared(prepared)
        scores = self.calibration.novelty.score(raw["features"])
        ct = ct_score(raw["features"], self.calibration)
        picture = picture_score(raw["features"], self.calibration)
        reference = self.calibration.reference
        reference_scores = (reference.score(raw["reference_features"])
                            if reference is not None else np.zeros(len(prepared), np.float32))
        return [SlicePrediction(
            probabilities=raw["probabilities"][k],
            plane_probabilities=raw["plane_probabilities"][k],
            mask=mask_to_image(raw["masks"][k], item.crop),
            ood_score=float(scores[k]),
            foreground_fraction=item.foreground_fraction,
            ct_score=float(ct[k]),
            reference_ood_score=float(reference_scores[k]),
            picture_score=float(picture[k]),
        ) for k, item in enumerate(prepared)], raw

    def analyse(self, slices: Sequence[Slice], batch_size: int = 16,
                progress: Callable[[int, int], None] | None = None,
                cancelled: Callable[[], bool] | None = None) -> list[SlicePrediction]:
        # numpy's BLAS (the resize and novelty products) on one thread: its idle threads
        # spin, and two thread pools on the same cores slowed analysis by half or more
        with _one_blas_thread():
            return self._analyse(slices, batch_size, progress, cancelled)

    def _analyse(self, slices: Sequence[Slice], batch_size: int,
                 progress: Callable[[int, int], None] | None,
                 cancelled: Callable[[], bool] | None) -> list[SlicePrediction]:
        started = time.perf_counter()
        results: list[SlicePrediction] = []
        for start in range(0, len(slices), batch_size):
            if cancelled is not None and cancelled():
                raise AnalysisCancelled()
            chunk = slices[start:start + batch_size]
            prepared = [prepare(np.asarray(s.image)) for s in chunk]
            results.extend(self.predictions(prepared)[0])
            if progress is not None:
                progress(len(results), len(slices))
        self.last_seconds = time.perf_counter() - started
        return results


__all__ = ["BACKENDS", "CLASSES", "PLANES", "AnalysisCancelled", "Calibration", "Engine",
           "SlicePrediction", "choose_backend", "cuda_present"]
