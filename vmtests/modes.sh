#!/usr/bin/env bash
# The shared-root modes booted in QEMU against nfs-ganesha, checked on the
# exports from outside the guest:
#   statelite: xCAT tables (the ALT litefile: /root/ persistent, /tmp/ and
#     the rest tmpfs) with a STATEMNT export; a persistent file written in
#     boot 1 is there in boot 2 and on the export, a tmpfs file is not;
#   overlay: writes land in RAM, the export is untouched, persistent entries
#     come from STATEMNT;
#   CDSL: two nodes with different node ids see different /cdsl.local
#     content from one shared root.
# Usage: modes.sh [standalone|dracut|initramfs-tools]  (who builds the initramfs)
set -euo pipefail
. "$(dirname "$0")/lib/setup.sh"
PACKAGING=${1:-standalone}
. "$(dirname "$0")/lib/check.sh" "modes ($PACKAGING)"
vm_install
vm_kernel
vm_agent

T=$WORK/modes-$PACKAGING
rm -rf "$T"
mkdir -p "$T/state"
STD=$T/standard
vm_standard_root "$STD" small
# What the node's init does, by the iatest= key of the command line.
cat >"$STD/sbin/ia-test-extra" <<'EXTRA'
#!/bin/sh
for w in $(cat /proc/cmdline); do case $w in iatest=*) t=${w#iatest=} ;; esac; done
case $t in
statelite-1)
    echo "written in boot 1" >/root/ia-persist
    echo "volatile" >/tmp/ia-volatile
    echo "IATEST persist=$(cat /root/ia-persist) volatile=$(cat /tmp/ia-volatile)"
    ;;
statelite-2)
    echo "IATEST persist=$(cat /root/ia-persist 2>/dev/null || echo missing) volatile=$(cat /tmp/ia-volatile 2>/dev/null || echo missing)"
    ;;
overlay)
    echo "overlay write" >/etc/ia-overlay && echo "IATEST overlay-write=$(cat /etc/ia-overlay)"
    echo "IATEST root=$(awk '$2 == "/" {t = $3} END {print t}' /proc/mounts) persist=$(cat /root/ia-persist 2>/dev/null || echo missing)"
    ;;
cdsl)
    echo "IATEST cdsl=$(cat /etc/ia-cdsl 2>/dev/null || echo missing) link=$(readlink /etc/ia-cdsl)"
    ;;
esac
EXTRA
chmod 755 "$STD/sbin/ia-test-extra"
# The statelite image's mount point for its layout (what xCAT's liteimg makes).
mkdir "$STD/.statelite"
# CDSL on the shared root: one host-dependent file, different per node.
"$AGENT" cdsl init --root "$STD" --nodes 1,2 >/dev/null
echo shared >"$STD/etc/ia-cdsl"
"$AGENT" cdsl hostdep --root "$STD" /etc/ia-cdsl >/dev/null
echo "node one" >"$STD/cluster/cdsl/1/etc/ia-cdsl"
echo "node two" >"$STD/cluster/cdsl/2/etc/ia-cdsl"
# The site configuration: the xCAT tables, imported.
{
    printf '[boot]\nreboot_delay = 1\n\n'
    "$AGENT" statelite import-xcat --litefile "$VM_DIR/../conf/xcat/litefile-alt.csv"
} >"$T/init-agent.toml"
"$AGENT" check-config "$T/init-agent.toml" >/dev/null

vm_initrd "$PACKAGING" "$T/initrd.img" "$T/init-agent.toml"
ROOT_ARGS=$(vm_root_args "$PACKAGING")

export VM_EXTRA_EXPORTS="/state=$T/state"
boot() { # name cmdline [root-args]
    BOOT=$1
    vm_with_nfs "$STD" vm_qemu "$T/initrd.img" \
        "${3:-$ROOT_ARGS} init=/sbin/ia-test-init initagent.fallback=reboot $2" 400 \
        </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
    ! grep -aq "Kernel panic" "$T/console-$BOOT.log" || fail "kernel panic"
    expect "NODE-INIT pid 1" "the node's init did not run"
}
std_sum() { find "$STD" -path "$STD/.init-agent" -prune -o -print0 | sort -z | xargs -0 stat -c '%n %s %Y' | sha256sum; }
before=$(std_sum)

SL="initagent.mode=statelite STATEMNT=10.0.2.2:/state MNTOPTS=vers=4.2 NODE=cn01"
boot statelite-1 "$SL iatest=statelite-1"
expect "IATEST persist=written in boot 1 volatile=volatile" "statelite: the node could not write its litefile paths"
expect "NODE-INIT pid 1 root nfs4" "statelite: the root is not the NFS root"
[ "$(cat "$T/state/cn01/root/ia-persist" 2>/dev/null)" = "written in boot 1" ] \
    || fail "statelite: the persistent file is not on the STATEMNT export"
[ ! -e "$T/state/cn01/tmp/ia-volatile" ] || fail "statelite: a tmpfs file reached the export"
boot statelite-2 "$SL iatest=statelite-2"
expect "IATEST persist=written in boot 1 volatile=missing" "statelite: boot 2 did not keep the persistent file or kept the tmpfs one"

boot overlay "initagent.mode=overlay STATEMNT=10.0.2.2:/state MNTOPTS=vers=4.2 NODE=cn01 iatest=overlay"
expect "IATEST overlay-write=overlay write" "overlay: the node could not write its root"
expect "IATEST root=overlay persist=written in boot 1" "overlay: not an overlay root, or the persistent entry is missing"
[ ! -e "$STD/etc/ia-overlay" ] || fail "overlay: a write reached the standard root"

boot cdsl-1 "initagent.nodeid=1 initagent.cdsl=1 iatest=cdsl"
expect "IATEST cdsl=node one link=../cdsl.local/etc/ia-cdsl" "CDSL: node 1 does not see its own file"
boot cdsl-2 "initagent.nodeid=2 initagent.cdsl=1 iatest=cdsl"
expect "IATEST cdsl=node two link=../cdsl.local/etc/ia-cdsl" "CDSL: node 2 does not see its own file"

# NFSv3 (ganesha with rpcbind, the export by its path), where the agent
# mounts it with mount(2) and the kernel's own MOUNT call: standalone and
# initramfs-tools. Under dracut, dracut's nfs module and mount.nfs own the
# mount (and its option syntax), not the agent.
if [ "$PACKAGING" != dracut ]; then
    VM_NFS_V3=1 boot nfs3 "initagent.nodeid=1 initagent.cdsl=1 iatest=cdsl" "$(vm_root_args "$PACKAGING" "$STD")"
    expect "NODE-INIT pid 1 root nfs " "NFSv3: the root is not an NFSv3 mount"
    expect "IATEST cdsl=node one" "NFSv3: CDSL node 1 does not see its own file"
fi

[ "$(std_sum)" = "$before" ] || fail "the read-only modes changed the standard root"
echo "modes ($PACKAGING): statelite persistent kept and tmpfs gone across boots, overlay writes in RAM only, CDSL per node, NFSv3 and v4"
