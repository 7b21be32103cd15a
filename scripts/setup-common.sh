# Sourced by scripts/setup-arm-emu.sh and scripts/setup-arm-board.sh (both run as root).

# apt_install_missing COMMAND=PACKAGE ...: install each PACKAGE whose COMMAND is not on PATH.
apt_install_missing() {
    local missing=() pair
    for pair in "$@"; do command -v "${pair%%=*}" >/dev/null || missing+=("${pair#*=}"); done
    if [ ${#missing[@]} != 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# enable_binfmt NAME (qemu-aarch64, qemu-arm): debootstrap's second stage and a chroot run ARM
# binaries, so the kernel must hand them to QEMU (a kernel-wide setting).
enable_binfmt() {
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
    [ -e "/proc/sys/fs/binfmt_misc/$1" ] || update-binfmts --enable "$1"
}
