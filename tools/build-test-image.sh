#!/usr/bin/env bash
# Builds haneul's test guest: a tiny bootable cloud image (qcow2, about 7 MiB) made only of
# Debian packages (a kernel built from Debian's kernel source, static busybox, dropbear,
# ISC dhclient for DHCPv6, syslinux), without loop mounts.
# It stands in for CirrOS: same user (cirros / gocubsgo), same role in tests.
#
# What the guest does, printing a "HANEUL-TESTIMG: ..." marker line on the serial console for
# each step (tests wait for these):
#   booted                     init runs
#   address <ip> ...           DHCP lease on eth0 (MTU and classless routes applied)
#   metadata <source>          metadata read from http://169.254.169.254 (OpenStack format,
#                              EC2 as fallback) or from a config drive (label config-2)
#   instance-id <uuid>         the instance's uuid from its metadata
#   key installed <name>       the public key put into /root and /home/cirros authorized_keys
#   user-data ran rc=<n>       user data that starts with "#!" was run
#   ready                      dropbear listens on :22
#   powering off               ACPI power button pressed (QMP system_powerdown)
#
# usage: tools/build-test-image.sh [out dir]   (default: $HANEUL_CI_CACHE/images or
#        /var/cache/haneul-ci/images). Writes haneul-testimg.qcow2 and, for direct kernel boot,
#        vmlinuz and initrd.gz. Installs its Debian packages when they are missing.
# env:   KERNEL=debian     Debian's stock kernel (linux-image-amd64) and its modules instead of
#                          tools/build-test-kernel.sh's (built once, about 8 minutes on 2 cores)
#        KERNEL_DEB=path   Debian's stock kernel from this package file.
set -euo pipefail
OUT=${1:-${HANEUL_CI_CACHE:-/var/cache/haneul-ci}/images}
PASSWORD=gocubsgo

need=()
for pair in busybox:busybox-static dropbear:dropbear-bin syslinux:syslinux mcopy:mtools mkfs.vfat:dosfstools \
            sfdisk:fdisk cpio:cpio qemu-img:qemu-utils dhclient:isc-dhcp-client; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
[ -f /usr/lib/syslinux/mbr/mbr.bin ] || need+=(syslinux-common)
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
BUSYBOX=$(command -v busybox)
if ldd "$BUSYBOX" >/dev/null 2>&1; then echo "busybox must be static (busybox-static)" >&2; exit 1; fi

WORK=$(mktemp -d /tmp/haneul-testimg.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

# ------------------------------------------------------------------------------------ kernel
# By default our own build of Debian's kernel source (tools/build-test-kernel.sh: everything
# built in, boots in a third of the time under TCG), kept under the cache by its script's hash.
# KERNEL=debian (or KERNEL_DEB) takes Debian's stock kernel and its modules instead.
MODS=
if [ -n "${KERNEL_DEB:-}" ] || [ "${KERNEL:-}" = debian ]; then
  if [ -z "${KERNEL_DEB:-}" ]; then
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    (cd "$WORK" && apt-get download "$pkg" >/dev/null 2>&1)
    KERNEL_DEB=$(ls "$WORK"/linux-image-*.deb)
  fi
  dpkg-deb -x "$KERNEL_DEB" "$WORK/kernel"
  VMLINUZ=$(ls "$WORK"/kernel/boot/vmlinuz-* | head -1)
  KVER=${VMLINUZ##*/vmlinuz-}
  MODS=$WORK/kernel/lib/modules/$KVER
else
  here=$(dirname "$0")
  kdir=${HANEUL_CI_CACHE:-/var/cache/haneul-ci}/kernel/$(sha256sum "$here/build-test-kernel.sh" | cut -c1-16)
  "$here/build-test-kernel.sh" "$kdir"
  VMLINUZ=$kdir/bzImage
  KVER=$(cat "$kdir/release")
fi

# ------------------------------------------------------------------------------------ root
R=$WORK/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc/dropbear,etc/acpi/PWRF,proc,sys,dev,run,tmp,mnt,var/log} \
         "$R"/root/.ssh "$R"/home/cirros/.ssh "$R/lib/modules"
chmod 1777 "$R/tmp"
cp "$BUSYBOX" "$R/bin/busybox"
for applet in $("$BUSYBOX" --list-full); do
  [ -e "$R/$applet" ] || ln -s /bin/busybox "$R/$applet"
done

# dropbear is linked dynamically: take its libraries along.
with_libs() {
  install -D -m755 "$1" "$R$2"
  ldd "$1" | awk '/=> \// {print $3} /^[[:space:]]*\/lib/ {print $1}' | while read -r lib; do
    [ -e "$R$lib" ] || install -D -m755 "$(readlink -f "$lib")" "$R$lib"
  done
}
with_libs "$(command -v dropbear)" /usr/sbin/dropbear
with_libs "$(command -v dropbearkey)" /usr/bin/dropbearkey
# busybox has no DHCPv6 client: ISC's dhclient (libc only) for `dhclient -6` by hand, e.g.
# dhclient -6 -1 -cf /dev/null -sf <script> -lf /tmp/l6 -pf /tmp/p6 eth1.
with_libs "$(command -v dhclient)" /sbin/dhclient

# Kernel modules the guest needs, with what they depend on (read from each module's
# .modinfo), listed in load order.
: > "$R/etc/modules"
declare -A loaded=()
module_file() { find "$MODS/kernel" \( -name "$1.ko" -o -name "${1//_/-}.ko" -o -name "$1.ko.xz" -o -name "${1//_/-}.ko.xz" \) | head -1; }
add_module() {
  local name=$1 file deps dep
  [ -z "${loaded[$name]:-}" ] || return 0
  loaded[$name]=1
  file=$(module_file "$name")
  [ -n "$file" ] || { echo "kernel module $name not found in $KVER" >&2; exit 1; }
  if [[ $file == *.xz ]]; then xz -dc "$file" > "$WORK/m.ko"; file=$WORK/m.ko; fi
  deps=$("$BUSYBOX" strings -a "$file" | sed -n 's/^depends=//p' | tr ',' ' ')
  for dep in $deps; do add_module "$dep"; done
  cp "$file" "$R/lib/modules/$name.ko"
  echo "$name" >> "$R/etc/modules"
}
[ -z "$MODS" ] || for m in virtio_pci virtio_blk virtio_net virtio_rng isofs vfat nls_cp437 nls_iso8859_1 nls_utf8 button evdev; do
  module_file "$m" >/dev/null && [ -n "$(module_file "$m")" ] && add_module "$m"
done

# ------------------------------------------------------------------------------------ config
printf 'root:x:0:0:root:/root:/bin/sh\ncirros:x:1000:1000:cirros:/home/cirros:/bin/sh\n' > "$R/etc/passwd"
printf 'root:x:0:\ncirros:x:1000:\n' > "$R/etc/group"
printf 'root:*:20000:0:99999:7:::\ncirros:%s:20000:0:99999:7:::\n' "$("$BUSYBOX" mkpasswd -m sha512 "$PASSWORD")" > "$R/etc/shadow"
chmod 600 "$R/etc/shadow"
printf '/bin/sh\n' > "$R/etc/shells"
echo cirros > "$R/etc/hostname"
chmod 700 "$R/root" "$R/root/.ssh"

cat > "$R/etc/inittab" <<'EOF'
::sysinit:/etc/rc.boot
::respawn:/sbin/getty -L 115200 ttyS0 vt100
::shutdown:/bin/umount -a -r
EOF

# busybox acpid runs /etc/acpi/PWRF/00000080 for the power button.
cat > "$R/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "HANEUL-TESTIMG: powering off" > /dev/ttyS0
/sbin/poweroff
EOF
chmod 755 "$R/etc/acpi/PWRF/00000080"

# udhcpc's hook: configure eth0 from the lease (IPv4 only: the kernel keeps its IPv6
# link-local and SLAAC addresses), print the address marker.
cat > "$R/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    # Classless static routes (option 121) replace the router option, as RFC 3442 says.
    if [ -n "$staticroutes" ]; then
      set -- $staticroutes
      while [ $# -ge 2 ]; do
        if [ "$1" = 0.0.0.0/0 ]; then ip route replace default via "$2" dev "$interface"
        else ip route replace "$1" via "$2" dev "$interface"; fi
        shift 2
      done
    elif [ -n "$router" ]; then
      ip route replace default via "${router%% *}" dev "$interface"
    fi
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    echo "HANEUL-TESTIMG: address $ip/${mask:-24} router=${router:-none} mtu=${mtu:-default}" > /dev/ttyS0
    ;;
esac
EOF
chmod 755 "$R/etc/udhcpc.script"

cat > "$R/etc/rc.boot" <<'EOF'
#!/bin/sh
# haneul test image: everything runs from this initramfs.
mark() { echo "HANEUL-TESTIMG: $*" > /dev/ttyS0; }
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
hostname -F /etc/hostname
mark "booted kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"
while read -r m; do insmod "/lib/modules/$m.ko" 2>/dev/null; done < /etc/modules
ip link set lo up
acpid
mdev -s 2>/dev/null

md=/run/metadata
mkdir -p $md
# The network, if there is a NIC.
if ip link show eth0 >/dev/null 2>&1; then
  ip link set eth0 up
  udhcpc -i eth0 -s /etc/udhcpc.script -O mtu -O staticroutes -t 5 -T 2 -n -q >/dev/null 2>&1 || mark "no DHCP lease"
fi
fetch() { timeout 5 wget -q -O "$2" "http://169.254.169.254/$1" 2>/dev/null; }
source=
if ip -4 addr show eth0 2>/dev/null | grep -q inet; then
  for try in 1 2 3; do
    if fetch openstack/latest/meta_data.json $md/meta_data.json; then
      fetch openstack/latest/user_data $md/user_data || rm -f $md/user_data
      source=metadata-service; break
    fi
    if fetch latest/meta-data/instance-id $md/instance-id; then
      fetch latest/meta-data/public-keys/0/openssh-key $md/key || rm -f $md/key
      fetch latest/user-data $md/user_data || rm -f $md/user_data
      source=ec2-metadata; break
    fi
    sleep 1
  done
fi
# Otherwise the config drive: an ISO 9660 (or VFAT) disk labelled config-2, found by its
# label (busybox has no blkid here) and its openstack/ directory.
label() { # ISO 9660 volume id at byte 32808, VFAT (FAT12/16) label at byte 43
  dd if="$1" bs=1 skip=32808 count=8 2>/dev/null; echo; dd if="$1" bs=1 skip=43 count=8 2>/dev/null
}
if [ -z "$source" ]; then
  for dev in /dev/vd? /dev/sr?; do
    [ -b "$dev" ] || continue
    label "$dev" | grep -qi '^config-2' || continue
    mkdir -p /mnt/config
    for fs in iso9660 vfat; do
      mount -t $fs -o ro "$dev" /mnt/config 2>/dev/null || continue
      if [ -f /mnt/config/openstack/latest/meta_data.json ]; then
        cp /mnt/config/openstack/latest/meta_data.json $md/
        cp /mnt/config/openstack/latest/user_data $md/ 2>/dev/null
        source="config-drive $dev"
      fi
      umount /mnt/config
      break
    done
    [ -n "$source" ] && break
  done
fi
# A top-level string of meta_data.json (one line of JSON; keys Nova writes once).
json() { tr ',{}' '\n\n\n' < $md/meta_data.json | sed -n "s/^ *\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -1; }
if [ -n "$source" ]; then
  mark "metadata $source"
  if [ -f $md/meta_data.json ]; then
    uuid=$(json uuid); name=$(json hostname)
    # The first public key: "public_keys": {"name": "ssh-... comment"}.
    tr -d '\n' < $md/meta_data.json | sed -n 's/.*"public_keys": *{ *"\([^"]*\)": *"\([^"]*\)".*/\1 \2/p' > $md/keyline
    keyname=$(cut -d' ' -f1 $md/keyline); cut -d' ' -f2- $md/keyline | sed 's/\\n$//' > $md/key
    [ -s $md/key ] || rm -f $md/key
  else
    uuid=$(cat $md/instance-id); name=
  fi
  [ -n "$name" ] && hostname "$name"
  mark "instance-id $uuid"
  if [ -f $md/key ]; then
    for h in /root /home/cirros; do cat $md/key >> $h/.ssh/authorized_keys; chmod 600 $h/.ssh/authorized_keys; done
    chown -R 1000:1000 /home/cirros
    mark "key installed ${keyname:-0}"
  fi
  if [ -f $md/user_data ] && head -c 2 $md/user_data | grep -q '#!'; then
    chmod 755 $md/user_data
    $md/user_data > /dev/ttyS0 2>&1
    mark "user-data ran rc=$?"
  fi
else
  mark "no metadata: no answer from 169.254.169.254 and no config drive"
fi
dropbearkey -t ed25519 -f /etc/dropbear/dropbear_ed25519_host_key >/dev/null 2>&1
dropbear -s -p 22 -r /etc/dropbear/dropbear_ed25519_host_key 2>/dev/null
mark "ready uptime=$(cut -d' ' -f1 /proc/uptime)"
EOF
chmod 755 "$R/etc/rc.boot"
ln -s /bin/busybox "$R/init"
mknod -m 600 "$R/dev/console" c 5 1

(cd "$R" && find . | cpio -o -H newc --quiet | gzip -9 > "$WORK/initrd.gz")
cp "$VMLINUZ" "$WORK/vmlinuz"

# ------------------------------------------------------------------------------------ disk
# One FAT16 partition (from sector 2048) with syslinux, the kernel and the initramfs; MBR
# boot code from syslinux. Built as files with mtools: no loop devices, no mounts.
cat > "$WORK/syslinux.cfg" <<'EOF'
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=ttyS0,115200 quiet panic=10 rdinit=/init
EOF
kb=$(( ( $(stat -c %s "$WORK/vmlinuz") + $(stat -c %s "$WORK/initrd.gz") ) / 1024 + 2048 ))
[ "$kb" -ge 16384 ] || kb=16384 # FAT16 needs its 4085 clusters (unused space stays sparse)
mkfs.vfat -F 16 -h 2048 -n HANEULBOOT -C "$WORK/fat.img" "$kb" >/dev/null
mcopy -i "$WORK/fat.img" "$WORK/vmlinuz" "$WORK/initrd.gz" "$WORK/syslinux.cfg" ::/
syslinux --install "$WORK/fat.img"
fat_bytes=$(stat -c %s "$WORK/fat.img")
truncate -s $(( 2048 * 512 + fat_bytes )) "$WORK/disk.raw"
echo "start=2048, type=6, bootable" | sfdisk -q "$WORK/disk.raw"
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$WORK/disk.raw" bs=440 count=1 conv=notrunc status=none
dd if="$WORK/fat.img" of="$WORK/disk.raw" bs=512 seek=2048 conv=notrunc status=none
qemu-img convert -q -f raw -O qcow2 "$WORK/disk.raw" "$WORK/haneul-testimg.qcow2"

mv "$WORK/haneul-testimg.qcow2" "$WORK/vmlinuz" "$WORK/initrd.gz" "$OUT/"
echo "built $OUT/haneul-testimg.qcow2 ($(du -k "$OUT/haneul-testimg.qcow2" | cut -f1) KiB; kernel $KVER; modules: $(tr '\n' ' ' < "$R/etc/modules"))"
