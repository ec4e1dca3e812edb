#!/usr/bin/env bash
# The demo: one cluster node boots in QEMU against a local NFS server, on
# embedded defaults (no configuration file, only kernel command line keys).
# A Debian standard root with systemd and ssh (debootstrap, cached) is served
# by nfs-ganesha; the node's initramfs is made by `init-agent mkinitramfs`;
# its blank 3 GiB disk is partitioned, formatted and synced, and the node
# switch_roots into it and boots its own systemd to multi-user.target.
# Then the standard root changes and the node boots again: only the change
# is copied. Needs root on Debian; installs what it needs.
set -euo pipefail
. "$(dirname "$0")/lib/setup.sh"
echo "demo: installing what is missing (QEMU, nfs-ganesha, the Debian cloud kernel) and building init-agent"
vm_install
vm_kernel
vm_agent

D=$WORK/demo
for m in "$D"/mnt; do [ -d "$m" ] && vm_unmount "$m"; done
rm -rf "$D"
mkdir -p "$D"
STD=$D/standard
echo "demo: standard root: Debian bookworm with systemd and ssh in $STD"
vm_systemd_root "$STD"
"$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" 2>"$D/manifest.log"
"$AGENT" mkinitramfs --kernel-release "$KREL" --modules-dir "$KDIR/lib/modules" \
    --output "$D/initrd.gz" 2>"$D/mkinitramfs.log"
qemu-img create -q -f raw "$D/disk.raw" 3G
# ganesha serves NFSv3 with its MOUNT service (rpcbind): the node reads the
# standard root with its own NFSv3 client, the default in sync mode; NFSv3
# names the export by its path.
export VM_NFS_V3=1
CMDLINE="root=nfs:10.0.2.2:$STD initagent.mode=sync initagent.disk=/dev/vda NODE=demo01"
echo "demo: initramfs $(du -h "$D/initrd.gz" | cut -f1) for $KREL; kernel command line:"
echo "      $CMDLINE"

boot() { # name
    local start end
    start=$(date +%s)
    vm_with_nfs "$STD" vm_qemu "$D/initrd.gz" "$CMDLINE" 600 \
        -drive file="$D/disk.raw",format=raw,if=virtio </dev/null | tr -d '\r' >"$D/console-$1.log" || true
    end=$(date +%s)
    echo "demo: --- $1 boot ($((end - start)) s of host time under TCG emulation) ---"
    grep -a -o 'init-agent: .*\|IATEST .*' "$D/console-$1.log" | grep -v 'init-agent: module \|init-agent: boot: ' |
        sed 's/^IATEST /node (its own systemd): /; s/^/  /'
    echo "demo: where the agent's time went (init-agent's boot report, stage by stage):"
    grep -a -o 'init-agent: boot: .*' "$D/console-$1.log" | sed 's/^init-agent: boot: /  /; s/: /\n  /; s/; sync /\n  sync: /'
}
summary() {
    vm_mount_partition "$D/disk.raw" 1 "$D/mnt"
    python3 - "$D/mnt/.init-agent/last-sync.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["counts"]
print(f"  sync report: {c['created']} created, {c['updated']} updated, {c['deleted']} deleted, "
      f"{c['unchanged']} unchanged, {c['protected']} protected; {r['bytes_copied']} bytes copied "
      f"in {r['seconds']:.1f} s (manifest: {r['manifest']})")
PY
    echo "  on the disk (read from outside the guest): state '$(cat "$D/mnt/.init-agent/state")'," \
        "hostname $(cat "$D/mnt/etc/hostname"), machine-id $(cat "$D/mnt/etc/machine-id")"
    vm_unmount "$D/mnt"
}

boot first
summary
grep -aq "IATEST root=/dev/vda1 ext4" "$D/console-first.log" || {
    echo "demo: the node did not come up from its local disk; console in $D/console-first.log" >&2
    exit 1
}
echo "demo: the admin edits the standard root (/etc/motd) and refreshes its manifest"
echo "demo node motd, $(date)" >"$STD/etc/motd"
"$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" 2>>"$D/manifest.log"
boot second
summary
echo "demo: done; consoles and the disk image are in $D"
