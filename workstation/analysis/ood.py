"""The out-of-distribution scores, one definition for export (thresholds) and engine (use).

They read pooled features made unit length:
- novelty scores, large for anything unlike the training slices: the distance to the k-th
  nearest training feature, or the Mahalanobis distance to the training features' mean
  (export picks one on held-out pictures). One reads the triage network's features; a
  second reads those of the unchanged ImageNet network (``network.ReferenceNet``), whose
  features still tell a photograph from an MR slice after fine-tuning has taught the triage
  network to ignore what brain slices do not vary in;
- two logistic checks on the triage network's features (``logistic_probability``):
  - a CT score: the probability, from a logistic model fitted on the CT images found in the
    2D training set, that the image is CT rather than MR (a CT exported as JPEG or PNG has no
    header to say so);
  - a picture score: the probability that the image is a photograph, a texture or a drawing
    rather than an MR slice, from a logistic model fitted on random crops of pictures that
    are not among the test probes (outlier exposure, Hendrycks et al., ICLR 2019): a brick
    wall or a lawn fills the frame with texture as a brain slice fills it with anatomy, and
    the novelty scores alone did not tell them apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


def unit(features: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-6)


def knn_distance(features: npt.NDArray[np.floating], bank: npt.NDArray[np.floating], k: int
                 ) -> npt.NDArray[np.float32]:
    """1 - cosine similarity to the k-th nearest training feature (Sun et al., ICML 2022):
    near 0 for images like the training slices, large for anything else."""
    similarity = unit(features) @ bank.T
    return (1.0 - np.sort(similarity, axis=1)[:, -k]).astype(np.float32)


def mahalanobis_distance(features: npt.NDArray[np.floating], mean: npt.NDArray[np.floating],
                         precision: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Squared Mahalanobis distance of the unit features to the training features' mean
    under their (shrunk) covariance (Lee et al., NeurIPS 2018, one class-agnostic Gaussian)."""
    centred = unit(features) - mean
    return np.einsum("ij,jk,ik->i", centred, precision, centred).astype(np.float32)


def logistic_probability(features: npt.NDArray[np.floating],
                         weights: npt.NDArray[np.floating], bias: float
                         ) -> npt.NDArray[np.float32]:
    """Probability, from a logistic model on the unit features, that an image is what the
    check was fitted to find (CT, or a picture that is no MR slice) rather than MR."""
    logit = unit(features) @ weights + bias
    return (1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Novelty:
    """One calibrated novelty score: "knn" (bank, neighbours) or "mahalanobis" (mean,
    precision), and the threshold above which an image is out of distribution."""

    threshold: float
    method: str = "knn"
    bank: npt.NDArray[np.float32] | None = None  # (N, D) unit-length training features
    neighbours: int = 1
    mean: npt.NDArray[np.float32] | None = None  # (D,)
    precision: npt.NDArray[np.float32] | None = None  # (D, D)

    def score(self, features: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        if self.method == "mahalanobis":
            if self.mean is None or self.precision is None:
                raise ValueError("a Mahalanobis novelty score needs a mean and a precision")
            return mahalanobis_distance(features, self.mean, self.precision)
        if self.bank is None:
            raise ValueError("a nearest-neighbour novelty score needs a feature bank")
        return knn_distance(features, self.bank, self.neighbours)

    def archive(self, prefix: str) -> dict[str, Any]:
        """The archive entries of this score, keys starting with ``prefix`` (e.g. "ood")."""
        entries: dict[str, Any] = {f"{prefix}_threshold": self.threshold,
                                   f"{prefix}_method": self.method}
        if self.method == "knn":
            assert self.bank is not None
            entries[f"{prefix}_bank"] = self.bank.astype(np.float32)
            entries[f"{prefix}_neighbours"] = self.neighbours
        else:
            entries[f"{prefix}_mean"] = self.mean
            entries[f"{prefix}_precision"] = self.precision
        return entries

    @classmethod
    def from_archive(cls, archive: Mapping[str, Any], prefix: str) -> Novelty | None:
        """The score stored under ``prefix``; None when the archive has none."""
        if f"{prefix}_threshold" not in archive:
            return None

        def array(key: str) -> npt.NDArray[np.float32] | None:
            value = archive.get(f"{prefix}_{key}")
            if value is None:
                return None
            if hasattr(value, "numpy"):  # a torch tensor (fp16 in the shipped archive)
                value = value.float().numpy()
            return np.asarray(value, dtype=np.float32)

        return cls(threshold=float(archive[f"{prefix}_threshold"]),
                   method=str(archive.get(f"{prefix}_method", "knn")),
                   bank=array("bank"), neighbours=int(archive.get(f"{prefix}_neighbours", 1)),
                   mean=array("mean"), precision=array("precision"))
