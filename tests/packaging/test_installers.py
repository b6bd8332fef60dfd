"""packaging/: the desktop integration files, the build helpers, and install.sh /
uninstall.sh run for real into a temporary root (the PyInstaller build itself is
`make package`, checked by `make package-test`)."""

from __future__ import annotations

import configparser
import importlib.util
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from types import ModuleType

import pytest

from workstation.gui.app import DESKTOP_FILE

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
DESKTOP = PACKAGING / "desktop"


def _load_build() -> ModuleType:
    """packaging/build.py under a name of its own (not PyPI's `build`)."""
    spec = importlib.util.spec_from_file_location("packaging_build", PACKAGING / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build()


def desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DESKTOP / "brain-mri-triage.desktop")
    return parser["Desktop Entry"]


def test_desktop_entry_matches_the_app() -> None:
    entry = desktop_entry()
    assert entry["Categories"] == "Graphics;MedicalSoftware;Viewer;"
    assert entry["StartupWMClass"] == DESKTOP_FILE  # what app.setDesktopFileName says
    assert entry["Icon"] == DESKTOP_FILE
    assert entry["MimeType"].split(";")[:2] == ["application/dicom", "inode/directory"]
    assert entry["Exec"] == "/usr/bin/workstation gui %F"
    assert build.LAUNCHER.strip().endswith('exec /opt/brain-mri-triage/workstation "$@"')


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None,
                    reason="desktop-file-validate not installed (Debian desktop-file-utils)")
def test_desktop_entry_validates() -> None:
    result = subprocess.run(["desktop-file-validate", str(DESKTOP / "brain-mri-triage.desktop")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stdout


def test_mime_type_recognises_dicom_by_content() -> None:
    namespace = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    tree = ElementTree.parse(DESKTOP / "brain-mri-triage-mime.xml")
    (kind,) = tree.findall("m:mime-type", namespace)
    assert kind.get("type") == "application/dicom"
    (match,) = kind.findall("m:magic/m:match", namespace)
    assert (match.get("value"), match.get("offset")) == ("DICM", "128")
    assert "*.dcm" in [g.get("pattern") for g in kind.findall("m:glob", namespace)]


def test_receiver_unit_runs_serve_as_a_user_and_is_not_enabled() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DESKTOP / "brain-mri-triage-receiver@.service")
    assert unit["Service"]["ExecStart"] == "/usr/bin/workstation serve"
    assert unit["Service"]["User"] == "%i"
    # disabled by default: the package's scripts never enable or start it
    for script in ("postinst", "prerm", "postrm"):
        text = (PACKAGING / "debian" / script).read_text()
        assert "systemctl enable" not in text and "systemctl start" not in text


def test_it_readme_and_qt_packages_come_from_the_readme() -> None:
    section = build.it_readme()
    assert section.startswith(build.IT_SECTION)
    for topic in ("Install from a USB stick", "Upgrade", "Uninstall", "Back up"):
        assert f"**{topic}" in section
    packages = build.qt_desktop_packages()
    assert "libxcb-cursor0" in packages and "libegl1" in packages


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump not installed (binutils)")
def test_glibc_needed_reads_the_binaries(tmp_path: Path) -> None:
    shutil.copy(sys.executable, tmp_path / "workstation")
    needed = build.glibc_needed(tmp_path)
    major, minor = (int(x) for x in needed.split("."))
    assert major == 2 and minor >= 17


def fake_payload(top: Path) -> None:
    """install.sh's unpacked tarball with a stand-in program (the real one is make package's)."""
    payload = top / "payload"
    program = payload / "opt/brain-mri-triage/workstation"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\necho 'workstation 9.9.9'\n")
    program.chmod(0o755)
    files = {
        "usr/bin/workstation": None,
        "usr/share/applications/brain-mri-triage.desktop": DESKTOP / "brain-mri-triage.desktop",
        "usr/share/mime/packages/brain-mri-triage.xml": DESKTOP / "brain-mri-triage-mime.xml",
        "usr/share/icons/hicolor/scalable/apps/brain-mri-triage.svg":
            DESKTOP / "brain-mri-triage.svg",
        "usr/share/icons/hicolor/256x256/apps/brain-mri-triage.png":
            DESKTOP / "brain-mri-triage.svg",
        "usr/share/doc/brain-mri-triage/README-IT.md": REPO / "README.md",
        "lib/systemd/system/brain-mri-triage-receiver@.service":
            DESKTOP / "brain-mri-triage-receiver@.service",
    }
    for relative, source in files.items():
        target = payload / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source is None:
            target.write_text(build.LAUNCHER)
        else:
            shutil.copy(source, target)
    for script in ("install.sh", "uninstall.sh"):
        shutil.copy(PACKAGING / script, top / script)


def tree(root: Path) -> set[str]:
    """Every file and folder under ``root`` (standard folders like usr/local/bin excepted:
    a real system has them before and after)."""
    kept = {"opt", "usr", "usr/local", "usr/local/bin", "usr/local/share", "etc",
            "etc/systemd", "etc/systemd/system"}
    return {str(p.relative_to(root)) for p in root.rglob("*")} - kept


def test_install_then_uninstall_leaves_nothing(tmp_path: Path) -> None:
    top, root = tmp_path / "brain-mri-triage-9.9.9-amd64", tmp_path / "root"
    fake_payload(top)
    (root / "home/user/.local/share/brain-mri-triage").mkdir(parents=True)
    (root / "home/user/.local/share/brain-mri-triage/audit.sqlite").write_bytes(b"kept")
    before = tree(root)
    installed = subprocess.run([str(top / "install.sh"), "--root", str(root)],
                               capture_output=True, text=True, check=False)
    assert installed.returncode == 0, installed.stderr
    assert "installed workstation 9.9.9 into" in installed.stdout
    desktop = (root / "usr/local/share/applications/brain-mri-triage.desktop").read_text()
    assert "Exec=/usr/local/bin/workstation gui %F" in desktop
    unit = (root / "etc/systemd/system/brain-mri-triage-receiver@.service").read_text()
    assert "ExecStart=/usr/local/bin/workstation serve" in unit
    assert (root / "opt/brain-mri-triage/workstation").is_file()
    assert not (root / "etc/systemd/system/multi-user.target.wants").exists()
    # installing again (an upgrade) replaces the program and keeps user data
    again = subprocess.run([str(top / "install.sh"), "--root", str(root)],
                           capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    removed = subprocess.run([str(top / "uninstall.sh"), "--root", str(root)],
                             capture_output=True, text=True, check=False)
    assert removed.returncode == 0, removed.stderr
    assert tree(root) - before == set()  # caches and emptied folders included
    assert not (root / "opt/brain-mri-triage").exists()
    assert (root / "home/user/.local/share/brain-mri-triage/audit.sqlite").read_bytes() == b"kept"
    assert not any("brain-mri-triage" in p for p in tree(root) - before)


def test_uninstall_without_install_says_so(tmp_path: Path) -> None:
    result = subprocess.run([str(PACKAGING / "uninstall.sh"), "--root", str(tmp_path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "nothing installed by install.sh" in result.stderr
