#!/usr/bin/env bash
# Builds the test guest's kernel from Debian's kernel source package (linux-source-6.1): a
# tinyconfig plus what the guest uses, everything built in (no modules), gzip-compressed.
#
# Why not Debian's own kernel: under TCG (no usable KVM here) the stock bzImage spends about
# 5.8 s decompressing itself (xz) and 3 s probing drivers before init runs, about 9 s per boot;
# this one reaches init in about 3 s. Every test boots dozens of guests, so this is most of
# the suite's time. Building takes about 8 minutes on two cores, once: the result is kept in
# the output directory, whose name the callers derive from this file's hash.
#
# usage: tools/build-test-kernel.sh <out dir>    writes <out dir>/bzImage, config and release
set -euo pipefail
OUT=${1:?usage: tools/build-test-kernel.sh <out dir>}
[ -f "$OUT/bzImage" ] && exit 0

need=()
for pair in make:make gcc:gcc flex:flex bison:bison bc:bc xz:xz-utils perl:perl; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
[ -f /usr/include/libelf.h ] || need+=(libelf-dev)
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

WORK=$(mktemp -d /tmp/haneul-testkernel.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && apt-get download linux-source-6.1 >/dev/null 2>&1)
dpkg-deb --fsys-tarfile "$WORK"/linux-source-6.1_*.deb | tar -x -C "$WORK" --wildcards './usr/src/linux-source-*.tar.xz'
tar -xJf "$WORK"/usr/src/linux-source-*.tar.xz -C "$WORK"
SRC=$(ls -d "$WORK"/linux-source-*/)

# What the guest needs on top of tinyconfig: serial console, initramfs (gzip), virtio disk,
# NIC and RNG on PCI, IPv4/IPv6 with packet sockets (udhcpc), ACPI power button as an input
# event (busybox acpid), ACPI PCI hot-plug (interfaces attached to a running server), ISO
# 9660 and VFAT config drives, ptys for dropbear, KVM clock when KVM works.
cat > "$WORK/guest.config" <<'EOF'
CONFIG_64BIT=y
CONFIG_KERNEL_GZIP=y
CONFIG_PRINTK=y
CONFIG_PRINTK_TIME=y
CONFIG_BUG=y
CONFIG_MULTIUSER=y
CONFIG_FUTEX=y
CONFIG_EPOLL=y
CONFIG_SIGNALFD=y
CONFIG_TIMERFD=y
CONFIG_EVENTFD=y
CONFIG_SHMEM=y
CONFIG_AIO=y
CONFIG_FILE_LOCKING=y
CONFIG_POSIX_TIMERS=y
CONFIG_BLK_DEV_INITRD=y
CONFIG_RD_GZIP=y
CONFIG_BINFMT_ELF=y
CONFIG_BINFMT_SCRIPT=y
CONFIG_SMP=y
CONFIG_HYPERVISOR_GUEST=y
CONFIG_PARAVIRT=y
CONFIG_KVM_GUEST=y
CONFIG_PCI=y
CONFIG_ACPI=y
CONFIG_ACPI_BUTTON=y
CONFIG_HOTPLUG_PCI=y
CONFIG_HOTPLUG_PCI_ACPI=y
CONFIG_INPUT=y
CONFIG_INPUT_EVDEV=y
CONFIG_TTY=y
CONFIG_UNIX98_PTYS=y
CONFIG_SERIAL_8250=y
CONFIG_SERIAL_8250_CONSOLE=y
CONFIG_VT=y
CONFIG_VT_CONSOLE=y
CONFIG_VGA_CONSOLE=y
CONFIG_PROC_FS=y
CONFIG_SYSFS=y
CONFIG_TMPFS=y
CONFIG_DEVTMPFS=y
CONFIG_BLOCK=y
CONFIG_MSDOS_PARTITION=y
CONFIG_VIRTIO_MENU=y
CONFIG_VIRTIO=y
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_PCI_LEGACY=y
CONFIG_VIRTIO_BLK=y
CONFIG_NETDEVICES=y
CONFIG_NET_CORE=y
CONFIG_VIRTIO_NET=y
CONFIG_HW_RANDOM=y
CONFIG_HW_RANDOM_VIRTIO=y
CONFIG_NET=y
CONFIG_PACKET=y
CONFIG_UNIX=y
CONFIG_INET=y
CONFIG_IPV6=y
CONFIG_ISO9660_FS=y
CONFIG_JOLIET=y
CONFIG_VFAT_FS=y
CONFIG_FAT_FS=y
CONFIG_MSDOS_FS=y
CONFIG_NLS=y
CONFIG_NLS_CODEPAGE_437=y
CONFIG_NLS_ISO8859_1=y
CONFIG_NLS_UTF8=y
CONFIG_RTC_CLASS=y
CONFIG_RTC_DRV_CMOS=y
CONFIG_NO_HZ_IDLE=y
CONFIG_HIGH_RES_TIMERS=y
CONFIG_MODULES=n
EOF
B=$WORK/build
make -s -C "$SRC" O="$B" tinyconfig >/dev/null
"$SRC"/scripts/kconfig/merge_config.sh -m -O "$B" "$B/.config" "$WORK/guest.config" >/dev/null
make -s -C "$SRC" O="$B" olddefconfig
missing=$(sed -n 's/^\(CONFIG_[A-Z0-9_]*\)=y$/\1/p' "$WORK/guest.config" | while read -r opt; do
  grep -q "^$opt=y" "$B/.config" || echo "$opt"; done)
[ -z "$missing" ] || { echo "kernel options not taken: $missing" >&2; exit 1; }
make -s -C "$SRC" O="$B" -j"$(nproc)" bzImage
mkdir -p "$OUT"
cp "$B/.config" "$OUT/config"
make -s -C "$SRC" O="$B" kernelrelease > "$OUT/release"
cp "$B/arch/x86/boot/bzImage" "$OUT/bzImage.tmp"
mv "$OUT/bzImage.tmp" "$OUT/bzImage"
echo "built $OUT/bzImage ($(du -k "$OUT/bzImage" | cut -f1) KiB, $(cat "$OUT/release"))"
