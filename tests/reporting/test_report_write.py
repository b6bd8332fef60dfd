"""Writing the report file: no *.part left behind, and a failure names the file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.reporting.test_report import triage, tumour_verdict
from workstation.reporting import pdf
from workstation.reporting.content import build_content
from workstation.reporting.pdf import ReportWriteError, write_report


def content():  # type: ignore[no-untyped-def]
    return build_content(triage(tumour_verdict()), {}, "St Elsewhere")


def test_a_failed_write_leaves_no_part_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the story could not be laid out")

    monkeypatch.setattr(pdf.SimpleDocTemplate, "build", broken)
    with pytest.raises(RuntimeError):
        write_report(content(), tmp_path / "r.pdf")
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_killed_write_are_removed(tmp_path: Path) -> None:
    killed = tmp_path / ".r.pdf.k2j4_x9.part"  # what a SIGKILLed write leaves
    killed.write_bytes(b"%PDF-1.4 half")
    other = tmp_path / ".other.pdf.abc.part"
    other.write_bytes(b"not ours")
    write_report(content(), tmp_path / "r.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pdf.abc.part", "r.pdf"]


def test_a_full_disk_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pdf.os, "replace", full)
    target = tmp_path / "reports" / "r.pdf"
    with pytest.raises(ReportWriteError) as caught:
        write_report(content(), target)
    assert str(caught.value) == (f"{target} could not be written: the disk is full (no space "
                                 "left on the device)")
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    assert list(target.parent.iterdir()) == []
