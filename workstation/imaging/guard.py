"""The one boundary between a file's bytes and the rest of the study.

Every step that reads something of one file (its header, its grouping keys, its frame
headers, its pixels) runs inside ``file_step``: whatever goes wrong there (a ValueError from
a lazily converted element, a decoder's Rust ``PanicException``, which derives from
BaseException only, a MemoryError) becomes an UnreadableImageError in plain words, which the
loader turns into a Problem naming the file; the other files of the study still load. Only
KeyboardInterrupt, SystemExit and GeneratorExit pass through.

``FileBudget`` bounds the time one file may take: it is checked between steps (and between
the frames of a multi-frame file), which suffices because every step is itself bounded by the
pixel budget checked before any pixel is decoded (imaging.bounds).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from workstation.imaging.errors import UnreadableImageError

# never turned into a Problem: the user (or the interpreter) is stopping
PASS_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit)

# what one file may take, reading to slices; checked between steps (see FileBudget)
FILE_TIME_BUDGET_S = 60.0

HEADER_DAMAGED = "the DICOM header is damaged"
DECODE_FAILED = "the image data could not be decoded"
PREPARE_FAILED = "the image could not be prepared for display"
RASTER_FAILED = "the image file is damaged"


def reason(exc: BaseException) -> str:
    """An exception as a short plain phrase (its message, else its kind)."""
    if isinstance(exc, MemoryError):
        return "not enough memory"
    if isinstance(exc, RecursionError):
        return "its structure is nested too deeply"
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    name = type(exc).__name__
    if not text:
        return name
    return text if isinstance(exc, _SELF_EXPLAINING) else f"{name}: {text}"


_SELF_EXPLAINING = (OSError, ValueError, NotImplementedError, UnreadableImageError)


@contextmanager
def file_step(what: str) -> Iterator[None]:
    """Run one per-file step: any failure becomes ``UnreadableImageError("<what> (<why>)")``.

    An UnreadableImageError (already in plain words) passes unchanged, and so do the
    PASS_THROUGH exceptions.
    """
    try:
        yield
    except (UnreadableImageError, *PASS_THROUGH):
        raise
    except BaseException as exc:  # the boundary: a Rust PanicException is no Exception
        raise UnreadableImageError(f"{what} ({reason(exc)})") from exc


class FileBudget:
    """The time one file may take; ``check`` between steps raises once it is spent."""

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = FILE_TIME_BUDGET_S if seconds is None else seconds
        self.started = time.monotonic()

    def check(self) -> None:
        elapsed = time.monotonic() - self.started
        if elapsed > self.seconds:
            raise UnreadableImageError(
                f"reading the file took longer than {self.seconds:g} s (stopped after "
                f"{elapsed:.0f} s); the file is probably corrupt")
