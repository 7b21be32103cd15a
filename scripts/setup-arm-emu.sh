#!/usr/bin/env bash
# Set up, once, the emulated ARM target: a Debian root filesystem with numpy and ai-edge-litert.
#
#   scripts/setup-arm-emu.sh [arm64]
#
# Into ${DEPLOY_EMU_HOME:-~/.cache/mobile-deploy/emu}/arm64: rootfs/ (debootstrap, minbase + python3),
# wheels/ (downloaded here with pip for the aarch64 platform; pip inside the emulator fails on TLS)
# installed offline into the rootfs, an ARM cpuinfo for QEMU (pipeline/targets/emulated.py), READY
# last. A finished setup is reused: a rerun does nothing. Needs root (debootstrap) and binfmt_misc
# for debootstrap's second stage (it runs the rootfs's dpkg); running benchmarks later needs neither.
# Only arm64 in this version (armv7: Debian's numpy + tflite-runtime 2.14, still to do).
set -euo pipefail
ARCH="${1:-arm64}"
[ "$ARCH" = arm64 ] || { echo "setup-arm-emu: only arm64 is supported in this version, not '$ARCH'" >&2; exit 2; }
cd "$(dirname "$0")/.."
HOME_DIR="${DEPLOY_EMU_HOME:-$HOME/.cache/mobile-deploy/emu}"
DIR="$HOME_DIR/$ARCH"
[ -f "$DIR/READY" ] && exit 0
[ "$(id -u)" = 0 ] || { echo "setup-arm-emu: run as root (debootstrap needs it)" >&2; exit 2; }
[ -x .venv/bin/pip ] || { echo "setup-arm-emu: run make setup first (the wheels' versions come from .venv)" >&2; exit 2; }
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
start=$(date +%s)

missing=()
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v update-binfmts >/dev/null || missing+=(binfmt-support)
if [ ${#missing[@]} != 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# debootstrap's second stage executes arm64 binaries: the kernel must hand them to QEMU.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64

mkdir -p "$DIR"
if [ ! -d "$DIR/rootfs" ]; then
    rm -rf "$DIR/rootfs.partial"
    debootstrap --arch=arm64 --variant=minbase --include=python3 bookworm "$DIR/rootfs.partial" "$MIRROR" >"$DIR/debootstrap.log"
    mv "$DIR/rootfs.partial" "$DIR/rootfs"
fi

# The same numpy and ai-edge-litert versions as the host's .venv, for the aarch64 wheels.
pins=$(.venv/bin/python -c 'import importlib.metadata as m; print(" ".join(f"{d}=={m.version(d)}" for d in ("numpy", "ai-edge-litert")))')
platform=(--only-binary=:all: --python-version 3.11 --implementation cp
          --platform manylinux_2_27_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64)
# shellcheck disable=SC2086
.venv/bin/pip download -q "${platform[@]}" -d "$DIR/wheels" $pins
site="$DIR/rootfs/usr/local/lib/python3.11/dist-packages"
rm -rf "$site.partial"
# shellcheck disable=SC2086
.venv/bin/pip install -q --no-index --find-links "$DIR/wheels" "${platform[@]}" --target "$site.partial" $pins
rm -rf "$site" && mv "$site.partial" "$site"

# What LiteRT's CPU detection reads under QEMU: one Cortex-A76 (CPU part 0xd0b) per host core.
cpuinfo="$DIR/rootfs/proc/cpuinfo"
: >"$cpuinfo"
for ((i = 0; i < $(nproc); i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n' "$i" >>"$cpuinfo"
done
touch "$DIR/READY"
echo "setup-arm-emu: $ARCH ready in $DIR ($(du -sh "$DIR" | cut -f1), $(( $(date +%s) - start )) s)"
