"""Key-image pictures for the report and the window: plain, and with the suspect region.

The outline is white with a black rim, so it stays visible on any grey level and when the
page is printed in greyscale. The grey levels are the viewer's: a slice's display image
(``imaging.pixels.slice_image``, which its ``image`` is at the file's window) in the same
8-bit conversion (``imaging.pixels.to_8bit``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy import ndimage

from workstation.imaging.pixels import pixel_aspect, slice_image, to_8bit
from workstation.imaging.series import Slice, Window

OUTLINE_THRESHOLD = 0.5


def square_pixels(picture: Image.Image,
                  pixel_spacing: tuple[float, float] | None) -> Image.Image:
    """``picture`` resampled to square pixels when its Pixel Spacing is not square, so a
    print shows the anatomy at its proportions (as the viewer paints it)."""
    aspect = pixel_aspect(pixel_spacing)
    if abs(aspect - 1.0) < 1e-3:
        return picture
    width, height = picture.size
    if aspect > 1:
        size = (width, max(1, round(height * aspect)))
    else:
        size = (max(1, round(width / aspect)), height)
    return picture.resize(size, Image.Resampling.BILINEAR)


def grey_picture(image: npt.NDArray[np.floating],
                 pixel_spacing: tuple[float, float] | None = None) -> Image.Image:
    """A display image in [0, 1] (e.g. ``Slice.image``) as the 8-bit picture printed, at
    square pixels when ``pixel_spacing`` (the series' Pixel Spacing) is given."""
    return square_pixels(Image.fromarray(to_8bit(image), mode="L"), pixel_spacing)


def slice_picture(image: Slice, window: Window | None = None,
                  pixel_spacing: tuple[float, float] | None = None) -> Image.Image:
    """Slice ``image`` as the viewer shows it at ``window`` (default: the file's)."""
    return grey_picture(slice_image(image, window), pixel_spacing)


def outline(mask: npt.NDArray[np.floating], width: int = 1) -> npt.NDArray[np.bool_]:
    region = np.asarray(mask) >= OUTLINE_THRESHOLD
    if not region.any():
        return region
    grown = ndimage.binary_dilation(region, iterations=width)
    return grown & ~ndimage.binary_erosion(region, iterations=width)


def outlined_picture(image: npt.NDArray[np.floating], mask: npt.NDArray[np.floating],
                     pixel_spacing: tuple[float, float] | None = None) -> Image.Image:
    """The image with the suspect region outlined (white line, black rim), at square
    pixels when ``pixel_spacing`` is given."""
    scale = max(1, 256 // max(image.shape))
    grey = np.kron(np.clip(image, 0, 1), np.ones((scale, scale))) if scale > 1 else image
    big_mask = np.kron(mask, np.ones((scale, scale))) if scale > 1 else mask
    line = outline(big_mask, width=max(1, scale))
    rim = ndimage.binary_dilation(line, iterations=1) & ~line
    rgb = np.repeat(to_8bit(grey)[..., None], 3, axis=2)
    rgb[rim] = (0, 0, 0)
    rgb[line] = (255, 255, 255)
    return square_pixels(Image.fromarray(rgb, mode="RGB"), pixel_spacing)
