#!/usr/bin/env bash
# Set up, once, the emulated ARM targets: a Debian root filesystem per architecture with the runtimes.
#
#   scripts/setup-arm-emu.sh [arm64|armv7|all]      (default: arm64)
#
# Into ${DEPLOY_EMU_HOME:-~/.cache/mobile-deploy/emu}/ARCH: rootfs/ (debootstrap, minbase + python3),
# wheels/ (downloaded here with pip for the ARM platform; pip inside the emulator fails on TLS)
# installed offline into the rootfs, an ARM cpuinfo for QEMU (pipeline/targets/emulated.py), READY
# last, holding the installed wheel versions.
#   arm64: numpy, ai-edge-litert, ncnn and mnn, the host .venv's versions; QEMU CPU cortex-a76.
#   armv7: Debian's python3-numpy, tflite-runtime 2.14 (the last release with armv7 wheels; LiteRT
#          has none) and the host's ncnn version (MNN has no armv7 wheel); QEMU CPU cortex-a7.
# A finished setup is reused: a rerun does nothing unless the wheel versions changed, and then
# only the wheels are reinstalled. Needs root (debootstrap) and binfmt_misc for debootstrap's second
# stage (it runs the rootfs's dpkg); running benchmarks later needs neither.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-common.sh
case "${1:-arm64}" in
    all) arches=(arm64 armv7) ;;
    arm64 | armv7) arches=("${1:-arm64}") ;;
    *) echo "setup-arm-emu: unknown architecture '$1' (arm64, armv7 or all)" >&2; exit 2 ;;
esac
HOME_DIR="${DEPLOY_EMU_HOME:-$HOME/.cache/mobile-deploy/emu}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
[ -x .venv/bin/pip ] || { echo "setup-arm-emu: run make setup first (the wheels' versions come from .venv)" >&2; exit 2; }
host_version() { .venv/bin/python -c "import importlib.metadata as m; print(m.version('$1'))"; }

setup_arch() {
    local arch=$1 debarch qemu binfmt machine pins debs cpu_line
    case $arch in
        arm64)
            debarch=arm64 qemu=qemu-aarch64-static binfmt=qemu-aarch64 debs=python3
            machine=aarch64
            pins="numpy==$(host_version numpy) ai-edge-litert==$(host_version ai-edge-litert) ncnn==$(host_version ncnn) mnn==$(host_version mnn)"
            # Cortex-A76: CPU part 0xd0b, ARMv8.2 with dot product and fp16 arithmetic.
            cpu_line='Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n' ;;
        armv7)
            debarch=armhf qemu=qemu-arm-static binfmt=qemu-arm debs=python3,python3-numpy
            machine=armv7l
            pins="tflite-runtime==2.14.0 ncnn==$(host_version ncnn)"
            # Cortex-A7: CPU part 0xc07, ARMv7-A with NEON and VFPv4.
            cpu_line='model name\t: ARMv7 Processor rev 5 (v7l)\nFeatures\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm\nCPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xc07\nCPU revision\t: 5\n' ;;
    esac
    local dir="$HOME_DIR/$arch"
    if [ -f "$dir/READY" ] && [ "$(cat "$dir/READY")" = "$pins" ]; then
        echo "setup-arm-emu: $arch already set up in $dir ($pins)"
        return
    fi
    [ "$(id -u)" = 0 ] || { echo "setup-arm-emu: run as root (debootstrap needs it)" >&2; exit 2; }
    local start; start=$(date +%s)
    rm -f "$dir/READY"

    apt_install_missing "$qemu=qemu-user-static" debootstrap=debootstrap update-binfmts=binfmt-support
    enable_binfmt "$binfmt"

    mkdir -p "$dir"
    if [ ! -d "$dir/rootfs" ]; then
        echo "setup-arm-emu: debootstrap Debian bookworm $debarch (a few minutes; log in $dir/debootstrap.log)"
        rm -rf "$dir/rootfs.partial"
        debootstrap --arch="$debarch" --variant=minbase --include="$debs" bookworm "$dir/rootfs.partial" "$MIRROR" >"$dir/debootstrap.log"
        mv "$dir/rootfs.partial" "$dir/rootfs"
    fi

    # Every manylinux tag bookworm's glibc 2.36 runs (pip does not expand a --platform to older ones).
    local platform=(--only-binary=:all: --python-version 3.11 --implementation cp --platform "manylinux2014_$machine") v
    for v in $(seq 17 36); do platform+=(--platform "manylinux_2_${v}_$machine"); done
    # --no-deps: the runner needs numpy and the runtime only (ncnn's wheel also asks for requests,
    # tqdm and portalocker, used by its model zoo); armv7's numpy is Debian's.
    # shellcheck disable=SC2086
    .venv/bin/pip download -q --no-deps "${platform[@]}" -d "$dir/wheels" $pins
    local site="$dir/rootfs/usr/local/lib/python3.11/dist-packages"
    rm -rf "$site.partial"
    # shellcheck disable=SC2086
    .venv/bin/pip install -q --no-deps --no-index --find-links "$dir/wheels" "${platform[@]}" --target "$site.partial" $pins
    rm -rf "$site" && mv "$site.partial" "$site"

    # QEMU's -L looks absolute paths up in the rootfs, but the host kernel resolves symlinks: an
    # absolute link (Debian's alternatives, e.g. armv7's libblas.so.3 for numpy) would point at the
    # host's files. Make every absolute link in the rootfs relative.
    .venv/bin/python - "$dir/rootfs" <<'PYTHON'
import os, sys
root = sys.argv[1]
for folder, dirs, files in os.walk(root):
    for name in dirs + files:
        link = os.path.join(folder, name)
        if os.path.islink(link) and os.readlink(link).startswith("/"):
            target = os.path.relpath(root + os.readlink(link), folder)
            os.unlink(link)
            os.symlink(target, link)
PYTHON

    # What the runtimes' CPU detection reads under QEMU (LiteRT crashes on the host's x86 one):
    # one emulated core per host core.
    local cpuinfo="$dir/rootfs/proc/cpuinfo" i
    : >"$cpuinfo"
    for ((i = 0; i < $(nproc); i++)); do
        printf "processor\t: %d\nBogoMIPS\t: 50.00\n$cpu_line\n" "$i" >>"$cpuinfo"
    done
    echo "$pins" >"$dir/READY"
    echo "setup-arm-emu: $arch ready in $dir ($(du -sh "$dir" | cut -f1), $(($(date +%s) - start)) s): $pins"
}

for arch in "${arches[@]}"; do setup_arch "$arch"; done
