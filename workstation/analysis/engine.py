"""Run the network on slices: verified weights, the shared preprocessing, batches, CPU/GPU.

Torch is imported when this module is, so the app imports it lazily (at first analysis).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional as F

from workstation.analysis.model_file import ModelInfo, default_description, verified_weights
from workstation.analysis.network import CLASSES, PLANES, TriageNet
from workstation.analysis.ood import ct_probability, knn_distance, mahalanobis_distance
from workstation.analysis.preprocess import INPUT_SIZE, Prepared, mask_to_image, prepare
from workstation.analysis.triage import Policy
from workstation.imaging.series import Slice


class AnalysisCancelled(Exception):
    """The user cancelled; nothing partial is returned."""


@dataclass(frozen=True)
class Calibration:
    temperature: float
    review_threshold: float  # p(no_tumour) needed to clear a slice as no_tumour
    ood_threshold: float
    # the novelty score: "knn" (bank, neighbours) or "mahalanobis" (mean, precision)
    ood_method: str = "knn"
    ood_bank: npt.NDArray[np.float32] | None = None  # (N, D) unit-length training features
    ood_neighbours: int = 1
    ood_mean: npt.NDArray[np.float32] | None = None  # (D,)
    ood_precision: npt.NDArray[np.float32] | None = None  # (D, D)
    # the CT score (logistic model on the unit features); None: no CT check
    ct_weights: npt.NDArray[np.float32] | None = None  # (D,)
    ct_bias: float = 0.0
    ct_threshold: float = 1.0

    @classmethod
    def from_archive(cls, archive: dict[str, object]) -> Calibration:
        def array(key: str) -> npt.NDArray[np.float32] | None:
            value = archive.get(key)
            return None if value is None else value.float().numpy()  # type: ignore[attr-defined]

        return cls(
            temperature=float(archive["temperature"]),  # type: ignore[arg-type]
            review_threshold=float(archive["review_threshold"]),  # type: ignore[arg-type]
            ood_threshold=float(archive["ood_threshold"]),  # type: ignore[arg-type]
            ood_method=str(archive.get("ood_method", "knn")),
            ood_bank=array("ood_bank"),
            ood_neighbours=int(archive.get("ood_neighbours", 1)),  # type: ignore[call-overload]
            ood_mean=array("ood_mean"),
            ood_precision=array("ood_precision"),
            ct_weights=array("ct_weights"),
            ct_bias=float(archive.get("ct_bias", 0.0)),  # type: ignore[arg-type]
            ct_threshold=float(archive.get("ct_threshold", 1.0)),  # type: ignore[arg-type]
        )

    def policy(self) -> Policy:
        return Policy(review_threshold=self.review_threshold,
                      ood_threshold=self.ood_threshold, ct_threshold=self.ct_threshold)


@dataclass(frozen=True, eq=False)
class SlicePrediction:
    """What the network says of one slice, mapped back to the input image grid."""

    probabilities: npt.NDArray[np.float32]  # calibrated, order of CLASSES
    plane_probabilities: npt.NDArray[np.float32]  # order of PLANES
    mask: npt.NDArray[np.float32]  # suspect-region probability at the input image size
    ood_score: float
    foreground_fraction: float
    ct_score: float = 0.0  # probability that the image is CT, not MR


def pick_device(requested: str = "auto") -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("a GPU was requested but no CUDA device is available")
    return requested


def ood_score(features: npt.NDArray[np.float32], calibration: Calibration
              ) -> npt.NDArray[np.float32]:
    """The calibrated model's novelty score (see analysis.ood)."""
    if calibration.ood_method == "mahalanobis":
        assert calibration.ood_mean is not None and calibration.ood_precision is not None
        return mahalanobis_distance(features, calibration.ood_mean, calibration.ood_precision)
    assert calibration.ood_bank is not None
    return knn_distance(features, calibration.ood_bank, calibration.ood_neighbours)


def ct_score(features: npt.NDArray[np.float32], calibration: Calibration
             ) -> npt.NDArray[np.float32]:
    """The calibrated model's CT probability; zeros when the model has no CT check."""
    if calibration.ct_weights is None:
        return np.zeros(len(features), dtype=np.float32)
    return ct_probability(features, calibration.ct_weights, calibration.ct_bias)


class Engine:
    """Loads the model once and analyses batches of slices."""

    def __init__(self, description: Path | None = None, device: str = "auto",
                 threads: int | None = None) -> None:
        self.info = ModelInfo.load(description or default_description())
        archive = torch.load(verified_weights(self.info), map_location="cpu",
                             weights_only=True)
        self.device = pick_device(device)
        if threads:
            torch.set_num_threads(threads)
        net = TriageNet.for_weights(archive["state_dict"])
        net.load_state_dict({k: v.float() for k, v in archive["state_dict"].items()})
        net.eval()
        self.net = net.to(self.device).to(memory_format=torch.channels_last)
        self.calibration = Calibration.from_archive(archive)
        self.last_seconds = 0.0

    def predict_prepared(self, prepared: Sequence[Prepared]) -> dict[str, np.ndarray]:
        """Raw network outputs for already prepared inputs (also used by evaluation)."""
        batch = torch.from_numpy(np.stack([p.image for p in prepared]))[:, None]
        batch = batch.to(self.device, memory_format=torch.channels_last)
        with torch.inference_mode():
            out = self.net(batch)
            logits = out.class_logits.float() / self.calibration.temperature
            masks = torch.sigmoid(F.interpolate(out.mask_logits.float(),
                                                size=(INPUT_SIZE, INPUT_SIZE),
                                                mode="bilinear", align_corners=False))
            return {"probabilities": logits.softmax(1).cpu().numpy(),
                    "logits": out.class_logits.float().cpu().numpy(),
                    "plane_probabilities": out.plane_logits.float().softmax(1).cpu().numpy(),
                    "masks": masks[:, 0].cpu().numpy(),
                    "features": out.features.float().cpu().numpy()}

    def predictions(self, prepared: Sequence[Prepared]
                    ) -> tuple[list[SlicePrediction], dict[str, np.ndarray]]:
        """Each prepared input's prediction on its input image grid, with both
        out-of-distribution scores; and the raw network outputs (for evaluation)."""
        raw = self.predict_prepared(prepared)
        scores = ood_score(raw["features"], self.calibration)
        ct = ct_score(raw["features"], self.calibration)
        return [SlicePrediction(
            probabilities=raw["probabilities"][k],
            plane_probabilities=raw["plane_probabilities"][k],
            mask=mask_to_image(raw["masks"][k], item.crop),
            ood_score=float(scores[k]),
            foreground_fraction=item.foreground_fraction,
            ct_score=float(ct[k]),
        ) for k, item in enumerate(prepared)], raw

    def analyse(self, slices: Sequence[Slice], batch_size: int = 16,
                progress: Callable[[int, int], None] | None = None,
                cancelled: Callable[[], bool] | None = None) -> list[SlicePrediction]:
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


__all__ = ["CLASSES", "PLANES", "AnalysisCancelled", "Calibration", "Engine",
           "SlicePrediction", "pick_device"]
