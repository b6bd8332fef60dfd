"""PNG / JPEG / TIFF / BMP files -> slices (8- or 16-bit, grey, RGB or palette)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from workstation.imaging.bounds import MAX_DIMENSION, MAX_IMAGES_PER_FILE, MAX_PIXELS_PER_FILE
from workstation.imaging.errors import UnreadableImageError
from workstation.imaging.guard import RASTER_FAILED, FileBudget, file_step
from workstation.imaging.naming import natural_key
from workstation.imaging.pixels import (
    blank_window_warning,
    display_image,
    frozen,
    is_uniform,
    percentile_window,
    to_greyscale,
)
from workstation.imaging.series import Problem, Series, SeriesInfo, Severity, Slice, Window

RASTER_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
_FULL_8_BIT = Window(center=127.5, width=255.0, source="full-range")


def is_raster(path: Path) -> bool:
    return path.suffix.lower() in RASTER_SUFFIXES


def _frame_to_array(frame: Image.Image) -> tuple[np.ndarray, list[str], bool]:
    """Greyscale array, notes for the user, and whether the source was 8 bits a sample."""
    notes: list[str] = []
    mode = frame.mode
    if mode in ("P", "PA", "CMYK", "YCbCr", "HSV", "LAB"):
        frame = frame.convert("RGB")
        mode = "RGB"
    if mode in ("LA", "La"):
        frame = frame.getchannel(0)
        mode = "L"
    if mode == "1":
        frame = frame.convert("L")
        mode = "L"
    arr = np.asarray(frame)
    eight_bit = arr.dtype == np.uint8
    if arr.ndim == 3:
        channels = arr[..., :3].astype(np.int32)
        if not (np.array_equal(channels[..., 0], channels[..., 1])
                and np.array_equal(channels[..., 1], channels[..., 2])):
            notes.append("colour image shown in greyscale")
        arr = to_greyscale(arr)
    return arr, notes, eight_bit


def read_raster_slices(path: Path) -> tuple[list[Slice], list[str]]:
    """All frames of one image file as slices (several for a multi-page TIFF).

    The file's one guarded step (imaging.guard): any failure is an UnreadableImageError in
    plain words. Every page's size is checked against the budgets of imaging.bounds before
    the page is decoded, and the time budget between pages.
    """
    budget = FileBudget()
    with file_step(RASTER_FAILED), warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return _read_pages(path, budget)


_PIL_FAILURES = (UnidentifiedImageError, Image.DecompressionBombError,
                 Image.DecompressionBombWarning, SyntaxError, ValueError, OSError)


def _read_pages(path: Path, budget: FileBudget) -> tuple[list[Slice], list[str]]:
    try:
        if path.stat().st_size == 0:
            raise UnreadableImageError("the file is empty (0 bytes)")
        image = Image.open(path)
    except UnreadableImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise UnreadableImageError(_pil_reason(exc)) from exc
    except OSError as exc:
        raise UnreadableImageError(f"cannot be opened ({exc})") from exc
    with image:
        slices: list[Slice] = []
        notes: list[str] = []
        pixels = 0
        try:
            for index, frame in enumerate(ImageSequence.Iterator(image)):
                budget.check()
                pixels += _check_page(frame, index)
                if pixels > MAX_PIXELS_PER_FILE or index >= MAX_IMAGES_PER_FILE:
                    raise UnreadableImageError(
                        f"the file's {index + 1} pages hold more pixels than this "
                        f"workstation accepts in one file ({MAX_PIXELS_PER_FILE:,})")
                arr, frame_notes, eight_bit = _frame_to_array(frame)
                notes.extend(n for n in frame_notes if n not in notes)
                slices.append(_make_slice(arr, str(path), index, frame_notes, eight_bit))
        except UnreadableImageError:
            raise
        except _PIL_FAILURES as exc:
            raise UnreadableImageError(_pil_reason(exc)) from exc
    if not slices:
        raise UnreadableImageError("the file holds no image")
    return slices, notes


def _check_page(frame: Image.Image, index: int) -> int:
    """The page's pixel count, after refusing a page whose size is empty or too large."""
    width, height = frame.size
    page = f"page {index + 1}: " if index else ""
    if width <= 0 or height <= 0:
        raise UnreadableImageError(f"{page}the image size {width}x{height} is empty")
    if width > MAX_DIMENSION or height > MAX_DIMENSION or width * height > MAX_PIXELS_PER_FILE:
        raise UnreadableImageError(
            f"{page}the image size {width}x{height} is larger than this workstation accepts "
            f"({MAX_DIMENSION} pixels a side)"
        )
    if Image.MAX_IMAGE_PIXELS is not None and width * height > Image.MAX_IMAGE_PIXELS:
        # Pillow checks only the first page of a file against its bomb limit
        raise UnreadableImageError(
            f"{page}the image size {width}x{height} is far too large to open safely "
            "(decompression bomb guard)")
    return int(width) * int(height)


def _make_slice(arr: np.ndarray, source: str, index: int, notes: list[str],
                eight_bit: bool) -> Slice:
    raw = np.asarray(arr, dtype=np.float32)
    window = _FULL_8_BIT if eight_bit else percentile_window(raw)
    warnings_ = list(notes)
    image = display_image(raw, window)
    if is_uniform(raw):
        warnings_.append("the image is uniform (no visible content)")
    else:
        blank = blank_window_warning(raw, image, window)
        if blank is not None:
            warnings_.append(blank)
    return Slice(image=frozen(image), raw=frozen(raw), window=window,
                 source=source, frame=index if index else None, warnings=tuple(warnings_))


def _pil_reason(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, UnidentifiedImageError):
        return "not a readable image (the file is damaged or in an unknown format)"
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return "the image is far too large to open safely (decompression bomb guard)"
    if "truncated" in text.lower():
        return "the image file is truncated (incomplete download or copy?)"
    return f"the image could not be decoded ({text})"


def load_raster_series(paths: Sequence[Path], source: Path) -> tuple[Series | None, list[Problem]]:
    """One series from image files, in natural name order; bad files become problems."""
    slices: list[Slice] = []
    problems: list[Problem] = []
    for path in sorted(paths, key=lambda p: natural_key(p.name)):
        try:
            file_slices, notes = read_raster_slices(path)
        except UnreadableImageError as exc:
            problems.append(Problem(str(path), str(exc)))
            continue
        slices.extend(file_slices)
        problems.extend(Problem(str(path), note, Severity.WARNING) for note in notes)
    if not slices:
        return None, problems
    description = source.name if source.is_dir() else source.stem
    return Series(
        source=str(source), series_uid=None,
        info=SeriesInfo(series_description=description),
        slices=tuple(slices), kind="raster",
        transfer_syntaxes=tuple(sorted({Path(s.source).suffix.lower().lstrip(".") or "image"
                                        for s in slices})),
        problems=tuple(problems),
    ), problems
