#!/usr/bin/env bash
# Install Debian's chromium for the HTML report's browser test, unless /usr/bin/chromium is present.
# Runs `apt-get update` once (only when an install is needed); needs root or sudo.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium.sh needs apt-get (Debian/Ubuntu); install chromium by hand so /usr/bin/chromium exists." >&2
    exit 2
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-chromium.sh must run as root (or with sudo available) to apt-get install chromium." >&2
        exit 2
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
/usr/bin/chromium --version
