#!/usr/bin/env bash
# What the rollback area costs an incremental sync: `init-agent sync` (the
# default: what the run replaces, deletes or changes of the last complete
# generation is kept in DST/.init-agent/rollback) against `--no-rollback`,
# in the same run, alternating, REPS times each, for each PERCENT changed.
#
#   bench/rollback-bench.sh [-r REPS] [-p PERCENT]... [debian|usr]   (as root)
#
# Tree: "debian" is the test suite's debootstrap root
# (/var/cache/init-agent-tests/bookworm-minbase, INIT_AGENT_TEST_ROOT to
# override), "usr" this machine's /usr. Generation 1 is the tree (read
# through an overlay, untouched); generation 2 an overlay on it where, of
# its regular files chosen with a fixed seed, PERCENT % are rewritten (one
# byte longer), PERCENT/4 % deleted, PERCENT/4 % given another mode (changed
# in place), and as many new files added in new directories. The
# destination is an ext4 file system in a loop image (the node's disk: the
# records are metadata work on it), brought back to generation 1 before each
# timed run, untimed. Prints a Markdown table: min and median seconds of
# each, the ratio of the medians, and what the area held at its peak (the
# replaced and deleted files' bytes: the disk space a run needs beyond the
# new contents). BENCHMARKS.md holds a recorded run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/bench/work/rollback
REPS=5
PERCENTS=()
while getopts r:p: o; do
    case $o in
    r) REPS=$OPTARG ;;
    p) PERCENTS+=("$OPTARG") ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ ${#PERCENTS[@]} -gt 0 ] || PERCENTS=(1 10)
TREE=${1:-debian}
case $TREE in
debian) LOWER=${INIT_AGENT_TEST_ROOT:-/var/cache/init-agent-tests/bookworm-minbase} ;;
usr) LOWER=/usr ;;
*) echo "unknown tree $TREE" >&2; exit 2 ;;
esac
command -v bc >/dev/null || apt-get install -y --no-install-recommends bc >/dev/null
cargo build --release --quiet --locked -p init-agent
AGENT=${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-gnu/release/init-agent
. "$ROOT/bench/lib.sh"

# The disk: room for the tree twice over and what a run keeps.
bytes=$(du -sb "$LOWER" | cut -f1)
mkdir -p "$WORK"
IMG=$WORK/disk.img
rm -f "$IMG"
truncate -s $((bytes * 3 + (256 << 20))) "$IMG"
mke2fs -q -t ext4 -F "$IMG"
DST=$WORK/dst
mkdir -p "$DST"
mount -o loop "$IMG" "$DST"
MOUNTS+=("$DST")

overlay "$LOWER" "$WORK/g1"
G1=$WORK/g1
"$AGENT" sync --quiet --no-rollback "$G1" "$DST" >/dev/null
entries=$(find "$G1" | wc -l)
ROWS=()
for p in "${PERCENTS[@]}"; do
    overlay "$LOWER" "$WORK/g2"
    G2=$WORK/g2
    # The changes, and the bytes the area keeps: the replaced and deleted
    # files' old contents.
    kept=$(python3 - "$G2" "$p" <<'PY'
import os, random, stat, sys
root, p = sys.argv[1], float(sys.argv[2])
files = []
for d, dirs, names in os.walk(root):
    dirs.sort()
    for n in sorted(names):
        path = os.path.join(d, n)
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            files.append((path, st.st_size))
rng = random.Random(22)
rng.shuffle(files)
n = lambda share: int(len(files) * share / 100)
rewrite, delete, chmod = n(p), n(p / 4), n(p / 4)
kept = 0
for path, size in files[:rewrite]:
    with open(path, "ab") as f:
        f.write(b"\n")
    kept += size
for path, size in files[rewrite:rewrite + delete]:
    os.unlink(path)
    kept += size
for path, _ in files[rewrite + delete:rewrite + delete + chmod]:
    os.chmod(path, os.lstat(path).st_mode & 0o7777 ^ 0o010)
new = os.path.join(root, "opt", "rollback-bench")
for i in range(delete):
    d = os.path.join(new, "d%03d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%d" % i), "wb") as f:
        f.write(rng.randbytes(4096))
print(kept)
PY
)
    declare -a with=() without=()
    for ((r = 1; r <= REPS; r++)); do
        "$AGENT" sync --quiet --no-rollback "$G1" "$DST" >/dev/null
        sync
        with+=("$(secs "$AGENT" sync --quiet "$G2" "$DST")")
        "$AGENT" sync --quiet --no-rollback "$G1" "$DST" >/dev/null
        sync
        without+=("$(secs "$AGENT" sync --quiet --no-rollback "$G2" "$DST")")
        echo "  $p %, rep $r: ${with[-1]} s with the area, ${without[-1]} s without" >&2
    done
    read -r wmin wmed <<<"$(stats "${with[@]}")"
    read -r nmin nmed <<<"$(stats "${without[@]}")"
    ratio=$(echo "scale=2; $wmed / $nmed" | bc -l)
    ROWS+=("| $TREE ($entries entries) | $p % | $nmin | $nmed | $wmin | $wmed | ${ratio}x | $((kept >> 20)) MiB ($((kept * 100 / bytes)) % of $((bytes >> 20)) MiB) |")
    umount "$G2"
    unset 'MOUNTS[-1]'
    unset with without
done
echo "| tree | changed | without min (s) | without median (s) | with min (s) | with median (s) | with / without (medians) | kept at the peak |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
