"""``make package``: the offline installers, built on this machine.

1. PyInstaller ``--onedir`` build of the app (``packaging/workstation.spec``: GUI, CLI and
   receiver in one ``workstation`` executable; no Python needed on the target);
2. the installed tree: ``/opt/brain-mri-triage`` (the bundle, ``models/`` checked against
   their sha256 and ``build_info.json``), the ``workstation`` launcher on PATH, the menu
   entry, the DICOM MIME type, the icon and the receiver's systemd unit (disabled);
3. a Debian package of that tree (``dpkg-deb``) and the same tree as a ``.tar.gz`` with
   ``install.sh``/``uninstall.sh`` for other distributions.

Variants: ``cpu`` (default: ONNX Runtime, without torch and the CUDA libraries) and
``full`` (with torch: the GPU and Grad-CAM). Each step's time and every size are printed
and written to ``<out>/summary-<variant>.json``.

    .venv/bin/python packaging/build.py [--variant cpu|full] [--reuse-freeze]
                                        [--package-version V] [--out dist/package]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGING = REPO / "packaging"
sys.path.insert(0, str(REPO))

from workstation import __version__  # noqa: E402
from workstation.analysis.model_file import ModelInfo, verified  # noqa: E402
from workstation.build_info import write_build_file  # noqa: E402

NAME = "brain-mri-triage"
OPT = Path("opt") / NAME
VARIANTS = {"cpu": "cpu: ONNX Runtime, without PyTorch and the CUDA libraries",
            "full": "full: with PyTorch and the CUDA libraries (GPU, Grad-CAM)"}
# the .deb's compression: on 2 busy cores xz -6 made 132 MiB in 524 s, zstd -15 157 MiB in
# about 70 s (dpkg reads zstd on Debian 12 and Ubuntu 21.10 or newer, older than the
# glibc the bundle needs anyway)
COMPRESSION = "zstd:15"
IT_SECTION = "## Install at a clinic without internet (for IT)"
LAUNCHER = f"""#!/bin/sh
# The workstation's launcher (brain-mri-triage package): the bundle in /{OPT}.
exec /{OPT}/workstation "$@"
"""


@contextmanager
def step(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    print(f"== {name}", flush=True)
    yield
    timings[name] = round(time.perf_counter() - started, 1)
    print(f"   {name}: {timings[name]:.1f} s", flush=True)


def tree_bytes(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def freeze(variant: str, out: Path) -> Path:
    dist, work = out / f"pyinstaller-{variant}", REPO / "build" / f"pyinstaller-{variant}"
    env = {**os.environ, "BRAIN_TRIAGE_VARIANT": variant}
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
                    "--distpath", str(dist), "--workpath", str(work),
                    str(PACKAGING / "workstation.spec")], check=True, env=env, cwd=REPO)
    return dist / "workstation"


def model_files(variant: str) -> list[Path]:
    """The shipped model's files, each checked against the sha256 its description records
    (the build stops on a mismatch): the ONNX graph and calibration; the torch weights only
    in the full variant (the CPU package never reads them)."""
    info = ModelInfo.load(REPO / "models" / "triage-v2.json")
    if info.onnx is None:
        raise SystemExit("models/triage-v2.json names no ONNX graph: the CPU package needs one")
    files = [info.description, REPO / "models" / "MODEL_CARD.md",
             verified(info.onnx.graph, info.onnx.graph_sha256, "ONNX graph"),
             verified(info.onnx.calibration, info.onnx.calibration_sha256, "calibration file")]
    if info.onnx.from_weights != info.sha256:
        raise SystemExit("the ONNX graph was exported from other weights than the model's")
    if variant == "full":
        files.append(verified(info.weights, info.sha256))
    return files


def it_readme() -> str:
    """The README's section for IT (shipped as README-IT.md)."""
    text = (REPO / "README.md").read_text()
    start = text.index(IT_SECTION)
    end = text.find("\n## ", start + len(IT_SECTION))
    return text[start:end if end >= 0 else len(text)].strip() + "\n"


def qt_desktop_packages() -> list[str]:
    """The Debian packages of the Qt desktop libraries: the README's install line (the
    same list tests/gui/test_startup.py checks against the code)."""
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("sudo apt-get install libegl1"):
            return line.removeprefix("sudo apt-get install ").split()
    raise SystemExit("README.md lost its Qt desktop libraries line")


def render_icon(svg: Path, png: Path, size: int = 256) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    QSvgRenderer(str(svg)).render(painter)
    painter.end()
    if not image.save(str(png)):
        raise SystemExit(f"the icon could not be written to {png}")


def stage(bundle: Path, root: Path, variant: str, package_version: str) -> None:
    """The installed tree under ``root`` (``root`` is what / will be)."""
    if root.exists():
        shutil.rmtree(root)
    opt = root / OPT
    shutil.copytree(bundle, opt, symlinks=True)
    internal = opt / "_internal"
    (internal / "models").mkdir()
    for file in model_files(variant):
        shutil.copy2(file, internal / "models" / file.name)
    write_build_file(internal, datetime.now(UTC).isoformat(timespec="seconds"),
                     VARIANTS[variant], package_version)
    desktop = PACKAGING / "desktop"
    put = {
        "usr/bin/workstation": None,
        f"usr/share/applications/{NAME}.desktop": desktop / f"{NAME}.desktop",
        f"usr/share/mime/packages/{NAME}.xml": desktop / f"{NAME}-mime.xml",
        f"usr/share/icons/hicolor/scalable/apps/{NAME}.svg": desktop / f"{NAME}.svg",
        f"lib/systemd/system/{NAME}-receiver@.service": desktop / f"{NAME}-receiver@.service",
    }
    for relative, source in put.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source is None:
            target.write_text(LAUNCHER)
            target.chmod(0o755)
        else:
            shutil.copy2(source, target)
            target.chmod(0o644)
    png = root / "usr/share/icons/hicolor/256x256/apps" / f"{NAME}.png"
    png.parent.mkdir(parents=True)
    render_icon(desktop / f"{NAME}.svg", png)
    doc = root / "usr/share/doc" / NAME
    doc.mkdir(parents=True)
    (doc / "README-IT.md").write_text(it_readme())
    (doc / "copyright").write_text(
        "Brain MRI triage workstation. License: Apache-2.0 (/usr/share/common-licenses/"
        "Apache-2.0).\nThe bundled libraries keep their own licenses (their dist-info "
        f"folders in /{OPT}/_internal).\n")


def glibc_needed(tree: Path) -> str:
    """The highest glibc symbol version any binary of ``tree`` needs (``objdump -T``, which
    PyInstaller itself uses): the bundle carries some of the build machine's libraries."""
    versions = set()
    for path in tree.rglob("*"):
        if path.is_file() and not path.is_symlink() and (".so" in path.name
                                                         or path.name == "workstation"):
            listing = subprocess.run(["objdump", "-T", str(path)], capture_output=True,
                                     text=True, check=False).stdout
            versions.update(re.findall(r"GLIBC_(\d+\.\d+)", listing))
    return max(versions, key=lambda v: tuple(int(x) for x in v.split(".")), default="2.28")


def debian_package(root: Path, out: Path, variant: str, package_version: str,
                   compression: str = "xz:6") -> Path:
    package = NAME if variant == "cpu" else f"{NAME}-full"
    control_dir = root / "DEBIAN"
    control_dir.mkdir()
    installed_kib = (tree_bytes(root) + 1023) // 1024
    model = ModelInfo.load(REPO / "models" / "triage-v2.json")
    control = ((PACKAGING / "debian" / "control.in").read_text()
               .replace("@VERSION@", package_version)
               .replace("@INSTALLED_SIZE@", str(installed_kib))
               .replace("@GLIBC@", glibc_needed(root / OPT))
               .replace("@DEPENDS@", ", ".join(qt_desktop_packages()))
               .replace("@VARIANT@", VARIANTS[variant])
               .replace("@MODEL@", f"{model.name} {model.version} (sha256 {model.sha256})"))
    if variant != "cpu":
        control = control.replace(f"Package: {NAME}\n",
                                  f"Package: {package}\nConflicts: {NAME}\nReplaces: {NAME}\n"
                                  f"Provides: {NAME}\n")
    (control_dir / "control").write_text(control)
    for script in ("postinst", "prerm", "postrm"):
        shutil.copy2(PACKAGING / "debian" / script, control_dir / script)
        (control_dir / script).chmod(0o755)
    deb = out / f"{package}_{package_version}_amd64.deb"
    kind, _, level = compression.partition(":")
    subprocess.run(["dpkg-deb", "--root-owner-group", f"-Z{kind}", f"-z{level or 6}",
                    "--build", str(root), str(deb)], check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(control_dir)  # the tarball's tree has no DEBIAN/
    return deb


def tarball(root: Path, out: Path, variant: str, package_version: str) -> Path:
    """``<name>/{install.sh,uninstall.sh,README-IT.md,payload/<the installed tree>}``."""
    suffix = "" if variant == "cpu" else "-full"
    name = f"{NAME}{suffix}-{package_version}-amd64"
    top = out / f"tar-{variant}" / name
    if top.parent.exists():
        shutil.rmtree(top.parent)
    top.mkdir(parents=True)
    for script in ("install.sh", "uninstall.sh"):
        shutil.copy2(PACKAGING / script, top / script)
        (top / script).chmod(0o755)
    (top / "README-IT.md").write_text(it_readme())
    archive = out / f"{name}.tar.gz"
    compressor = "pigz" if shutil.which("pigz") else "gzip"  # pigz: every core, same format
    with archive.open("wb") as handle:
        tar = subprocess.Popen(
            ["tar", "--owner=0", "--group=0", "-cf", "-", "-C", str(top.parent), name,
             "-C", str(root.parent), "--transform", f"s|^{root.name}|{name}/payload|",
             root.name], stdout=subprocess.PIPE)
        subprocess.run([compressor, "-6"], stdin=tar.stdout, stdout=handle, check=True)
        if tar.wait() != 0:
            raise SystemExit("tar failed")
    return archive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=tuple(VARIANTS), default="cpu")
    parser.add_argument("--reuse-freeze", action="store_true",
                        help="package the last PyInstaller build again (no new freeze)")
    parser.add_argument("--bundle", type=Path, default=None, metavar="DIR",
                        help="with --reuse-freeze: that build (default: OUT/pyinstaller-"
                             "VARIANT/workstation)")
    parser.add_argument("--package-version", default=__version__,
                        help="the installers' version (default: the app's, "
                             f"{__version__}); the upgrade test packages a higher one")
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "package")
    parser.add_argument("--no-tarball", action="store_true")
    parser.add_argument("--compression", default=COMPRESSION, metavar="TYPE:LEVEL",
                        help=f"the .deb's compression (dpkg-deb -Z, -z; default "
                             f"{COMPRESSION})")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    bundle = args.bundle or out / f"pyinstaller-{args.variant}" / "workstation"
    if not (args.reuse_freeze and (bundle / "workstation").is_file()):
        with step(timings, "freeze (PyInstaller)"):
            bundle = freeze(args.variant, out)
    root = out / f"root-{args.variant}"
    with step(timings, "stage the installed tree"):
        stage(bundle, root, args.variant, args.package_version)
    with step(timings, f"Debian package (dpkg-deb, {args.compression})"):
        deb = debian_package(root, out, args.variant, args.package_version,
                             args.compression)
    archive = None
    if not args.no_tarball:
        with step(timings, "tarball (.tar.gz)"):
            archive = tarball(root, out, args.variant, args.package_version)
    mib = 1024 * 1024
    summary = {
        "variant": args.variant, "package_version": args.package_version,
        "seconds": round(time.perf_counter() - started, 1), "steps": timings,
        "installed_mib": round(tree_bytes(root) / mib, 1),
        "deb": str(deb), "deb_mib": round(deb.stat().st_size / mib, 1),
        "tarball": str(archive) if archive else None,
        "tarball_mib": round(archive.stat().st_size / mib, 1) if archive else None,
    }
    (out / f"summary-{args.variant}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
