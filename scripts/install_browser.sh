#!/usr/bin/env bash
# Install Debian's headless-capable chromium for the browser test and bench_app (idempotent, quiet).
#
# Never `playwright install`: Playwright drives this system chromium through executable_path instead of
# downloading its own browsers. Needs root (or sudo) and access to the Debian mirrors.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "error: installing chromium needs root; run this script as root or install sudo" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null

if [ ! -x "$CHROMIUM" ]; then
    echo "error: apt-get installed chromium but $CHROMIUM is missing; check 'dpkg -L chromium'" >&2
    exit 1
fi
"$CHROMIUM" --version 2>/dev/null  # the Debian wrapper script prints harmless shell warnings
