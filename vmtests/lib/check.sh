# shellcheck shell=bash
# The checks of the VM tests: on a boot's serial console, and of a synced
# copy against the standard root. Sourced after setup.sh, with the test's
# name for the messages and, optionally, how many console lines a failure
# shows (25):
#   . "$(dirname "$0")/lib/check.sh" "modes ($PACKAGING)"
# The console of the current boot is $T/console-$BOOT.log, or $T/console.log
# in a test that names no boots (no BOOT set).
VM_TEST=${1:?usage: . check.sh test-name [tail-lines]}
VM_TAIL=${2:-25}

console_log() {
    echo "$T/console${BOOT:+-$BOOT}.log"
}

# Says what failed and where the console is, shows its end, exits 1.
fail() { # what
    local log
    log=$(console_log)
    echo "$VM_TEST: FAILED: $1 (console in $log)" >&2
    tail -"$VM_TAIL" "$log" >&2 || true
    exit 1
}

# Fails unless the console has a line matching the pattern.
expect() { # pattern what
    grep -aq -- "$1" "$(console_log)" || fail "$2"
}

# Lists the standard root $STD in $T/std.list and the copy at DIR (a synced
# disk, mounted) in $T/disk.list, for a diff (tree_list).
tree_lists() { # dir
    tree_list "$STD" >"$T/std.list"
    tree_list "$1" >"$T/disk.list"
}

# A tree as treelist.py lists it, without what is node-local by design (the
# identity the hooks make, the local fstab, the node's logs, lost+found) and
# without what lies under /proc, /sys, /dev and /run.
tree_list() { # dir
    local skip='^(etc|etc/machine-id|etc/hostname|etc/fstab|var/log|var/log/ia-test\.log) '
    python3 "$VM_DIR/../tests-support/treelist.py" "$1" --exclude-root-name .init-agent \
        --exclude-root-name lost+found | grep -Ev "$skip" | grep -Ev '^(proc|sys|dev|run)/'
}
