"""Decoding DICOM pixel data with a guard against blank decodes.

Compressed transfer syntaxes are decoded through pydicom's plugins (pylibjpeg,
pylibjpeg-openjpeg, pylibjpeg-rle, python-gdcm, Pillow). A decoder that silently returns a
uniform frame for data that clearly holds an image is treated as a failure and the next
available plugin is tried. Those native decoders run in worker processes (imaging.isolated):
a codec that aborts or segfaults fails its own file, not the application.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import UID

from workstation.imaging.errors import UnreadableImageError
from workstation.imaging.pixels import is_uniform

# An encoded frame smaller than this many bytes per pixel may honestly be uniform
# (lossless JPEG of a constant image codes about 1 bit per pixel, RLE and JPEG 2000 far
# less); above it, a uniform decode means the decoder failed.
_MIN_CONTENT_BYTES_PER_PIXEL = 0.2
_MIN_CONTENT_BYTES = 256

DecodeFunction = Callable[[Dataset, str], npt.NDArray[np.generic]]


def _decode_with_plugin(ds: Dataset, plugin: str) -> npt.NDArray[np.generic]:
    return pixel_array(ds, decoding_plugin=plugin)


# Replaceable in tests to simulate a decoder that returns blank frames.
decode_with_plugin: DecodeFunction = _decode_with_plugin


@dataclass(frozen=True)
class Decoded:
    """Decoded pixels as (frames, rows, cols[, samples]) plus how they were obtained."""

    frames: npt.NDArray[np.generic]
    plugin: str
    warnings: tuple[str, ...] = ()


def number_of_frames(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def _as_frames(arr: npt.NDArray[np.generic], ds: Dataset) -> npt.NDArray[np.generic]:
    samples = int(ds.get("SamplesPerPixel") or 1)
    single_frame_ndim = 2 if samples == 1 else 3
    return arr[np.newaxis] if arr.ndim == single_frame_ndim else arr


def _encoded_frame_sizes(ds: Dataset) -> list[int]:
    try:
        return [
            len(f) for f in generate_frames(ds.PixelData, number_of_frames=number_of_frames(ds))
        ]
    except Exception:  # malformed encapsulation: the decoders will say more
        return []


def _suspect_blank_frames(frames: npt.NDArray[np.generic], encoded_sizes: list[int]) -> list[int]:
    """Indices of frames that decoded uniform although their encoded data holds content."""
    suspects = []
    pixels = int(np.prod(frames.shape[1:3]))
    for index, frame in enumerate(frames):
        if not is_uniform(frame):
            continue
        size = encoded_sizes[index] if index < len(encoded_sizes) else 0
        if size >= max(_MIN_CONTENT_BYTES, _MIN_CONTENT_BYTES_PER_PIXEL * pixels):
            suspects.append(index)
    return suspects


def transfer_syntax(ds: Dataset) -> UID | None:
    return ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None


def is_compressed(ds: Dataset) -> bool:
    """An encapsulated transfer syntax (False when it is absent or unknown)."""
    ts = transfer_syntax(ds)
    try:
        return isinstance(ts, UID) and bool(ts.is_compressed)
    except ValueError:  # not a transfer syntax: decode_in_process words the error
        return False


def decode(ds: Dataset) -> Decoded:
    """Decode every frame of ``ds``; raise UnreadableImageError with the reason if none can.

    Compressed data is decoded by the native plugins in a worker process (imaging.isolated),
    so that a codec's abort or segfault fails that file only ("could not decode (decoder
    crashed)"); uncompressed data, ``WORKSTATION_DECODE_IN_PROCESS=1``, and a replaced
    ``decode_with_plugin`` (tests: the worker cannot see the replacement) stay in-process.
    """
    if is_compressed(ds) and decode_with_plugin is _decode_with_plugin:
        from workstation.imaging import isolated

        if isolated.enabled():
            return isolated.decode(ds)
    return decode_in_process(ds)


def prefetch(datasets: Iterable[Dataset]) -> None:
    """Start decoding ``datasets`` (in the order they will be passed to ``decode``) in the
    worker processes, in batches; ``decode`` then picks up each result. Without it each
    compressed file is one round trip to a worker."""
    if decode_with_plugin is not _decode_with_plugin:
        return
    from workstation.imaging import isolated

    if isolated.enabled():
        isolated.prefetch(datasets)


def decode_in_process(ds: Dataset) -> Decoded:
    """``decode`` in this process: the fallback chain over the installed plugins."""
    ts = transfer_syntax(ds)
    if ts is None or not ts.is_compressed:
        try:
            return Decoded(_as_frames(pixel_array(ds), ds), plugin="native")
        except Exception as exc:
            raise UnreadableImageError(
                f"the image data could not be decoded: {_plain_reason(exc)}") from exc

    try:
        plugins = list(get_decoder(ts).available_plugins)
    except Exception:
        plugins = []
    if not plugins:
        raise UnreadableImageError(
            f"no decoder is installed for the compression '{ts.name}'"
        )
    encoded_sizes = _encoded_frame_sizes(ds)
    failures: list[str] = []
    best: tuple[Decoded, int] | None = None
    for plugin in plugins:
        try:
            frames = _as_frames(decode_with_plugin(ds, plugin), ds)
        except Exception as exc:
            failures.append(f"{plugin}: {_plain_reason(exc)}")
            continue
        suspects = _suspect_blank_frames(frames, encoded_sizes)
        if not suspects:
            warnings = tuple(f"decoder {f}" for f in failures)
            return Decoded(frames, plugin=plugin, warnings=warnings)
        failures.append(f"{plugin}: returned a blank image for {len(suspects)} frame(s)")
        if best is None or len(suspects) < best[1]:
            best = (Decoded(frames, plugin=plugin), len(suspects))
    if best is not None and best[1] < len(best[0].frames):
        decoded, count = best
        note = (
            f"{count} frame(s) decoded as uniform images by every decoder "
            f"({', '.join(plugins)}); shown as decoded"
        )
        return Decoded(decoded.frames, decoded.plugin, (note,))
    raise UnreadableImageError(
        f"could not decode the '{ts.name}' image data: " + "; ".join(failures)
    )


def _plain_reason(exc: BaseException) -> str:
    """The informative part of a decoder's message, without pydicom's preamble lines."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    details = [line for line in lines if not line.endswith(":")]
    text = "; ".join(details) if details else lines[0]
    lowered = text.lower()
    if "less than expected" in lowered or ("length" in lowered and "pixel data" in lowered):
        return f"the pixel data is truncated or incomplete ({text})"
    return text
