"""Before the window starts: can Qt's display plugin load, and is there a display to use?

Qt aborts the whole process (SIGABRT, a core dump) when no platform plugin can be
initialised, with a message that names neither the missing system library nor the package
that holds it. So ``workstation gui`` checks first, the way Qt will look: the platform it
will try (``QT_QPA_PLATFORM``, else Wayland when ``WAYLAND_DISPLAY`` is set, then X11 ``xcb``),
the plugin file it will load (``QT_QPA_PLATFORM_PLUGIN_PATH``, ``QT_PLUGIN_PATH``, then
PySide6's own plugins folder), ``ldd`` on that file for libraries the loader cannot find, and
a connection to the display. When none of the platforms can start, it prints one plain
message with the ``apt-get install`` line and the command exits with status 2.

Linux only: elsewhere Qt ships its plugins' dependencies itself.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

EXIT_NO_DISPLAY = 2

# Debian/Ubuntu package of each shared library Qt's display plugins and the GUI need.
SONAME_PACKAGES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libXau.so.6": "libxau6",
    "libXdmcp.so.6": "libxdmcp6",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libOpenGL.so.0": "libopengl0",
    "libGLdispatch.so.0": "libglvnd0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libpng16.so.16": "libpng16-16",
    "libz.so.1": "zlib1g",
}

# What a desktop needs for the window (README "Set up and run" lists the same line; a
# test checks that it covers every library the shipped xcb plugin needs).
DESKTOP_PACKAGES = (
    "libegl1", "libgl1", "libfontconfig1", "libfreetype6", "libdbus-1-3", "libglib2.0-0",
    "libxkbcommon0", "libxkbcommon-x11-0", "libx11-6", "libx11-xcb1", "libxcb1",
    "libxcb-cursor0", "libxcb-icccm4", "libxcb-image0", "libxcb-keysyms1", "libxcb-randr0",
    "libxcb-render0", "libxcb-render-util0", "libxcb-shape0", "libxcb-shm0", "libxcb-sync1",
    "libxcb-util1", "libxcb-xfixes0", "libxcb-xinerama0", "libxcb-xkb1",
)

# platforms that draw on a display server, and those that need none
_DISPLAY_PLATFORMS = {"xcb", "wayland", "wayland-egl", "wayland-brcm"}
_PLUGIN_FILES = {"wayland-egl": "libqwayland.so", "wayland-brcm": "libqwayland.so"}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
_CANNOT_OPEN = re.compile(r"(\S+?\.so[.\d]*): cannot open shared object file")


@dataclass(frozen=True)
class PlatformCheck:
    """Whether one Qt platform (``xcb``, ``wayland``, ``offscreen``...) can start here."""

    entry: str  # as written in QT_QPA_PLATFORM, arguments included ("xcb:foo=1")
    plugin: Path | None = None
    missing: tuple[str, ...] = ()  # shared libraries the loader cannot find
    load_error: str = ""  # the plugin cannot load for another reason
    display_problem: str = ""  # plain words; "" when the display answers
    available: tuple[str, ...] = field(default=(), compare=False)

    @property
    def name(self) -> str:
        return self.entry.split(":", 1)[0].strip()

    @property
    def usable(self) -> bool:
        return (self.plugin is not None and not self.missing and not self.load_error
                and not self.display_problem)


def requested_platforms(env: Mapping[str, str]) -> list[str]:
    """The platforms Qt will try, in order (entries of ``QT_QPA_PLATFORM`` as written)."""
    configured = env.get("QT_QPA_PLATFORM", "").strip()
    if configured:
        return [p.strip() for p in configured.split(";") if p.strip()]
    session = env.get("XDG_SESSION_TYPE", "").lower()
    if session != "x11" and (env.get("WAYLAND_DISPLAY") or session == "wayland"):
        return ["wayland", "xcb"]
    return ["xcb"]


def default_plugin_dir() -> Path:
    from PySide6.QtCore import QLibraryInfo

    return Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"


def plugin_dirs(env: Mapping[str, str], default: Path | None = None) -> list[Path]:
    """Where Qt looks for platform plugins, first first."""
    dirs = []
    direct = env.get("QT_QPA_PLATFORM_PLUGIN_PATH", "")
    if direct:
        dirs.append(Path(direct))
    dirs.extend(Path(p) / "platforms" for p in env.get("QT_PLUGIN_PATH", "").split(os.pathsep)
                if p)
    dirs.append(default if default is not None else default_plugin_dir())
    return dirs


def plugin_file(name: str, dirs: Sequence[Path]) -> Path | None:
    file = _PLUGIN_FILES.get(name, f"libq{name}.so")
    for folder in dirs:
        if (folder / file).is_file():
            return folder / file
    return None


def available_platforms(dirs: Sequence[Path]) -> tuple[str, ...]:
    names = {p.name[len("libq"):-len(".so")] for d in dirs if d.is_dir()
             for p in d.glob("libq*.so")}
    return tuple(sorted(names))


def missing_libraries(library: Path) -> tuple[tuple[str, ...], str]:
    """The shared libraries ``library`` needs that the loader cannot find (ldd), and any
    other reason it cannot load."""
    ldd = shutil.which("ldd", path=os.environ.get("PATH") or os.defpath)
    if ldd is not None:
        try:
            listing = subprocess.run([ldd, str(library)], capture_output=True, text=True,
                                     timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            pass
        else:
            if "=>" in listing.stdout:
                return tuple(dict.fromkeys(_NOT_FOUND.findall(listing.stdout))), ""
    try:  # no ldd: the loader's own answer names the first library it misses
        ctypes.CDLL(str(library))
    except OSError as exc:
        names = tuple(n for n in _CANNOT_OPEN.findall(str(exc)) if n != str(library))
        return names, "" if names else str(exc)
    return (), ""


def display_problem(name: str, env: Mapping[str, str]) -> str:
    """Plain words on why the display server of platform ``name`` cannot be reached."""
    if name == "xcb":
        display = env.get("DISPLAY", "")
        if not display:
            return "DISPLAY is not set"
        if not _x_display_answers(display):
            return (f"the X11 display {display} does not answer (no X server there, or this "
                    "user may not use it)")
        return ""
    if name.startswith("wayland"):
        socket = env.get("WAYLAND_DISPLAY", "") or "wayland-0"
        if not os.path.isabs(socket):
            runtime = env.get("XDG_RUNTIME_DIR", "")
            if not runtime:
                return "XDG_RUNTIME_DIR is not set"
            socket = os.path.join(runtime, socket)
        if not os.path.exists(socket):
            return f"no Wayland compositor at {socket}"
    return ""


def _x_display_answers(display: str) -> bool:
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return True  # reported as a missing library of the plugin instead
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode(), None)
    try:
        return bool(connection) and xcb.xcb_connection_has_error(connection) == 0
    finally:
        if connection:
            xcb.xcb_disconnect(connection)


def check_platform(entry: str, env: Mapping[str, str], dirs: Sequence[Path]) -> PlatformCheck:
    name = entry.split(":", 1)[0].strip()
    plugin = plugin_file(name, dirs)
    if plugin is None:
        return PlatformCheck(entry, available=available_platforms(dirs))
    missing, error = missing_libraries(plugin)
    if missing or error:
        return PlatformCheck(entry, plugin, missing, error)
    problem = display_problem(name, env) if name in _DISPLAY_PLATFORMS else ""
    return PlatformCheck(entry, plugin, display_problem=problem)


def check_platforms(env: Mapping[str, str], dirs: Sequence[Path] | None = None
                    ) -> list[PlatformCheck]:
    folders = list(dirs) if dirs is not None else plugin_dirs(env)
    return [check_platform(entry, env, folders) for entry in requested_platforms(env)]


def package_of(soname: str) -> str | None:
    return SONAME_PACKAGES.get(soname)


def install_line(packages: Sequence[str]) -> str:
    return "sudo apt-get install " + " ".join(packages)


def failure_message(checks: Sequence[PlatformCheck]) -> str:
    """What the user reads when the window cannot start, and what to do about it."""
    lines = ["workstation: the window cannot start."]
    missing: dict[str, str | None] = {}
    for check in checks:
        if check.plugin is None:
            lines.append(f'There is no Qt platform plugin "{check.name}" (QT_QPA_PLATFORM); '
                         f"available: {', '.join(check.available) or 'none'}.")
        elif check.missing:
            lines.append(f'Qt\'s "{check.name}" display plugin ({check.plugin}) needs system '
                         "libraries that are not installed:")
            for soname in check.missing:
                package = package_of(soname)
                missing[soname] = package
                lines.append(f"  {soname}" + (f" (package {package})" if package else
                                              f" (find its package: apt-file search {soname})"))
        elif check.load_error:
            lines.append(f'Qt\'s "{check.name}" display plugin cannot load: {check.load_error}')
        elif check.display_problem:
            lines.append(f'No display for Qt\'s "{check.name}" platform: '
                         f"{check.display_problem}.")
    packages = list(dict.fromkeys(p for p in missing.values() if p))
    if packages:
        lines += ["Install them (Debian/Ubuntu), then start the workstation again:",
                  f"  {install_line(packages)}",
                  "Everything a desktop needs for the window (README, Set up and run):",
                  f"  {install_line(DESKTOP_PACKAGES)}"]
    if any(c.display_problem for c in checks):
        lines.append("Start it from a desktop session (over ssh: ssh -X), or set DISPLAY or "
                     "WAYLAND_DISPLAY. Without a display, `workstation triage` runs headless.")
    return "\n".join(lines) + "\n"


def summary(checks: Sequence[PlatformCheck]) -> str:
    """One line: why each platform cannot start."""
    parts = []
    for check in checks:
        if check.plugin is None:
            why = "no such plugin"
        elif check.missing:
            why = "missing " + ", ".join(check.missing)
        else:
            why = check.load_error or f"no display, {check.display_problem}"
        parts.append(f"{check.name}: {why}")
    return "; ".join(parts)


def ensure_platform(measure: bool = False, env: MutableMapping[str, str] | None = None,
                    stderr: TextIO | None = None) -> int | None:
    """None when a platform can start (``QT_QPA_PLATFORM`` narrowed to the ones that can,
    when some cannot); else print why and return the exit status. With ``measure`` a missing
    display falls back to Qt's ``offscreen`` platform instead."""
    env = os.environ if env is None else env
    stderr = sys.stderr if stderr is None else stderr
    if not sys.platform.startswith("linux") or _application_exists():
        return None
    checks = check_platforms(env)
    usable = [c.entry for c in checks if c.usable]
    if usable:
        if len(usable) < len(checks):
            env["QT_QPA_PLATFORM"] = ";".join(usable)
        return None
    if measure:
        stderr.write(f"workstation: no display for the window ({summary(checks)}); measuring "
                     "on Qt's offscreen platform\n")
        env["QT_QPA_PLATFORM"] = "offscreen"
        return None
    stderr.write(failure_message(checks))
    stderr.flush()
    return EXIT_NO_DISPLAY


def _application_exists() -> bool:
    from PySide6.QtCore import QCoreApplication

    return QCoreApplication.instance() is not None
