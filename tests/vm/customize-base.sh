#!/bin/bash
# mmdebstrap --customize-hook for the cached base image of the VM test (tests/vm/run.sh).
# $1 = guest root directory. Runs on the host as root. Nothing of ics-mail goes in here: the
# base image is cached, and the binary, units and configuration are added on every run.
set -euo pipefail
R=$1

echo appliance > "$R/etc/hostname"
printf '127.0.1.1 appliance\n' >> "$R/etc/hosts"
printf '/dev/vda / ext4 rw,noatime,errors=remount-ro 0 1\n' > "$R/etc/fstab"
# QEMU user networking: the guest is 10.0.2.15, the gateway 10.0.2.2 (static: no DHCP wait)
mkdir -p "$R/etc/systemd/network"
cat > "$R/etc/systemd/network/10-slirp.network" <<'EOF'
[Match]
Name=en* eth*
[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
chroot "$R" systemctl enable -q systemd-networkd
# units that only cost boot time in a throwaway test VM
chroot "$R" systemctl mask -q systemd-firstboot.service systemd-networkd-wait-online.service \
  apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
  dpkg-db-backup.timer sys-kernel-debug.mount sys-kernel-tracing.mount dev-hugepages.mount \
  dev-mqueue.mount sys-kernel-config.mount sys-fs-fuse-connections.mount \
  systemd-update-utmp.service systemd-update-utmp-runlevel.service
rm -f "$R/etc/machine-id"; chroot "$R" systemd-machine-id-setup >/dev/null
chroot "$R" passwd -qd root

# Keep only the kernel modules a virtio guest needs (and their dependencies); the initrd
# shrinks accordingly (same approach as /work/shared/reference/vm-recipe.sh).
K=$(ls "$R/usr/lib/modules")
declare -A seen; keep=()
resolve() {
  local m=$1 f d; [[ -n ${seen[$m]:-} ]] && return 0; seen[$m]=1
  f=$(chroot "$R" modinfo -k "$K" -F filename "$m" 2>/dev/null | head -1)
  [[ $f == /* ]] || return 0            # built in
  keep+=("${f#/usr/lib/modules/$K/}"); keep+=("${f#/lib/modules/$K/}")
  for d in $(chroot "$R" modinfo -k "$K" -F depends "$m" | tr , ' '); do resolve "$d"; done
  for d in $(chroot "$R" modinfo -k "$K" -F softdep "$m" | tr ' ' '\n' | grep -v ':$'); do resolve "$d"; done
}
for m in virtio_pci virtio_blk virtio_net virtio_rng virtio_console ext4 crc32c_generic crc32c_intel autofs4; do
  resolve $m
done
M="$R/usr/lib/modules/$K"; mkdir "$M/kept"
for f in "${keep[@]}"; do
  [[ -f $M/$f ]] || continue
  mkdir -p "$M/kept/$(dirname "${f#kernel/}")"; mv "$M/$f" "$M/kept/${f#kernel/}"
done
rm -rf "$M/kernel"; mv "$M/kept" "$M/kernel"
chroot "$R" depmod "$K"
rm -f "$R/boot/initrd.img-$K"
chroot "$R" update-initramfs -c -k "$K" 2>&1 | grep -v 'fsck hook' || true
test -s "$R/boot/initrd.img-$K"
