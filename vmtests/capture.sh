#!/usr/bin/env bash
# Capture: a hand-tuned golden node made the new standard, as KA and
# Clonezilla clone a golden node.
#   1. The golden node syncs the standard root onto its blank disk and boots
#      it; there the admin's hand-tuning is made (a file with its own owner
#      and mode, a hardlink, a symlink, a sparse file, a deletion), and then,
#      on the running node, `init-agent capture / /mnt/master/golden-1`
#      into the master's writable export (/captures, mounted by the node's
#      kernel NFS client: the agent's own client only reads).
#   2. From outside: the new directory is the golden node's disk exactly
#      (read at the partition's offset), but for what capture leaves out
#      (identity, logs, /tmp, the contents of the node's kernel and NFS
#      mounts), with an empty machine-id and a manifest; the live standard
#      was not touched.
#   3. A second node syncs the captured directory, served as the standard
#      root, by its manifest and boots it with an identity of its own.
set -euo pipefail
. "$(dirname "$0")/lib/setup.sh"
. "$(dirname "$0")/lib/check.sh" capture
# NFSv3 MOUNT for the second node's default client (the export's path).
export VM_NFS_V3=1
vm_install
vm_kernel
vm_agent

T=$WORK/capture
for m in "$T"/mnt*; do [ -d "$m" ] && vm_unmount "$m"; done
rm -rf "$T"
mkdir -p "$T"
STD=$T/standard CAPT=$T/captures
mkdir -p "$CAPT"
vm_standard_root "$STD" small
# The agent in the standard root, where its package installs it.
install -m 755 "$AGENT" "$STD/usr/sbin/init-agent"
cat >"$STD/sbin/ia-test-extra" <<'EXTRA'
#!/bin/sh
# vmtests/capture.sh: on the golden node only (ia.golden), the admin's
# hand-tuning, then the capture into the master's export.
grep -qw ia.golden /proc/cmdline || exit 0
echo "tuned by hand on the golden node" >/etc/golden-tuned
chown 0:4 /etc/golden-tuned
chmod 640 /etc/golden-tuned
ln /etc/golden-tuned /etc/golden-tuned.hardlink
ln -s golden-tuned /etc/golden-link
mkdir -p /opt/site
printf 'tail' | dd of=/opt/site/sparse bs=1 seek=8388608 conv=notrunc 2>/dev/null
rm /etc/issue.net
echo scratch >/tmp/golden-scratch
mkdir -p /mnt/master
# The test kernel's NFS modules are the initramfs's ([boot] modules); the
# root has no mount.nfs: util-linux mount hands the options to mount(2).
mount -t nfs4 -o vers=4.2,proto=tcp,port=2049,addr=10.0.2.2 10.0.2.2:/captures /mnt/master ||
    echo "CAPTURE-MOUNT failed"
# Requests in flight over NFS: the copy waits on the server, not the CPUs.
init-agent capture --jobs 8 / /mnt/master/golden-1
echo "CAPTURE-RC $?"
umount /mnt/master
EXTRA
chmod 755 "$STD/sbin/ia-test-extra"
"$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" 2>"$T/manifest.log"
python3 "$VM_DIR/../tests-support/treelist.py" "$STD" >"$T/std-before.list"
# The site's configuration loads the NFSv4 client, which the synced root
# mounts the export with; the sync itself reads with the agent's own client.
printf '[boot]\nmodules = ["nfsv4"]\n' >"$T/init-agent.toml"
vm_initrd standalone "$T/initrd.img" "$T/init-agent.toml"
TAKES=()
boot() { # name disk export cmdline
    BOOT=$1
    local start
    start=$(date +%s)
    [ -f "$T/$2.raw" ] || qemu-img create -q -f raw "$T/$2.raw" 2G
    VM_EXTRA_EXPORTS="/captures=$CAPT" vm_with_nfs "$3" vm_qemu "$T/initrd.img" "$4" 600 \
        -drive file="$T/$2.raw",format=raw,if=virtio </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
    TAKES+=("$BOOT $(($(date +%s) - start)) s")
    ! grep -aq "Kernel panic" "$T/console-$BOOT.log" || fail "kernel panic"
    expect "NODE-INIT pid 1 root ext4" "the node did not boot its local copy"
}

# 1. The golden node: synced, tuned, captured from.
boot golden golden "$STD" "root=nfs:10.0.2.2:$STD:vers=3 initagent.mode=sync initagent.disk=/dev/vda init=/sbin/ia-test-init NODE=golden ia.golden initagent.timeout=5"
! grep -aq "CAPTURE-MOUNT failed" "$T/console-$BOOT.log" || fail "the golden node could not mount the master's export"
expect "capture / into /mnt/master/golden-1 (new), leaving out:" "the capture did not start"
expect "CAPTURE-RC 0" "the capture failed"
NEW=$CAPT/golden-1

# 2. The captured directory against the golden node's disk, from outside.
python3 "$VM_DIR/../tests-support/treelist.py" "$STD" >"$T/std-after.list"
diff "$T/std-before.list" "$T/std-after.list" >"$T/std.diff" || fail "the live standard changed (see $T/std.diff)"
[ -f "$NEW/.init-agent/manifest" ] && [ -f "$NEW/.init-agent/generation" ] || fail "no manifest in the capture"
[ ! -e "$NEW/.init-agent/state" ] && [ ! -e "$NEW/.init-agent/capturing" ] || fail "the capture is still marked in progress"
vm_mount_partition "$T/golden.raw" 1 "$T/mnt-golden"
MNT=$T/mnt-golden
# Left out, so not compared: the identity and logs, /tmp's contents, and the
# mounts (kernel file systems, the export): their mount points hold the
# mounted file system's owner, mode and mtime in the capture, not the disk's.
# Nor a symlink's mtime: ganesha does not set it (nfs-ganesha/nfs-ganesha#983:
# SETATTR of a symlink's times succeeds and changes nothing).
skip='^(etc/machine-id|etc/hostname|var/lib/systemd/random-seed|etc/ssh/ssh_host_[^ ]*|(proc|sys|dev|run|mnt/master)(/.*)?|(tmp|var/log)/.*) '
for side in golden:"$MNT" captured:"$NEW"; do
    python3 "$VM_DIR/../tests-support/treelist.py" "${side#*:}" --exclude-root-name .init-agent \
        --exclude-root-name lost+found | grep -Ev "$skip" |
        sed -E 's/^(.* l [0-7]{4} [0-9]+:[0-9]+ )[0-9]+ ->/\1- ->/' >"$T/${side%%:*}.list"
done
if ! diff "$T/golden.list" "$T/captured.list" >"$T/capture.diff"; then
    vm_unmount "$MNT"
    fail "the capture differs from the golden node's disk (see $T/capture.diff)"
fi
golden_id=$(cat "$MNT/etc/machine-id")
[ -f "$MNT/tmp/golden-scratch" ] || fail "the golden node's hand-tuning did not run"
vm_unmount "$MNT"
grep -q '^etc/golden-tuned f 0640 0:4 .* nlink=2 link=etc/golden-tuned$' "$T/captured.list" ||
    fail "the tuned file or its hardlink is not in the capture as made"
grep -q '^opt/site/sparse f .* sparse ' "$T/captured.list" || fail "the sparse file lost its hole"
! grep -q '^etc/issue.net ' "$T/captured.list" || fail "the file deleted on the golden node is in the capture"
[ -f "$NEW/etc/machine-id" ] && [ ! -s "$NEW/etc/machine-id" ] || fail "the capture's machine-id is not empty"
[[ $golden_id =~ ^[0-9a-f]{32}$ ]] || fail "the golden node has no machine-id of its own"
[ ! -e "$NEW/etc/hostname" ] && [ -z "$(find "$NEW/var/log" "$NEW/tmp" -mindepth 1)" ] || fail "identity, logs or /tmp files were captured"

# 3. A second node syncs the capture, served as its standard root.
boot cn02 cn02 "$NEW" "root=nfs:10.0.2.2:$NEW:vers=3 initagent.mode=sync initagent.disk=/dev/vda init=/sbin/ia-test-init NODE=cn02 initagent.timeout=5"
expect "mounted from userspace (NFSv3" "the second node did not read the capture with the default client"
! grep -aq "CAPTURE-RC" "$T/console-$BOOT.log" || fail "the second node captured"
vm_mount_partition "$T/cn02.raw" 1 "$T/mnt-cn02"
MNT=$T/mnt-cn02
manifest=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["manifest"])' "$MNT/.init-agent/last-sync.json")
tuned=$(cat "$MNT/etc/golden-tuned" 2>/dev/null || true) id=$(cat "$MNT/etc/machine-id") host=$(cat "$MNT/etc/hostname")
vm_unmount "$MNT"
[ "$manifest" = used ] || fail "the second node did not sync by the capture's manifest: $manifest"
[ "$tuned" = "tuned by hand on the golden node" ] || fail "the golden node's tuning did not reach the second node"
[[ $id =~ ^[0-9a-f]{32}$ ]] && [ "$id" != "$golden_id" ] || fail "the second node has no machine-id of its own: '$id'"
[ "$host" = cn02 ] || fail "the second node's host name is '$host'"
echo "capture: golden node captured exactly into a new directory of the export (live standard untouched), a second node synced it by its manifest; ${TAKES[*]}"
