"""The one preprocessing path from a display image to the network input (numpy only).

Training (``workstation.training``) and inference (``analysis.engine``) both call
``prepare``; what was evaluated is what runs. The brain is cropped to its foreground box
(made square), resized to ``INPUT_SIZE`` and scaled so that its 99th percentile is 1, which
removes most differences of field of view and windowing between sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

INPUT_SIZE = 160
_FOREGROUND_FRACTION = 0.08  # of the 99th percentile; below this is background/air
_MARGIN = 0.04  # of the box side, added around the foreground


@dataclass(frozen=True)
class Crop:
    """Square box (in input-image pixels) that was resized to the network input."""

    top: int
    left: int
    side: int
    image_shape: tuple[int, int]


@dataclass(frozen=True, eq=False)
class Prepared:
    """Network-ready image (INPUT_SIZE x INPUT_SIZE float32 in [0, 1]) and how it was cut."""

    image: npt.NDArray[np.float32]
    crop: Crop
    foreground_fraction: float  # share of the input image that is not background


def percentile_99(image: npt.NDArray[np.floating]) -> float:
    """``np.percentile(image, 99)`` (linear interpolation) in a fraction of its time: the
    same two order statistics (they lie in the top 1%, so only the values at or above a
    bound taken from a sparse sample are partitioned; the whole image when that bound would
    leave too few), interpolated in float64 where numpy does it in float32 (1e-8 apart)."""
    flat = np.asarray(image).ravel()
    count = flat.size
    position = 0.99 * (count - 1)
    low = int(position)
    high = min(low + 1, count - 1)
    fraction = position - low
    candidates = flat
    if count >= 4096:
        sample = flat[::16]
        bound = np.partition(sample, int(0.97 * (sample.size - 1)))[int(0.97 * (sample.size - 1))]
        top = flat[flat >= bound]
        if top.size >= count - low:  # every value from rank ``low`` up is in ``top``
            candidates, low, high = top, low - (count - top.size), high - (count - top.size)
    part = np.partition(candidates, [low, high])
    below, above = float(part[low]), float(part[high])
    # numpy's formula (numpy.lib._function_base_impl._lerp)
    step = above - below
    return above - step * (1 - fraction) if fraction >= 0.5 else below + step * fraction


def foreground_box(image: npt.NDArray[np.floating]) -> tuple[int, int, int, int, float]:
    """(top, bottom, left, right) of the non-background area, and its share of pixels."""
    high = percentile_99(image) if image.size else 0.0
    if high <= 0 or float(image.max() - image.min()) < 1e-3:  # empty or uniform
        return 0, image.shape[0], 0, image.shape[1], 0.0
    mask = image > _FOREGROUND_FRACTION * high
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return 0, image.shape[0], 0, image.shape[1], 0.0
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1, float(mask.mean())


def square_crop(image: npt.NDArray[np.floating]) -> tuple[Crop, float]:
    top, bottom, left, right, fraction = foreground_box(image)
    side = max(bottom - top, right - left)
    side = max(8, round(side * (1 + 2 * _MARGIN)))
    centre_r, centre_c = (top + bottom) / 2, (left + right) / 2
    crop = Crop(top=round(centre_r - side / 2), left=round(centre_c - side / 2),
                side=side, image_shape=(int(image.shape[0]), int(image.shape[1])))
    return crop, fraction


def cut(image: npt.NDArray[np.floating], crop: Crop, fill: float = 0.0) -> npt.NDArray[np.float32]:
    """The crop box of ``image`` (zero-padded where the box leaves the image)."""
    out = np.full((crop.side, crop.side), fill, dtype=np.float32)
    rows, cols = image.shape
    r0, c0 = max(crop.top, 0), max(crop.left, 0)
    r1, c1 = min(crop.top + crop.side, rows), min(crop.left + crop.side, cols)
    if r1 > r0 and c1 > c0:
        out[r0 - crop.top:r1 - crop.top, c0 - crop.left:c1 - crop.left] = image[r0:r1, c0:c1]
    return out


def _mirror(index: npt.NDArray[np.int64], size: int) -> npt.NDArray[np.int64]:
    """Indices outside [0, size) folded back as scipy.ndimage's "mirror" mode does."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    folded = np.abs(index) % period
    return np.where(folded >= size, period - folded, folded)


@lru_cache(maxsize=256)
def resize_matrix(source: int, target: int, anti_aliasing: bool) -> npt.NDArray[np.float32]:
    """The (target, source) matrix of scikit-image's order-1 ``resize`` along one axis.

    That resize is a Gaussian pre-filter (when ``anti_aliasing`` and shrinking: sigma =
    (source / target - 1) / 2, cut at 4 sigma) followed by scipy.ndimage's linear ``zoom``
    on pixel centres (``grid_mode``), both with the "mirror" edge; each is linear and acts
    on one axis, so a square resize is two small matrix products. Built here in closed form
    (the same values as scikit-image to float rounding, about 2e-7:
    tests/analysis/test_preprocess.py), it costs a fraction of a millisecond where the spline
    zoom cost one to ten."""
    factor = source / target
    anchors, weights = _linear_taps(source, target)
    sigma = max(0.0, (factor - 1.0) / 2.0) if anti_aliasing else 0.0
    if sigma > 0:
        radius = int(4.0 * sigma + 0.5)
        taps = np.arange(-radius, radius + 1)
        gaussian = np.exp(-0.5 * taps.astype(np.float64) ** 2 / sigma ** 2)
        gaussian /= gaussian.sum()
    else:
        taps, gaussian = np.zeros(1, np.int64), np.ones(1)
    columns = _mirror(anchors[:, :, None] + taps[None, None, :], source)
    rows = np.broadcast_to(np.arange(target)[:, None, None], columns.shape)
    values = weights[:, :, None] * gaussian[None, None, :]
    matrix = np.bincount((rows * source + columns).ravel(), weights=values.ravel(),
                         minlength=target * source).reshape(target, source).astype(np.float32)
    matrix.setflags(write=False)
    return matrix


def resize_square(image: npt.NDArray[np.float32], size: int, anti_aliasing: bool
                  ) -> npt.NDArray[np.float32]:
    """A square image resized to ``size`` x ``size`` as scikit-image's order-1 ``resize``
    (``preserve_range``) does it."""
    matrix = resize_matrix(int(image.shape[0]), size, anti_aliasing)
    return np.asarray(matrix @ image @ matrix.T, dtype=np.float32)


@lru_cache(maxsize=256)
def _linear_taps(source: int, target: int
                 ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """For each output position of a grid-mode linear zoom: its two input neighbours
    (mirrored at the edges) and their weights."""
    coordinates = (np.arange(target) + 0.5) * (source / target) - 0.5
    low = np.floor(coordinates).astype(np.int64)
    fraction = coordinates - low
    anchors = np.stack([_mirror(low, source), _mirror(low + 1, source)], axis=1)
    weights = np.stack([1.0 - fraction, fraction], axis=1).astype(np.float32)
    anchors.setflags(write=False)
    weights.setflags(write=False)
    return anchors, weights


def prepare(image: npt.NDArray[np.floating], size: int = INPUT_SIZE) -> Prepared:
    """Display image in [0, 1] -> square, foreground-cropped, intensity-normalised input."""
    image = np.asarray(image, dtype=np.float32)
    if not np.isfinite(image).all():
        image = np.nan_to_num(image)
    crop, fraction = square_crop(image)
    boxed = cut(image, crop)
    small = resize_square(boxed, size, anti_aliasing=crop.side > size)
    high = percentile_99(small)
    if high > 1e-6:
        small = np.clip(small / high, 0.0, 1.0)
    return Prepared(image=small.astype(np.float32), crop=crop, foreground_fraction=fraction)


def mask_to_input(mask: npt.NDArray[np.generic], crop: Crop, size: int = INPUT_SIZE
                  ) -> npt.NDArray[np.float32]:
    """A mask on the input image -> the network's frame (for training targets)."""
    boxed = cut(np.asarray(mask, dtype=np.float32), crop)
    from skimage.transform import resize  # training only: kept out of the app's start-up

    return resize(boxed, (size, size), order=1, anti_aliasing=False,
                  preserve_range=True).astype(np.float32)


def mask_to_image(mask: npt.NDArray[np.floating], crop: Crop) -> npt.NDArray[np.float32]:
    """A mask in the network's frame -> the input image's pixel grid (for display/output)."""
    boxed = resize_square(np.asarray(mask, dtype=np.float32), crop.side, anti_aliasing=False)
    out = np.zeros(crop.image_shape, dtype=np.float32)
    rows, cols = crop.image_shape
    r0, c0 = max(crop.top, 0), max(crop.left, 0)
    r1, c1 = min(crop.top + crop.side, rows), min(crop.left + crop.side, cols)
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = boxed[r0 - crop.top:r1 - crop.top, c0 - crop.left:c1 - crop.left]
    return out
