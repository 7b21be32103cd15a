#!/usr/bin/env bash
# Debian's Chromium, for the test that opens report.html in a real headless browser
# (tests/report/test_html_in_chromium.py). Called by `make test`; does nothing when Chromium is there.
# No browser download of a test tool's own: the package comes from Debian like any other.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup-chromium: run as root, or: apt-get install chromium fonts-dejavu-core" >&2; exit 2; }
    sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# An old or empty package list finds no chromium candidate: refresh it first.
$sudo apt-get update -qq
# Recommends (upower, printing, notification daemon...) are for desktops; a font is all a headless render needs.
$sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "setup-chromium: installed $(chromium --version)"
