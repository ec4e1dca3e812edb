#!/usr/bin/env bash
# Campaign: power cuts and a dying master at random moments, counted (#22).
# One node (standalone image, sync mode, fallback local) boots BOOTS times
# against a standard root of over 300 MiB and 10k entries that changes
# before every boot (files edited, added, deleted, renamed, hardlinked, a
# directory replaced by a file and back, a big file rewritten). Each boot,
# drawn from the seed: runs to the end, or QEMU is SIGKILLed at a random
# moment of it (partitioning, mkfs, the first or an incremental sync, the
# hooks, after the marker), or the master (ganesha) is killed once the sync
# has copied something. After each boot, read from outside the guest: a
# copy marked `complete G` is exactly generation G of the standard root; a
# boot that was not cut and whose disk once held a complete copy boots
# (after a dead master: the copy rolled back, or the new one if the sync
# won the race). It stops at the first mismatch with what differs, and
# prints its figure: boots, cuts, master kills, completed boots, mismatches,
# nodes left unbootable.
#
#   vmtests/power-campaign.sh [-n BOOTS] [-s SEED]     (as root; ./test.sh --long)
#
# About 16 minutes for 30 boots on the 2-core project machine.
set -euo pipefail
BOOTS=30
SEED=$(date +%s)
while getopts n:s: o; do
    case $o in
    n) BOOTS=$OPTARG ;;
    s) SEED=$OPTARG ;;
    *) exit 2 ;;
    esac
done
. "$(dirname "$0")/lib/setup.sh"
. "$(dirname "$0")/lib/check.sh" "power-campaign (seed $SEED)"
. "$(dirname "$0")/lib/campaign.sh"
echo "power-campaign: seed $SEED, $BOOTS boots (rerun: $0 -n $BOOTS -s $SEED)"
vm_install
vm_kernel
vm_agent

T=$WORK/power-campaign
for m in "$T"/mnt*; do [ -d "$m" ] && vm_unmount "$m"; done
rm -rf "$T"
mkdir -p "$T"
STD=$T/standard
vm_standard_root "$STD" small
export VM_NFS_V3=1
printf '[boot]\nreboot_delay = 1\n' >"$T/init-agent.toml"
vm_initrd standalone "$T/initrd.img" "$T/init-agent.toml"
DISK=$T/disk.raw
qemu-img create -q -f raw "$DISK" 2G
CMDLINE="root=nfs:10.0.2.2:$STD initagent.mode=sync initagent.disk=/dev/vda initagent.fallback=local init=/sbin/ia-test-init NODE=cn01 initagent.timeout=5"

# The standard root's bulk, then its changes between boots: one seeded
# mutation per boot, restamped by `init-agent manifest`.
change_root() { # boot-number
    python3 - "$STD/opt/campaign" "$SEED" "$1" <<'PY'
import os, random, shutil, sys
root, seed, boot = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed * 1000 + boot)
J = lambda *p: os.path.join(root, *p)
if boot == 0:
    for d in range(100):
        os.makedirs(J("d%02d" % d))
        for f in range(100):
            with open(J("d%02d" % d, "f%03d" % f), "wb") as out:
                out.write(rng.randbytes(rng.randrange(64, 8192)))
    os.makedirs(J("blobs"))
    for b in range(56):
        with open(J("blobs", "b%02d" % b), "wb") as out:
            out.write(os.urandom(4 << 20))
    sys.exit(0)
files = sorted(os.path.relpath(os.path.join(d, n), root)
               for d, _, names in os.walk(root) for n in names
               if not n.startswith("blob") and "blobs" not in d)
for rel in rng.sample(files, 150):
    if os.path.exists(J(rel)):
        with open(J(rel), "wb") as out:
            out.write(rng.randbytes(rng.randrange(64, 8192)))
for rel in rng.sample(files, 40):
    if os.path.exists(J(rel)):
        os.unlink(J(rel))
os.makedirs(J("new%03d" % boot), exist_ok=True)
for f in range(60):
    with open(J("new%03d" % boot, "f%02d" % f), "wb") as out:
        out.write(rng.randbytes(rng.randrange(64, 8192)))
alive = [r for r in rng.sample(files, 40) if os.path.exists(J(r))]
for i, rel in enumerate(alive[:20]):
    os.rename(J(rel), J(rel) + ".moved%d" % boot)
for a, b in zip(alive[20:30], alive[30:40]):
    if os.path.exists(J(a)) and os.path.exists(J(b)):
        os.unlink(J(b))
        os.link(J(a), J(b))
# A directory replaced by a file, or the file by a directory again.
shape = J("shape")
if os.path.isdir(shape):
    shutil.rmtree(shape)
    with open(shape, "w") as out:
        out.write("a file at boot %d\n" % boot)
else:
    if os.path.exists(shape):
        os.unlink(shape)
    os.makedirs(shape)
    with open(os.path.join(shape, "inside"), "w") as out:
        out.write("a directory at boot %d\n" % boot)
with open(J("blobs", "b%02d" % rng.randrange(56)), "wb") as out:
    out.write(os.urandom(4 << 20))
PY
    campaign_publish
}
mkdir -p "$STD/opt/campaign"
change_root 0
echo "power-campaign: standard root $(du -sm "$STD" | cut -f1) MiB, $(find "$STD" | wc -l) entries"

RANDOM=$SEED
CUTS=0 KILLS=0 COMPLETED=0
LAST=40 # seconds a whole boot takes, measured as the campaign goes
for ((i = 1; i <= BOOTS; i++)); do
    BOOT=$i
    [ "$i" -eq 1 ] || change_root "$i"
    draw=$((RANDOM % 10))
    kind=whole
    if [ "$draw" -ge 5 ] && [ "$draw" -le 7 ]; then
        kind=cut
    elif [ "$draw" -ge 8 ] && [ "$HAD_COMPLETE" = 1 ]; then
        kind=master
    fi
    log=$T/console-$BOOT.log
    start=$(date +%s)
    (
        vm_with_nfs "$STD" vm_qemu "$T/initrd.img" "$CMDLINE" 600 \
            -drive file="$DISK",format=raw,if=virtio </dev/null | stdbuf -o0 tr -d '\r' >"$log" || true
    ) &
    runner=$!
    case $kind in
    cut)
        # A moment anywhere in a boot, to the tenth of a second.
        at=$((RANDOM % (LAST * 10)))
        sleep "$((at / 10)).$((at % 10))"
        if pgrep -f "qemu-system-x86_64.*$T/initrd.img" >/dev/null; then
            pkill -KILL -f "qemu-system-x86_64.*$T/initrd.img" || true
            CUTS=$((CUTS + 1))
            what="cut at $((at / 10)).$((at % 10)) s"
        else
            kind=whole what="whole (the cut came after its end)"
        fi
        ;;
    master)
        campaign_await_copy "$log" "$runner" 60
        sleep "0.$((RANDOM % 10))"
        pkill -KILL -f "ganesha.nfsd -F -f $WORK/ganesha" || true
        KILLS=$((KILLS + 1))
        what="master killed"
        grep -aq '^init-agent: synced' "$log" && what="master killed after the sync ended"
        ;;
    *) what="whole" ;;
    esac
    wait "$runner" || true
    ! grep -aq "Kernel panic" "$log" || fail "boot $i ($what): kernel panic"
    if [ "$kind" != cut ]; then
        if grep -aq "NODE-INIT pid 1 root ext4" "$log"; then
            COMPLETED=$((COMPLETED + 1))
            [ "$kind" = whole ] && LAST=$(($(date +%s) - start + 5))
        elif [ "$HAD_COMPLETE" = 1 ]; then
            fail "boot $i ($what): a node that had a complete copy did not boot"
        elif [ "$kind" = whole ]; then
            fail "boot $i ($what): the boot did not come up"
        fi
    fi
    [ "$kind" != cut ] || what="$what, in: $({ grep -a '^init-agent' "$log" || echo "the kernel's start"; } | tail -1 | cut -c1-100)"
    before=$COMPLETE_G
    campaign_check_copy "boot $i ($what)"
    # Which generation a booted node holds: this boot's, or (the master
    # killed) the one it had before, rolled back.
    if grep -aq "NODE-INIT pid 1 root ext4" "$log"; then
        campaign_check_booted "boot $i ($what)" "$before" "$([ "$kind" = master ] && echo 1 || echo 0)"
    fi
    echo "power-campaign: boot $i: $what: disk $(campaign_disk_state)"
done
echo "power-campaign: seed $SEED: $BOOTS boots, $CUTS power cuts, $KILLS master kills, $COMPLETED completed boots, 0 mismatches, 0 nodes left unbootable ($ROLLBACK_LEFT checks found a rollback area left beside a complete copy)"
