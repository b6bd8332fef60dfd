"""Refusing absurd work before any of it is done: what a header may promise.

A 10 KB file can claim millions of frames or of mosaic tiles; each check here compares
what the header promises with what this workstation accepts and with what the file's bytes
can hold, and raises UnreadableImageError in plain words before a pixel is allocated.
``check_pixel_work`` is called on every DICOM file right after its header is read (and may
be called again by whatever decodes, e.g. a worker process).

The budgets:

* a side: at most MAX_DIMENSION pixels; a file: at most MAX_PIXELS_PER_FILE samples
  (frames x rows x columns x samples per pixel) and MAX_IMAGES_PER_FILE 2D images (frames,
  or the tiles of a mosaic);
* uncompressed pixel data must hold the bytes the header promises
  (frames x rows x columns x samples x bits allocated / 8);
* encapsulated (compressed) pixel data holds at least one 8-byte item header per frame, so
  NumberOfFrames may not exceed its length / 8;
* a Siemens mosaic or UIH grid tile is at least MIN_TILE_SIDE pixels a side, so a picture of
  R x C pixels holds at most (R / MIN_TILE_SIDE) x (C / MIN_TILE_SIDE) tiles.
"""

from __future__ import annotations

import math
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from workstation.imaging.errors import UnreadableImageError

# Larger than any MR or CT matrix; a header claiming more is corrupt or hostile.
MAX_DIMENSION = 16384
MAX_PIXELS_PER_FILE = 1 << 28  # 268 M samples (about 512 MB as 16-bit)
# 2D images one file may become (an enhanced fMRI file of 64 slices x 500 time points holds
# 32 000): each costs a slice's worth of work whatever its size
MAX_IMAGES_PER_FILE = 1 << 15
MIN_TILE_SIDE = 4  # pixels a side of one mosaic / grid tile
_ITEM_HEADER_BYTES = 8  # (FFFE,E000) tag and length of each encapsulated fragment


def header_int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    """An integer element of the image pixel module, or a plain UnreadableImageError."""
    value: Any = ds.get(keyword)
    if value is None or value == "":
        if default is None:
            raise UnreadableImageError(f"the image has no {keyword}: its size is unknown")
        return default
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    try:
        if isinstance(value, bytes | float) or value is None:
            raise TypeError
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise UnreadableImageError(
            f"the header's {keyword} ({str(ds.get(keyword))[:40]!r}) is not a whole number; "
            "the header is damaged") from None


def check_pixel_work(ds: Dataset) -> None:
    """Refuse ``ds`` when its header promises more pixels than accepted or than it holds."""
    rows, cols = header_int(ds, "Rows"), header_int(ds, "Columns")
    frames = header_int(ds, "NumberOfFrames", 1) if "NumberOfFrames" in ds else 1
    samples = header_int(ds, "SamplesPerPixel", 1)
    bits = header_int(ds, "BitsAllocated", 16)
    if rows <= 0 or cols <= 0:
        raise UnreadableImageError(f"the image size {rows}x{cols} is empty")
    if frames < 1:
        frames = 1  # 0 or negative: read as one frame, as pydicom does
    if not 1 <= samples <= 4 or (bits != 1 and (bits % 8 or not 8 <= bits <= 64)):
        raise UnreadableImageError(
            f"the header's pixel format ({samples} sample(s) of {bits} bits) is not one a "
            "DICOM image can have; the header is damaged")
    if rows > MAX_DIMENSION or cols > MAX_DIMENSION or \
            rows * cols * frames * samples > MAX_PIXELS_PER_FILE:
        raise UnreadableImageError(
            f"the image size {cols}x{rows} x {frames} frame(s) is larger than this workstation "
            f"accepts ({MAX_DIMENSION} pixels a side, {MAX_PIXELS_PER_FILE:,} samples a "
            "file); the header is probably corrupt")
    if frames > MAX_IMAGES_PER_FILE:
        raise UnreadableImageError(
            f"the header promises {frames:,} frames, more than this workstation accepts in "
            f"one file ({MAX_IMAGES_PER_FILE:,}); the header is probably corrupt")
    data = ds.get("PixelData")
    if data is None:
        return
    length = len(data)
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    compressed = bool(getattr(syntax, "is_compressed", False)) if syntax is not None else False
    if compressed:
        if frames > length // _ITEM_HEADER_BYTES:
            raise UnreadableImageError(
                f"the header promises {frames:,} frames, more than the {length:,} bytes of "
                "compressed pixel data can hold; the header is corrupt or the file truncated")
        return
    per_pixel = samples
    photometric = str(ds.get("PhotometricInterpretation") or "").strip().upper()
    if samples == 3 and photometric in ("YBR_FULL_422", "YBR_PARTIAL_422"):
        per_pixel = 2  # two chroma samples shared by each pair of pixels
    expected = math.ceil(rows * cols * frames * per_pixel * bits / 8)
    if length < expected:
        raise UnreadableImageError(
            f"the pixel data holds {length:,} bytes, fewer than the {expected:,} its header "
            f"promises ({cols}x{rows} x {frames} frame(s) of {bits} bits); the file is "
            "truncated or its header is corrupt")


def check_tiles(count: int, rows: int, cols: int, down: int, across: int, what: str) -> None:
    """Refuse a mosaic / grid of ``count`` tiles (``down`` x ``across``) that the picture of
    ``rows`` x ``cols`` pixels cannot hold at MIN_TILE_SIDE pixels a tile side."""
    if count > MAX_IMAGES_PER_FILE or rows // max(down, 1) < MIN_TILE_SIDE \
            or cols // max(across, 1) < MIN_TILE_SIDE:
        raise UnreadableImageError(
            f"the {what} header promises {_count(count)} images, more than its {cols}x{rows} "
            f"picture holds (tiles of at least {MIN_TILE_SIDE}x{MIN_TILE_SIDE} pixels); the "
            "header is probably corrupt")


def tiles_fit(count: int, rows: int, cols: int, down: int, across: int) -> bool:
    """Whether ``check_tiles`` accepts the layout."""
    try:
        check_tiles(count, rows, cols, down, across, "")
    except UnreadableImageError:
        return False
    return True


def _count(count: int) -> str:
    return f"{count:,}" if count < 10**9 else f"{float(count):.3g}"
