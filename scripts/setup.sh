#!/usr/bin/env bash
# Create .venv and install the pinned package: `setup.sh` what a build needs (make demo),
# `setup.sh test` also the test tools (pytest, torch's local CPU build, Ray; make test).
# Safe to rerun: it only reinstalls when pyproject.toml changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || {
    echo "setup: Python 3.11 is required (TensorFlow 2.21 wheels); found $("$PYTHON" --version 2>&1)" >&2
    exit 2
}

# Installed without their declared dependencies (see pyproject.toml): pnnx's wheel ships a
# standalone executable but declares torch; onnx2tf pins old tensorflow, numpy and onnx.
NO_DEPS=(pnnx==20261020 onnx2tf==1.29.24)

extras=""
stamp=.venv/.installed
if [ "${1:-}" = test ]; then
    extras="[test]"
    stamp=.venv/.installed-test
fi
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt scripts/setup.sh ]; then
    exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".$extras"
.venv/bin/python -m pip install --quiet --no-deps "${NO_DEPS[@]}"
touch "$stamp"
echo "setup: installed into .venv ($(.venv/bin/deploy --version))"
