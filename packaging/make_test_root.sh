#!/usr/bin/env bash
# A clean Debian root for `make package-test` (chroot mode): debootstrap minbase (no Python,
# no desktop) plus only what a clinic's desktop has: the Qt desktop libraries of the README,
# Xvfb to draw the window on and shared-mime-info/desktop-file-utils for the menu caches.
# Needs the Debian mirror once (run it where there is network); the test itself runs offline.
# Usage: packaging/make_test_root.sh DIR   (e.g. dist/package-test-root; about 400 MB)
set -euo pipefail
root=${1:?usage: make_test_root.sh DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=${DEBIAN_SUITE:-bookworm}
desktop=$(grep -m1 '^sudo apt-get install libegl1' "$here/README.md" | sed 's/^sudo apt-get install //')
command -v debootstrap >/dev/null || { echo "needs debootstrap (apt-get install debootstrap)"; exit 2; }
[ "$(id -u)" = 0 ] || { echo "needs root (debootstrap, chroot)"; exit 2; }
if [ ! -x "$root/usr/bin/dpkg" ]; then
  debootstrap --variant=minbase "$suite" "$root" "$mirror"
fi
# shellcheck disable=SC2086
chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
  sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $desktop \
         xvfb xauth shared-mime-info desktop-file-utils && apt-get clean"
if chroot "$root" sh -c 'command -v python3'; then
  echo "warning: the test root has a python3; the package must not need it"
fi
touch "$root/.brain-mri-triage-test-root"
echo "test root ready: $root"
