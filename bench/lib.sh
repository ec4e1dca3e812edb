# What the bench scripts share; sourced, with $WORK set. Mounts made
# through `overlay` (or added to MOUNTS) are unmounted on exit, last first.

MOUNTS=()
unmount_all() { for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}" 2>/dev/null || true; done; }
trap unmount_all EXIT

overlay() { # LOWER MNT: a writable view of LOWER on MNT, LOWER untouched
    local up=$2.up wk=$2.wk
    rm -rf "$up" "$wk"
    mkdir -p "$up" "$wk" "$2"
    mount -t overlay overlay -o "lowerdir=$1,upperdir=$up,workdir=$wk" "$2"
    MOUNTS+=("$2")
}

secs() { # CMD... -> wall seconds on stdout (the command's stderr kept for a failure)
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>"$WORK/stderr" || {
        cat "$WORK/stderr" >&2
        return 1
    }
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}

stats() { # numbers... -> "min median"
    printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f %.3f", a[1], m}'
}
