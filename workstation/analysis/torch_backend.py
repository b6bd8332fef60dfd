"""The network in PyTorch: the training framework, the GPU path and Grad-CAM's network.

Imports torch (and timm) when imported, so the engine imports it only when this backend
is chosen or Grad-CAM is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workstation.analysis.network import ReferenceNet, TriageNet, fold_batch_norms
from workstation.analysis.preprocess import INPUT_SIZE

NAME = "torch"


def pick_device(requested: str = "auto") -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("a GPU was requested but no CUDA device is available")
    return requested


def load_archive(weights: Path) -> dict[str, Any]:
    """The weights archive (tensors and numbers; already verified by sha256)."""
    archive: dict[str, Any] = torch.load(weights, map_location="cpu", weights_only=True)
    return archive


def triage_net(archive: dict[str, Any]) -> TriageNet:
    """The triage network as trained (batch norms kept), in eval mode, float32."""
    net = TriageNet.for_weights(archive["state_dict"])
    net.load_state_dict({k: v.float() for k, v in archive["state_dict"].items()})
    return net.eval()


def reference_net(archive: dict[str, Any]) -> ReferenceNet | None:
    """The ImageNet reference network (batch norms kept), or None for a model without one."""
    if "reference_state_dict" not in archive:
        return None
    reference = ReferenceNet(int(archive["reference_input_size"]))
    reference.backbone.load_state_dict(
        {k: v.float() for k, v in archive["reference_state_dict"].items()})
    return reference.eval()


class TorchBackend:
    """Runs the batch-norm-folded copies of the networks; keeps the trained one for
    Grad-CAM."""

    name = NAME

    def __init__(self, archive: dict[str, Any], device: str = "auto",
                 threads: int | None = None) -> None:
        self.device = pick_device(device)
        if threads:
            torch.set_num_threads(threads)
        # the network as trained (Grad-CAM reads its layers) and its folded copy, which
        # makes every prediction (export calibrated on the same folded copy)
        self.net = triage_net(archive).to(self.device).to(memory_format=torch.channels_last)
        self.inference_net = fold_batch_norms(self.net)
        reference = reference_net(archive)
        self.reference: nn.Module | None = (
            None if reference is None else
            fold_batch_norms(reference).to(self.device).to(memory_format=torch.channels_last))

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """(B, 1, H, W) float32 network inputs -> raw outputs: class and plane logits,
        suspect-region probabilities at the input size, pooled (and reference) features."""
        batch = torch.from_numpy(images).to(self.device, memory_format=torch.channels_last)
        with torch.inference_mode():
            out = self.inference_net(batch)
            masks = torch.sigmoid(F.interpolate(out.mask_logits.float(),
                                                size=(INPUT_SIZE, INPUT_SIZE),
                                                mode="bilinear", align_corners=False))
            raw = {"logits": out.class_logits.float().cpu().numpy(),
                   "plane_logits": out.plane_logits.float().cpu().numpy(),
                   "masks": masks[:, 0].cpu().numpy(),
                   "features": out.features.float().cpu().numpy()}
            if self.reference is not None:
                raw["reference_features"] = self.reference(batch).float().cpu().numpy()
        return raw
