"""The progress line of an archive run: done of all, rate, and the time left (ETA)."""

from __future__ import annotations

import time
from typing import TextIO


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """Prints one line per finished study; the rate counts only this run's studies (the
    ones skipped as already done cost nothing)."""

    def __init__(self, total: int, skipped: int, stream: TextIO) -> None:
        self.total, self.skipped, self.stream = total, skipped, stream
        self.done = 0
        self.started = time.perf_counter()

    def line(self, label: str, outcome: str) -> str:
        self.done += 1
        elapsed = time.perf_counter() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = self.total - self.skipped - self.done
        eta = duration(left / rate) if rate > 0 else "unknown"
        finished = self.skipped + self.done
        return (f"[{finished}/{self.total} {100 * finished / max(1, self.total):.0f}%] "
                f"{rate:.2f} studies/s, ETA {eta} | {label}: {outcome}")

    def report(self, label: str, outcome: str) -> None:
        self.stream.write(self.line(label, outcome) + "\n")
        self.stream.flush()
