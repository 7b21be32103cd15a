#!/usr/bin/env bash
# kotlinc for the android-demo core's tests (tests/apps): Debian's kotlin 1.3 compiles the plain
# Kotlin core for the JVM. Safe to rerun: does nothing when kotlinc is already on PATH.
set -euo pipefail
command -v kotlinc >/dev/null && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kotlin >/dev/null
echo "setup: installed $(kotlinc -version 2>&1 | grep -o 'kotlinc-jvm [^ ]*')"
