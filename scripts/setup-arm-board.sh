#!/usr/bin/env bash
# Build, once, the disk image of an emulated arm64 Linux board (QEMU full-system, reached over ssh).
#
#   scripts/setup-arm-board.sh
#
# Into ${DEPLOY_BOARD_HOME:-~/.cache/mobile-deploy/board}: disk.img (Debian bookworm arm64, sparse,
# ext4), vmlinuz and initrd.img (booted directly by qemu-system-aarch64 -M virt), host_key.pub (the
# board's ssh host key, for known_hosts), READY last, holding the hash of this script: a rerun does
# nothing unless this recipe changed. pipeline/targets/qemu_board.py starts and stops the board.
#
# The board has Python 3.11 and sshd, and deliberately no numpy or runtime: `deploy devices --setup`
# provisions those (docs/targets.md). Root logs in with the key QEMU hands over at each start
# (fw_cfg opt/mobile-deploy/authorized_keys), so every start can use a fresh key. Needs root
# (debootstrap, chroot) and binfmt_misc; recipe and timings in ../shared/FIELD-NOTES.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-common.sh
HOME_DIR="${DEPLOY_BOARD_HOME:-$HOME/.cache/mobile-deploy/board}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
recipe=$(sha256sum "$0" | cut -c1-16)
if [ -f "$HOME_DIR/READY" ] && [ "$(cat "$HOME_DIR/READY")" = "$recipe" ]; then
    echo "setup-arm-board: board image ready in $HOME_DIR (recipe $recipe)"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "setup-arm-board: run as root (debootstrap and chroot need it)" >&2; exit 2; }
start=$(date +%s)
rm -f "$HOME_DIR/READY"

apt_install_missing qemu-system-aarch64=qemu-system-arm qemu-img=qemu-utils qemu-aarch64-static=qemu-user-static \
    debootstrap=debootstrap update-binfmts=binfmt-support mke2fs=e2fsprogs ssh-keygen=openssh-client
enable_binfmt qemu-aarch64

mkdir -p "$HOME_DIR"
root="$HOME_DIR/rootfs.partial"
cleanup() {
    for m in dev/pts dev sys proc; do mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"; done
    return 0
}
trap cleanup EXIT
cleanup
rm -rf "$root"
echo "setup-arm-board: debootstrap Debian bookworm arm64 (a few minutes; log in $HOME_DIR/debootstrap.log)"
debootstrap --arch=arm64 --variant=minbase \
    --include=python3,systemd-sysv,udev,kmod,initramfs-tools,openssh-server,iproute2 \
    bookworm "$root" "$MIRROR" >"$HOME_DIR/debootstrap.log"

# The kernel's initramfs with only the drivers the virt board needs: the default MODULES=most takes
# about 14 minutes per initramfs under qemu-user, and apt builds it twice.
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
printf '%s\n' virtio_pci virtio_mmio virtio_blk virtio_net ext4 >>"$root/etc/initramfs-tools/modules"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"  # no service starts inside the chroot
chmod +x "$root/usr/sbin/policy-rc.d"
echo "setup-arm-board: installing the kernel (log in $HOME_DIR/kernel.log)"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends linux-image-arm64 \
    >"$HOME_DIR/kernel.log" 2>&1
chroot "$root" apt-get clean
rm -f "$root/usr/sbin/policy-rc.d"
cleanup

# The board's configuration: its name, root on the virtio disk, DHCP from QEMU's user network,
# fw_cfg's sysfs files for the authorized key, a unit that installs that key before sshd starts.
echo arm-board >"$root/etc/hostname"
echo "/dev/vda / ext4 defaults 0 1" >"$root/etc/fstab"
printf '[Match]\nName=eth*\n\n[Network]\nDHCP=yes\n' >"$root/etc/systemd/network/10-eth.network"
echo qemu_fw_cfg >"$root/etc/modules-load.d/qemu_fw_cfg.conf"
cat >"$root/etc/systemd/system/authorized-key.service" <<'UNIT'
[Unit]
Description=Root's ssh key from QEMU fw_cfg (opt/mobile-deploy/authorized_keys)
After=systemd-modules-load.service
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'install -d -m 700 /root/.ssh && install -m 600 /sys/firmware/qemu_fw_cfg/by_name/opt/mobile-deploy/authorized_keys/raw /root/.ssh/authorized_keys'

[Install]
WantedBy=multi-user.target
UNIT
wants="$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/authorized-key.service "$wants/authorized-key.service"
ln -sf /lib/systemd/system/systemd-networkd.service "$wants/systemd-networkd.service"
# Each new connection costs seconds of key exchange on an emulated CPU: no DNS lookups on top.
echo "UseDNS no" >"$root/etc/ssh/sshd_config.d/board.conf"

cp "$root"/boot/vmlinuz-* "$HOME_DIR/vmlinuz.partial"
cp "$root"/boot/initrd.img-* "$HOME_DIR/initrd.img.partial"
cp "$root/etc/ssh/ssh_host_ed25519_key.pub" "$HOME_DIR/host_key.pub.partial"
rm -f "$HOME_DIR/disk.img.partial"
mke2fs -q -t ext4 -d "$root" "$HOME_DIR/disk.img.partial" 4G
for f in vmlinuz initrd.img host_key.pub disk.img; do mv "$HOME_DIR/$f.partial" "$HOME_DIR/$f"; done
rm -rf "$root"
echo "$recipe" >"$HOME_DIR/READY"
echo "setup-arm-board: board image ready in $HOME_DIR ($(du -sh "$HOME_DIR" | cut -f1) used, $(($(date +%s) - start)) s)"
