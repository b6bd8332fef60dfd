"""The child process that runs ``load_study`` on one input after another.

Run as ``python tests/fuzz/child.py TIMEOUT_S MEMORY_MB``. Requests arrive one JSON line
each on stdin; results leave one JSON line each on the protocol pipe (the original stdout;
fd 1 is pointed at stderr so that nothing a library prints can break the protocol). The
parent kills and restarts this process when it dies, hangs or runs out of memory; the input
it was working on is the culprit. faulthandler writes the Python stack of a crash, and of
an input that runs past ``TIMEOUT_S - 1``, to stderr, which the parent keeps in a log.
"""

from __future__ import annotations

import faulthandler
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

BLANK_WORDS = ("uniform", "blank", "window", "no visible", "constant", "nothing", "flat",
               "invisible", "shown as decoded", "saturat", "empty")


def short_path(name: str) -> str:
    """``workstation/...``, or the path inside site-packages or the standard library."""
    if "/workstation/" in name:
        return "workstation/" + name.rsplit("/workstation/", 1)[1]
    for marker in ("/site-packages/", "/lib/python3.11/"):
        if marker in name:
            return name.split(marker, 1)[1]
    return name


def _frames(tb: Any) -> list[str]:
    out = []
    for frame in traceback.extract_tb(tb):
        name = short_path(frame.filename)
        out.append(f"{name}:{frame.lineno}:{frame.name}")
    return out


def _check(study: Any, good: str) -> list[dict[str, str]]:
    import numpy as np

    from workstation.imaging import Severity

    findings: list[dict[str, str]] = []
    sources = {s.source for series in study.series for s in series.slices}
    if good not in sources:
        about = [p.message for p in study.problems if p.path == good]
        for series in study.series:
            about += [p.message for p in series.problems if p.path == good]
        findings.append(dict(kind="good-missing", detail="; ".join(about)[:300] or
                             "not in any series and no problem about it"))
    for problem in study.problems:
        if not isinstance(problem.message, str) or not problem.message.strip() \
                or "Traceback" in problem.message:
            findings.append(dict(kind="bad-problem", detail=repr(problem.message)[:300]))
    for series in study.series:
        for s in series.slices:
            image, raw = np.asarray(s.image), np.asarray(s.raw)
            if image.ndim != 2 or image.shape != raw.shape or image.size == 0:
                what = ("empty image" if image.size == 0 else "not 2-D" if image.ndim != 2
                        else "image and raw differ in shape")
                findings.append(dict(kind="bad-slice", detail=f"{what}: image {image.shape} "
                                     f"raw {raw.shape} from {Path(s.source).name}",
                                     sig=what))
                continue
            if not np.all(np.isfinite(image)) or image.min() < 0 or image.max() > 1:
                findings.append(dict(kind="bad-slice", detail="image values outside [0, 1] "
                                     f"or not finite in {Path(s.source).name}: "
                                     f"{float(np.nanmin(image)):.4g}..{float(np.nanmax(image)):.4g}"
                                     f", window {s.window.source}/{s.window.function}"
                                     f"{' lut' if s.window.lut else ''}",
                                     sig="image values outside [0, 1] or not finite"))
                continue
            values = raw[~np.isnan(raw)]
            raw_varies = values.size > 1 and values.min() != values.max()
            if raw_varies and image.min() == image.max():
                words = list(s.warnings) + [p.message for p in series.problems
                                            if p.path == s.source
                                            and p.severity is Severity.WARNING]
                if not any(w in text.lower() for text in words for w in BLANK_WORDS):
                    findings.append(dict(
                        kind="silent-blank",
                        detail=f"{Path(s.source).name}: image constant {float(image.min())}, "
                               f"raw {float(values.min()):.4g}..{float(values.max()):.4g}, "
                               f"window {s.window.source}/{s.window.function} c="
                               f"{s.window.center:.4g} w={s.window.width:.4g}"
                               f"{' lut' if s.window.lut else ''}, {s.photometric}",
                        sig=f"{series.kind}:{s.window.source}/{s.window.function}"
                            f"{'+lut' if s.window.lut else ''}"))
    return findings


def _selftest(what: str) -> None:
    """Misbehave on purpose, so that the harness's own test sees each kind caught."""
    if what == "raise":
        raise RuntimeError("selftest: an exception escaping load_study")
    if what == "abort":
        os.abort()
    if what == "segfault":
        import ctypes

        ctypes.string_at(0)
    if what == "hang":
        time.sleep(3600)
    if what == "alloc":
        blocks = []
        while True:
            blocks.append(bytearray(256 * 1024 * 1024))


def main() -> None:
    timeout_s, memory_mb = float(sys.argv[1]), int(sys.argv[2])
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    faulthandler.enable()
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    sys.path.insert(0, os.environ.get("FUZZ_CODE_ROOT") or str(Path(__file__).resolve().parents[2]))
    import workstation
    from workstation.imaging import load_study

    protocol.write(json.dumps({"ready": os.getpid(), "code": workstation.__file__}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        print(f"=== input {request['id']}", file=sys.stderr, flush=True)
        faulthandler.dump_traceback_later(max(timeout_s - 1.0, 0.5), exit=False)
        start = time.perf_counter()
        result: dict[str, Any] = {"id": request["id"]}
        try:
            if request.get("selftest"):
                _selftest(request["selftest"])
            study = load_study(request["paths"])
        except MemoryError as exc:
            result.update(status="memory", type=type(exc).__name__, message=str(exc)[:300],
                          frames=_frames(exc.__traceback__))
        except BaseException as exc:  # every escape is a finding, SystemExit included
            result.update(status="exception", type=type(exc).__name__,
                          message=str(exc)[:300], frames=_frames(exc.__traceback__))
        else:
            try:
                result.update(status="ok", findings=_check(study, request["good"]),
                              series=len(study.series),
                              slices=sum(len(s.slices) for s in study.series),
                              problems=len(study.problems))
            except MemoryError as exc:
                result.update(status="memory", type="MemoryError", message=str(exc)[:300],
                              frames=_frames(exc.__traceback__))
            del study
        faulthandler.cancel_dump_traceback_later()
        result["seconds"] = round(time.perf_counter() - start, 4)
        result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        protocol.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
