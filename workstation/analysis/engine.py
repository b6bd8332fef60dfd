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
from workstation.analysis.ood import knn_distance
from workstation.analysis.preprocess import INPUT_SIZE, Prepared, mask_to_image, prepare
from workstation.imaging.series import Slice


class AnalysisCancelled(Exception):
    """The user cancelled; nothing partial is returned."""


@dataclass(frozen=True)
class Calibration:
    temperature: float
    review_threshold: float  # p(no_tumour) needed to clear a slice as no_tumour
    ood_threshold: float
    ood_bank: npt.NDArray[np.float32]  # (N, D) unit-length training features
    ood_neighbours: int


@dataclass(frozen=True, eq=False)
class SlicePrediction:
    """What the network says of one slice, mapped back to the input image grid."""

    probabilities: npt.NDArray[np.float32]  # calibrated, order of CLASSES
    plane_probabilities: npt.NDArray[np.float32]  # order of PLANES
    mask: npt.NDArray[np.float32]  # suspect-region probability at the input image size
    ood_score: float
    foreground_fraction: float


def pick_device(requested: str = "auto") -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("a GPU was requested but no CUDA device is available")
    return requested


def ood_score(features: npt.NDArray[np.float32], calibration: Calibration
              ) -> npt.NDArray[np.float32]:
    """The calibrated model's out-of-distribution score (see analysis.ood)."""
    return knn_distance(features, calibration.ood_bank, calibration.ood_neighbours)


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
        net = TriageNet()
        net.load_state_dict({k: v.float() for k, v in archive["state_dict"].items()})
        net.eval()
        self.net = net.to(self.device).to(memory_format=torch.channels_last)
        self.calibration = Calibration(
            temperature=float(archive["temperature"]),
            review_threshold=float(archive["review_threshold"]),
            ood_threshold=float(archive["ood_threshold"]),
            ood_bank=archive["ood_bank"].float().numpy(),
            ood_neighbours=int(archive["ood_neighbours"]),
        )
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
            raw = self.predict_prepared(prepared)
            scores = ood_score(raw["features"], self.calibration)
            for k, item in enumerate(prepared):
                results.append(SlicePrediction(
                    probabilities=raw["probabilities"][k],
                    plane_probabilities=raw["plane_probabilities"][k],
                    mask=mask_to_image(raw["masks"][k], item.crop),
                    ood_score=float(scores[k]),
                    foreground_fraction=item.foreground_fraction,
                ))
            if progress is not None:
                progress(len(results), len(slices))
        self.last_seconds = time.perf_counter() - started
        return results


__all__ = ["CLASSES", "PLANES", "AnalysisCancelled", "Calibration", "Engine",
           "SlicePrediction", "pick_device"]
