#!/usr/bin/env bash
# `[[disk]] bootloader = "extlinux"` end to end: the master down entirely
# (no TFTP answer: the network gives the node no kernel) and the node still
# comes up from its disk.
#   1. first boot (the standalone image with the key in its embedded
#      configuration, -kernel as PXE would give it): the blank disk is
#      synced from a standard root with Debian's extlinux and
#      syslinux-common and the running kernel in /boot, then the loader is
#      installed: checked from outside (gptmbr.bin in the MBR, the root
#      partition LegacyBIOSBootable, /boot/extlinux with the kernel, the
#      initramfs and this boot's command line);
#   2. a re-sync: the loader is unchanged, nothing rewritten;
#   3. the BIOS boots network first, then disk (-boot order=nc) on a user
#      network without tftp= or bootfile (iPXE finds nothing to boot), no
#      NFS server: SeaBIOS runs the MBR, extlinux loads the disk's kernel
#      and initramfs, the agent tries the master, fails, and fallback
#      `local` boots the local copy;
#   4. the same with the master back: the disk's initramfs syncs, and the
#      loader it installed is unchanged.
set -euo pipefail
. "$(dirname "$0")/lib/setup.sh"
. "$(dirname "$0")/lib/check.sh" bootloader 40
vm_install
vm_kernel
vm_agent

T=$WORK/bootloader
for m in "$T"/mnt*; do [ -d "$m" ] && vm_unmount "$m"; done
rm -rf "$T"
mkdir -p "$T"
STD=$T/standard
# The admin's standard root: the boot loader and the kernel the nodes run.
vm_tool_root extlinux extlinux syslinux-common
vm_standard_root "$STD" small "$TOOL_ROOT"
mkdir -p "$STD/boot"
cp "$VMLINUZ" "$STD/boot/vmlinuz-$KREL"
"$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" 2>"$T/manifest.log"
cat >"$T/init-agent.toml" <<'CONF'
[[disk]]
device = "/dev/vda"
bootloader = "extlinux"

[[disk.partition]]
name = "root"
size = "rest"
fs = "ext4"
mount = "/"
CONF
vm_initrd standalone "$T/initrd.img" "$T/init-agent.toml"
export VM_NFS_V3=1
DISK=$T/disk.raw
qemu-img create -q -f raw "$DISK" 2G
CMDLINE="root=nfs:10.0.2.2:$STD:vers=3 initagent.mode=sync initagent.disk=/dev/vda init=/sbin/ia-test-init NODE=cn01 initagent.timeout=5"
"$AGENT" explain --cmdline "$CMDLINE" --config "$T/init-agent.toml" >"$T/explain.txt" ||
    fail "explain refused the plan: $(cat "$T/explain.txt")"
grep -q "install extlinux on /dev/vda (BIOS" "$T/explain.txt" || fail "explain does not show the boot loader step"

boot() { # name
    BOOT=$1
    vm_with_nfs "$STD" vm_qemu "$T/initrd.img" "$CMDLINE" 600 \
        -drive file="$DISK",format=raw,if=virtio </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
    ! grep -aq "Kernel panic" "$T/console-$BOOT.log" || fail "kernel panic"
    expect "NODE-INIT pid 1 root ext4" "the node did not boot its local copy"
}

# 1. The first sync installs the loader.
boot first
expect "bootloader: /dev/vda ready to boot its local copy: .*extlinux.conf.*MBR boot code" "the boot loader was not installed"
sfdisk -J "$DISK" | grep -q '"attrs": *"LegacyBIOSBootable"' || fail "the root partition is not LegacyBIOSBootable"
cmp -n 440 "$DISK" "$STD/usr/lib/syslinux/mbr/gptmbr.bin" || fail "the MBR does not hold gptmbr.bin's boot code"
MNT=$T/mnt
vm_mount_partition "$DISK" 1 "$MNT"
for f in vmlinuz initrd.img extlinux.conf ldlinux.sys ldlinux.c32; do
    [ -s "$MNT/boot/extlinux/$f" ] || { vm_unmount "$MNT"; fail "/boot/extlinux/$f is missing on the disk"; }
done
cmp -s "$MNT/boot/extlinux/vmlinuz" "$VMLINUZ" || { vm_unmount "$MNT"; fail "the disk's kernel is not the standard root's"; }
# The initramfs written back carries the agent and its embedded configuration.
zcat "$MNT/boot/extlinux/initrd.img" | cpio -i --quiet --to-stdout etc/init-agent.toml >"$T/embedded.toml"
cmp -s "$T/embedded.toml" "$T/init-agent.toml" || { vm_unmount "$MNT"; fail "the disk's initramfs lacks the embedded configuration"; }
append=$(sed -n 's/^  APPEND //p' "$MNT/boot/extlinux/extlinux.conf")
case " $append " in
*" $CMDLINE "*) ;;
*) vm_unmount "$MNT"; fail "extlinux.conf does not hand on this boot's command line: $append" ;;
esac
vm_unmount "$MNT"

# 2. A re-sync: everything is in place already.
boot again
expect "bootloader: /dev/vda unchanged" "the re-sync rewrote the boot loader"

# The node as the BIOS boots it: network first (a user network without
# tftp= or bootfile: iPXE finds nothing to boot), then the disk; no -kernel.
bios_boot() {
    timeout -k 5 600 qemu-system-x86_64 -M pc -accel tcg,thread=multi -cpu max -smp 2 -m 768 \
        -nographic -no-reboot -boot order=nc \
        -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
        -drive file="$DISK",format=raw,if=virtio
}
export -f bios_boot
export DISK

# 3. The master down entirely: no boot file, no NFS server.
BOOT=disk
start=$(date +%s)
bios_boot </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
took=$(($(date +%s) - start))
! grep -aq "Kernel panic" "$T/console-$BOOT.log" || fail "kernel panic"
expect "Booting from Hard Disk" "the BIOS did not boot the disk"
expect "boot stopped: nfs: .*10.0.2.2" "the disk's initramfs did not try the master first"
expect "booting the last complete local copy" "the local fallback was not taken"
expect "NODE-INIT pid 1 root ext4" "the local copy did not boot from the disk"
vm_mount_partition "$DISK" 1 "$MNT"
[ "$(wc -l <"$MNT/var/log/ia-test.log")" -eq 3 ] || { vm_unmount "$MNT"; fail "the disk boot left no trace"; }
vm_unmount "$MNT"

# 4. The master back, still no boot file: the disk's initramfs syncs, and
# finds its loader as it left it (the command line extlinux gave it, less
# its BOOT_IMAGE= and initrd=, is the one it hands on).
BOOT=disk-sync
vm_with_nfs "$STD" bios_boot </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
! grep -aq "Kernel panic" "$T/console-$BOOT.log" || fail "kernel panic"
expect "Booting from Hard Disk" "the BIOS did not boot the disk"
expect "synced .* entries" "the disk's initramfs did not sync from the master"
expect "bootloader: /dev/vda unchanged" "the disk-booted sync rewrote the boot loader"
expect "NODE-INIT pid 1 root ext4" "the synced copy did not boot"
echo "bootloader: extlinux installed after the first sync, unchanged after the second; -boot order=nc with no boot file: the disk booted its local copy (${took} s), and synced it once the master was back"
