#!/bin/sh
# Install the workstation from this unpacked .tar.gz (non-Debian systems; on Debian/Ubuntu
# use the .deb). No network and no Python needed.
#   sudo ./install.sh            into /opt/brain-mri-triage, menu entry for every user
#   ./install.sh --root DIR      into DIR as if it were / (tests, images)
# An older version installed this way is replaced; user data (settings, readings,
# worklist, audit log, received studies) lives in each user's folders and is kept.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=${2:?--root needs a folder}; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
  echo "install.sh: run it as root (sudo ./install.sh), or give --root DIR" >&2; exit 2
fi
if [ -z "$root" ] && command -v dpkg-query >/dev/null 2>&1 \
   && dpkg-query -W -f='${Status}' brain-mri-triage 2>/dev/null | grep -q "ok installed"; then
  echo "install.sh: the Debian package brain-mri-triage is installed; upgrade it with the .deb" \
       "(sudo apt install ./brain-mri-triage_*.deb) instead of mixing the two" >&2
  exit 2
fi
opt="$root/opt/brain-mri-triage"
local_share="$root/usr/local/share"
manifest="$opt/.installed-files"
# replace an older tarball install (its manifest says what it put outside /opt)
if [ -f "$manifest" ]; then
  "$here/uninstall.sh" ${root:+--root "$root"} --quiet
fi
mkdir -p "$root/opt" "$root/usr/local/bin" "$local_share/applications" \
         "$local_share/mime/packages" "$local_share/icons/hicolor/scalable/apps" \
         "$local_share/icons/hicolor/256x256/apps" "$local_share/doc/brain-mri-triage" \
         "$root/etc/systemd/system"
cp -a "$here/payload/opt/brain-mri-triage" "$root/opt/"
: > "$manifest"
put() {  # put SOURCE DESTINATION [sed expression]: copy one file, record it
  if [ $# -eq 3 ]; then sed -e "$3" "$1" > "$2"; else cp "$1" "$2"; fi
  echo "${2#"$root"}" >> "$manifest"
}
payload="$here/payload"
put "$payload/usr/bin/workstation" "$root/usr/local/bin/workstation"
chmod 755 "$root/usr/local/bin/workstation"
put "$payload/usr/share/applications/brain-mri-triage.desktop" \
    "$local_share/applications/brain-mri-triage.desktop" 's|/usr/bin/workstation|/usr/local/bin/workstation|g'
put "$payload/usr/share/mime/packages/brain-mri-triage.xml" "$local_share/mime/packages/brain-mri-triage.xml"
put "$payload/usr/share/icons/hicolor/scalable/apps/brain-mri-triage.svg" \
    "$local_share/icons/hicolor/scalable/apps/brain-mri-triage.svg"
put "$payload/usr/share/icons/hicolor/256x256/apps/brain-mri-triage.png" \
    "$local_share/icons/hicolor/256x256/apps/brain-mri-triage.png"
put "$payload/usr/share/doc/brain-mri-triage/README-IT.md" "$local_share/doc/brain-mri-triage/README-IT.md"
put "$payload/lib/systemd/system/brain-mri-triage-receiver@.service" \
    "$root/etc/systemd/system/brain-mri-triage-receiver@.service" \
    's|/usr/bin/workstation|/usr/local/bin/workstation|g; s|/usr/share/doc|/usr/local/share/doc|g'
if command -v update-mime-database >/dev/null 2>&1; then update-mime-database "$local_share/mime" || true; fi
if command -v update-desktop-database >/dev/null 2>&1; then update-desktop-database -q "$local_share/applications" || true; fi
if [ -z "$root" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
echo "installed $("$opt/workstation" --version | head -1) into ${root:-/}opt/brain-mri-triage"
echo "the DICOM receiver is not enabled; to enable it for a user: sudo systemctl enable --now brain-mri-triage-receiver@USER"
