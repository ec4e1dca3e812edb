#!/usr/bin/env bash
# Sync mode end to end, on embedded defaults (no configuration file): a QEMU
# node with a blank virtio disk boots an initramfs made by `init-agent
# mkinitramfs`, mounts a debootstrapped standard root from nfs-ganesha, and
#   1. first boot: partitions and formats the disk, syncs, runs the post-sync
#      hooks and switch_roots into the local copy, whose init leaves a trace;
#   2. second boot, after a change to the standard root: copies only the change;
#   3. master down: boots the last complete local copy (fallback local).
# Every result is checked from outside the guest, on the disk image.
# Usage: sync-boot.sh [standalone|dracut|initramfs-tools|userspace-nfs|kernel-fallback]
# (who builds the initramfs; the master-down boot is the standalone image's:
# under dracut and initramfs-tools the host initramfs owns the NFS mount and
# its retries). ganesha serves NFSv3 with MOUNT (rpcbind), so every packaging
# takes sync mode's default path, the userspace NFSv3 client: under dracut,
# whose nfs module mounts the root first, it reads that mount's server and
# path, the mount moved aside as its fallback.
# userspace-nfs: the standalone image built with `--nfs user` (no NFS kernel
# modules in it), booted with initagent.nfs=user. kernel-fallback: the
# standalone image against a server without NFSv3 MOUNT (NFSv4 only): the
# default client finds none and the kernel client mounts the root instead.
# The update node boots a regular image, as an admin's would.
set -euo pipefail
. "$(dirname "$0")/lib/setup.sh"
PACKAGING=${1:-standalone}
. "$(dirname "$0")/lib/check.sh" "sync-boot ($PACKAGING)"
BUILD=$PACKAGING CLIENT=default
case $PACKAGING in
userspace-nfs) BUILD=standalone CLIENT=user ;;
kernel-fallback) BUILD=standalone CLIENT=fallback ;;
esac
# NFSv3 and its MOUNT service for the userspace client (not for the
# fallback, which needs a server without them).
case $CLIENT in user | default) export VM_NFS_V3=1 ;; esac
vm_install
vm_kernel
vm_agent

T=$WORK/sync-boot-$PACKAGING
for m in "$T"/mnt*; do [ -d "$m" ] && vm_unmount "$m"; done
rm -rf "$T"
mkdir -p "$T"
STD=$T/standard
vm_standard_root "$STD" small
"$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" 2>"$T/manifest.log"
if [ "$CLIENT" = user ]; then
    VM_INITRD_ARGS="--nfs user" vm_initrd "$BUILD" "$T/initrd.img"
    vm_initrd "$BUILD" "$T/initrd-update.img"
    # The image must not hold the kernel's NFS client at all.
    if zcat "$T/initrd.img" | cpio -t --quiet | grep -E '/(nfs|nfsv3|nfsv4|sunrpc)\.ko'; then
        echo "sync-boot ($PACKAGING): FAILED: NFS kernel modules in the --nfs user image" >&2
        exit 1
    fi
else
    vm_initrd "$BUILD" "$T/initrd.img"
fi
DISK=$T/disk.raw
qemu-img create -q -f raw "$DISK" 2G
ROOT_ARGS=$(vm_root_args "$BUILD")
UPDATE_ROOT_ARGS=$ROOT_ARGS UPDATE_INITRD=$T/initrd.img
# ganesha's NFSv3 MOUNT takes the export's real path; the update node's
# kernel client mounts it by NFSv3 too.
case $CLIENT in
user)
    UPDATE_ROOT_ARGS=$(vm_root_args "$BUILD" "$STD") UPDATE_INITRD=$T/initrd-update.img
    ROOT_ARGS="root=nfs:10.0.2.2:$STD:vers=3 initagent.nfs=user"
    ;;
default)
    UPDATE_ROOT_ARGS=$(vm_root_args "$BUILD" "$STD")
    ROOT_ARGS=${ROOT_ARGS/10.0.2.2:\/export/10.0.2.2:$STD}
    # dracut mounts /export (NFSv4, negotiated: root=nfs4: would ask the
    # agent for the kernel client too); the agent reads it by NFSv3.
    if [ "$BUILD" = dracut ]; then
        export VM_NFS_V3_PSEUDO=1
        ROOT_ARGS="root=nfs:10.0.2.2:/export ip=dhcp rd.neednet=1" UPDATE_ROOT_ARGS=$(vm_root_args dracut)
    fi
    ;;
esac
CMDLINE="$ROOT_ARGS initagent.mode=sync initagent.disk=/dev/vda init=/sbin/ia-test-init NODE=cn01 initagent.timeout=5"
boot() { # name [with-nfs]
    BOOT=$1
    local start
    start=$(date +%s.%N)
    if [ "${2:-}" = with-nfs ]; then
        vm_with_nfs "$STD" vm_qemu "$T/initrd.img" "$CMDLINE" 900 \
            -drive file="$DISK",format=raw,if=virtio </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
    else
        vm_qemu "$T/initrd.img" "$CMDLINE" 900 \
            -drive file="$DISK",format=raw,if=virtio </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
    fi
    TOOK=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)")
    ! grep -aq "Kernel panic" "$T/console-$BOOT.log" || fail "kernel panic"
}
# The disk as the standard root, minus what is node-local by design
# (tree_lists).
compare() { # what
    local m=$T/mnt-$BOOT
    vm_mount_partition "$DISK" 1 "$m"
    tree_lists "$m"
    if ! diff "$T/std.list" "$T/disk.list" >"$T/diff-$BOOT.txt"; then
        vm_unmount "$m"
        fail "$1: the disk differs from the standard root (see $T/diff-$BOOT.txt)"
    fi
    MNT=$m
}
report() { # key
    python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); v = r
for k in sys.argv[2].split("."): v = v[k]
print(v)' "$MNT/.init-agent/last-sync.json" "$1"
}

# 1. First boot: blank disk → GPT with one ext4 `root`, synced, booted.
boot first with-nfs
expect "disk /dev/vda: blank: partitioning and formatting" "the blank disk was not prepared"
expect "NODE-INIT pid 1 root ext4" "the node did not boot its local copy"
case $CLIENT in
user | default)
    expect "mounted from userspace (NFSv3" "the userspace NFS client did not read the standard root"
    ! grep -aq "standard root .* mounted on" "$T/console-$BOOT.log" || fail "the kernel client mounted the standard root"
    ;;
fallback)
    expect "no NFSv3 MOUNT service .*: mounting it with the kernel client" "the default client's fallback was not named"
    expect "standard root .* mounted on" "the kernel client did not mount the standard root"
    ;;
esac
sfdisk -J "$DISK" | grep -q '"name":"root"' || sfdisk -J "$DISK" | grep -q '"name": "root"' \
    || fail "the disk has no GPT partition named root"
compare "first boot"
grep -q '^complete ' "$MNT/.init-agent/state" || fail "the state marker is not complete"
expect "boot: [0-9.]* s to the switch: .*sync [0-9.]* s" "the boot's stage timings were not printed"
grep -q '"stage": "sync"' "$MNT/.init-agent/last-boot.json" || fail "no boot report with the sync stage on the node's disk"
[ "$(report counts.created)" -gt 2000 ] || fail "the first sync created only $(report counts.created) entries"
machine_id=$(cat "$MNT/etc/machine-id")
[[ $machine_id =~ ^[0-9a-f]{32}$ ]] || fail "no machine-id of the node's own: '$machine_id'"
[ "$(cat "$MNT/etc/hostname")" = cn01 ] || fail "hostname is not cn01"
grep -q '^LABEL=root / ext4 defaults 0 0$' "$MNT/etc/fstab" || fail "fstab has no line for the local root"
[ "$(wc -l <"$MNT/var/log/ia-test.log")" -eq 1 ] || fail "the node's init left no trace"
first_took=$TOOK
first_sync=$(report seconds)
vm_unmount "$MNT"

# 2. The admin changes the standard root from an update node (NFS root
# read-write: an edit and a new file) and on the master (a new 1 MiB file, a
# deletion), then refreshes the manifest.
cat >"$STD/sbin/ia-test-extra" <<'EXTRA'
#!/bin/sh
if grep -qw initagent.mode=update /proc/cmdline; then
    echo "changed on the update node" >>/etc/issue
    echo "made on the update node" >/etc/ia-updated
    echo "UPDATE-NODE wrote $(cat /etc/ia-updated)"
fi
EXTRA
chmod 755 "$STD/sbin/ia-test-extra"
BOOT=update
vm_with_nfs "$STD" vm_qemu "$UPDATE_INITRD" \
    "$UPDATE_ROOT_ARGS initagent.mode=update init=/sbin/ia-test-init NODE=update01" 400 \
    </dev/null | tr -d '\r' >"$T/console-update.log" || true
expect "UPDATE-NODE wrote made on the update node" "the update node could not write the standard root"
[ "$(cat "$STD/etc/ia-updated" 2>/dev/null)" = "made on the update node" ] || fail "the update node's change is not on the export"
mkdir -p "$STD/opt/site"
head -c 1048576 /dev/urandom >"$STD/opt/site/tool.bin"
# sed, not head: head's early exit is a SIGPIPE that pipefail turns into a failure.
victim=$(find "$STD/usr/share/perl5" -type f | sort | sed -n 1p)
rm "$victim"
"$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" 2>>"$T/manifest.log"
boot second with-nfs
expect "disk /dev/vda: our layout, kept" "the prepared disk was not recognised as ours"
expect "NODE-INIT pid 1 root ext4" "the node did not boot after the second sync"
compare "second boot"
[ "$(report manifest)" = used ] || fail "the manifest was not used: $(report manifest)"
[ "$(report counts.deleted)" -eq 1 ] || fail "deleted $(report counts.deleted), expected 1"
created=$(report counts.created) bytes=$(report bytes_copied)
[ "$created" -eq 4 ] || fail "created $created entries, expected 4 (/sbin/ia-test-extra, /etc/ia-updated, /opt/site and its file)"
[ "$(cat "$MNT/etc/ia-updated")" = "made on the update node" ] || fail "the update node's change did not reach the node"
# The change (1 MiB + one line) plus the fstab the hook rewrote, nothing else.
[ "$bytes" -ge 1048576 ] && [ "$bytes" -lt $((1048576 + 65536)) ] || fail "copied $bytes bytes for a 1 MiB change"
[ "$(cat "$MNT/etc/machine-id")" = "$machine_id" ] || fail "the machine-id changed across syncs"
[ "$(wc -l <"$MNT/var/log/ia-test.log")" -eq 2 ] || fail "the node-local log was not kept"
second="created $created, updated $(report counts.updated), deleted 1, $bytes bytes in $(report seconds) s"
vm_unmount "$MNT"

if [ "$BUILD" != standalone ]; then
    echo "sync-boot ($PACKAGING): first boot ${first_took} s (sync ${first_sync} s); second boot: ${second}"
    exit 0
fi
# 3. The master is down: no NFS server at all. Fallback local boots the copy.
boot master-down
expect "boot stopped: nfs: .*10.0.2.2" "the unreachable master was not named"
expect "booting the last complete local copy" "the local fallback was not taken"
expect "NODE-INIT pid 1 root ext4" "the last complete local copy did not boot"
vm_mount_partition "$DISK" 1 "$T/mnt-down"
MNT=$T/mnt-down
[ "$(wc -l <"$MNT/var/log/ia-test.log")" -eq 3 ] || fail "the fallback boot left no trace"
vm_unmount "$MNT"
# 4. Mode local on purpose: no network asked for, no server, the copy boots.
CMDLINE="initagent.mode=local initagent.disk=/dev/vda ip=off init=/sbin/ia-test-init NODE=cn01"
VM_NO_NET=1 boot local
expect "booting the last complete local copy" "local mode did not boot the last complete copy"
expect "NODE-INIT pid 1 root ext4" "local mode: the copy did not boot"
! grep -aq "boot stopped" "$T/console-$BOOT.log" || fail "local mode went through a failure"
vm_mount_partition "$DISK" 1 "$T/mnt-local"
MNT=$T/mnt-local
[ "$(wc -l <"$MNT/var/log/ia-test.log")" -eq 4 ] || fail "the local-mode boot left no trace"
[ -f "$MNT/opt/site/tool.bin" ] || fail "the fallback did not boot the latest copy"
vm_unmount "$MNT"

# 5. The cluster configuration on the master decides, not the PXE line: the
# command line names no mode, so the initramfs's plan (nfsroot) reads
# /etc/init-agent/cluster.toml from the standard root and the boot goes on
# with the plan made with it.
cluster=
if [ "$PACKAGING" = standalone ]; then
    cluster="; cluster file: sync, then local, then broken"
    CMDLINE="root=nfs:10.0.2.2:$STD:vers=3 initagent.disk=/dev/vda init=/sbin/ia-test-init NODE=cn01 initagent.timeout=5"
    mkdir -p "$STD/etc/init-agent"
    printf '[boot]\nmode = "sync"\n\n[sync]\nprotect = ["/opt/node-own/**"]\n' >"$STD/etc/init-agent/cluster.toml"
    "$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" 2>>"$T/manifest.log"
    "$AGENT" explain --cmdline "$CMDLINE" --config-root "$STD" >"$T/explain-cluster.txt" ||
        fail "explain refused the plan made with the cluster file: $(cat "$T/explain-cluster.txt")"
    grep -q "mode:      sync (from \[boot\] mode)" "$T/explain-cluster.txt" || fail "explain --config-root does not show the cluster file's mode"
    boot cluster-sync with-nfs
    expect "cluster configuration 10.0.2.2:.*/etc/init-agent/cluster.toml: mode sync (from \[boot\] mode)" "the cluster file's mode was not taken"
    expect "synced .* entries" "the cluster file's sync mode did not sync"
    expect "NODE-INIT pid 1 root ext4" "the cluster file's sync mode did not boot the local copy"
    # The master switches this node to local: no sync, the copy boots.
    printf '\n[[node]]\nname = "cn01"\nmode = "local"\n' >>"$STD/etc/init-agent/cluster.toml"
    boot cluster-local with-nfs
    expect "mode local (from the node's \[\[node\]\] row)" "the node row's mode from the master was not taken"
    expect "booting the last complete local copy" "local mode from the master did not boot the copy"
    ! grep -aq "synced .* entries" "$T/console-$BOOT.log" || fail "local mode from the master synced"
    # A broken cluster file: one line with its line and column, then the
    # initramfs's plan (nfsroot) goes on.
    printf '[boot]\nmode = "fast"\n' >"$STD/etc/init-agent/cluster.toml"
    boot cluster-broken with-nfs
    expect "cluster configuration 10.0.2.2:.*/etc/init-agent/cluster.toml:2:8: .*fast.*; booting with the initramfs's configuration" \
        "the broken cluster file was not named with line and column"
    expect "NODE-INIT pid 1 root nfs" "the initramfs's plan did not go on after a broken cluster file"
    rm -r "$STD/etc/init-agent"
fi

echo "sync-boot ($PACKAGING): first boot ${first_took} s (sync ${first_sync} s); second boot: ${second}; master down: local copy booted; mode local booted with no network$cluster"
