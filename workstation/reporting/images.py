"""Key-image pictures for the report and the window: plain, and with the suspect region.

The outline is white with a black rim, so it stays visible on any grey level and when the
page is printed in greyscale.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy import ndimage

OUTLINE_THRESHOLD = 0.5


def grey_picture(image: npt.NDArray[np.floating]) -> Image.Image:
    return Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8), mode="L")


def outline(mask: npt.NDArray[np.floating], width: int = 1) -> npt.NDArray[np.bool_]:
    region = np.asarray(mask) >= OUTLINE_THRESHOLD
    if not region.any():
        return region
    grown = ndimage.binary_dilation(region, iterations=width)
    return grown & ~ndimage.binary_erosion(region, iterations=width)


def outlined_picture(image: npt.NDArray[np.floating], mask: npt.NDArray[np.floating]
                     ) -> Image.Image:
    """The image with the suspect region outlined (white line, black rim)."""
    scale = max(1, 256 // max(image.shape))
    grey = np.kron(np.clip(image, 0, 1), np.ones((scale, scale))) if scale > 1 else image
    big_mask = np.kron(mask, np.ones((scale, scale))) if scale > 1 else mask
    line = outline(big_mask, width=max(1, scale))
    rim = ndimage.binary_dilation(line, iterations=1) & ~line
    rgb = np.repeat((np.clip(grey, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    rgb[rim] = (0, 0, 0)
    rgb[line] = (255, 255, 255)
    return Image.fromarray(rgb, mode="RGB")
