#!/usr/bin/env bash
# Campaign: the network and the server failing in the middle of a sync,
# counted (#22 campaigns 5 and 4). One node (standalone image, sync mode,
# fallback local) has a complete copy; before every round the standard root
# changes (most of a 160 MiB bulk rewritten, small files edited, added,
# deleted) and the node boots; once its sync has copied something, one fault
# drawn from the seed:
#   link      the NIC's link down for 10 s (QEMU set_link)
#   loss      10 % of the packets between QEMU and the server dropped for
#             15 s (nftables in the test's network namespace)
#   restart   the server SIGKILLed and started again 3 s later (a new boot
#             verifier, every connection reset)
# through the userspace NFSv3 client, and through the kernel client (a
# server without NFSv3 MOUNT):
#   kernel-back  the server SIGKILLed, back after 10 s: the hard mount waits
# (The kernel client's server gone for good is not a kind: the sync waits for
# it forever, RELIABILITY.md.)
# After each boot, read from outside the guest: the node came up; the copy
# marked complete is exactly the generation it names, and it is this round's
# (the fault ridden out) or the one before (the outcome taken, counted). It
# stops at the first mismatch with what differs, and prints its figure.
#
#   vmtests/net-campaign.sh [-n ROUNDS] [-s SEED]      (as root; ./test.sh --long)
#
# About 15 minutes for 8 rounds on the 2-core project machine.
set -euo pipefail
ROUNDS=8
SEED=$(date +%s)
while getopts n:s: o; do
    case $o in
    n) ROUNDS=$OPTARG ;;
    s) SEED=$OPTARG ;;
    *) exit 2 ;;
    esac
done
. "$(dirname "$0")/lib/setup.sh"
. "$(dirname "$0")/lib/check.sh" "net-campaign (seed $SEED)"
. "$(dirname "$0")/lib/campaign.sh"
echo "net-campaign: seed $SEED, $ROUNDS rounds (rerun: $0 -n $ROUNDS -s $SEED)"
vm_install
vm_kernel
vm_agent

T=$WORK/net-campaign
for m in "$T"/mnt*; do [ -d "$m" ] && vm_unmount "$m"; done
rm -rf "$T"
mkdir -p "$T"
STD=$T/standard
vm_standard_root "$STD" small
printf '[boot]\nreboot_delay = 1\n' >"$T/init-agent.toml"
vm_initrd standalone "$T/initrd.img" "$T/init-agent.toml"
DISK=$T/disk.raw
qemu-img create -q -f raw "$DISK" 2G
# The export's pseudo path for both clients: NFSv3 MOUNT takes it too.
export VM_NFS_V3_PSEUDO=1
CMDLINE="root=nfs:10.0.2.2:/export initagent.mode=sync initagent.disk=/dev/vda initagent.fallback=local init=/sbin/ia-test-init NODE=cn01 initagent.timeout=5"

change_root() { # round
    python3 - "$STD/opt/campaign" "$SEED" "$1" <<'PY'
import os, random, sys
root, seed, rnd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed * 1000 + rnd)
os.makedirs(os.path.join(root, "small"), exist_ok=True)
blobs = ["blob%02d" % b for b in range(40)]
for b in blobs if rnd == 0 else rng.sample(blobs, 30):
    with open(os.path.join(root, b), "wb") as out:
        out.write(os.urandom(4 << 20))
small = sorted(os.listdir(os.path.join(root, "small")))
for n in rng.sample(small, min(20, len(small))):
    os.unlink(os.path.join(root, "small", n))
for i in range(50):
    with open(os.path.join(root, "small", "r%03d-%02d" % (rnd, i)), "wb") as out:
        out.write(rng.randbytes(rng.randrange(64, 4096)))
PY
    campaign_publish
}
mkdir -p "$STD/opt/campaign"
change_root 0
echo "net-campaign: standard root $(du -sm "$STD" | cut -f1) MiB, $(find "$STD" | wc -l) entries"

qemu_pid() { pgrep -f "qemu-system-x86_64.*$T/initrd.img" | head -1; }
ganesha_pid() { pgrep -f "ganesha.nfsd -F -f $WORK/ganesha" | head -1; }
monitor() { # command...
    python3 - "$T/monitor" "$*" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
PY
}

boot() { # kind: boots, injects the fault once the sync copies, waits
    local kind=$1 log=$T/console-$BOOT.log runner q g args restarted=
    case $kind in kernel-*) unset VM_NFS_V3 ;; *) export VM_NFS_V3=1 ;; esac
    (
        vm_with_nfs "$STD" vm_qemu "$T/initrd.img" "$CMDLINE" 600 \
            -drive file="$DISK",format=raw,if=virtio -monitor unix:"$T/monitor",server,nowait \
            </dev/null | stdbuf -o0 tr -d '\r' >"$log" || true
    ) &
    runner=$!
    campaign_await_copy "$log" "$runner" 120
    sleep "0.$((RANDOM % 10))"
    if ! grep -aq 'sync: [0-9]* entries' "$log" || grep -aq '^init-agent: synced' "$log"; then
        wait "$runner" || true
        fail "round $BOOT ($kind): the sync ended before the fault came"
    fi
    q=$(qemu_pid)
    g=$(ganesha_pid)
    case $kind in
    # The ends of a fault come whether or not the boot is still there.
    link)
        monitor set_link n0 off
        sleep 10
        monitor set_link n0 on 2>/dev/null || true
        ;;
    loss)
        nsenter -t "$q" -n nft -f - <<'NFT'
table inet ia_loss {
    chain input { type filter hook input priority 0; numgen random mod 100 < 10 drop; }
}
NFT
        sleep 15
        nsenter -t "$q" -n nft delete table inet ia_loss 2>/dev/null || true
        ;;
    restart | kernel-back)
        mapfile -d '' args <"/proc/$g/cmdline"
        kill -KILL "$g"
        if [ "$kind" = restart ]; then sleep 3; else sleep 10; fi
        if kill -0 "$q" 2>/dev/null; then
            nsenter -t "$q" -n -m -- "${args[@]}" 2>>"$T/ganesha-restart.log" &
            restarted=$!
        fi
        ;;
    esac
    wait "$runner" || true
    [ -z "$restarted" ] || { kill "$restarted" 2>/dev/null; wait "$restarted" 2>/dev/null || true; }
    ! grep -aq "Kernel panic" "$log" || fail "round $BOOT ($kind): kernel panic"
}

RANDOM=$SEED
KINDS=(link loss restart kernel-back)
declare -A RIDDEN=() OUTCOME=()
BOOT=0
boot_whole=$T/console-0.log
export VM_NFS_V3=1
vm_with_nfs "$STD" vm_qemu "$T/initrd.img" "$CMDLINE" 600 -drive file="$DISK",format=raw,if=virtio \
    </dev/null | tr -d '\r' >"$boot_whole" || true
expect "NODE-INIT pid 1 root ext4" "the first boot did not come up"
campaign_check_copy "the first boot"
[ "$COMPLETE_G" = "$GEN" ] || fail "the first boot's copy is $COMPLETE_G, not $GEN"
for ((i = 1; i <= ROUNDS; i++)); do
    BOOT=$i
    # Each kind as often as the others, in an order drawn from the seed.
    [ $(((i - 1) % ${#KINDS[@]})) -ne 0 ] || mapfile -t ORDER < <(printf '%s\n' "${KINDS[@]}" | shuf --random-source=<(yes "$SEED$i"))
    kind=${ORDER[$(((i - 1) % ${#KINDS[@]}))]}
    change_root "$i"
    before=$COMPLETE_G
    boot "$kind"
    expect "NODE-INIT pid 1 root ext4" "round $i ($kind): the node did not boot"
    campaign_check_copy "round $i ($kind)"
    campaign_check_booted "round $i ($kind)" "$before" 1
    if [ "$COMPLETE_G" = "$GEN" ]; then
        RIDDEN[$kind]=$((${RIDDEN[$kind]:-0} + 1)) how="ridden out: generation $GEN, exact"
    else
        OUTCOME[$kind]=$((${OUTCOME[$kind]:-0} + 1)) how="outcome: $({ grep -a '^init-agent' "$T/console-$BOOT.log" | grep -aiE 'error|fail|gave up' || true; } | head -1 | cut -c1-120); booted $COMPLETE_G, exact"
    fi
    echo "net-campaign: round $i: $kind: $how"
done
summary=
for k in "${KINDS[@]}"; do summary+=" $k ${RIDDEN[$k]:-0}/${OUTCOME[$k]:-0};"; done
echo "net-campaign: seed $SEED: $ROUNDS rounds (ridden out / outcome taken):$summary 0 mismatches, 0 nodes left unbootable"
