#!/bin/sh
# Remove what install.sh installed: /opt/brain-mri-triage and the files its manifest lists
# (launcher, menu entry, MIME type, icons, receiver unit). User data is kept (see README-IT.md).
#   sudo ./uninstall.sh    or    ./uninstall.sh --root DIR
set -eu
root=""
quiet=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=${2:?--root needs a folder}; shift 2 ;;
    --quiet) quiet=1; shift ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "uninstall.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
opt="$root/opt/brain-mri-triage"
manifest="$opt/.installed-files"
if [ ! -f "$manifest" ]; then
  echo "uninstall.sh: nothing installed by install.sh at ${root:-/}opt/brain-mri-triage" >&2; exit 1
fi
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
  for unit in $(systemctl list-units --plain --no-legend 'brain-mri-triage-receiver@*' 2>/dev/null | awk '{print $1}'); do
    systemctl disable --now "$unit" || true
  done
fi
while IFS= read -r file; do
  [ -n "$file" ] && rm -f "$root$file"
done < "$manifest"
rm -rf "$opt"
local_share="$root/usr/local/share"
# the caches: rebuilt without this program, or removed where nothing else is left in them
if [ -d "$local_share/mime/packages" ] && [ -z "$(ls -A "$local_share/mime/packages")" ]; then
  rm -rf "$local_share/mime"
elif command -v update-mime-database >/dev/null 2>&1 && [ -d "$local_share/mime/packages" ]; then
  update-mime-database "$local_share/mime" || true
fi
if [ -d "$local_share/applications" ] && ! ls "$local_share/applications" | grep -q '\.desktop$'; then
  rm -f "$local_share/applications/mimeinfo.cache"
elif command -v update-desktop-database >/dev/null 2>&1 && [ -d "$local_share/applications" ]; then
  update-desktop-database -q "$local_share/applications" || true
fi
# the folders install.sh made, where they are empty now (deepest first)
for folder in share/doc/brain-mri-triage share/doc share/icons/hicolor/scalable/apps \
              share/icons/hicolor/scalable share/icons/hicolor/256x256/apps \
              share/icons/hicolor/256x256 share/icons/hicolor share/icons share/applications; do
  rmdir "$root/usr/local/$folder" 2>/dev/null || true
done
if [ -z "$root" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
[ -n "$quiet" ] || echo "removed the workstation from ${root:-/}opt/brain-mri-triage; user data was kept"
