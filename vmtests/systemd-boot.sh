#!/usr/bin/env bash
# The node as a real OS: a Debian standard root with systemd, udev, ssh and
# ifupdown, synced onto two nodes' blank disks by the standalone image (the
# userspace NFSv3 client), each then booting its own /sbin/init (systemd)
# to multi-user.target. Checked from the node itself (a report unit prints
# IATEST lines on the serial console): the system is `running`, the host
# name, machine-id and ssh host keys are the node's own (the two nodes and
# the standard differ), / is the local disk from fstab, the interface the
# initramfs configured keeps its name and address, ifupdown sees it as
# `manual`, the master is still reachable over it, no persistent-net rules.
set -euo pipefail
. "$(dirname "$0")/lib/setup.sh"
. "$(dirname "$0")/lib/check.sh" systemd-boot 40
vm_install
vm_kernel
vm_agent

T=$WORK/systemd-boot
rm -rf "$T"
mkdir -p "$T"
STD=$T/standard
vm_systemd_root "$STD"
std_ssh=$(cut -d' ' -f2 "$STD/etc/ssh/ssh_host_ed25519_key.pub")
"$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" 2>"$T/manifest.log"
vm_initrd standalone "$T/initrd.img"
export VM_NFS_V3=1

iatest() { # key
    grep -a -o "IATEST $1=.*" "$T/console-$BOOT.log" | head -n 1 | cut -d= -f2- | tr -d '\r'
}
declare -A machine_id ssh_key
for node in cn01 cn02; do
    BOOT=$node
    qemu-img create -q -f raw "$T/$node.raw" 3G
    vm_with_nfs "$STD" vm_qemu "$T/initrd.img" \
        "root=nfs:10.0.2.2:$STD initagent.mode=sync initagent.disk=/dev/vda NODE=$node" 900 \
        -drive file="$T/$node.raw",format=raw,if=virtio </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
    ! grep -aq "Kernel panic" "$T/console-$BOOT.log" || fail "kernel panic"
    expect "reached by the userspace NFSv3 client" "$node: the standard root was not read by the default client"
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
    [ "$(iatest iface)" = "eth0 10.0.2.15/24" ] || fail "$node: the boot interface is $(iatest iface), not eth0 as the initramfs left it"
    case " $(iatest ifupdown) " in *" eth0=eth0 "*) ;; *) fail "$node: ifupdown does not see eth0 up ($(iatest ifupdown))" ;; esac
    [ "$(iatest master)" = reachable ] || fail "$node: the master is unreachable over the boot interface"
    [ "$(iatest persistent-net)" = none ] || fail "$node: persistent-net rules are back"
done
[ "${machine_id[cn01]}" != "${machine_id[cn02]}" ] || fail "the two nodes share a machine-id"
[ "${ssh_key[cn01]}" != "${ssh_key[cn02]}" ] || fail "the two nodes share an ssh host key"
echo "systemd-boot: two nodes synced, systemd running, own host name, machine-id and ssh keys; eth0 kept, manual for ifupdown, the master reachable"
