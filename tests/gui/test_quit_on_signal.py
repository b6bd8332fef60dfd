"""A window ended by SIGTERM (a logout) quits as File > Quit does: its decoder processes
go with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def _children(pid: int) -> set[int]:
    """Every living descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = dict(line.split(":\t", 1) for line in
                          (entry / "status").read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("State", "").startswith("Z"):
            continue
        parents[int(entry.name)] = int(fields.get("PPid", "0"))
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _decoders(pid: int) -> set[int]:
    """The descendants of ``pid`` that are multiprocessing processes (the decoder pool's
    forkserver or spawned workers, and what they fork). Other children do not count: the
    start-up platform check runs ldd (a shell and the loader) before the window installs
    its signal handlers, and a SIGTERM then ends it by the default action."""
    found = set()
    for child in _children(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing" in command:
            found.add(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state


def test_sigterm_stops_the_window_and_its_decoder_processes(tmp_path: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "BRAIN_TRIAGE_CONFIG_DIR": str(tmp_path / "config"),
           "BRAIN_TRIAGE_DATA_DIR": str(tmp_path / "data")}
    window = subprocess.Popen([sys.executable, "-m", "workstation", "gui"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        children: set[int] = set()
        while time.monotonic() < deadline and len(children) < 2:
            assert window.poll() is None, window.stderr.read() if window.stderr else ""
            children = _decoders(window.pid)
            time.sleep(0.2)
        assert children, "the window started no decoder processes"
        window.send_signal(signal.SIGTERM)
        assert window.wait(timeout=60) == 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.2)
        assert not [p for p in children if _alive(p)], "decoder processes outlived the window"
    finally:
        if window.poll() is None:
            window.kill()
            window.wait()
