#!/usr/bin/env bash
# Fetch the public-domain openclipart images (Debian packages openclipart-png and openclipart-svg)
# for the `openclipart` task, without installing anything system-wide: `apt-get download` fetches
# the .debs as an ordinary user and `dpkg -x` unpacks them into
#   ${MIXBENCH_DATA:-~/.cache/mixbench/data}/openclipart
# so the PNGs land under .../openclipart/usr/share/openclipart/png and the SVGs (with the caption
# metadata) under .../openclipart/usr/share/openclipart/svg. About 156 MB to download.
#
# Usage: scripts/fetch_openclipart.sh [TARGET_DIR]
set -euo pipefail

PACKAGES=(openclipart-png openclipart-svg)
target="${1:-${MIXBENCH_DATA:-$HOME/.cache/mixbench/data}/openclipart}"

for tool in apt-get dpkg; do
    command -v "$tool" >/dev/null || { echo "fetch_openclipart: needs $tool (a Debian or Ubuntu system)" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Run as root, apt downloads as its unprivileged _apt user: let that user write here (else it
# warns and falls back to downloading unsandboxed).
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$work"; fi
cd "$work"

if ! apt-get download "${PACKAGES[@]}"; then
    # Stale or absent package lists are the usual cause; refreshing them needs root.
    if [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; then
        echo "fetch_openclipart: download failed; running apt-get update and retrying" >&2
        if [ "$(id -u)" -eq 0 ]; then apt-get update -qq; else sudo -n apt-get update -qq; fi
        apt-get download "${PACKAGES[@]}"
    else
        echo "fetch_openclipart: apt-get download failed; run 'sudo apt-get update' and try again" >&2
        exit 1
    fi
fi

mkdir -p "$target"
for deb in ./*.deb; do
    echo "fetch_openclipart: unpacking $(basename "$deb")" >&2
    dpkg -x "$deb" "$target"
done
echo "fetch_openclipart: openclipart is in $target" >&2
