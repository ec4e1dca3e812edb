#!/usr/bin/env bash
# Campaign: a node with little memory (#22 campaign 3). The node gets 256 MiB
# of RAM (its kernel and the unpacked initramfs in it) and makes a first sync
# of a standard root of over 100,000 entries through the userspace NFSv3
# client, once walking the source and once with its manifest, each onto a
# blank disk, then a no-change re-sync with the manifest. Each boot must come
# up with an exact copy, no OOM kill on the console; the agent's peak RSS
# comes from its boot report. Prints entries and peak RSS per boot.
#
#   vmtests/memory-campaign.sh [-m MIB] [-e ENTRIES]    (as root; ./test.sh --long)
#
# About 15 minutes on the 2-core project machine.
set -euo pipefail
MEM=256
ENTRIES=100000
while getopts m:e: o; do
    case $o in
    m) MEM=$OPTARG ;;
    e) ENTRIES=$OPTARG ;;
    *) exit 2 ;;
    esac
done
. "$(dirname "$0")/lib/setup.sh"
. "$(dirname "$0")/lib/check.sh" "memory-campaign (${MEM} MiB)"
. "$(dirname "$0")/lib/campaign.sh"
vm_install
vm_kernel
vm_agent

T=$WORK/memory-campaign
for m in "$T"/mnt*; do [ -d "$m" ] && vm_unmount "$m"; done
rm -rf "$T"
mkdir -p "$T"
STD=$T/standard
vm_standard_root "$STD" small
# Small files in directories of 100, as many as it takes.
python3 - "$STD/opt/many" "$(($ENTRIES - $(find "$STD" | wc -l)))" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(22)
for i in range(max(n, 0)):
    d = os.path.join(root, "d%04d" % (i // 100))
    if i % 100 == 0:
        os.makedirs(d)
    with open(os.path.join(d, "f%02d" % (i % 100)), "wb") as f:
        f.write(rng.randbytes(rng.randrange(0, 256)))
PY
campaign_publish
manifest=$STD/.init-agent/manifest
mv "$manifest" "$T/manifest"
count=$(find "$STD" | wc -l)
echo "memory-campaign: standard root $(du -sm "$STD" | cut -f1) MiB, $count entries; node RAM $MEM MiB"

export VM_NFS_V3=1 VM_MEM=$MEM
printf '[boot]\nreboot_delay = 1\n' >"$T/init-agent.toml"
vm_initrd standalone "$T/initrd.img" "$T/init-agent.toml"
echo "memory-campaign: initramfs $(($(stat -c %s "$T/initrd.img") >> 20)) MiB (compressed)"
DISK=$T/disk.raw
CMDLINE="root=nfs:10.0.2.2:$STD initagent.mode=sync initagent.disk=/dev/vda initagent.fallback=reboot init=/sbin/ia-test-init NODE=cn01 initagent.timeout=5"

FIGURES=()
boot() { # name: boots, checks, keeps the figure
    BOOT=$1
    vm_with_nfs "$STD" vm_qemu "$T/initrd.img" "$CMDLINE" 1800 -drive file="$DISK",format=raw,if=virtio \
        </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
    ! grep -aqiE "Out of memory|oom-kill|Killed process" "$T/console-$BOOT.log" || fail "$BOOT: the OOM killer ran"
    ! grep -aq "Kernel panic" "$T/console-$BOOT.log" || fail "$BOOT: kernel panic"
    expect "NODE-INIT pid 1 root ext4" "$BOOT: the node did not boot"
    campaign_check_copy "$BOOT"
    [ "$COMPLETE_G" = "$GEN" ] || fail "$BOOT: the copy is not marked complete $GEN"
    local head
    head=$(grep -a '^init-agent: boot: ' "$T/console-$BOOT.log" | tail -1)
    [[ $head == *"peak RSS"* ]] || fail "$BOOT: the boot report names no peak RSS"
    FIGURES+=("$BOOT: $(grep -ao 'sync [0-9]* entries' <<<"$head"), manifest $(grep -ao 'manifest [^;]*' <<<"$head" | cut -d' ' -f2-), $(grep -ao 'peak RSS [0-9.]* MiB' <<<"$head"), sync $(grep -ao 'sync [0-9.]* s' <<<"$head" | head -1 | cut -d' ' -f2-)")
    echo "memory-campaign: ${FIGURES[-1]}"
}

qemu-img create -q -f raw "$DISK" 2G
boot walk
mv "$T/manifest" "$manifest"
qemu-img create -q -f raw "$DISK" 2G
boot manifest
boot manifest-no-change
echo "memory-campaign: $count entries, node RAM $MEM MiB, no OOM kill, 0 mismatches; ${FIGURES[*]}"
