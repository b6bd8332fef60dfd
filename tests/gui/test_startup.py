"""``workstation gui`` on a desktop where Qt's display plugin cannot start: a plain message
naming the missing packages and exit status 2, where Qt alone aborts with a core dump.

The machine that runs the tests has the xcb libraries, so the broken desktop is made
honestly: a copy of PySide6's own ``libqxcb.so``, found through ``QT_PLUGIN_PATH`` as Qt finds
it, whose loader flag DF_1_NODEFLIB keeps the dynamic loader out of the system library
folders, beside a ``lib`` folder (its RUNPATH, ``$ORIGIN/../../lib``) holding every library it
needs except ``libxcb-cursor.so.0``. The loader then misses exactly that library, as on a
fresh desktop without the ``libxcb-cursor0`` package; a control run shows Qt aborting on it.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.gui import elf
from workstation.gui import platform_check
from workstation.gui.platform_check import (
    DESKTOP_PACKAGES,
    PlatformCheck,
    failure_message,
    install_line,
    requested_platforms,
)

HIDDEN = "libxcb-cursor.so.0"
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux plugins")


def no_core_files() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_bare(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Like ``env -i NAME=VALUE... python ...``: nothing of this process's environment."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120,
                          check=False, env=env, cwd=tmp_path, preexec_fn=no_core_files)


def gui(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_bare(["-m", "workstation", "gui", *args], tmp_path,
                    PYTHONPATH=str(REPO), HOME=str(tmp_path), **env)


def real_xcb_plugin() -> Path:
    plugin = platform_check.default_plugin_dir() / "libqxcb.so"
    if not plugin.is_file():
        pytest.skip("this PySide6 has no xcb plugin")
    return plugin


@pytest.fixture(scope="module")
def broken_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plugin folder (for QT_PLUGIN_PATH) whose xcb plugin cannot find libxcb-cursor."""
    if not sys.platform.startswith("linux") or shutil.which("ldd") is None:
        pytest.skip("needs Linux and ldd")
    plugin = real_xcb_plugin()
    if HIDDEN not in elf.needed(plugin) or elf.runpath(plugin) != "$ORIGIN/../../lib":
        pytest.skip("this xcb plugin is not linked as the test expects")
    root = tmp_path_factory.mktemp("broken-desktop")
    (root / "plugins" / "platforms").mkdir(parents=True)
    (root / "lib").mkdir()
    copy = root / "plugins" / "platforms" / "libqxcb.so"
    shutil.copyfile(plugin, copy)
    try:
        elf.forbid_default_library_path(copy)
    except elf.NotSupportedError as exc:
        pytest.skip(str(exc))
    listing = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=True)
    for soname, path in re.findall(r"^\s*(\S+) => (/\S+)", listing.stdout, re.MULTILINE):
        if soname != HIDDEN:
            (root / "lib" / soname).symlink_to(path)
    missing, _ = platform_check.missing_libraries(copy)
    assert missing == (HIDDEN,)
    return root / "plugins"


@linux_only
def test_qt_alone_aborts_on_the_broken_plugin(broken_plugins: Path, tmp_path: Path) -> None:
    """The control: the copy reproduces the reported failure (Qt's plugin error, SIGABRT)."""
    result = run_bare(["-c", "from PySide6.QtWidgets import QApplication; QApplication([])"],
                      tmp_path, DISPLAY=":99", QT_PLUGIN_PATH=str(broken_plugins))
    assert result.returncode == -signal.SIGABRT, result.stderr
    assert 'Could not load the Qt platform plugin "xcb"' in result.stderr


@linux_only
def test_gui_names_the_missing_packages_and_exits_2(broken_plugins: Path,
                                                    tmp_path: Path) -> None:
    result = gui(tmp_path, DISPLAY=":99", QT_PLUGIN_PATH=str(broken_plugins))
    assert result.returncode == 2, result.stderr  # not -SIGABRT: no core dump
    assert result.stdout == ""
    assert "libxcb-cursor.so.0 (package libxcb-cursor0)" in result.stderr
    assert "sudo apt-get install libxcb-cursor0\n" in result.stderr
    assert install_line(DESKTOP_PACKAGES) in result.stderr
    assert "Could not load the Qt platform plugin" not in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.glob("core*")) == []


@linux_only
def test_measure_falls_back_to_offscreen(broken_plugins: Path, tmp_path: Path) -> None:
    result = gui(tmp_path, "--measure", DISPLAY=":99", QT_PLUGIN_PATH=str(broken_plugins))
    assert result.returncode == 0, result.stderr
    assert "window shown" in result.stdout
    assert "offscreen" in result.stderr and HIDDEN in result.stderr


@linux_only
def test_no_display_at_all_is_said_plainly(tmp_path: Path) -> None:
    result = gui(tmp_path)
    assert result.returncode == 2, result.stderr
    assert 'No display for Qt\'s "xcb" platform: DISPLAY is not set.' in result.stderr
    assert "Could not load the Qt platform plugin" not in result.stderr


@linux_only
def test_a_display_that_does_not_answer_is_said_plainly(tmp_path: Path) -> None:
    missing, _ = platform_check.missing_libraries(real_xcb_plugin())
    if missing:
        pytest.skip(f"this machine lacks {', '.join(missing)}")
    number = next(n for n in range(97, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    result = gui(tmp_path, DISPLAY=f":{number}")
    assert result.returncode == 2, result.stderr
    assert f"the X11 display :{number} does not answer" in result.stderr


def test_requested_platforms_follow_qt() -> None:
    assert requested_platforms({}) == ["xcb"]
    assert requested_platforms({"DISPLAY": ":0"}) == ["xcb"]
    assert requested_platforms({"WAYLAND_DISPLAY": "wayland-0"}) == ["wayland", "xcb"]
    assert requested_platforms({"WAYLAND_DISPLAY": "w", "XDG_SESSION_TYPE": "x11"}) == ["xcb"]
    assert requested_platforms({"QT_QPA_PLATFORM": "wayland;xcb:x=1"}) == ["wayland", "xcb:x=1"]


def test_plugin_folders_in_qt_order(tmp_path: Path) -> None:
    env = {"QT_QPA_PLATFORM_PLUGIN_PATH": "/direct",
           "QT_PLUGIN_PATH": os.pathsep.join(["/a", "/b"])}
    assert platform_check.plugin_dirs(env, default=tmp_path) == [
        Path("/direct"), Path("/a/platforms"), Path("/b/platforms"), tmp_path]


@linux_only
def test_only_the_platforms_that_can_start_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform_check, "_application_exists", lambda: False)
    env = {"QT_QPA_PLATFORM": "nosuchplatform;offscreen"}
    assert platform_check.ensure_platform(env=env) is None
    assert env["QT_QPA_PLATFORM"] == "offscreen"


def test_an_unknown_library_gets_a_way_to_find_its_package() -> None:
    text = failure_message([PlatformCheck("xcb", Path("/p/libqxcb.so"),
                                          ("libxcb-cursor.so.0", "libweird.so.3"))])
    assert "libweird.so.3 (find its package: apt-file search libweird.so.3)" in text
    assert "sudo apt-get install libxcb-cursor0\n" in text


def test_readme_lists_what_the_shipped_plugin_needs() -> None:
    """The README's one apt-get line is DESKTOP_PACKAGES, and it holds the package of every
    system library that Qt's xcb plugin and the GUI libraries are linked against."""
    readme = (REPO / "README.md").read_text()
    assert install_line(DESKTOP_PACKAGES) in readme
    if not sys.platform.startswith("linux"):
        return
    plugin = real_xcb_plugin()
    qt_lib = plugin.parents[2] / "lib"
    needs = set(elf.needed(plugin))
    for name in ("libQt6XcbQpa.so.6", "libQt6Gui.so.6", "libQt6Widgets.so.6",
                 "libQt6DBus.so.6", "libQt6PrintSupport.so.6"):
        if (qt_lib / name).is_file():
            needs |= set(elf.needed(qt_lib / name))
    always_there = {"zlib1g"}  # Debian "Priority: required"
    packages = {platform_check.package_of(n) for n in needs} - {None} - always_there
    assert packages <= set(DESKTOP_PACKAGES), packages - set(DESKTOP_PACKAGES)
