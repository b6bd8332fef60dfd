"""The out-of-distribution scores, one definition for export (thresholds) and engine (use).

Both read the network's pooled features, made unit length:
- a novelty score, large for anything unlike the training slices: the distance to the k-th
  nearest training feature, or the Mahalanobis distance to the training features' mean
  (export picks one on held-out pictures);
- a CT score: the probability, from a logistic model fitted on the CT images found in the
  2D training set, that the image is CT rather than MR (a CT exported as JPEG or PNG has no
  header to say so).
"""

from __future__ import annotations

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


def ct_probability(features: npt.NDArray[np.floating], weights: npt.NDArray[np.floating],
                   bias: float) -> npt.NDArray[np.float32]:
    """Probability that an image is CT, not MR, from a logistic model on the unit features."""
    logit = unit(features) @ weights + bias
    return (1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))).astype(np.float32)
