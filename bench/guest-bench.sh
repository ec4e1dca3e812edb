#!/usr/bin/env bash
# Benchmarks, inside a QEMU node, against one NFS server of the standard root
# in one run: on a kernel NFS mount `init-agent sync` with the manifest,
# `init-agent sync` walking the source, and `rsync -aHAX --delete
# --numeric-ids`; and `init-agent sync nfs://…` (the userspace NFSv3 client,
# manifest read through it); wall time and the NFS RPCs each one sends (per
# op, from /proc/self/mountstats; the userspace client's from its report), for
#   - the initial copy into an empty directory,
#   - a re-sync with no change,
#   - a re-sync after 1 % of the regular files changed.
#
#   bench/guest-bench.sh          (as root; GUEST_BENCH_REPS=3, GUEST_BENCH_TIMEOUT=7200)
#
# How: the VM harness (vmtests/lib/setup.sh) serves a fresh Debian minbase
# standard root from nfs-ganesha; the node boots it in sync mode exactly as
# vmtests/sync-boot.sh does, and the standard root carries the agent, rsync and
# /sbin/ia-test-extra (the guest half below), which the local copy's init runs.
# The guest half mounts the export itself and syncs it into three directories
# on its local disk, one per tool, printing `BENCH …` lines on the serial
# console; this script turns them into a Markdown table (also in
# vmtests/work/guest-bench/results.md). BENCHMARKS.md holds a recorded run.
#
# On a shared machine other work on the host's cores skews the times. A small
# server beside ganesha (same network namespace, 10.0.2.2:7777) tells the guest
# how long the host has been free of other work; the guest waits for 20 quiet
# seconds before each run, marks a run that other work overlapped, and repeats
# such a run up to twice where it can (initial copy, no change). The table
# leaves marked runs out when clean ones of the same kind exist.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/vmtests/lib/setup.sh"
. "$ROOT/vmtests/lib/check.sh" guest-bench
REPS=${GUEST_BENCH_REPS:-3}
LIMIT=${GUEST_BENCH_TIMEOUT:-7200}
[[ $REPS =~ ^[1-9][0-9]?$ ]] || {
    echo "guest-bench: GUEST_BENCH_REPS must be 1..99 (each repetition edits its own 1 % of the files)" >&2
    exit 2
}

vm_install
vm_kernel
vm_agent

T=$WORK/guest-bench
# Everything but the downloaded packages is made afresh: the guest changes the
# standard root, so an earlier run's root would not be the same benchmark.
mkdir -p "$T/debs"
find "$T" -mindepth 1 -maxdepth 1 ! -name debs -exec rm -rf {} +
STD=$T/standard
vm_standard_root "$STD"
install -D -m 755 "$AGENT" "$STD/usr/local/bin/init-agent"

# rsync into the standard root: minbase lacks it and two of its libraries.
# Unpacked (not installed: no maintainer scripts run against the root) from the
# packages of this machine's own bookworm archive, which the root comes from.
std_add_rsync() {
    local pkgs=(rsync) dep p
    for dep in $(apt-cache depends rsync | awk '$1 == "Depends:" || $1 == "PreDepends:" {print $2}'); do
        dpkg-query --admindir="$STD/var/lib/dpkg" -W -f='${Status}' "$dep" 2>/dev/null | grep -q ' installed$' \
            || pkgs+=("$dep")
    done
    for p in "${pkgs[@]}"; do
        compgen -G "$T/debs/${p}_*.deb" >/dev/null && continue
        (cd "$T/debs" && { apt-get download "$p" >/dev/null 2>&1 || { apt-get update -qq && apt-get download "$p" >/dev/null; }; })
    done
    for p in "${pkgs[@]}"; do
        rm -rf "$T/unpack"
        dpkg -x "$(compgen -G "$T/debs/${p}_*.deb" | head -1)" "$T/unpack"
        # Packages still ship /lib/...: keep the merged-/usr root's /lib symlink
        # instead of letting the archive replace it with a directory.
        tar -C "$T/unpack" -c . | tar -C "$STD" -x --keep-directory-symlink
    done
    rm -rf "$T/unpack"
    chroot "$STD" rsync --version >/dev/null || {
        echo "guest-bench: rsync does not run in the standard root" >&2
        exit 1
    }
    echo "guest-bench: unpacked into the standard root: ${pkgs[*]}" >&2
}
std_add_rsync

# The guest half: run by the local copy's init (/sbin/ia-test-init) after the
# node booted its synced disk. Only BENCH lines go to the console.
{
    echo '#!/bin/bash'
    echo "REPS=$REPS"
    # ganesha's NFSv3 MOUNT takes the export's real path.
    echo "NFS_URL=nfs://10.0.2.2$STD"
    cat <<'GUEST'
# guest-bench (bench/guest-bench.sh): measures, on this node, syncs from the
# NFS standard root into three directories of the local disk.
set -Eeuo pipefail
PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
SRC=/mnt/std
B=/bench
LOG=$B/log
TOOLS=(manifest walk rsync user signed)
ERRFILE=/dev/null
# -E: the trap also fires inside functions. The failing tool's stderr is shown.
trap 'echo "BENCH-FAILED at line $LINENO: $BASH_COMMAND"; tail -5 "$ERRFILE"' ERR
mkdir -p "$SRC" "$LOG" "$B/manifest" "$B/walk" "$B/rsync" "$B/user" "$B/signed"
# The agent formatted this disk moments ago: ext4's lazy inode-table zeroing
# would compete with the first runs for the disk and the 2 vCPUs (seen: the
# first no-change runs 2-3x slower than the next). A re-syncing node is long
# past it, so stop it.
mount -o remount,noinit_itable / || echo "BENCH-INFO could not stop ext4 lazy init"
# util-linux mount hands nfs4 options straight to mount(2) (no mount.nfs here):
# the same options the agent mounted the standard root with at boot.
mount -t nfs4 -o vers=4.2,addr=10.0.2.2,proto=tcp 10.0.2.2:/export "$SRC"
echo "BENCH-INFO mount $(awk -v m="$SRC" '$2 == m {print $3, $4}' /proc/mounts)"
echo "BENCH-INFO cpus $(nproc) mem_kib $(awk '/MemTotal/ {print $2}' /proc/meminfo) rsync $(rsync --version | awk 'NR == 1 {print $3}')"

# The mount's per-op request counts ("OP: requests transmissions …" after
# "per-op statistics") and the bytes READ brought from the server (field 5 of
# "bytes:"), as "NAME count" lines.
stats() {
    awk -v mp="$SRC" '
        $1 == "device" { on = ($5 == mp); ops = 0; next }
        !on { next }
        $1 == "bytes:" { print "READ_BYTES", $6; next }
        /per-op statistics/ { ops = 1; next }
        ops && $1 ~ /:$/ { n = $1; sub(/:$/, "", n); print n, $2 }
    ' /proc/self/mountstats
}
delta() { # before after: "rpcs=N read_bytes=N ops=OP:n,…" (ops that moved)
    awk 'NR == FNR { b[$1] = $2; next }
        { d = $2 - b[$1]; if ($1 == "READ_BYTES") rb = d; else if (d) { t += d; s = s (s == "" ? "" : ",") $1 ":" d } }
        END { printf "rpcs=%d read_bytes=%d ops=%s", t, rb, (s == "" ? "-" : s) }' "$1" "$2"
}
json() { # file key: a number or string field of the agent's --report
    sed -n "s/^ *\"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" "$1" | head -1
}

# Seconds since the host last had other work on its cores (served beside
# ganesha by bench/guest-bench.sh); very many when nobody answers.
quiet_for() {
    local q
    q=$(timeout 5 bash -c 'read -r l </dev/tcp/10.0.2.2/7777 && echo "$l"' 2>/dev/null || true)
    [[ $q =~ ^[0-9]+$ ]] && echo "$q" || echo 999999
}
wait_quiet() { # at most 15 min: a busy host makes the run marked, not endless
    local waited=0
    while [ "$(quiet_for)" -lt 20 ] && [ "$waited" -lt 900 ]; do
        sleep 5
        waited=$((waited + 5))
    done
    [ "$waited" -eq 0 ] || echo "BENCH-INFO waited $waited s for the host to be quiet"
}

# One cold, timed run of one tool: caches dropped (a booting node starts cold),
# the mount's counters read just before and just after. BESIDE=1 afterwards
# when other host work overlapped it.
measure() { # case rep tool attempt
    local c=$1 r=$2 tool=$3 dst=$B/$3 out=$LOG/$1-$2-$3-$4 t0 t1 secs
    wait_quiet
    sync
    echo 3 >/proc/sys/vm/drop_caches
    sleep 1
    stats >"$out.before"
    ERRFILE=$out.err
    t0=$(date +%s%N)
    case $tool in
    manifest) init-agent sync -q --report "$out.json" --manifest "$SRC/.init-agent/manifest" "$SRC" "$dst" 2>"$out.err" ;;
    walk) init-agent sync -q --report "$out.json" "$SRC" "$dst" 2>"$out.err" ;;
    # The agent's state directory is not rsync's to copy (the agent never
    # copies it either); sync -f because the agent's time includes its syncfs.
    rsync) rsync -aHAX --delete --numeric-ids --exclude=/.init-agent --stats "$SRC/" "$dst/" >"$out.out" 2>"$out.err" \
        && sync -f "$dst" ;;
    user) init-agent sync -q --report "$out.json" --source-manifest "$NFS_URL" "$dst" 2>"$out.err" ;;
    # The same with the manifest's signature checked and every file hashed.
    signed) init-agent sync -q --report "$out.json" --trust /etc/init-agent/bench.pub "$NFS_URL" "$dst" 2>"$out.err" ;;
    esac
    t1=$(date +%s%N)
    stats >"$out.after"
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
    BESIDE=$(awk -v q="$(quiet_for)" -v s="$secs" 'BEGIN {print (q < s + 3) ? 1 : 0}')
    local rpcs
    rpcs=$(delta "$out.before" "$out.after")
    # Not through the kernel mount: the client counts its own calls.
    case $tool in user | signed) rpcs="rpcs=$(json "$out.json" nfs_calls) read_bytes=0 ops=-" ;; esac
    echo "BENCH case=$c rep=$r tool=$tool attempt=$4 beside=$BESIDE seconds=$secs $rpcs"
    if [ "$tool" = rsync ]; then
        echo "BENCH-DETAIL case=$c rep=$r tool=$tool attempt=$4 transferred=$(awk -F': ' '/^Number of regular files transferred/ {gsub(/,/, "", $2); print $2}' "$out.out")"
    else
        echo "BENCH-DETAIL case=$c rep=$r tool=$tool attempt=$4 manifest=$(json "$out.json" manifest | tr ' ' _) created=$(json "$out.json" created) updated=$(json "$out.json" updated) deleted=$(json "$out.json" deleted) bytes=$(json "$out.json" bytes_copied)"
    fi
}
# measure, again (up to 3 attempts) while other host work overlapped the run
# and the run can be repeated: no change repeats as is, an initial copy from
# an emptied directory. A changed run cannot (the change is gone): marked only.
measure_clean() { # case rep tool
    local a
    for a in 1 2 3; do
        measure "$1" "$2" "$3" "$a"
        if [ "$BESIDE" = 0 ] || [ "$1" = changed ]; then break; fi
        if [ "$1" = initial ] && [ "$a" -lt 3 ]; then rm -rf "${B:?}/$3" && mkdir "$B/$3"; fi
    done
}
rotated() { # rep: the tools, starting at a different one each repetition
    local i
    for i in "${!TOOLS[@]}"; do echo "${TOOLS[$(((i + $1) % ${#TOOLS[@]}))]}"; done
}

# Initial copies into emptied directories (a node's first boot); the last
# repetition leaves every directory a full copy for the re-syncs.
for r in $(seq 1 "$REPS"); do
    for tool in $(rotated "$r"); do
        rm -rf "${B:?}/$tool" && mkdir "$B/$tool"
        measure_clean initial "$r" "$tool"
    done
done

for r in $(seq 1 "$REPS"); do
    for tool in $(rotated "$r"); do measure_clean nochange "$r" "$tool"; done
done

# 1 % changed: every 100th regular file in sorted order gets a line appended
# (offset r-1, so each repetition edits other files), the manifest is made
# again on the changed root, as the master would; none of it is timed.
find "$SRC" -path "$SRC/.init-agent" -prune -o -type f -print | sort >"$LOG/files"
for r in $(seq 1 "$REPS"); do
    n=0
    # A list file, not <(…): the node's devtmpfs has no /dev/fd.
    awk -v r="$r" '(NR - 1) % 100 == r - 1' "$LOG/files" >"$LOG/edit-$r"
    while IFS= read -r f; do
        # Not fatal: a file the server refuses to write just is not counted.
        if printf 'guest-bench edit %s\n' "$r" 2>/dev/null >>"$f"; then n=$((n + 1)); fi
    done <"$LOG/edit-$r"
    sync
    t0=$(date +%s%N)
    init-agent manifest "$SRC" -o "$SRC/.init-agent/manifest" --sign /etc/init-agent/bench.key 2>"$LOG/manifest-$r.err"
    t1=$(date +%s%N)
    echo "BENCH-INFO rep=$r changed=$n of $(wc -l <"$LOG/files") regular files; manifest made again in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b - a) / 1e9}') s: $(tail -1 "$LOG/manifest-$r.err")"
    for tool in $(rotated "$r"); do measure_clean changed "$r" "$tool"; done
done

# Every copy must equal the standard root (rsync's dry run lists any difference).
for tool in "${TOOLS[@]}"; do
    rsync -naHAXi --delete --numeric-ids --exclude=/.init-agent "$SRC/" "$B/$tool/" >"$LOG/verify-$tool"
    echo "BENCH-VERIFY tool=$tool differences=$(wc -l <"$LOG/verify-$tool")"
    head -5 "$LOG/verify-$tool" | sed 's/^/BENCH-VERIFY-LINE /'
done
umount "$SRC"
echo "BENCH-DONE"
GUEST
} >"$STD/sbin/ia-test-extra"
chmod 755 "$STD/sbin/ia-test-extra"

# The signed tool's key pair (a bench's: the secret key travels with the root).
mkdir -p "$STD/etc/init-agent"
"$AGENT" keygen -o "$STD/etc/init-agent/bench" 2>"$T/keygen.log"
"$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" --sign "$STD/etc/init-agent/bench.key" 2>"$T/manifest.log"
"$AGENT" mkinitramfs --kernel-release "$KREL" --modules-dir "$KDIR/lib/modules" \
    --output "$T/initrd.gz" 2>"$T/mkinitramfs.log"
# Room for the root (~210 MiB) and three copies of it.
truncate -s 4G "$T/disk.raw"

CMDLINE="root=nfs:10.0.2.2:/export initagent.mode=sync initagent.disk=/dev/vda init=/sbin/ia-test-init NODE=bench01"

# The quiet server: every second it adds up the CPU time that processes
# outside its own network namespace (i.e. not this node's QEMU, ganesha or
# itself) used; a second with more than 30 % of a core is "busy". It answers
# each connection with the seconds since the last busy second, and logs the
# busy seconds with their biggest consumer (quiet.log).
cat >"$T/quiet.py" <<'PY'
import os, socket, sys, threading, time
HZ = os.sysconf("SC_CLK_TCK")
ME = os.readlink("/proc/self/ns/net")
log = open(sys.argv[1], "a", buffering=1)
last_busy = None

def sample():
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{p}/ns/net") == ME:
                continue
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        comm, rest = st[st.find("(") + 1:st.rfind(")")], st[st.rfind(")") + 2:].split()
        out[p] = (int(rest[11]) + int(rest[12]), comm)  # utime + stime
    return out

def watch():
    global last_busy
    prev = sample()
    while True:
        time.sleep(1)
        now = sample()
        used = {p: t - prev.get(p, (0, c))[0] for p, (t, c) in now.items()}
        total = sum(max(0, u) for u in used.values())
        if total > 0.3 * HZ:
            last_busy = time.time()
            top = max(used, key=used.get)
            log.write(f"{int(last_busy)} busy {total / HZ:.2f} cores, most {now[top][1]} {used[top] / HZ:.2f}\n")
        prev = now

threading.Thread(target=watch, daemon=True).start()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 7777))
srv.listen(8)
while True:
    c, _ = srv.accept()
    q = 999999 if last_busy is None else int(time.time() - last_busy)
    c.sendall(f"{q}\n".encode())
    c.close()
PY
# Runs inside vm_with_nfs's namespace: the quiet server, then the node.
bench_node() {
    python3 "$T/quiet.py" "$T/quiet.log" &
    local quiet=$!
    vm_qemu "$@" || true
    kill "$quiet" 2>/dev/null || true
}
export -f bench_node
export T
echo "guest-bench: booting the node (first sync boot ~2 min under TCG, then the bench; limit ${LIMIT} s)" >&2
start=$(date +%s)
# The BENCH lines also go to stderr as they come, to follow the run.
VM_NFS_V3=1 vm_with_nfs "$STD" bench_node "$T/initrd.gz" "$CMDLINE" "$LIMIT" \
    -drive file="$T/disk.raw",format=raw,if=virtio </dev/null | stdbuf -oL tr -d '\r' | tee "$T/console.log" \
    | grep --line-buffered -a 'BENCH\|NODE-INIT\|synced ' >&2 || true
echo "guest-bench: QEMU ran $(($(date +%s) - start)) s; console in $T/console.log" >&2
grep -aq 'NODE-INIT pid 1 root ext4' "$T/console.log" || fail "the node did not boot its local copy"
! grep -aq 'BENCH-FAILED' "$T/console.log" || fail "$(grep -a 'BENCH-FAILED' "$T/console.log" | head -1)"
grep -aq 'BENCH-DONE' "$T/console.log" || fail "the guest did not finish (timeout ${LIMIT} s?)"

python3 - "$T/console.log" <<'PY' | tee "$T/results.md"
import re, statistics, sys
log = open(sys.argv[1], errors="replace").read()
def fields(line):
    return dict(re.findall(r"(\w+)=(\S+)", line))
# Runs that other host work overlapped (beside=1) are left out of the
# medians when clean runs of the same kind exist.
runs, details, skewed, kept = {}, {}, [], {}
for line in log.splitlines():
    m = re.search(r"BENCH (case=.*)", line)
    if m:
        f = fields(m.group(1))
        ops = {} if f["ops"] == "-" else {k: int(v) for k, v in (o.split(":") for o in f["ops"].split(","))}
        beside = f["beside"] == "1"
        if beside:
            skewed.append(f"{f['case']}/{f['tool']}/rep {f['rep']}/attempt {f['attempt']}")
        runs.setdefault((f["case"], f["tool"]), []).append(
            (float(f["seconds"]), int(f["rpcs"]), int(f["read_bytes"]), ops, beside))
        kept[(f["case"], f["tool"], f["rep"], f["attempt"])] = beside
    m = re.search(r"BENCH-DETAIL (case=.*)", line)
    if m:
        f = fields(m.group(1))
        details.setdefault((f["case"], f["tool"]), []).append(f)
for k, rr in runs.items():
    clean = [x for x in rr if not x[4]]
    runs[k] = clean or rr
    # The details of the runs the table uses, in the same way.
    ds = details.get(k, [])
    cd = [d for d in ds if not kept.get((k[0], k[1], d["rep"], d.get("attempt")), True)]
    details[k] = cd or ds
cases = [("initial", "initial copy"), ("nochange", "no change"), ("changed", "1 % changed")]
tools = [("manifest", "init-agent (manifest)"), ("walk", "init-agent (walk)"), ("rsync", "rsync"),
         ("user", "init-agent nfs:// (userspace NFSv3, manifest)"),
         ("signed", "init-agent nfs:// signed (--trust: signature checked, every file hashed)")]
def med(xs):
    return statistics.median(xs)
print("| case | tool | runs | seconds, median (min–max) | NFS RPCs, median | MiB READ from server | time vs rsync | RPCs vs rsync |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for c, cname in cases:
    rs = runs.get((c, "rsync"), [])
    for t, tname in tools:
        rr = runs.get((c, t), [])
        if not rr:
            continue
        secs = [x[0] for x in rr]
        rpcs = med([x[1] for x in rr])
        mib = med([x[2] for x in rr]) / 1048576
        spread = f" ({min(secs):.2f}–{max(secs):.2f})" if len(rr) > 1 else ""
        tr = rr_ = ""
        if t != "rsync" and rs and med([x[0] for x in rs]) and med([x[1] for x in rs]):
            tr = f"{med(secs) / med([x[0] for x in rs]):.2f}"
            rr_ = f"{rpcs / med([x[1] for x in rs]):.3f}"
        mark = " (host busy)" if rr[0][4] else ""
        print(f"| {cname} | {tname} | {len(rr)}{mark} | {med(secs):.2f}{spread} | {rpcs:.0f} | {mib:.1f} | {tr} | {rr_} |")
print()
# Per-op counts, median over the repetitions, for the ops that any run sent.
allops = sorted({o for rr in runs.values() for x in rr for o in x[3]},
                key=lambda o: -max(x[3].get(o, 0) for rr in runs.values() for x in rr))
print("| case | tool | " + " | ".join(allops) + " |")
print("|---|---|" + "---:|" * len(allops))
for c, cname in cases:
    for t, tname in tools:
        rr = runs.get((c, t), [])
        if rr:
            print(f"| {cname} | {tname} | " + " | ".join(f"{med([x[3].get(o, 0) for x in rr]):.0f}" for o in allops) + " |")
print()
for c, cname in cases:
    u, s = runs.get((c, "user"), []), runs.get((c, "signed"), [])
    if u and s:
        print(f"- {cname}: signed / unsigned (userspace client, medians) {med([x[0] for x in s]) / med([x[0] for x in u]):.2f}x")
for (c, t), ds in sorted(details.items()):
    d = ds[0]
    what = (f"files transferred {','.join(x.get('transferred', '?') for x in ds)}" if t == "rsync" else
            f"manifest {','.join(sorted({x.get('manifest', '?') for x in ds}))}; updated {','.join(x.get('updated', '?') for x in ds)}; "
            f"created {','.join(x.get('created', '?') for x in ds)}; bytes {','.join(x.get('bytes', '?') for x in ds)}")
    print(f"- {c} / {t}: {what}")
if skewed:
    print(f"- runs overlapped by other work on the host ({len(skewed)}), left out where clean runs of the kind exist: {', '.join(skewed)}")
for line in log.splitlines():
    m = re.search(r"BENCH-(INFO|VERIFY) (.*)", line)
    if m:
        print(f"- {m.group(1).lower()}: {m.group(2)}")
PY
if grep -a 'BENCH-VERIFY tool=' "$T/console.log" | grep -vq 'differences=0'; then
    fail "a copy differs from the standard root: $(grep -a 'BENCH-VERIFY' "$T/console.log" | tr '\n' ' ')"
fi
