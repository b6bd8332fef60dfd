"""Near-duplicate clusters across all sources.

Signature: the preprocessed (foreground-cropped, square, intensity-normalised) image
shrunk to 24x24, centred and scaled to unit length; two images are near-duplicates when the
correlation of their signatures exceeds ``THRESHOLD``. Cropping to the brain first makes
the signature robust to resizing, padding and re-cropping between sources.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from skimage.transform import resize

SIGNATURE_SIZE = 24
THRESHOLD = 0.98


def signature(prepared: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    small = resize(np.asarray(prepared, dtype=np.float32), (SIGNATURE_SIZE, SIGNATURE_SIZE),
                   anti_aliasing=True).astype(np.float32).ravel()
    small -= small.mean()
    norm = float(np.linalg.norm(small))
    return small / norm if norm > 1e-6 else small


class UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = np.arange(size)

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = int(self.parent[root])
        while self.parent[item] != root:
            self.parent[item], item = root, int(self.parent[item])
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def near_duplicate_pairs(signatures: npt.NDArray[np.float32], threshold: float = THRESHOLD,
                         block: int = 2048) -> list[tuple[int, int]]:
    """All pairs (i < j) whose signature correlation exceeds ``threshold``."""
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(signatures), block):
        sims = signatures[start:start + block] @ signatures.T
        rows, cols = np.nonzero(sims > threshold)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            i = start + r
            if i < c:
                pairs.append((i, c))
    return pairs


def clusters(signatures: npt.NDArray[np.float32], threshold: float = THRESHOLD
             ) -> npt.NDArray[np.int64]:
    """Cluster id (the smallest member index) for every image."""
    finder = UnionFind(len(signatures))
    for i, j in near_duplicate_pairs(signatures, threshold):
        finder.union(i, j)
    return np.array([finder.find(i) for i in range(len(signatures))], dtype=np.int64)
