#!/usr/bin/env bash
# What signing costs a sync: `init-agent sync --trust` (signed manifest, every
# file's contents hashed before it is renamed into place) against the same
# sync with the same manifest unsigned, in the same run, alternating, REPS
# times each; initial sync into an empty destination, then a no-change re-sync.
#
#   bench/trust-bench.sh [-r REPS] [-d tmpfs|disk] [-s local|nfs] [debian|usr]...   (as root)
#
# Trees: "debian" is the test suite's debootstrap root
# (/var/cache/init-agent-tests/bookworm-minbase, INIT_AGENT_TEST_ROOT to
# override), "usr" this machine's /usr. Source (-s):
#   local  the tree read as a directory, through an overlay so that the
#          generation stamp `init-agent manifest` writes never touches it
#          (default): everything on one machine, CPU-bound, the worst case
#          for the hash's share;
#   nfs    a copy of the tree served by nfs-ganesha on loopback in a private
#          network namespace (tests-support/with-ganesha.sh), read by the
#          userspace NFSv3 client as a node reads its standard root.
# Destination: a tmpfs (default; no disk in the way, so what is left is the
# CPU the check costs) or a directory on the disk under bench/work (-d disk).
# The source stays in the page cache between runs (warm: the comparison is
# of the work, not of the disk).
# Prints a Markdown table: min and median seconds of each, and the ratio of
# the medians (signed / unsigned); BENCHMARKS.md holds a recorded run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/bench/work/trust
REPS=5
DEST=tmpfs
SOURCE=local
while getopts r:d:s: o; do
    case $o in
    r) REPS=$OPTARG ;;
    d) DEST=$OPTARG ;;
    s) SOURCE=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
TREES=("$@")
[ ${#TREES[@]} -gt 0 ] || TREES=(debian usr)
command -v bc >/dev/null || apt-get install -y --no-install-recommends bc >/dev/null

AGENT=${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-gnu/release/init-agent
. "$ROOT/bench/lib.sh"
lower() { # TREE -> the directory it is read from
    case $1 in
    debian) echo "${INIT_AGENT_TEST_ROOT:-/var/cache/init-agent-tests/bookworm-minbase}" ;;
    usr) echo /usr ;;
    *) echo "unknown tree $1" >&2; exit 2 ;;
    esac
}
if [ -z "${NFS_URL:-}" ]; then
    cargo build --release --quiet --locked -p init-agent
    mkdir -p "$WORK"
    if [ "$SOURCE" = nfs ]; then
        # The server's copies, which the generation stamp may touch.
        for tree in "${TREES[@]}"; do
            mkdir -p "$WORK/export"
            rsync -aHAX --delete "$(lower "$tree")/" "$WORK/export/$tree/"
        done
        exec tests-support/with-ganesha.sh --export "$WORK/export" -- \
            "$ROOT/bench/trust-bench.sh" -r "$REPS" -d "$DEST" -s nfs "${TREES[@]}"
    fi
fi

DST=$WORK/dst
mkdir -p "$DST"
if [ "$DEST" = tmpfs ]; then
    mount -t tmpfs -o size=16g tmpfs "$DST"
    MOUNTS+=("$DST")
fi
rm -f "$WORK/key.$$".*
"$AGENT" keygen -o "$WORK/key.$$" >/dev/null 2>&1
KEY=$WORK/key.$$

clear_dst() { find "$DST" -mindepth 1 -delete; sync; }

ROWS=()
for tree in "${TREES[@]}"; do
    if [ "$SOURCE" = nfs ]; then
        TREE=$WORK/export/$tree
        SRC=$NFS_URL/$tree
        # Read from the source, as a node reads it; signed: with its .minisig.
        USE=(--source-manifest)
    else
        overlay "$(lower "$tree")" "$WORK/$tree.src"
        TREE=$WORK/$tree.src
        SRC=$TREE
        USE=(--manifest "$TREE/.init-agent/manifest")
    fi
    M=$TREE/.init-agent/manifest
    rm -f "$M" "$M.minisig"
    entries=$("$AGENT" manifest "$TREE" -o "$M" --sign "$KEY.key" 2>&1 | awk '/entries/ {print $2}')
    # Warm the source's page cache once, as every later run finds it.
    tar -C "$TREE" -cf - . | cat >/dev/null
    declare -a ui=() si=() un=() sn=()
    for ((r = 1; r <= REPS; r++)); do
        clear_dst
        ui+=("$(secs "$AGENT" sync --quiet "${USE[@]}" "$SRC" "$DST")")
        un+=("$(secs "$AGENT" sync --quiet "${USE[@]}" "$SRC" "$DST")")
        clear_dst
        si+=("$(secs "$AGENT" sync --quiet --trust "$KEY.pub" "${USE[@]}" "$SRC" "$DST")")
        sn+=("$(secs "$AGENT" sync --quiet --trust "$KEY.pub" "${USE[@]}" "$SRC" "$DST")")
        echo "  $tree rep $r: initial ${ui[-1]} / ${si[-1]} s, no change ${un[-1]} / ${sn[-1]} s (unsigned / signed)" >&2
    done
    for run in initial "no change"; do
        if [ "$run" = initial ]; then
            read -r umin umed <<<"$(stats "${ui[@]}")"
            read -r smin smed <<<"$(stats "${si[@]}")"
        else
            read -r umin umed <<<"$(stats "${un[@]}")"
            read -r smin smed <<<"$(stats "${sn[@]}")"
        fi
        ratio=$(echo "$smed / $umed" | bc -l)
        ROWS+=("| $tree ($entries entries) | $run | $umin | $umed | $smin | $smed | $(printf %.2f "$ratio")x |")
    done
    clear_dst
    if [ "$SOURCE" = local ]; then
        umount "$TREE"
        unset 'MOUNTS[-1]'
    fi
done
rm -f "$KEY.key" "$KEY.pub"

echo
echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
echo "Commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- init-agent || echo ' (modified)'); source: $SOURCE; destination: $DEST; $REPS reps each, alternating; source warm in the page cache"
echo
echo "| tree | run | unsigned min (s) | unsigned median (s) | signed min (s) | signed median (s) | signed / unsigned (medians) |"
echo "|---|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
