#!/usr/bin/env bash
# Benchmarks `init-agent sync` against `rsync -aHAX --delete --numeric-ids` on the
# same trees in the same run. Each tree lives on its own loop-mounted ext4 image,
# so "bytes read from SRC" is what the source's block device served; the page
# cache is dropped before every run (a booting node starts cold).
#
#   bench/sync-bench.sh [debian|usr|debian:fuse|usr:fuse]...   (run as root)
#
# Trees: "debian" is a debootstrap'ed bookworm minbase root; "usr" a copy of this
# machine's /usr. Both are built once and kept under bench/work/. With ":fuse" the
# source is read through bindfs (a userspace file server, as nfs-ganesha is):
# every lookup, getattr, listxattr and read is a round trip to a daemon, which is
# what a node pays against the NFS standard root. Default: all four.
# Prints a Markdown table; BENCHMARKS.md holds a recorded run. rsync runs as
# `rsync … && sync -f DST`, since init-agent's times include its syncfs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/bench/work
TREES=("$@")
[ ${#TREES[@]} -gt 0 ] || TREES=(debian usr debian:fuse usr:fuse)

need() { command -v "$1" >/dev/null || apt-get install -y --no-install-recommends "$2" >/dev/null; }
need rsync rsync
need debootstrap debootstrap
need mkfs.ext4 e2fsprogs
need bc bc
need bindfs bindfs
[ -x /usr/bin/time ] || apt-get install -y --no-install-recommends time >/dev/null

cargo build --release --quiet
AGENT=$ROOT/target/x86_64-unknown-linux-gnu/release/init-agent
mkdir -p "$WORK"

MOUNTS=()
cleanup() { for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || true; done; }
trap cleanup EXIT

mount_img() { # image mountpoint
    mkdir -p "$2"
    mountpoint -q "$2" || mount -o loop "$1" "$2"
    MOUNTS+=("$2")
}

dev_of() { basename "$(findmnt -no SOURCE --mountpoint "$1")"; }
sectors_read() { awk '{print $3}' "/sys/block/$1/stat"; }

fresh_img() { # image size
    rm -f "$1"
    truncate -s "$2" "$1"
    mkfs.ext4 -q -F -O ^has_journal -E lazy_itable_init=0 "$1" 2>/dev/null || mkfs.ext4 -q -F "$1"
}

make_tree() { # name -> $WORK/<name>.img holding the tree
    local img=$WORK/$1.img mnt=$WORK/$1.src
    [ -f "$img.done" ] && return
    case $1 in
    debian)
        fresh_img "$img" 3G
        mount_img "$img" "$mnt"
        debootstrap --variant=minbase bookworm "$mnt" http://deb.debian.org/debian >/dev/null
        ;;
    usr)
        fresh_img "$img" 12G
        mount_img "$img" "$mnt"
        cp -a /usr "$mnt/usr"
        ;;
    esac
    umount "$mnt"
    touch "$img.done"
}

RESULTS=()
# run LABEL TREE CMD...: cold cache, wall time, peak RSS, bytes read from SRC
run() {
    local label=$1 tree=$2
    shift 2
    local dev
    dev=$(dev_of "$WORK/${tree%%:*}.src")
    sync
    echo 3 >/proc/sys/vm/drop_caches
    local before after t0 t1 rss
    before=$(sectors_read "$dev")
    t0=$(date +%s.%N)
    /usr/bin/time -f %M -o "$WORK/rss" "$@" >/dev/null 2>"$WORK/stderr" || {
        cat "$WORK/stderr" >&2
        return 1
    }
    t1=$(date +%s.%N)
    after=$(sectors_read "$dev")
    rss=$(tail -1 "$WORK/rss")
    local secs mib
    secs=$(echo "$t1 - $t0" | bc -l)
    mib=$(echo "($after - $before) * 512 / 1048576" | bc -l)
    RESULTS+=("$tree|$label|$secs|$rss|$mib")
    printf '%-8s %-44s %8.2f s %8d KiB RSS %10.1f MiB read\n' "$tree" "$label" "$secs" "$rss" "$mib" >&2
}

# Deterministically changes about 1 % of the regular files (same size edits
# with new mtimes included) and deletes/creates a few.
mutate_one_percent() { # tree-root
    python3 - "$1" <<'PY'
import os, sys, random
root = sys.argv[1]
rng = random.Random(42)
files = []
for d, dirs, names in os.walk(root):
    dirs.sort(); names.sort()
    if os.path.relpath(d, root).startswith(".init-agent"):
        continue
    files += [os.path.join(d, n) for n in names if os.path.isfile(os.path.join(d, n)) and not os.path.islink(os.path.join(d, n))]
for i, f in enumerate(rng.sample(files, max(1, len(files) // 100))):
    if i % 10 == 0:
        os.unlink(f)
    elif os.path.getsize(f) > 0 and i % 2:
        with open(f, "r+b") as fh:
            b = fh.read(1); fh.seek(0); fh.write(bytes([b[0] ^ 1]))
    else:
        with open(f, "ab") as fh:
            fh.write(b"x")
    if i % 10 == 1:
        with open(f + ".new", "wb") as fh:
            fh.write(os.urandom(4096))
PY
}

for spec in "${TREES[@]}"; do
    tree=${spec%%:*}
    tag=${spec/:/-}
    make_tree "$tree"
    mount_img "$WORK/$tree.img" "$WORK/$tree.src"
    RAW=$WORK/$tree.src # where the master changes the standard root
    SRC=$RAW
    if [ "$spec" != "$tree" ]; then
        SRC=$WORK/$tag.fuse
        mkdir -p "$SRC"
        bindfs -o attr_timeout=1,entry_timeout=1 "$RAW" "$SRC"
        MOUNTS=("$SRC" "${MOUNTS[@]}")
    fi
    for who in agent rsync; do
        fresh_img "$WORK/$tag.$who.img" "$(du -s --block-size=1M "$WORK/$tree.img" | awk '{print int($1*1.3+512)"M"}')"
        mount_img "$WORK/$tag.$who.img" "$WORK/$tag.$who"
    done
    A=$WORK/$tag.agent R=$WORK/$tag.rsync
    "$AGENT" manifest "$RAW" -o "$WORK/$tag.manifest" 2>>"$WORK/manifest.log"
    # init-agent flushes (syncfs) before it marks the copy complete; rsync gets the
    # same flush so both numbers mean "on disk".
    RS=(sh -c 'rsync -aHAX --delete --numeric-ids --exclude=/.init-agent --exclude=/lost+found "$1/" "$2/" && sync -f "$2"' rsync "$SRC" "$R")
    run "initial: init-agent" "$spec" "$AGENT" sync -q "$SRC" "$A"
    run "initial: rsync" "$spec" "${RS[@]}"
    run "no change: init-agent (walk)" "$spec" "$AGENT" sync -q "$SRC" "$A"
    run "no change: init-agent (manifest)" "$spec" "$AGENT" sync -q --manifest "$WORK/$tag.manifest" "$SRC" "$A"
    run "no change: rsync" "$spec" "${RS[@]}"
    mutate_one_percent "$RAW"
    "$AGENT" manifest "$RAW" -o "$WORK/$tag.manifest" 2>>"$WORK/manifest.log"
    run "1 % changed: init-agent (manifest)" "$spec" "$AGENT" sync -q --manifest "$WORK/$tag.manifest" "$SRC" "$A"
    run "1 % changed: rsync" "$spec" "${RS[@]}"
    # The walk path on a second, equally sized change (both copies start level).
    mutate_one_percent "$RAW"
    run "1 % changed: init-agent (walk)" "$spec" "$AGENT" sync -q "$SRC" "$A"
    run "1 % changed (2nd): rsync" "$spec" "${RS[@]}"
    # The copy must equal the source.
    if [ -n "$(rsync -naHAXi --delete --numeric-ids --exclude=/.init-agent --exclude=/lost+found "$RAW/" "$A/")" ]; then
        echo "WARNING: $spec: init-agent copy differs from the source" >&2
    fi
    [ "$SRC" = "$RAW" ] || umount "$SRC"
    umount "$A" "$R" "$RAW"
done

echo
echo "| tree | run | seconds | peak RSS (KiB) | MiB read from SRC |"
echo "|---|---|---:|---:|---:|"
for r in "${RESULTS[@]}"; do
    IFS='|' read -r tree label secs rss mib <<<"$r"
    printf '| %s | %s | %.2f | %d | %.1f |\n' "$tree" "$label" "$secs" "$rss" "$mib"
done
echo
echo "Ratios (rsync seconds / init-agent seconds):"
ratio() { # tree agent-label rsync-label
    local a r
    a=$(printf '%s\n' "${RESULTS[@]}" | awk -F'|' -v t="$1" -v l="$2" '$1==t && $2==l {print $3}')
    r=$(printf '%s\n' "${RESULTS[@]}" | awk -F'|' -v t="$1" -v l="$3" '$1==t && $2==l {print $3}')
    [ -n "$a" ] && [ -n "$r" ] && printf -- '- %s, %s: %.1fx\n' "$1" "$2" "$(echo "$r / $a" | bc -l)"
}
for tree in "${TREES[@]}"; do
    ratio "$tree" "initial: init-agent" "initial: rsync"
    ratio "$tree" "no change: init-agent (walk)" "no change: rsync"
    ratio "$tree" "no change: init-agent (manifest)" "no change: rsync"
    ratio "$tree" "1 % changed: init-agent (manifest)" "1 % changed: rsync"
    ratio "$tree" "1 % changed: init-agent (walk)" "1 % changed (2nd): rsync"
done
