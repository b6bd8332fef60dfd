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
from torch import nn
from torch.nn import functional as F

from workstation.analysis.findings import AnalysisCancelled
from workstation.analysis.model_file import ModelInfo, default_description, verified_weights
from workstation.analysis.network import (
    CLASSES,
    PLANES,
    ReferenceNet,
    TriageNet,
    fold_batch_norms,
)
from workstation.analysis.ood import Novelty, ct_probability
from workstation.analysis.preprocess import INPUT_SIZE, Prepared, mask_to_image, prepare
from workstation.analysis.series_rule import RuleParameters
from workstation.analysis.triage import Policy
from workstation.imaging.series import Slice


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
    # the whole-series rule chosen on validation series; None: a model without one
    series_rule: RuleParameters | None = None

    @classmethod
    def from_archive(cls, archive: dict[str, object]) -> Calibration:
        novelty = Novelty.from_archive(archive, "ood")
        if novelty is None:
            raise ValueError("the model file has no out-of-distribution threshold")
        weights = archive.get("ct_weights")
        return cls(
            temperature=float(archive["temperature"]),  # type: ignore[arg-type]
            review_threshold=float(archive["review_threshold"]),  # type: ignore[arg-type]
            novelty=novelty,
            reference=Novelty.from_archive(archive, "reference_ood"),
            ct_weights=(None if weights is None
                        else weights.float().numpy()),  # type: ignore[attr-defined]
            ct_bias=float(archive.get("ct_bias", 0.0)),  # type: ignore[arg-type]
            ct_threshold=float(archive.get("ct_threshold", 1.0)),  # type: ignore[arg-type]
            series_rule=series_rule_of(archive),
        )

    def policy(self) -> Policy:
        return Policy(review_threshold=self.review_threshold,
                      ood_threshold=self.novelty.threshold, ct_threshold=self.ct_threshold,
                      reference_ood_threshold=(self.reference.threshold if self.reference
                                               else float("inf")),
                      series_rule=self.series_rule)


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


def pick_device(requested: str = "auto") -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("a GPU was requested but no CUDA device is available")
    return requested


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
        # the network as trained (Grad-CAM reads its layers) and its folded copy, which
        # makes every prediction (export calibrated on the same folded copy)
        self.net = net.to(self.device).to(memory_format=torch.channels_last)
        self.inference_net = fold_batch_norms(self.net)
        self.calibration = Calibration.from_archive(archive)
        self.reference: nn.Module | None = None  # a folded ReferenceNet
        if "reference_state_dict" in archive:
            reference = ReferenceNet(int(archive["reference_input_size"]))
            reference.backbone.load_state_dict(
                {k: v.float() for k, v in archive["reference_state_dict"].items()})
            self.reference = fold_batch_norms(reference).to(self.device).to(
                memory_format=torch.channels_last)
        self.last_seconds = 0.0

    def predict_prepared(self, prepared: Sequence[Prepared]) -> dict[str, np.ndarray]:
        """Raw network outputs for already prepared inputs (also used by evaluation)."""
        batch = torch.from_numpy(np.stack([p.image for p in prepared]))[:, None]
        batch = batch.to(self.device, memory_format=torch.channels_last)
        with torch.inference_mode():
            out = self.inference_net(batch)
            logits = out.class_logits.float() / self.calibration.temperature
            masks = torch.sigmoid(F.interpolate(out.mask_logits.float(),
                                                size=(INPUT_SIZE, INPUT_SIZE),
                                                mode="bilinear", align_corners=False))
            return {"probabilities": logits.softmax(1).cpu().numpy(),
                    "logits": out.class_logits.float().cpu().numpy(),
                    "plane_probabilities": out.plane_logits.float().softmax(1).cpu().numpy(),
                    "masks": masks[:, 0].cpu().numpy(),
                    "features": out.features.float().cpu().numpy(),
                    **({"reference_features": self.reference(batch).float().cpu().numpy()}
                       if self.reference is not None else {})}

    def predictions(self, prepared: Sequence[Prepared]
                    ) -> tuple[list[SlicePrediction], dict[str, np.ndarray]]:
        """Each prepared input's prediction on its input image grid, with its
        out-of-distribution and CT scores; and the raw network outputs (for evaluation)."""
        raw = self.predict_prepared(prepared)
        scores = self.calibration.novelty.score(raw["features"])
        ct = ct_score(raw["features"], self.calibration)
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
