#!/usr/bin/env bash
# Signed standard roots end to end: a QEMU node whose initramfs trusts the
# site's key (mkinitramfs --trust) syncs a signed root from nfs-ganesha (the
# default userspace NFSv3 client) and boots it. Then, each on a boot of its
# own, the server serves what the admin did not sign:
#   (d) the manifest unsigned, (e) signed by a key the node does not trust,
#   (b) a manifest rebuilt after signing, (a) a file's contents swapped with
#   size and mtime kept, (f) a setuid bit the manifest lacks, (c) an older
#   signed manifest replayed.
# Each time: one line saying why, the copy on the disk is still the last
# verified one (read from outside the guest, marker included), and the node
# boots it through fallback local. A generation served as signed then syncs.
set -euo pipefail
. "$(dirname "$0")/lib/setup.sh"
. "$(dirname "$0")/lib/check.sh" "signed-root"
export VM_NFS_V3=1
vm_install
vm_kernel
vm_agent

T=$WORK/signed-root
for m in "$T"/mnt*; do [ -d "$m" ] && vm_unmount "$m"; done
rm -rf "$T"
mkdir -p "$T"
STD=$T/standard
vm_standard_root "$STD" small
TOOL=$STD/usr/local/bin/ia-signed-tool
mkdir -p "$(dirname "$TOOL")"
printf 'version 1\n' >"$TOOL"
chmod 755 "$TOOL"
"$AGENT" keygen -o "$T/site" 2>"$T/keygen.log"
"$AGENT" keygen -o "$T/intruder" 2>>"$T/keygen.log"
sign() { # [key]
    "$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" --sign "${1:-$T/site.key}" 2>>"$T/manifest.log"
}
sign
VM_INITRD_ARGS="--trust $T/site.pub" vm_initrd standalone "$T/initrd.img"
"$AGENT" explain --cmdline "root=nfs:10.0.2.2:$STD:vers=3 initagent.mode=sync initagent.disk=/dev/vda" \
    --config <(zcat "$T/initrd.img" | cpio -i --quiet --to-stdout etc/init-agent.toml) >"$T/explain.txt" ||
    fail "explain refused the signed plan: $(cat "$T/explain.txt")"
grep -q "signed manifest required" "$T/explain.txt" || fail "explain does not say the node verifies: $(cat "$T/explain.txt")"
DISK=$T/disk.raw
qemu-img create -q -f raw "$DISK" 2G
CMDLINE="root=nfs:10.0.2.2:$STD:vers=3 initagent.mode=sync initagent.disk=/dev/vda init=/sbin/ia-test-init NODE=cn01 initagent.timeout=5"
boot() { # name
    BOOT=$1
    vm_with_nfs "$STD" vm_qemu "$T/initrd.img" "$CMDLINE" 900 \
        -drive file="$DISK",format=raw,if=virtio </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
    ! grep -aq "Kernel panic" "$T/console-$BOOT.log" || fail "kernel panic"
}
# The disk's copy as a listing and its marker; left out: the node's logs,
# the boot report every boot rewrites and the staging directory a signed
# sync fetches into (the state directory's own mtime with them).
disk_state() { # out
    local m=$T/mnt-$BOOT
    vm_mount_partition "$DISK" 1 "$m"
    python3 "$VM_DIR/../tests-support/treelist.py" "$m" --exclude-root-name lost+found \
        | grep -Ev '^(var/log(/| )|\.init-agent |\.init-agent/(last-boot\.json|staging)( |/))' >"$1"
    cp "$m/.init-agent/state" "$1.state"
    vm_unmount "$m"
}
verified_boot() { # what
    expect "NODE-INIT pid 1 root ext4" "$1: the node did not boot its local copy"
    expect "manifest verified (key " "$1: the sync did not verify the manifest"
    disk_state "$T/verified.list"
    grep -q '^complete [0-9a-f]* verified$' "$T/verified.list.state" ||
        fail "$1: the marker is not complete and verified: $(cat "$T/verified.list.state")"
}
# The sync refused with `why`, the disk unchanged, the verified copy booted.
refused() { # case why
    expect "refused: .*$2" "($1) not refused with: $2"
    expect "booting the last complete local copy" "($1) the fallback did not boot the verified copy"
    expect "NODE-INIT pid 1 root ext4" "($1) the verified copy did not boot"
    ! grep -aq "synced .* entries" "$T/console-$BOOT.log" || fail "($1) the sync completed"
    disk_state "$T/after-$1.list"
    diff "$T/verified.list" "$T/after-$1.list" >"$T/diff-$1.txt" ||
        fail "($1) the disk is not the last verified copy (see $T/diff-$1.txt)"
    diff "$T/verified.list.state" "$T/after-$1.list.state" >/dev/null ||
        fail "($1) the marker changed: $(cat "$T/after-$1.list.state")"
    CASES="$CASES $1"
}
CASES=

# A clean signed root: synced, verified, booted.
boot first
verified_boot "first boot"
mkdir -p "$T/serial1"
cp -a "$STD/.init-agent/." "$T/serial1/"

# A new generation changes the tool; each case serves it wrongly.
printf 'version 2\n' >"$TOOL"
sign
sig=$STD/.init-agent/manifest.minisig
mv "$sig" "$T/held.minisig"
boot unsigned
refused d "the manifest is not signed"
sign "$T/intruder.key"
boot unknown-key
refused e "which this node does not trust"
sign
printf 'version 3\n' >"$TOOL"
"$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" 2>>"$T/manifest.log"
boot altered
refused b "does not verify"
sign
mtime=$(stat -c %y "$TOOL")
printf 'version X\n' >"$TOOL"
touch -d "$mtime" "$TOOL"
boot contents
refused a "/usr/local/bin/ia-signed-tool: the contents served differ from the signed manifest"
printf 'version 3\n' >"$TOOL"
touch -d "$mtime" "$TOOL"
chmod 4755 "$TOOL"
boot setuid
refused f "/usr/local/bin/ia-signed-tool: the server gives mode 4755, the signed manifest 0755"
# Served as signed: the generation goes in.
chmod 755 "$TOOL"
boot good
verified_boot "served as signed"
vm_mount_partition "$DISK" 1 "$T/mnt-good"
[ "$(cat "$T/mnt-good/usr/local/bin/ia-signed-tool")" = "version 3" ] || fail "the signed generation's tool is not on the disk"
[ "$(stat -c %a "$T/mnt-good/usr/local/bin/ia-signed-tool")" = 755 ] || fail "the tool's mode is not the manifest's"
vm_unmount "$T/mnt-good"
# Serial 1's manifest, signature and stamp replayed.
mkdir -p "$T/current"
cp -a "$STD/.init-agent/." "$T/current/"
cp -a "$T/serial1/." "$STD/.init-agent/"
boot replay
refused c "serial 1 is older than serial [0-9]*"
cp -a "$T/current/." "$STD/.init-agent/"

# The master's cluster configuration, like all it serves, counts only as
# signed: unsigned it is refused and the initramfs's configuration syncs.
mkdir -p "$STD/etc/init-agent"
printf '[boot]\nmode = "sync"\n\n[sync]\nprotect = ["/opt/node-own/**"]\n' >"$STD/etc/init-agent/cluster.toml"
boot cluster-unsigned
expect "cluster configuration .*/etc/init-agent/cluster.toml: not as signed: /etc/init-agent/cluster.toml is not in the signed manifest; booting with the initramfs's configuration" \
    "the unsigned cluster file was not refused"
verified_boot "unsigned cluster file"
sign
boot cluster-signed
expect "cluster configuration .*/etc/init-agent/cluster.toml: mode sync (from initagent.mode=)" "the signed cluster file was not taken"
verified_boot "signed cluster file"

echo "signed-root: a signed root synced and booted; refused and the verified copy booted for:$CASES; the signed generation then synced; the cluster file taken only once signed"
