"""Runs cases in a long-lived child process and turns what happened into findings.

``Worker`` keeps one child (tests/fuzz/child.py) and feeds it cases one by one; when the
child dies, hangs past the timeout or hits its memory limit, the case it was working on is
the culprit and a fresh child is started for the next one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fuzz import seeds as seed_corpus
from tests.fuzz.child import short_path
from tests.fuzz.mutate import Case, good_png

CHILD = Path(__file__).with_name("child.py")
REPO = Path(__file__).resolve().parents[2]
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 2048
KINDS = ("exception", "death", "timeout", "memory", "silent-blank", "good-missing",
         "bad-slice", "bad-problem")


@dataclass
class Finding:
    kind: str  # one of KINDS
    signature: str  # the defect class: kind + where
    detail: str  # exception head, signal, stack, ...
    case: Case | None = None
    stack: list[str] = field(default_factory=list)


def _where(frames: Iterable[str]) -> str:
    """``file:function`` of the innermost workstation frame (line numbers move as the code
    is edited; the function names a defect class more stably)."""
    frames = list(frames)
    ours = [f for f in frames if f.startswith("workstation/")]
    inner = frames[-1] if frames else "?"
    inner_short = ":".join(p for i, p in enumerate(inner.split(":")) if i != 1)
    if not ours:
        return inner_short
    mine = ":".join(p for i, p in enumerate(ours[-1].split(":")) if i != 1)
    return mine if ours[-1] == inner else f"{mine} <- {inner_short}"


def _stage(frames: Iterable[str]) -> str:
    """The loader stage an input hung in: the first workstation function below study.py
    (read_dataset, build_series, load_raster_series...). Where a slow loop happens to be
    when the clock runs out varies from input to input; the stage it is in does not."""
    ours = [f for f in frames if f.startswith("workstation/")]
    below = [f for f in ours if not f.startswith("workstation/imaging/study.py")]
    if not below:
        return _where(frames)
    return f"{below[0].split(':')[0]}:{below[0].split(':')[-1]}"


_STACK_LINE = re.compile(r'File "([^"]+)", line (\d+) in (\S+)')


def _stack_from_log(text: str) -> list[str]:
    """The innermost-first frames of the last faulthandler dump in ``text``, outermost
    first (as a traceback lists them)."""
    blocks = re.split(r"(?:Fatal Python error|Timeout \(|Thread 0x|Current thread 0x)", text)
    for block in reversed(blocks):
        frames = _STACK_LINE.findall(block)
        if frames:
            out = []
            for name, line, func in frames:
                out.append(f"{short_path(name)}:{line}:{func}")
            return list(reversed(out))
    return []


class Worker:
    """One child process, restarted whenever an input kills it."""

    def __init__(self, workdir: Path, timeout_s: float = DEFAULT_TIMEOUT_S,
                 memory_mb: int = DEFAULT_MEMORY_MB) -> None:
        self.workdir = workdir
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "child-stderr.log"
        self.proc: subprocess.Popen[str] | None = None
        self.restarts = 0
        self.returncode: int | None = None
        self.code = ""
        self.next_id = 0
        self.good = {"dicom": seed_corpus.good_dicom().read_bytes(), "raster": good_png()}

    # -- child lifecycle
    def _start(self) -> None:
        # one decode worker (when the loader uses a pool), and a pool timeout below ours so
        # that the loader's own hang handling is what the fuzzer sees first
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", PYTHONFAULTHANDLER="1", QT_QPA_PLATFORM="offscreen",
                   WORKSTATION_DECODE_WORKERS="1",
                   WORKSTATION_DECODE_TIMEOUT=str(max(1.0, self.timeout_s / 3)))
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(self.timeout_s), str(self.memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            cwd=str(REPO), env=env, bufsize=1, start_new_session=True)
        line = self._read_line(120.0)
        if not line or "ready" not in line:
            raise RuntimeError(f"the fuzz child did not start; see {self.log_path}")
        self.code = json.loads(line)["code"]

    def _read_line(self, timeout: float) -> str | None:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None  # no answer in time
        return self.proc.stdout.readline()  # "" at end of file: the child died

    def _kill(self) -> None:
        """Stop the child (when still running) and keep its exit status."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.returncode = self.proc.wait()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # its decoder workers, if any
            self.proc = None
            self.log.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except Exception:
                pass
        self._kill()

    # -- running one case
    def write_case(self, case: Case) -> tuple[Path, list[str], str]:
        folder = self.workdir / "case"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for name, data in case.files.items():
            (folder / name).write_bytes(data)
        good = folder / ("good.dcm" if case.good == "dicom" else "good.png")
        good.write_bytes(self.good[case.good])
        paths = sorted(str(p) for p in folder.iterdir()) if case.as_files else [str(folder)]
        return folder, paths, str(good)

    def run(self, case: Case, selftest: str = "") -> tuple[list[Finding], dict[str, Any]]:
        """The findings of one case ([] when it was handled well) and the child's result.

        ``selftest`` ("raise", "abort", "segfault", "hang", "alloc") makes the child
        misbehave instead of loading, to test the harness itself."""
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self._kill()
            self._start()
            self.restarts += 1
        assert self.proc is not None and self.proc.stdin is not None
        _, paths, good = self.write_case(case)
        self.next_id += 1
        log_offset = self.log_path.stat().st_size
        try:
            self.proc.stdin.write(json.dumps({"id": self.next_id, "paths": paths,
                                              "good": good, "selftest": selftest}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        line = self._read_line(self.timeout_s)
        if line:
            result = json.loads(line)
            return self._classify(result, case), result
        timed_out = line is None
        if timed_out:
            time.sleep(0.05)  # let faulthandler's dump reach the log
        self._kill()
        code = None if timed_out else self.returncode
        text = self.log_path.read_bytes()[log_offset:].decode("utf-8", "replace")
        stack = _stack_from_log(text)
        tail = "\n".join(text.strip().splitlines()[-12:])
        if timed_out:
            return [Finding("timeout", f"timeout: {_stage(stack)}",
                            f"no answer within {self.timeout_s:g} s; at the time: "
                            f"{_where(stack)}", case, stack)], {}
        memory_words = ("MemoryError", "bad_alloc", "Cannot allocate", "out of memory",
                        "mmap", "failed to allocate")
        if any(w in text for w in memory_words):
            return [Finding("memory", f"memory: {_where(stack)}",
                            f"child died (exit {code}) out of memory:\n{tail}", case, stack)], {}
        name = signal.Signals(-code).name if code is not None and code < 0 else f"exit {code}"
        return [Finding("death", f"death: {name} in {_where(stack)}",
                        f"child died ({name}):\n{tail}", case, stack)], {}

    def _classify(self, result: dict[str, Any], case: Case) -> list[Finding]:
        status = result.get("status")
        frames = result.get("frames", [])
        if status == "exception":
            head = f"{result['type']}: {result['message']}"
            return [Finding("exception", f"exception: {result['type']} in {_where(frames)}",
                            head, case, frames)]
        if status == "memory":
            head = f"{result['type']}: {result['message']}"
            return [Finding("memory", f"memory: {_where(frames)}", head, case, frames)]
        out = []
        for f in result.get("findings", []):
            detail = f["detail"]
            if f["kind"] == "silent-blank":
                sig = f"silent-blank: {f.get('sig', '')}"
            elif f["kind"] == "good-missing":
                sig = "good-missing: " + re.sub(r"\d+", "N", detail.split("(")[0])[:80]
            else:
                sig = f"{f['kind']}: " + (f.get("sig") or re.sub(r"\d+", "N", detail)[:60])
            out.append(Finding(f["kind"], sig, detail, case))
        return out
