"""The out-of-distribution score, one definition for export (threshold) and engine (use)."""

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
