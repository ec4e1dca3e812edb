#!/usr/bin/env bash
# The node as a real OS: a Debian standard root with systemd, udev, ssh and
# ifupdown, synced onto a blank disk by the initramfs of a packaging, the
# node then booting its own /sbin/init (systemd) to multi-user.target.
# Checked from the node itself (a report unit prints IATEST lines on the
# serial console): the system is `running`, the host name, machine-id and
# ssh host keys are the node's own (the standard's are not kept; two
# standalone nodes differ), / is the local disk from fstab, the interface the
# initramfs configured keeps its name and address, ifupdown sees it as
# `manual`, the master is still reachable over it, no persistent-net rules.
# Usage: systemd-boot.sh [standalone|dracut|initramfs-tools]
# (who builds the initramfs). Systemd boots cost tens of seconds under TCG:
# the standalone image syncs two nodes (cn01, cn02: their identities must
# differ), dracut and initramfs-tools one each.
set -euo pipefail
. "$(dirname "$0")/lib/setup.sh"
PACKAGING=${1:-standalone}
. "$(dirname "$0")/lib/check.sh" "systemd-boot ($PACKAGING)" 40
NODES=(cn01)
[ "$PACKAGING" != standalone ] || NODES=(cn01 cn02)
vm_install
vm_kernel
vm_agent

T=$WORK/systemd-boot-$PACKAGING
rm -rf "$T"
mkdir -p "$T"
STD=$T/standard
vm_systemd_root "$STD"
std_ssh=$(cut -d' ' -f2 "$STD/etc/ssh/ssh_host_ed25519_key.pub")
"$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" 2>"$T/manifest.log"
vm_initrd "$PACKAGING" "$T/initrd.img"
export VM_NFS_V3=1
# Every packaging reads the standard root with the agent's default client
# (the userspace NFSv3 client, by the export's path); under dracut its nfs
# module mounts it first (NFSv4, the pseudo path), and the agent reads that
# mount's server and path by NFSv3 (ganesha's MOUNT then takes the pseudo path).
ROOT_ARGS=$(vm_root_args "$PACKAGING")
ROOT_ARGS=${ROOT_ARGS/10.0.2.2:\/export/10.0.2.2:$STD}
if [ "$PACKAGING" = dracut ]; then
    export VM_NFS_V3_PSEUDO=1
    ROOT_ARGS="root=nfs:10.0.2.2:/export ip=dhcp rd.neednet=1"
fi

iatest() { # key
    grep -a -o "IATEST $1=.*" "$T/console-$BOOT.log" | head -n 1 | cut -d= -f2- | tr -d '\r'
}
declare -A machine_id ssh_key
for node in "${NODES[@]}"; do
    BOOT=$node
    qemu-img create -q -f raw "$T/$node.raw" 3G
    vm_with_nfs "$STD" vm_qemu "$T/initrd.img" \
        "$ROOT_ARGS initagent.mode=sync initagent.disk=/dev/vda NODE=$node" 900 \
        -drive file="$T/$node.raw",format=raw,if=virtio </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
    ! grep -aq "Kernel panic" "$T/console-$BOOT.log" || fail "kernel panic"
    expect "by the userspace NFSv3 client" "$node: the standard root was not read by the default client"
    # The name the initramfs gave the boot interface (udev's, under dracut
    # and initramfs-tools), as the post-sync hook saw it.
    boot_if=$(grep -a -o "boot interface [^ ]* " "$T/console-$BOOT.log" | head -n 1 | cut -d' ' -f3)
    [ -n "$boot_if" ] || fail "$node: the boot-interface hook did not run"
    expect "IATEST state=" "$node: the node's systemd did not come up to report"
    state=$(iatest state)
    if [ "$state" != running ]; then
        grep -a "IATEST failed" "$T/console-$BOOT.log" >&2 || true
        fail "$node: systemctl is-system-running says $state"
    fi
    [ "$(iatest hostname | cut -d' ' -f1)" = "$node" ] || fail "$node: host name is $(iatest hostname)"
    machine_id[$node]=$(iatest hostname | sed 's/.*machine-id=//')
    [[ ${machine_id[$node]} =~ ^[0-9a-f]{32}$ ]] || fail "$node: no machine-id of its own"
    ssh_key[$node]=$(iatest ssh)
    [ -n "${ssh_key[$node]}" ] && [ "${ssh_key[$node]}" != "$std_ssh" ] || fail "$node: the standard's ssh host key, or none"
    [ "$(iatest root)" = "/dev/vda1 ext4 rw" ] || fail "$node: / is $(iatest root), not the local disk read-write"
    [ "$(iatest iface)" = "$boot_if 10.0.2.15/24" ] || fail "$node: the boot interface is $(iatest iface), not $boot_if as the initramfs left it"
    case " $(iatest ifupdown) " in *" $boot_if=$boot_if "*) ;; *) fail "$node: ifupdown does not see $boot_if up ($(iatest ifupdown))" ;; esac
    [ "$(iatest master)" = reachable ] || fail "$node: the master is unreachable over the boot interface"
    [ "$(iatest persistent-net)" = none ] || fail "$node: persistent-net rules are back"
done
if [ ${#NODES[@]} = 2 ]; then
    [ "${machine_id[cn01]}" != "${machine_id[cn02]}" ] || fail "the two nodes share a machine-id"
    [ "${ssh_key[cn01]}" != "${ssh_key[cn02]}" ] || fail "the two nodes share an ssh host key"
fi
echo "systemd-boot ($PACKAGING): ${NODES[*]} synced, systemd running, own host name, machine-id and ssh keys; $boot_if kept, manual for ifupdown, the master reachable"
