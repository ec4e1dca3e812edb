#!/usr/bin/env bash
# Runs a command next to a private NFS server: nfs-ganesha (NFSv3 and v4 over
# TCP, VFS FSAL) with its own rpcbind, both in a new network namespace and a
# new mount namespace, so nothing listens on a host interface and several runs
# can go side by side. The host kernel has no NFS: clients are userspace (or a
# QEMU guest started by COMMAND). Recipe: ../shared/design/vm-recipe.md, sec. 6.
#
#   tests-support/with-ganesha.sh [--export DIR | --squashed-export DIR]... -- COMMAND [ARGS...]
#
# --squashed-export: root is squashed to nobody there (Root_Squash), for
# "permission denied" from the server.
# The first DIR is exported as /export, the next ones as /export2, /export3...,
# for v4 and (Mount_Path_Pseudo) for v3 MOUNT alike; a missing DIR is created.
# COMMAND runs in the namespaces (lo up, server on 127.0.0.1: NFS 2049, MOUNT
# 20048, rpcbind 111) with
#   GANESHA_DIR  this run's state: ganesha.conf, ganesha.log, ganesha.pid
#   GANESHA_PID  the first ganesha's pid (after a restart: $GANESHA_DIR/ganesha.pid)
#   NFS_URL      nfs://127.0.0.1/export, and NFS_URL2, NFS_URL3... for the others
# and, on its PATH (they are scripts in $GANESHA_DIR), ganesha_stop (SIGKILL,
# as a server crash, and wait until it is gone) and ganesha_start (the same
# config again, back when it answers). Exits with COMMAND's status, 125 if the
# server did not come up. The state goes at exit unless KEEP_GANESHA=1 (or the
# server failed to start: its log is then kept for a look). Root only; installs
# nfs-ganesha, nfs-ganesha-vfs, rpcbind, iproute2 and util-linux when missing.
set -euo pipefail

SELF=$(realpath "${BASH_SOURCE[0]}")
MNT_PORT=20048

die() {
    echo "with-ganesha: $*" >&2
    exit 125
}

usage() {
    echo "usage: $0 [--export DIR | --squashed-export DIR]... -- COMMAND [ARGS...]" >&2
    exit 2
}

install_missing() {
    local need=() pair
    # rpcinfo comes with rpcbind.
    for pair in ganesha.nfsd:nfs-ganesha rpcbind:rpcbind ip:iproute2 unshare:util-linux mount:mount python3:python3; do
        command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
    done
    fsal_dir >/dev/null || need+=(nfs-ganesha-vfs)
    [ ${#need[@]} -eq 0 ] && return
    echo "with-ganesha: installing ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# Where the FSAL plugins are (Debian: /usr/lib/<multiarch>/ganesha); ganesha
# looks in /usr/lib64/ganesha unless told.
fsal_dir() {
    local f
    for f in /usr/lib/*/ganesha/libfsalvfs.so /usr/lib64/ganesha/libfsalvfs.so; do
        [ -e "$f" ] && { dirname "$f"; return 0; }
    done
    return 1
}

# Alive and not a zombie: a killed ganesha can stay a zombie until reaped.
alive() {
    local state
    [ -n "$1" ] && { read -r _ _ state _ <"/proc/$1/stat"; } 2>/dev/null && [ "$state" != Z ]
}

# Starts ganesha on $1's config and waits until NFS v3, NFS v4 and MOUNT v3
# answer a NULL call over TCP. Only registered is not enough: after a SIGKILL
# rpcbind still lists the dead server's ports until the new one re-registers.
start_ganesha() { # state-dir
    local g=$1 pid i logsize errors
    if [ -f "$g/ganesha.pid" ] && alive "$(cat "$g/ganesha.pid")"; then
        echo "with-ganesha: ganesha already runs (pid $(cat "$g/ganesha.pid"))" >&2
        return 1
    fi
    # Its own stdio goes to the log: a caller's $(ganesha_start) must not wait
    # for a pipe the server holds open. (-L: ganesha appends there too.)
    logsize=$(stat -c %s "$g/ganesha.log" 2>/dev/null || echo 0)
    # shellcheck disable=SC2094
    ganesha.nfsd -F -f "$g/ganesha.conf" -L "$g/ganesha.log" -p "$g/ganesha.pid" -N NIV_EVENT \
        </dev/null >>"$g/ganesha.log" 2>&1 &
    pid=$!
    # Out of the job table: bash would report "Killed" when ganesha_stop hits.
    disown "$pid"
    # ganesha writes the same pid there itself, a little later.
    echo "$pid" >"$g/ganesha.pid"
    for ((i = 0; i < 200; i++)); do
        if ! alive "$pid"; then
            echo "with-ganesha: ganesha.nfsd exited at startup; its log, $g/ganesha.log, ends:" >&2
            tail -n 15 "$g/ganesha.log" >&2
            return 1
        fi
        if timeout 2 rpcinfo -t 127.0.0.1 100003 3 >/dev/null 2>&1 &&
            timeout 2 rpcinfo -t 127.0.0.1 100003 4 >/dev/null 2>&1 &&
            timeout 2 rpcinfo -t 127.0.0.1 100005 3 >/dev/null 2>&1; then
            # A block ganesha cannot use (an export, its FSAL) is skipped, and
            # the server runs without it: that is no server for a test.
            errors=$(tail -c +$((logsize + 1)) "$g/ganesha.log" | grep -E ' :CONFIG :(CRIT|MAJ|FATAL) ' || true)
            [ -z "$errors" ] && return 0
            echo "with-ganesha: ganesha.nfsd runs but rejected part of $g/ganesha.conf; $g/ganesha.log:" >&2
            echo "$errors" >&2
            kill -KILL "$pid" 2>/dev/null || true
            return 1
        fi
        sleep 0.1
    done
    echo "with-ganesha: ganesha.nfsd (pid $pid) did not answer NFS v3/v4 and MOUNT v3 in 20 s;" \
        "see $g/ganesha.log" >&2
    kill -KILL "$pid" 2>/dev/null || true
    return 1
}

# SIGKILL, as a crash: no unregistering, no clean close of connections.
stop_ganesha() { # state-dir [signal]
    local g=$1 pid i
    pid=$(cat "$g/ganesha.pid" 2>/dev/null) || return 0
    kill -"${2:-KILL}" "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || break
        [ "$i" -ne 50 ] || kill -KILL "$pid" 2>/dev/null || true
        sleep 0.1
    done
    if alive "$pid"; then
        echo "with-ganesha: ganesha.nfsd (pid $pid) survives SIGKILL" >&2
        return 1
    fi
    rm -f "$g/ganesha.pid"
}

write_config() { # state-dir export-dir...
    local g=$1 fsal
    shift
    fsal=$(fsal_dir) || die "no libfsalvfs.so (package nfs-ganesha-vfs)"
    cat >"$g/ganesha.conf" <<CONF
NFS_CORE_PARAM {
    Bind_addr = 127.0.0.1;
    NFS_Port = 2049;
    # Fixed, so that a restarted server is where clients (and rpcbind's stale
    # entry) expect it, as a real server with a pinned mountd port would be.
    MNT_Port = $MNT_PORT;
    Protocols = 3, 4;
    # No lock manager and no statd here: v3 clients mount with nolock.
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    Plugins_Dir = "$fsal";
    # v3 MOUNT looks exports up by Pseudo, not by Path: v3 and v4 clients both
    # ask for /export. (ganesha takes one or the other; a Path is then refused.)
    Mount_Path_Pseudo = true;
}
NFSV4 {
    # No 90 s grace period after each (re)start: clients would stall in it.
    Graceless = true;
    Lease_Lifetime = 10;
    RecoveryBackend = fs;
    RecoveryRoot = "$g/recov";
    # uid/gid as numbers: no idmapping between test trees and this host.
    Only_Numeric_Owners = true;
}
NFS_KRB5 { Active_krb5 = false; }
LOG { Default_Log_Level = EVENT; }
# Tests change the exported trees directly, behind the server's back (as an
# admin edits an image in a chroot on the master): ganesha must not answer
# from its attribute and directory caches, or it serves handles and
# attributes of entries that were replaced (ESTALE, wrong types, old files;
# without Dir_Chunk = 0 a LOOKUP still returned a deleted directory's handle).
MDCACHE { Use_Getattr_Directory_Invalidation = true; Dir_Chunk = 0; }
CONF
    local id=1 dir squash
    for dir in "$@"; do
        squash=No_Root_Squash
        if [[ $dir == root_squash=* ]]; then
            squash=Root_Squash dir=${dir#root_squash=}
        fi
        cat >>"$g/ganesha.conf" <<CONF
EXPORT {
    Export_Id = $id;
    Path = "$dir";
    Pseudo = "/export$([ "$id" -eq 1 ] || echo "$id")";
    Protocols = 3, 4;
    Transports = TCP;
    Access_Type = RW;
    Squash = $squash;
    SecType = sys;
    Attr_Expiration_Time = 0;
    FSAL { Name = VFS; }
}
CONF
        id=$((id + 1))
    done
}

# In the new namespaces: network, rpcbind, ganesha, then COMMAND.
inside() { # export-dir... -- command...
    local exports=()
    while [ "$1" != -- ]; do
        exports+=("$1")
        shift
    done
    shift
    local g rpcb="" cmd="" rc=0 failed="" ign keep_default=()
    # SIGINT and SIGQUIT that our caller left at their default go back to it
    # for COMMAND (bash ignores them in a background job); ignored ones stay.
    ign=$(awk '/^SigIgn:/ {print $2}' "/proc/$$/status")
    [ $((16#$ign & 2)) -ne 0 ] || keep_default+=(--default-signal=INT)
    [ $((16#$ign & 4)) -ne 0 ] || keep_default+=(--default-signal=QUIT)
    ip link set lo up
    # With only 127.0.0.1, glibc's getaddrinfo(AI_ADDRCONFIG) sees no IPv4:
    # ganesha fails "No IP address found" and rpcbind aborts (double free).
    ip addr add 127.0.0.2/32 dev lo
    # rpcbind keeps its socket, lock and state files in /run: a private one.
    mount -t tmpfs -o mode=0755 tmpfs /run
    g=$(mktemp -d "${TMPDIR:-/tmp}/ganesha.XXXXXX")
    # Order matters: COMMAND first, then ganesha, then rpcbind (the other way
    # round ganesha's unregistering stalls for seconds).
    # shellcheck disable=SC2317 # called by the trap
    cleanup() {
        local status=$?
        trap - EXIT INT TERM HUP
        if [ -n "$cmd" ] && alive "$cmd"; then
            kill -TERM "$cmd" 2>/dev/null || true
            wait "$cmd" 2>/dev/null || true
        fi
        stop_ganesha "$g" TERM || true
        if [ -n "$rpcb" ]; then
            kill "$rpcb" 2>/dev/null || true
            wait "$rpcb" 2>/dev/null || true
        fi
        if [ -n "${KEEP_GANESHA:-}" ] && [ "$KEEP_GANESHA" != 0 ] || [ -n "$failed" ]; then
            echo "with-ganesha: state kept in $g" >&2
        else
            rm -rf "$g"
        fi
        exit "$status"
    }
    trap cleanup EXIT
    # Before COMMAND runs: give up. Then: passed on to COMMAND, and we keep
    # waiting for it. It decides (an interactive shell survives ctrl-c); the
    # EXIT trap cleans up after it.
    # shellcheck disable=SC2317
    forward() { # signal number
        [ -n "$cmd" ] || exit $((128 + $2))
        kill -"$1" "$cmd" 2>/dev/null || true
    }
    trap 'forward INT 2' INT
    trap 'forward TERM 15' TERM
    trap 'forward HUP 1' HUP
    mkdir -p "$g/recov"
    write_config "$g" "${exports[@]}"
    rpcbind -f </dev/null >>"$g/rpcbind.log" 2>&1 &
    rpcb=$!
    local i
    for ((i = 0; i < 50; i++)); do
        rpcinfo -p 127.0.0.1 >/dev/null 2>&1 && break
        alive "$rpcb" || { failed=1 && die "rpcbind exited; see $g/rpcbind.log"; }
        sleep 0.1
    done
    rpcinfo -p 127.0.0.1 >/dev/null 2>&1 || { failed=1 && die "rpcbind did not answer in 5 s; see $g/rpcbind.log"; }
    start_ganesha "$g" || { failed=1 && exit 125; }
    local name
    for name in start stop; do
        printf '#!/usr/bin/env bash\nexec %q --ganesha-%s %q\n' "$SELF" "$name" "$g" >"$g/ganesha_$name"
        chmod 755 "$g/ganesha_$name"
    done
    export GANESHA_DIR=$g PATH=$g:$PATH
    GANESHA_PID=$(cat "$g/ganesha.pid")
    export GANESHA_PID
    for ((i = 1; i <= ${#exports[@]}; i++)); do
        if [ "$i" -eq 1 ]; then
            export NFS_URL=nfs://127.0.0.1/export
        else
            export "NFS_URL$i=nfs://127.0.0.1/export$i"
        fi
    done
    # In the background so that the traps run while it does; bash would give
    # a background job /dev/null for stdin, hence the explicit one.
    { exec 3<&0; } 2>/dev/null || exec 3</dev/null
    env "${keep_default[@]}" "$@" <&3 3<&- &
    cmd=$!
    exec 3<&-
    while :; do
        rc=0
        wait "$cmd" || rc=$?
        # Above 128 also when a signal merely interrupted the wait.
        alive "$cmd" || break
    done
    cmd=""
    exit "$rc"
}

case "${1:-}" in
--in-namespace)
    shift
    inside "$@"
    ;;
--ganesha-start)
    start_ganesha "$2"
    exit
    ;;
--ganesha-stop)
    stop_ganesha "$2"
    exit
    ;;
esac

[ "$(id -u)" -eq 0 ] || die "needs root (namespaces, and ganesha's VFS FSAL uses open_by_handle_at)"
exports=()
while [ $# -gt 0 ]; do
    case $1 in
    --export | --squashed-export)
        [ $# -ge 2 ] || usage
        mkdir -p "$2"
        dir=$(realpath -e "$2")
        case $dir in
        *[\"\\]* | *$'\n'*) die "cannot put $dir in ganesha.conf (quote, backslash or newline)" ;;
        /run | /run/*) die "$dir would be hidden by the private /run" ;;
        esac
        if [ "$1" = --squashed-export ]; then dir=root_squash=$dir; fi
        exports+=("$dir")
        shift 2
        ;;
    --)
        shift
        break
        ;;
    *) usage ;;
    esac
done
[ $# -gt 0 ] || usage
install_missing
# A subreaper: a ganesha that ganesha_start left behind is reparented to us,
# not to PID 1 (which on some machines never reaps, so a killed server would
# stay a zombie), and we stop it at the end.
# Python ignores SIGPIPE and SIGXFSZ, and exec would pass that on to COMMAND.
subreaper='import ctypes, os, signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("with-ganesha: prctl(PR_SET_CHILD_SUBREAPER): " + os.strerror(ctypes.get_errno()))
os.execv(sys.argv[1], sys.argv[1:])'
# exec: a signal sent to this pid (timeout, a test harness) reaches the shell
# that owns the servers and COMMAND.
exec unshare --net --mount --propagation private -- \
    python3 -I -S -c "$subreaper" "$SELF" --in-namespace "${exports[@]}" -- "$@"
