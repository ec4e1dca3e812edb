#!/usr/bin/env bash
# Times `init-agent statelite apply` of the xCAT ALT litefile table (33 entries,
# conf/xcat/litefile-alt.csv) onto a debootstrapped Debian root, each run in a
# fresh private mount namespace (as a boot would start), with a persistent
# state directory. Target from issue 4: under 50 ms.
#
#   bench/statelite-bench.sh [RUNS]        (root; RUNS default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
WORK=$PWD/bench/work/statelite
ROOTFS=${INIT_AGENT_TEST_ROOT:-/var/cache/init-agent-tests/bookworm-minbase}
[ -f "$ROOTFS/.complete" ] || { echo "no test root at $ROOTFS: run ./test.sh once" >&2; exit 1; }
cargo build --release --quiet
AGENT=$PWD/target/x86_64-unknown-linux-gnu/release/init-agent
rm -rf "$WORK"
mkdir -p "$WORK/state"
"$AGENT" sync -q "$ROOTFS" "$WORK/root" 2>/dev/null || { mkdir -p "$WORK/root"; "$AGENT" sync -q "$ROOTFS" "$WORK/root"; }
"$AGENT" statelite import-xcat --litefile conf/xcat/litefile-alt.csv >"$WORK/alt.toml"
run() {
    unshare -m --propagation private "$AGENT" statelite apply --root "$WORK/root" --node cn01 \
        --state "$WORK/state" --config "$WORK/alt.toml" >/dev/null 2>&1
}
run # first apply prepares nothing (no link entries) and fills the state
total=0
best=999999
for _ in $(seq "$RUNS"); do
    t0=$(date +%s%N)
    run
    t=$((($(date +%s%N) - t0) / 1000))
    total=$((total + t))
    [ "$t" -lt "$best" ] && best=$t
done
printf 'statelite apply, ALT table (33 entries), %d runs: mean %.1f ms, best %.1f ms\n' \
    "$RUNS" "$(echo "$total / $RUNS / 1000" | bc -l)" "$(echo "$best / 1000" | bc -l)"
