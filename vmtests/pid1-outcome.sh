#!/usr/bin/env bash
# init-agent as PID 1 of a standalone initramfs made by `init-agent
# mkinitramfs`: it mounts /proc /sys /dev /run, reads the command line, plans,
# loads the modules from modules.dep, configures eth0 by DHCP through netlink,
# and when a stage cannot go on, says why
# in one line and takes the configured outcome (here: reboot, which QEMU's
# -no-reboot turns into an exit). No kernel panic, no hang.
set -euo pipefail
. "$(dirname "$0")/lib/setup.sh"
. "$(dirname "$0")/lib/check.sh" pid1 20
vm_install
vm_kernel
vm_agent

T=$WORK/pid1
rm -rf "$T"
mkdir -p "$T"
printf '[boot]\nreboot_delay = 1\n\n[net]\nlink_timeout = 2\n' >"$T/init-agent.toml"
"$AGENT" mkinitramfs --kernel-release "$KREL" --modules-dir "$KDIR/lib/modules" \
    --config "$T/init-agent.toml" --output "$T/initrd.gz" 2>"$T/mkinitramfs.log"
start=$(date +%s)
vm_qemu "$T/initrd.gz" "root=nfs:10.0.2.2:/export initagent.fallback=reboot initagent.timeout=3 rd.debug" 90 \
    </dev/null | tr -d '\r' >"$T/console.log" || true
took=$(($(date +%s) - start))
expect "init-agent: mode Nfsroot, fallback Reboot" "the plan was not made from the command line"
expect "init-agent: [0-9]* kernel modules loaded" "modules were not loaded"
expect "init-agent: network up: eth0 10.0.2.15/24 via 10.0.2.2" "DHCP over netlink did not configure eth0"
expect "init-agent: boot stopped: nfs: 10.0.2.2:/export: Connection refused" "a master that is down was not named"
expect "init-agent: rebooting in 1 s" "the configured outcome (reboot) was not taken"
if grep -aq "Kernel panic" "$T/console.log"; then
    echo "pid1: FAILED: kernel panic" >&2
    exit 1
fi
# A BOOTIF naming a NIC the node does not have: named, then the outcome.
vm_qemu "$T/initrd.gz" "root=nfs:10.0.2.2:/export initagent.fallback=reboot BOOTIF=01-aa-bb-cc-dd-ee-ff" 90 \
    </dev/null | tr -d '\r' >"$T/console.log" || true
expect "init-agent: boot stopped: network: no interface has the BOOTIF address aa:bb:cc:dd:ee:ff" "a missing BOOTIF NIC was not named"
expect "init-agent: rebooting in 1 s" "the outcome after a missing NIC was not taken"
# nfsroot: a real standard root over NFS (ganesha), switch_root into its init.
E=$T/export
mkdir -p "$E"/{bin,sbin,dev,proc,sys,run,etc}
cp /bin/busybox "$E/bin/busybox"
cat >"$E/sbin/init" <<'NODEINIT'
#!/bin/busybox sh
/bin/busybox echo "NODE-INIT pid $$ root $(/bin/busybox awk '$2 == "/" {print $3}' /proc/mounts | /bin/busybox tail -1)"
/bin/busybox poweroff -f
NODEINIT
chmod +x "$E/sbin/init"
vm_with_nfs "$E" vm_qemu "$T/initrd.gz" 'root=nfs:10.0.2.2:/export initagent.fallback=reboot' 90 \
    </dev/null | tr -d '\r' >"$T/console.log" || true
expect "init-agent: standard root 10.0.2.2:/export mounted" "the NFS root was not mounted"
expect "NODE-INIT pid 1 root nfs4" "switch_root did not exec the standard root's init as PID 1"
echo "pid1: plan, modules, DHCP by netlink, NFS root, switch_root; one-line causes and reboot outcomes (first boot ${took} s)"
