#!/usr/bin/env bash
# Debian packages the tests run for real, installed only when missing (a rerun does nothing):
#   chromium + a font: opens report.html headless (tests/report/test_html_in_chromium.py); no test
#     tool downloads a browser of its own;
#   kotlin (kotlinc 1.3): compiles the android-demo core for the JVM (tests/apps);
#   adb (1.0.41): drives `deploy bench --target adb --app` up to the device (tests/targets);
#   openssh-server: a throwaway sshd on loopback, started by the tests, is the ssh target's board
#     (tests/targets/test_ssh.py); the system's own sshd is neither configured nor started;
#   strace: traces every socket call of a real build (tests/test_network.py).
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium fonts-dejavu-core)
command -v kotlinc >/dev/null || missing+=(kotlin)
command -v adb >/dev/null || missing+=(adb)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v strace >/dev/null || missing+=(strace)
[ ${#missing[@]} = 0 ] && exit 0
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup-system: run as root, or: apt-get install ${missing[*]}" >&2; exit 2; }
    SUDO=sudo
fi
# An old or empty package list finds no candidate: refresh it first.
$SUDO apt-get update -qq
# Recommends (upower, printing, notification daemons...) are for desktops.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-system: installed ${missing[*]}"
