#!/usr/bin/env bash
# Faults, booted in QEMU (standalone image, sync mode), each checked from
# outside the guest:
#   power cut during a first and during an incremental sync: the next boot
#     converges to the exact standard root, no temporary or truncated file;
#     with the master gone after the cut, fallback local rolls the copy back
#     to the generation before and boots exactly that;
#   a disk with foreign partitions and no wipe = true: refused, every byte kept;
#   a disk smaller than the layout: refused before anything is written;
#   a disk too small for the standard root: the sync fails with ENOSPC, the
#     copy is never marked complete, nothing half-synced boots;
#   no DHCP answer: the timeouts, then the configured outcome;
#   the link flapping during DHCP: the lease still comes.
set -euo pipefail
. "$(dirname "$0")/lib/setup.sh"
. "$(dirname "$0")/lib/check.sh" faults
vm_install
vm_kernel
vm_agent

T=$WORK/faults
for m in "$T"/mnt*; do [ -d "$m" ] && vm_unmount "$m"; done
rm -rf "$T"
mkdir -p "$T"
STD=$T/standard
vm_standard_root "$STD" small
"$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" 2>"$T/manifest.log"
# Reboot at once on failure: -no-reboot turns it into QEMU's exit.
printf '[boot]\nreboot_delay = 1\n\n[net]\nlink_timeout = 3\ndhcp_timeout = 3\ndhcp_retries = 2\n' >"$T/init-agent.toml"
vm_initrd standalone "$T/initrd.img" "$T/init-agent.toml"
DISK=$T/disk.raw
SYNC="root=nfs:10.0.2.2:/export initagent.mode=sync initagent.disk=/dev/vda init=/sbin/ia-test-init NODE=cn01 initagent.timeout=5"

boot() { # name cmdline [qemu-arg...]
    BOOT=$1
    local cmdline=$2
    shift 2
    vm_with_nfs "$STD" vm_qemu "$T/initrd.img" "$cmdline" 600 \
        -drive file="$DISK",format=raw,if=virtio "$@" </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
    ! grep -aq "Kernel panic" "$T/console-$BOOT.log" || fail "kernel panic"
}
# Boots and pulls the plug once the sync has copied more than MiB.
boot_and_cut() { # name mib
    BOOT=$1
    local mib=$2
    (
        # Unbuffered: the loop below watches the console as it is written.
        vm_with_nfs "$STD" vm_qemu "$T/initrd.img" "$SYNC" 600 \
            -drive file="$DISK",format=raw,if=virtio </dev/null | stdbuf -o0 tr -d '\r' >"$T/console-$BOOT.log" || true
    ) &
    local runner=$! copied
    while kill -0 "$runner" 2>/dev/null; do
        copied=$( (grep -ao 'sync: [0-9]* entries, [0-9]* MiB' "$T/console-$BOOT.log" 2>/dev/null || true) | tail -1 | awk '{print $4}')
        if [ -n "$copied" ] && [ "$copied" -ge "$mib" ]; then
            # SIGKILL: no flush, no unmount, as a power cut.
            pkill -KILL -f "qemu-system-x86_64.*$T/initrd.img" || true
            break
        fi
        sleep 0.2
    done
    wait "$runner" || true
    grep -aq "NODE-INIT" "$T/console-$BOOT.log" && fail "the sync finished before the power cut: cut earlier"
    [ -n "${copied:-}" ] || fail "no sync progress was seen before the cut"
}
converged() { # what
    local m=$T/mnt-$BOOT
    vm_mount_partition "$DISK" 1 "$m"
    tree_lists "$m"
    local ok=1
    diff "$T/std.list" "$T/disk.list" >"$T/diff-$BOOT.txt" || ok=0
    grep -q '^complete ' "$m/.init-agent/state" || ok=0
    vm_unmount "$m"
    [ $ok = 1 ] || fail "$1: the disk is not an exact, complete copy (see $T/diff-$BOOT.txt)"
}
state_of() {
    local m=$T/mnt-state
    vm_mount_partition "$DISK" 1 "$m"
    cat "$m/.init-agent/state" 2>/dev/null || echo none
    vm_unmount "$m"
}

# Power cut during the first sync, then a boot that converges.
qemu-img create -q -f raw "$DISK" 1G
boot_and_cut cut-first 15
[[ $(state_of) == in-progress* ]] || fail "after a cut first sync the state is '$(state_of)', not in-progress"
boot after-cut-first "$SYNC"
expect "NODE-INIT pid 1 root ext4" "the boot after the cut did not come up"
converged "after a power cut during the first sync"
cp "$T/std.list" "$T/generation-1.list"

# Power cut during an incremental sync: 40 MiB of new files on the master.
mkdir -p "$STD/opt/bulk"
for i in $(seq 1 40); do head -c 1048576 /dev/urandom >"$STD/opt/bulk/blob-$i"; done
"$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" 2>>"$T/manifest.log"
boot_and_cut cut-incremental 10
# The master gone for good after the cut: fallback local rolls the copy back
# to the generation it kept and boots exactly that.
BOOT=master-gone
vm_qemu "$T/initrd.img" "$SYNC initagent.fallback=local" 600 \
    -drive file="$DISK",format=raw,if=virtio </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
expect "rolled back to the last complete copy" "the cut copy was not rolled back"
expect "NODE-INIT pid 1 root ext4" "the rolled-back copy did not boot"
m=$T/mnt-$BOOT
vm_mount_partition "$DISK" 1 "$m"
tree_lists "$m"
rolled=$(cat "$m/.init-agent/state")
left=$(ls "$m/.init-agent")
vm_unmount "$m"
[[ $rolled == complete* ]] || fail "the rolled-back copy says '$rolled'"
[[ $left != *rollback* ]] || fail "the rollback area was left on the disk"
diff "$T/generation-1.list" "$T/disk.list" >"$T/diff-$BOOT.txt" ||
    fail "the rolled-back copy is not the generation before the cut (see $T/diff-$BOOT.txt)"
boot_and_cut cut-incremental-again 10
boot after-cut-incremental "$SYNC"
expect "NODE-INIT pid 1 root ext4" "the boot after the second cut did not come up"
expect "the previous sync was interrupted" "the interrupted sync was not verified in full"
converged "after a power cut during an incremental sync"

# Foreign partitions, no wipe = true: refused, the disk byte for byte as it was.
qemu-img create -q -f raw "$DISK" 1G
printf 'label: dos\nsize=256MiB, type=83\ntype=83\n' | sfdisk -q "$DISK"
mke2fs -q -t ext4 -L userdata -E offset=$((2048 * 512)) "$DISK" 256M
before=$(sha256sum <"$DISK")
boot foreign "$SYNC initagent.fallback=reboot"
expect "disk /dev/vda: refused: it holds a dos partition table, the layout wants gpt" "a foreign disk was not refused with its reason"
[ "$(sha256sum <"$DISK")" = "$before" ] || fail "the foreign disk was changed"

# A disk smaller than the layout of its [[disk]]: refused before any write.
qemu-img create -q -f raw "$DISK" 1G
printf '[[disk]]\ndevice = "/dev/vda"\n[[disk.partition]]\nname = "swap"\nsize = "4G"\nfs = "swap"\n[[disk.partition]]\nname = "root"\nsize = "rest"\nfs = "ext4"\nmount = "/"\n' \
    | cat "$T/init-agent.toml" - >"$T/small-disk.toml"
vm_initrd standalone "$T/initrd-small.img" "$T/small-disk.toml"
before=$(sha256sum <"$DISK")
BOOT=too-small
vm_with_nfs "$STD" vm_qemu "$T/initrd-small.img" "$SYNC initagent.fallback=reboot" 120 \
    -drive file="$DISK",format=raw,if=virtio </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
expect "the layout needs 4114 MiB, the disk has 1024 MiB" "a disk smaller than its layout was not refused"
[ "$(sha256sum <"$DISK")" = "$before" ] || fail "the too-small disk was written"

# The standard root does not fit: ENOSPC, never marked complete, not booted.
qemu-img create -q -f raw "$DISK" 48M
boot full "$SYNC initagent.fallback=reboot"
expect "No space left on device" "a full disk was not named"
expect "rebooting in 1 s" "the configured outcome was not taken after a full disk"
grep -aq "NODE-INIT" "$T/console-$BOOT.log" && fail "a half-synced root was booted"
[[ $(state_of) == in-progress* ]] || fail "a full disk left state '$(state_of)'"

# No DHCP server on the wire (a NIC on an empty multicast segment).
BOOT=no-dhcp
VM_NO_NET=1 vm_qemu "$T/initrd.img" "$SYNC initagent.fallback=reboot" 120 \
    -netdev socket,id=q0,mcast=230.0.0.1:12345 -device virtio-net-pci,netdev=q0,romfile= \
    </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
expect "eth0: DHCP (2 exchanges of up to 3 s)" "DHCP did not start"
expect "boot stopped: network: " "no DHCP answer was not named"
expect "rebooting in 1 s" "the outcome after no DHCP answer was not taken"

# The link drops for 4 s while DHCP runs: the next exchange gets the lease.
qemu-img create -q -f raw "$DISK" 1G
BOOT=link-flap
(
    vm_with_nfs "$STD" vm_qemu "$T/initrd.img" "$SYNC initagent.fallback=reboot" 600 \
        -drive file="$DISK",format=raw,if=virtio -monitor unix:"$T/monitor",server,nowait \
        </dev/null | stdbuf -o0 tr -d '\r' >"$T/console-$BOOT.log" || true
) &
runner=$!
for _ in $(seq 300); do grep -aq "DHCP (" "$T/console-$BOOT.log" 2>/dev/null && break; sleep 0.1; done
python3 - "$T/monitor" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"set_link n0 off\n")
time.sleep(4)
s.sendall(b"set_link n0 on\n")
time.sleep(0.5)
PY
wait "$runner" || true
expect "network up: eth0" "the lease did not come after the link flapped"
expect "NODE-INIT pid 1 root ext4" "the node did not boot after the link flapped"

echo "faults: power cuts (first and incremental sync) converge; foreign and too-small disks refused untouched; full disk never booted; no DHCP and link flap handled"
