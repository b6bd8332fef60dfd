"""Just enough of a 64-bit little-endian ELF shared library's dynamic section for the start-up
tests: the libraries it needs, and the flag that keeps the loader out of the system folders."""

from __future__ import annotations

import struct
from pathlib import Path

DT_NEEDED, DT_STRTAB, DT_RUNPATH, DT_FLAGS_1 = 1, 5, 29, 0x6FFFFFFB
DF_1_NODEFLIB = 0x800  # "do not use the default library search path" (nor ld.so.cache)
PT_LOAD, PT_DYNAMIC = 1, 2


class NotSupportedError(ValueError):
    """Not a 64-bit little-endian ELF file, or one without what the tests change."""


def _segments(data: bytes | bytearray) -> list[tuple[int, int, int, int]]:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise NotSupportedError("not a 64-bit little-endian ELF file")
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    segments = []
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        segments.append((p_type, p_offset, p_vaddr, p_filesz))
    return segments


def _dynamic(data: bytes | bytearray) -> list[tuple[int, int, int]]:
    """(file offset, tag, value) of each dynamic entry before DT_NULL."""
    for p_type, offset, _, size in _segments(data):
        if p_type == PT_DYNAMIC:
            entries = []
            for at in range(offset, offset + size, 16):
                tag, value = struct.unpack_from("<qQ", data, at)
                if tag == 0:
                    break
                entries.append((at, tag, value))
            return entries
    raise NotSupportedError("no dynamic section")


def _strings(path: Path, wanted: int) -> list[str]:
    data = path.read_bytes()
    entries = _dynamic(data)
    strtab = next(v for _, tag, v in entries if tag == DT_STRTAB)
    base = next(off + strtab - vaddr for kind, off, vaddr, size in _segments(data)
                if kind == PT_LOAD and vaddr <= strtab < vaddr + size)
    names = []
    for _, tag, value in entries:
        if tag == wanted:
            start = base + value
            names.append(data[start:data.index(b"\0", start)].decode())
    return names


def needed(path: Path) -> list[str]:
    """The DT_NEEDED sonames, in order."""
    return _strings(path, DT_NEEDED)


def runpath(path: Path) -> str | None:
    found = _strings(path, DT_RUNPATH)
    return found[0] if found else None


def forbid_default_library_path(path: Path) -> None:
    """Set DF_1_NODEFLIB, in place: the loader then looks for this file's dependencies only
    along its RUNPATH (and LD_LIBRARY_PATH), never in /lib, /usr/lib or ld.so.cache."""
    data = bytearray(path.read_bytes())
    for at, tag, value in _dynamic(data):
        if tag == DT_FLAGS_1:
            struct.pack_into("<qQ", data, at, tag, value | DF_1_NODEFLIB)
            path.write_bytes(bytes(data))
            return
    raise NotSupportedError("no DT_FLAGS_1 entry to set the flag in")
