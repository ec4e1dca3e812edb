# shellcheck shell=bash
# What the campaigns share, sourced after setup.sh and check.sh with $T, $STD,
# $DISK and $AGENT set: the standard root's generations, listed as served,
# and the checks of the node's disk, read from outside the guest. A mismatch
# ends the campaign (fail), so a figure line printed says there was none.
# What they keep: HAD_COMPLETE (the disk once held a complete copy),
# COMPLETE_G (the generation of the last complete copy seen), ROLLBACK_LEFT.
HAD_COMPLETE=0 COMPLETE_G=none ROLLBACK_LEFT=0

# Waits until the boot's sync has copied something (its progress lines,
# "sync: N entries, M MiB ...") or the boot is over, for at most SECONDS.
campaign_await_copy() { # console runner-pid seconds
    local _
    for _ in $(seq $(($3 * 10))); do
        grep -aq 'sync: [0-9]* entries' "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 0
        sleep 0.1
    done
}

# Stamps the standard root as it now is (GEN) and keeps its listing.
campaign_publish() {
    "$AGENT" manifest "$STD" -o "$STD/.init-agent/manifest" >>"$T/manifest.log" 2>&1
    GEN=$(cat "$STD/.init-agent/generation")
    tree_list "$STD" >"$T/gen-$GEN.list"
}

# The disk's marker, or "none".
campaign_disk_state() {
    local m=$T/mnt-state
    vm_mount_partition "$DISK" 1 "$m" 2>/dev/null || { echo none; return; }
    cat "$m/.init-agent/state" 2>/dev/null || echo none
    vm_unmount "$m"
}

# A copy marked complete is exactly the generation it names.
campaign_check_copy() { # what
    local m=$T/mnt-check state g
    vm_mount_partition "$DISK" 1 "$m" 2>/dev/null || return 0
    state=$(cat "$m/.init-agent/state" 2>/dev/null || echo none)
    if [[ $state == complete* ]]; then
        g=$(awk '{print $2}' <<<"$state")
        tree_list "$m" >"$T/disk.list"
        [ -f "$T/gen-$g.list" ] || { vm_unmount "$m"; fail "$1: marked complete $g, a generation never served"; }
        if ! diff "$T/gen-$g.list" "$T/disk.list" >"$T/diff-$BOOT.txt"; then
            vm_unmount "$m"
            fail "$1: the copy marked complete $g is not generation $g (see $T/diff-$BOOT.txt)"
        fi
        [ -d "$m/.init-agent/rollback" ] && ROLLBACK_LEFT=$((ROLLBACK_LEFT + 1))
        HAD_COMPLETE=1
        COMPLETE_G=$g
    fi
    vm_unmount "$m"
}

# After a boot that came up: the copy it booted is the generation served
# ($GEN), or, where the sync could not finish, the one it had before.
campaign_check_booted() { # what before whether-the-previous-may-boot(0|1)
    if [ "$COMPLETE_G" != "$GEN" ] && { [ "$3" = 0 ] || [ "$COMPLETE_G" != "$2" ]; }; then
        fail "$1: booted generation $COMPLETE_G; served $GEN, before $2"
    fi
}
