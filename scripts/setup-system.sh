#!/usr/bin/env bash
# Debian packages the tests run for real: kotlinc (kotlin 1.3) compiles the android-demo core for
# the JVM (tests/apps); adb (1.0.41) drives `deploy bench --target adb --app` up to the device
# (tests/targets). Safe to rerun: installs only what is missing from PATH.
set -euo pipefail
missing=()
command -v kotlinc >/dev/null || missing+=(kotlin)
command -v adb >/dev/null || missing+=(adb)
[ ${#missing[@]} = 0 ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
echo "setup: installed ${missing[*]} ($(kotlinc -version 2>&1 | grep -o 'kotlinc-jvm [^ ]*'), $(adb version | head -1))"
