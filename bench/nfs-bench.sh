#!/usr/bin/env bash
# The userspace NFSv3 client on the host, against nfs-ganesha on loopback with
# added round-trip time (bench/delay-proxy.py: this kernel has no netem):
# `init-agent sync nfs://…` walking the source and with the manifest read
# through NFS, 8 requests in flight and 1, for
#   - the initial copy into an empty directory,
#   - a re-sync with no change,
#   - a re-sync after 1 % of the regular files changed,
# at 0 (direct), 0.5 and 5 ms added RTT; and the copy of two big files (256 MiB
# of random data, 1 GiB sparse with one byte) whose READs go out together.
# Wall time and NFS calls per run.
# The kernel client cannot run on this host: the comparison with a kernel
# mount (our sync and rsync) is bench/guest-bench.sh's, in a QEMU node.
#
#   bench/nfs-bench.sh          (as root; NFS_BENCH_RTTS="0 0.5 5")
#
# The standard root is the test suite's Debian minbase (tests-support/test-root.sh).
# Results: a Markdown table on stdout and in /var/tmp/init-agent-nfs-bench/results.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=/var/tmp/init-agent-nfs-bench

if [ "${1:-}" != --inside ]; then
    (cd "$ROOT" && cargo build --release --quiet)
    rm -rf "$W"
    mkdir -p "$W/export" "$W/dst"
    src=$("$ROOT/tests-support/test-root.sh")
    rsync -aHAX --numeric-ids "$src/" "$W/export/std/"
    mkdir -p "$W/export/big"
    head -c 268435456 /dev/urandom >"$W/export/big/random.img"
    truncate -s 1G "$W/export/big/sparse.img"
    printf x | dd of="$W/export/big/sparse.img" bs=1 seek=500000000 conv=notrunc status=none
    "$ROOT/target/x86_64-unknown-linux-gnu/release/init-agent" manifest "$W/export/std" \
        -o "$W/export/std/.init-agent/manifest" 2>"$W/manifest.log"
    exec "$ROOT/tests-support/with-ganesha.sh" --export "$W/export" -- "$0" --inside
fi

AGENT=$ROOT/target/x86_64-unknown-linux-gnu/release/init-agent
STD=$W/export/std
LOG=$W/log
mkdir -p "$LOG"
RTTS=${NFS_BENCH_RTTS:-0 0.5 5}
TOOLS=(walk8 manifest8 walk1)
: >"$LOG/results"

run() { # rtt case tool url
    local rtt=$1 c=$2 tool=$3 url=$4 dst=$W/dst/$1-$3 args=() t0 t1
    [ "$c" != big ] || dst=$W/dst/$1-$3-big
    case $tool in
    walk8) args=(--inflight 8) ;;
    manifest8) args=(--inflight 8 --source-manifest) ;;
    walk1) args=(--inflight 1 --jobs 1) ;;
    esac
    mkdir -p "$dst"
    sync
    echo 3 >/proc/sys/vm/drop_caches
    t0=$(date +%s%N)
    "$AGENT" sync -q "${args[@]}" --report "$LOG/$1-$2-$3.json" "$url" "$dst" 2>"$LOG/$1-$2-$3.err"
    t1=$(date +%s%N)
    python3 - "$LOG/$1-$2-$3.json" "$rtt" "$c" "$tool" "$t0" "$t1" >>"$LOG/results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["counts"]
print(sys.argv[2], sys.argv[3], sys.argv[4], "%.2f" % ((int(sys.argv[6]) - int(sys.argv[5])) / 1e9),
      r.get("nfs_calls", 0), c["created"] + c["updated"] + c["deleted"], r["bytes_copied"], r["manifest"].replace(" ", "_"))
PY
}

n=0
for rtt in $RTTS; do
    n=$((n + 1))
    url=nfs://127.0.0.1/export/std
    proxy=
    if [ "$rtt" != 0 ]; then
        python3 "$ROOT/bench/delay-proxy.py" "$rtt" 3049:2049 30048:20048 >"$LOG/proxy-$rtt.log" 2>&1 &
        proxy=$!
        for _ in $(seq 50); do grep -q ready "$LOG/proxy-$rtt.log" && break; sleep 0.1; done
        url="nfs://127.0.0.1:3049/export/std?mountport=30048"
    fi
    for tool in "${TOOLS[@]}"; do run "$rtt" initial "$tool" "$url"; done
    for tool in "${TOOLS[@]}"; do run "$rtt" nochange "$tool" "$url"; done
    # 1 %: every 100th regular file (another 1 % for each RTT) gets a line, and
    # the master makes the manifest again; none of it is timed.
    find "$STD" -path "$STD/.init-agent" -prune -o -type f -print | sort \
        | awk -v r="$n" '(NR - 1) % 100 == r - 1' >"$LOG/edit-$rtt"
    while IFS= read -r f; do printf 'nfs-bench edit\n' >>"$f"; done <"$LOG/edit-$rtt"
    "$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" 2>>"$LOG/manifest.log"
    for tool in "${TOOLS[@]}"; do run "$rtt" changed "$tool" "$url"; done
    for tool in walk8 walk1; do run "$rtt" big "$tool" "${url/std/big}"; done
    [ -z "$proxy" ] || kill "$proxy"
done

python3 - "$LOG/results" "$(find "$STD" | wc -l)" <<'PY' | tee "$W/results.md"
import sys
rows = [l.split() for l in open(sys.argv[1])]
names = {"walk8": "walk, 8 in flight", "manifest8": "manifest, 8 in flight", "walk1": "walk, 1 in flight"}
cases = {"initial": "initial copy", "nochange": "no change", "changed": "1 % changed",
         "big": "two big files (1.25 GiB, 1 sparse)"}
print(f"Standard root: Debian minbase, {sys.argv[2]} entries. Seconds (NFS calls).\n")
rtts = sorted({r[0] for r in rows}, key=float)
print("| case | client | " + " | ".join(f"+{t} ms RTT" if t != "0" else "loopback" for t in rtts) + " |")
print("| --- | --- |" + " --- |" * len(rtts))
for c in cases:
    for t in names:
        cells = []
        for rtt in rtts:
            m = [r for r in rows if r[0] == rtt and r[1] == c and r[2] == t]
            cells.append(f"{m[0][3]} s ({m[0][4]})" if m else "-")
        print(f"| {cases[c]} | {names[t]} | " + " | ".join(cells) + " |")
PY
