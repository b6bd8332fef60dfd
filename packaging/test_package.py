"""``make package-test``: install the built package into a clean root, offline, and use it.

Runs as root inside ``unshare -n -m`` (no network; mounts private to the test):

1. a clean root: a copy of ``dist/package-test-root`` (``packaging/make_test_root.sh``:
   Debian minbase, only the Qt desktop libraries, Xvfb and the MIME/desktop tools, no
   Python) used with ``chroot``; without it, an empty root installed into with
   ``dpkg --root`` (the program then runs against this machine's system libraries);
2. ``dpkg -i`` the ``.deb``; as a desktop user: ``workstation --version``, ``workstation
   triage --json`` on a real DICOM series (the verdicts compared with the source
   checkout's), the window under Xvfb (screenshot ``window.png``, taken once the screen
   has stopped changing after the study opened);
3. upgrade: record a reading (``workstation readings --record``), install a higher version
   (the same build packaged as ``VERSION+upgradetest``) over it: the reading, the settings
   and the audit trail are still there, and ``--version`` names the new package;
4. ``dpkg -r``: nothing of the package is left (files under ``/opt``, the menu, MIME,
   icons, systemd and PATH compared with the root before the install); user data stays;
5. the ``.tar.gz``: ``install.sh``, ``workstation --version``, ``uninstall.sh``, the same
   comparison.

Everything is written to ``dist/package-test/`` (``report.json``, ``window.png``, logs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workstation import __version__  # noqa: E402

NAME = "brain-mri-triage"
USER = "clinic"
HOME = f"/home/{USER}"
DATA = f"{HOME}/.local/share/{NAME}"
CONFIG = f"{HOME}/.config/{NAME}"
# where a package's files may be left behind: what the test compares before and after
WATCHED = ("opt", "usr/bin", "usr/local", "usr/share/applications", "usr/share/mime",
           "usr/share/icons", "usr/share/doc", "lib/systemd", "etc/systemd")


class Failed(AssertionError):
    pass


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)
    print(f"   ok: {what}", flush=True)


def wait_for(condition: Callable[[], bool], timeout: float, what: str,
             every: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")


def run(command: Sequence[str], *, check_rc: bool = True, log: Path | None = None,
        env: dict[str, str] | None = None, timeout: float = 600
        ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(command), capture_output=True, text=True, env=env,
                            timeout=timeout, check=False)
    if log is not None:
        with log.open("a") as handle:
            handle.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}"
                         f"[exit {result.returncode}]\n")
    if check_rc and result.returncode != 0:
        raise Failed(f"{' '.join(command)} exited {result.returncode}:\n"
                     f"{result.stdout[-2000:]}{result.stderr[-3000:]}")
    return result


def offline() -> bool:
    """In a network namespace of its own with no way out (only a loopback, if that)."""
    # this process's network namespace's interfaces (/sys/class/net would be the host's)
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    interfaces = [line.split(":")[0].strip() for line in lines]
    interfaces = [name for name in interfaces if name != "lo"]
    try:
        socket.create_connection(("deb.debian.org", 80), timeout=3).close()
    except OSError:
        return not interfaces
    return False


class Root:
    """The clean root and how to run things in it (chroot, or against dpkg --root)."""

    def __init__(self, path: Path, chroot: bool, log: Path) -> None:
        self.path, self.chroot, self.log = path, chroot, log

    def host(self, inside: str) -> Path:
        return self.path / inside.lstrip("/")

    def dpkg(self, *args: str) -> subprocess.CompletedProcess[str]:
        if self.chroot:
            return run(["chroot", str(self.path), "dpkg", *args], log=self.log)
        return run(["dpkg", f"--root={self.path}", "--force-script-chrootless",
                    "--force-depends", *args], log=self.log)

    def as_user(self, *args: str, check_rc: bool = True, extra: dict[str, str] | None = None,
                timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """``workstation ARGS`` as the desktop user, with a clean environment."""
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **(extra or {})}
        if self.chroot:
            command = ["chroot", f"--userspec={USER}:{USER}", str(self.path), "env", "-i",
                       f"HOME={HOME}", *(f"{k}={v}" for k, v in env.items()), *args]
            return run(command, check_rc=check_rc, log=self.log, timeout=timeout)
        # dpkg --root: the launcher's /opt path is the root's; data in the root's home
        program = [str(self.host(f"/opt/{NAME}/workstation")) if args[0] == "workstation"
                   else args[0]]
        program += [str(self.host(a)) if a.startswith("/") and self.host(a).exists() else a
                    for a in args[1:]]
        env["HOME"] = str(self.host(HOME))
        return run(program, check_rc=check_rc, log=self.log, env=env, timeout=timeout)

    def snapshot(self) -> set[str]:
        found = set()
        for top in WATCHED:
            base = self.host(top)
            if base.exists():
                found.update(str(p.relative_to(self.path)) for p in base.rglob("*"))
        return found

    def mentions(self, word: str) -> list[str]:
        """Files under the watched folders whose name or (small text) content names
        ``word``: caches the desktop tools rebuilt included."""
        hits = []
        for relative in sorted(self.snapshot()):
            path = self.path / relative
            if word in relative:
                hits.append(relative)
            elif path.is_file() and not path.is_symlink() and path.stat().st_size < 4 << 20:
                try:
                    if word.encode() in path.read_bytes():
                        hits.append(relative)
                except OSError:
                    pass
        return hits


def make_root(out: Path, base: Path | None, log: Path) -> Root:
    path = out / "root"
    if path.exists():
        subprocess.run(["umount", "-R", str(path / "proc")], capture_output=True, check=False)
        subprocess.run(["umount", "-R", str(path / "dev")], capture_output=True, check=False)
        shutil.rmtree(path)
    if base is not None:
        print(f"== clean root: a copy of {base} (chroot)", flush=True)
        run(["cp", "-a", str(base), str(path)])
        run(["mount", "-t", "proc", "proc", str(path / "proc")])
        run(["mount", "--rbind", "/dev", str(path / "dev")])
        root = Root(path, True, log)
        if run(["chroot", str(path), "id", USER], check_rc=False).returncode != 0:
            run(["chroot", str(path), "useradd", "--create-home", "--shell", "/bin/sh", USER])
        python = run(["chroot", str(path), "sh", "-c", "command -v python3 python || true"])
        check(python.stdout.strip() == "", "the clean root has no Python")
        return root
    print("== clean root: empty, dpkg --root (no test root prepared: see "
          "packaging/make_test_root.sh)", flush=True)
    for folder in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "tmp", HOME.lstrip("/")):
        (path / folder).mkdir(parents=True, exist_ok=True)
    (path / "var/lib/dpkg/status").touch()
    (path / "var/lib/dpkg/available").touch()
    return Root(path, False, log)


def installed_version(root: Root, package: str) -> str:
    result = root.dpkg("-s", package) if root.chroot else run(
        ["dpkg-query", f"--admindir={root.path}/var/lib/dpkg", "-s", package])
    for line in result.stdout.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise Failed(f"dpkg does not list {package}")


def package_of(deb: Path) -> str:
    return run(["dpkg-deb", "-f", str(deb), "Package"]).stdout.strip()


def source_verdicts(series: Path) -> dict[str, object]:
    """The source checkout's triage of ``series`` (the same model, ONNX Runtime)."""
    result = run([str(REPO / ".venv/bin/workstation"), "triage", "--json", "--backend",
                  "onnxruntime", "--device", "cpu", str(series)])
    return json.loads(result.stdout)


def compare_triage(installed: dict[str, object], source: dict[str, object]) -> float:
    pairs = list(zip(installed["series"], source["series"], strict=True))  # type: ignore[call-overload]
    largest = 0.0
    for mine, theirs in pairs:
        check(mine["verdict"] == theirs["verdict"],
              f"series verdict {mine['verdict']} (installed) = {theirs['verdict']} (source)")
        for a, b in zip(mine["slices"], theirs["slices"], strict=True):
            for cls, p in a["probabilities"].items():
                largest = max(largest, abs(p - b["probabilities"][cls]))
    return largest


def to_png(xwd: Path, png: Path) -> None:
    """Xvfb's frame buffer (XWD) as PNG: netpbm's xwdtopnm, then Pillow."""
    import io

    from PIL import Image

    pnm = subprocess.run(["xwdtopnm", str(xwd)], capture_output=True, check=True).stdout
    Image.open(io.BytesIO(pnm)).save(png)


def end_processes_in(root: Path) -> list[int]:
    """End what the test started inside ``root`` and is still running (the window's decoder
    workers outlive a window ended by SIGTERM): each by its pid."""
    ended = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            exe = Path(os.readlink(entry / "exe"))
            inside = (Path(os.readlink(entry / "root")).resolve() == root.resolve()
                      or exe.is_relative_to(root.resolve()))
        except OSError:
            continue
        if inside:
            try:
                os.kill(int(entry.name), 9)
                ended.append(int(entry.name))
            except ProcessLookupError:
                pass
    return ended


def screenshot(root: Root, series_inside: str, out: Path) -> dict[str, object]:
    """The window under Xvfb (on this machine, in this network namespace: the program in
    the root reaches it through the abstract X socket), once the screen has stopped changing
    after the study opened."""
    fbdir = out / "fb"
    fbdir.mkdir(exist_ok=True)
    display = ":47"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1400x900x24", "-nolisten",
                             "tcp", "-fbdir", str(fbdir)], stdout=subprocess.DEVNULL,
                            stderr=(out / "xvfb.log").open("w"))
    gui: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: subprocess.run(["xprop", "-display", display, "-root"],
                                        capture_output=True, check=False).returncode == 0,
                 30, "Xvfb to answer")
        env = {"DISPLAY": display, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        if root.chroot:
            command = ["chroot", f"--userspec={USER}:{USER}", str(root.path), "env", "-i",
                       f"HOME={HOME}", *(f"{k}={v}" for k, v in env.items()),
                       "workstation", "gui", series_inside]
            popen_env = None
        else:
            command = [str(root.host(f"/opt/{NAME}/workstation")), "gui",
                       str(root.host(series_inside))]
            popen_env = {**env, "HOME": str(root.host(HOME))}
        started = time.monotonic()
        gui = subprocess.Popen(command, env=popen_env, stdout=(out / "gui.log").open("w"),
                               stderr=subprocess.STDOUT)
        audit = root.host(f"{DATA}/audit.sqlite")

        def opened() -> bool:
            if gui is not None and gui.poll() is not None:
                raise Failed(f"the window exited ({gui.returncode}): "
                             f"{(out / 'gui.log').read_text()[-2000:]}")
            if not audit.is_file():
                return False
            try:
                with sqlite3.connect(f"file:{audit}?mode=ro", uri=True) as db:
                    return db.execute("SELECT count(*) FROM events WHERE event = "
                                      "'study_opened'").fetchone()[0] > 0
            except sqlite3.Error:
                return False

        wait_for(opened, 120, "the window to open the study (audit: study_opened)")
        frame = fbdir / "Xvfb_screen0"
        last, still_since = b"", time.monotonic()

        def settled() -> bool:
            nonlocal last, still_since
            current = frame.read_bytes()
            if current != last:
                last, still_since = current, time.monotonic()
            return time.monotonic() - still_since >= 4.0

        wait_for(settled, 180, "the screen to stop changing (analysis shown)", every=0.5)
        seconds = time.monotonic() - started
        shutil.copy(frame, out / "window.xwd")
        to_png(out / "window.xwd", out / "window.png")
        tree = run(["xwininfo", "-display", display, "-root", "-tree"]).stdout
        title = next((line for line in tree.splitlines() if "Brain MRI" in line), "")
        check("Brain MRI triage" in title, f"the window is on the display: {title.strip()}")
        check(gui.poll() is None, "the window is still running")
        return {"png": str(out / "window.png"), "seconds_to_settled": round(seconds, 1),
                "window": title.strip()}
    finally:
        if gui is not None and gui.poll() is None:
            gui.terminate()
            try:
                gui.wait(15)
            except subprocess.TimeoutExpired:
                gui.kill()
                gui.wait(5)
        xvfb.terminate()
        xvfb.wait(10)
        left = end_processes_in(root.path)
        if left:
            print(f"   note: {len(left)} processes of the window were still running in "
                  f"the root after it ended (decoder workers); ended them", flush=True)


def test_deb(root: Root, deb: Path, next_deb: Path, series: Path, out: Path,
             report: dict[str, object]) -> None:
    package = package_of(deb)
    before = root.snapshot()
    series_inside = "/tmp/series"
    shutil.copytree(series, root.host(series_inside))
    os.chmod(root.host(series_inside), 0o755)
    shutil.copy(deb, root.host("/tmp"))
    print(f"== install {deb.name}", flush=True)
    root.dpkg("-i", f"/tmp/{deb.name}" if root.chroot else str(deb))
    version = installed_version(root, package)
    check(version == __version__, f"dpkg lists {package} {version}")
    for inside in (f"/opt/{NAME}/workstation", "/usr/bin/workstation",
                   f"/usr/share/applications/{NAME}.desktop",
                   f"/usr/share/mime/packages/{NAME}.xml",
                   f"/usr/share/icons/hicolor/scalable/apps/{NAME}.svg",
                   f"/lib/systemd/system/{NAME}-receiver@.service"):
        check(root.host(inside).exists(), f"installed {inside}")
    if root.chroot:
        check(NAME in root.host("/usr/share/applications/mimeinfo.cache").read_text(),
              "the menu's MIME cache names the workstation for DICOM (postinst)")
        check(not (root.host("/etc/systemd/system/multi-user.target.wants").exists()
                   and any(NAME in p.name for p in root.host(
                       "/etc/systemd/system/multi-user.target.wants").iterdir())),
              "the receiver unit is not enabled")

    print("== workstation --version", flush=True)
    lines = root.as_user("workstation", "--version").stdout.splitlines()
    model = json.loads((REPO / "models/triage-v2.json").read_text())
    check(lines[0] == f"workstation {__version__}", lines[0])
    check(lines[1] == f"model: {model['name']} {model['version']}, sha256 {model['sha256']}",
          lines[1])
    check(lines[-1].startswith("build: built "), lines[-1])
    report["version_output"] = lines

    print("== workstation triage --json (real DICOM series)", flush=True)
    started = time.monotonic()
    triage = root.as_user("workstation", "triage", "--json", series_inside)
    seconds = time.monotonic() - started
    document = json.loads(triage.stdout)
    (out / "triage.json").write_text(triage.stdout)
    check(document["backend"] == "onnxruntime" and document["model"]["sha256"]
          == model["sha256"], "triaged with ONNX Runtime by the shipped model")
    largest = compare_triage(document, source_verdicts(series))
    check(largest < 1e-4, f"probabilities equal the source checkout's (largest difference "
                          f"{largest:.1e})")
    report["triage"] = {"seconds": round(seconds, 1), "verdicts": [
        s["verdict"] for s in document["series"]], "largest_difference": largest}

    print("== the window under Xvfb", flush=True)
    report["window"] = screenshot(root, series_inside, out)

    print("== upgrade keeps user data", flush=True)
    root.as_user("workstation", "readings", series_inside, "--record", "disagree", "--class",
                 "meningioma", "--note", "recorded before the upgrade", "--reader", "Dr Test")
    readings_before = json.loads(root.as_user("workstation", "readings", series_inside,
                                              "--json").stdout)["readings"]
    check(len(readings_before) == 1, "one reading recorded with the installed program")
    settings = root.host(f"{CONFIG}/settings.json")
    settings_before = settings.read_text() if settings.is_file() else None
    audit_before = root.as_user("workstation", "audit", "verify").stdout
    shutil.copy(next_deb, root.host("/tmp"))
    root.dpkg("-i", f"/tmp/{next_deb.name}" if root.chroot else str(next_deb))
    next_version = installed_version(root, package)
    check(next_version != version and next_version.startswith(__version__),
          f"dpkg upgraded {package} {version} -> {next_version}")
    upgraded = root.as_user("workstation", "--version").stdout.splitlines()[0]
    check(f"(package {next_version})" in upgraded, upgraded)
    readings_after = json.loads(root.as_user("workstation", "readings", series_inside,
                                             "--json").stdout)["readings"]
    check(readings_after == readings_before, "the reading is still there after the upgrade")
    if settings_before is not None:
        check(settings.read_text() == settings_before, "the settings are unchanged")
    audit_after = root.as_user("workstation", "audit", "verify")
    check(audit_after.returncode == 0, "the audit trail still verifies after the upgrade")
    report["upgrade"] = {"from": version, "to": next_version, "reading": readings_after[0],
                         "audit_before": audit_before.strip(),
                         "audit_after": audit_after.stdout.strip()}

    print("== remove", flush=True)
    root.dpkg("-r", package)
    after = root.snapshot()
    left = sorted(after - before)
    caches: list[str] = []
    if not root.chroot:
        # an empty root has no MIME database or menu cache of its own before: the ones
        # postinst/postrm built for it stay, as they would on a real system (the check
        # below that no file names the package covers them)
        caches = [p for p in left if p == "usr/share/applications/mimeinfo.cache"
                  or (p.startswith("usr/share/mime") and "/packages" not in p)]
        left = [p for p in left if p not in caches]
    check(not left, f"nothing left in {', '.join(WATCHED)} (new paths: {left[:10]})")
    mentions = root.mentions(NAME)
    check(not mentions, f"no file there names {NAME} (caches included): {mentions[:5]}")
    check(not root.host(f"/opt/{NAME}").exists(), f"/opt/{NAME} is gone")
    check(root.host(f"{DATA}/readings").is_dir(), "the user's data is kept")
    report["removed"] = {"left": left, "mentions": mentions, "system_caches_kept": caches}


def test_tarball(root: Root, tarball: Path, out: Path, report: dict[str, object]) -> None:
    print(f"== tarball {tarball.name}: install.sh, --version, uninstall.sh", flush=True)
    before = root.snapshot()
    target = root.host("/tmp/tarball")
    target.mkdir()
    with tarfile.open(tarball) as archive:
        archive.extractall(target, filter="tar")
    (top,) = target.iterdir()
    inside = f"/tmp/tarball/{top.name}"
    if root.chroot:
        run(["chroot", str(root.path), f"{inside}/install.sh"], log=root.log)
        lines = root.as_user("workstation", "--version").stdout.splitlines()
        check(root.host("/usr/local/share/applications/brain-mri-triage.desktop").is_file(),
              "the tarball's menu entry is installed")
        run(["chroot", str(root.path), f"{inside}/uninstall.sh"], log=root.log)
    else:
        run([str(top / "install.sh"), "--root", str(root.path)], log=root.log)
        lines = run([str(root.host(f"/opt/{NAME}/workstation")), "--version"]).stdout.splitlines()
        run([str(top / "uninstall.sh"), "--root", str(root.path)], log=root.log)
    check(lines[0] == f"workstation {__version__}", f"the tarball's program: {lines[0]}")
    shutil.rmtree(target)
    # folders every system has (an empty dpkg --root root gets them from install.sh)
    standard = {"usr/local/bin", "usr/local/share", "etc/systemd/system"}
    left = sorted(root.snapshot() - before - standard)
    check(not left, f"nothing left after uninstall.sh (new paths: {left[:10]})")
    mentions = root.mentions(NAME)
    check(not mentions, f"no file names {NAME} after uninstall.sh: {mentions[:5]}")
    report["tarball"] = {"version": lines, "left": left}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    dist = REPO / "dist"
    parser.add_argument("--deb", type=Path,
                        default=dist / "package" / f"{NAME}_{__version__}_amd64.deb")
    parser.add_argument("--tarball", type=Path,
                        default=dist / "package" / f"{NAME}-{__version__}-amd64.tar.gz")
    parser.add_argument("--test-root", type=Path, default=dist / "package-test-root")
    parser.add_argument("--series", type=Path, default=Path(os.environ.get(
        "BRAIN_TRIAGE_DATA", REPO.parent / "shared" / "datasets")) / "dicom" / "ge_epi_axial")
    parser.add_argument("--out", type=Path, default=dist / "package-test")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("package-test needs root (dpkg, chroot); run: sudo make package-test")
        return 2
    for needed in ("Xvfb", "xprop", "xwininfo", "xwdtopnm", "dpkg-deb", "zstd"):
        if shutil.which(needed) is None:
            print(f"package-test needs {needed} (apt-get install xvfb x11-utils netpbm zstd)")
            return 2
    for file in (args.deb, args.tarball, args.series):
        if not file.exists():
            print(f"missing {file} (make package first; the series: $BRAIN_TRIAGE_DATA)")
            return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    log.write_text("")
    report: dict[str, object] = {"deb": str(args.deb), "tarball": str(args.tarball)}
    started = time.monotonic()
    check(offline(), "in a network namespace without network (unshare -n)")
    print("== the next version's package (the same build, a higher version)", flush=True)
    next_version = f"{__version__}+upgradetest"
    bundle = args.deb.resolve().parent / "pyinstaller-cpu" / "workstation"
    run([sys.executable, str(REPO / "packaging/build.py"), "--reuse-freeze", "--no-tarball",
         "--bundle", str(bundle),
         "--package-version", next_version, "--compression", "zstd:3",
         "--out", str(out / "next")], log=log)
    next_deb = out / "next" / f"{package_of(args.deb)}_{next_version}_amd64.deb"
    base = args.test_root if (args.test_root / ".brain-mri-triage-test-root").exists() else None
    root = make_root(out, base, log)
    report["mode"] = "chroot (debootstrap minbase)" if root.chroot else "dpkg --root"
    try:
        test_deb(root, args.deb.resolve(), next_deb, args.series.resolve(), out, report)
        test_tarball(root, args.tarball.resolve(), out, report)
    finally:
        end_processes_in(root.path)
        if root.chroot:
            subprocess.run(["umount", "-R", str(root.path / "proc")], check=False)
            subprocess.run(["umount", "-R", str(root.path / "dev")], check=False)
        report["seconds"] = round(time.monotonic() - started, 1)
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"package test passed in {report['seconds']} s ({report['mode']}); screenshot: "
          f"{out / 'window.png'}; report: {out / 'report.json'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as failure:
        print(f"PACKAGE TEST FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
