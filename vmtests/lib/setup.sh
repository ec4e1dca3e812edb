#!/usr/bin/env bash
# Installs what the VM tests need (idempotent) and prepares the Debian cloud
# kernel tree under vmtests/work/kernel. Sourced by the VM test scripts.
# Recipe and its measurements: ../shared/design/vm-recipe.md.
set -euo pipefail
VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$VM_DIR/work
mkdir -p "$WORK"

vm_install() {
    local need=()
    command -v qemu-system-x86_64 >/dev/null || need+=(qemu)
    # sfdisk and mke2fs go into the initramfs; losetup reads guest disks from outside.
    for pair in ganesha.nfsd:nfs-ganesha dnsmasq:dnsmasq-base busybox:busybox-static depmod:kmod cpio:cpio unshare:util-linux nft:nftables \
        sfdisk:fdisk mke2fs:e2fsprogs losetup:mount python3:python3 rsync:rsync; do
        command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
    done
    [ -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ] || need+=(nfs-ganesha-vfs)
    [ ${#need[@]} -eq 0 ] && return
    # The machine's qemu-utils comes from bookworm-backports; qemu-system-x86 must too.
    local uri
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    if [ ! -f /etc/apt/sources.list.d/bookworm-backports.sources ]; then
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
            >/etc/apt/sources.list.d/bookworm-backports.sources
    fi
    apt-get update -qq
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
    apt-get install -y -qq --no-install-recommends busybox-static cpio dnsmasq-base kmod nfs-ganesha nfs-ganesha-vfs util-linux \
        fdisk e2fsprogs mount python3 rsync nftables >/dev/null
}

# The newest Debian cloud kernel, extracted once, with modules.dep.
vm_kernel() {
    KDIR=$WORK/kernel
    if [ ! -f "$KDIR/.complete" ]; then
        rm -rf "$KDIR" "$WORK/debs"
        mkdir -p "$WORK/debs"
        local pkg
        pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
        (cd "$WORK/debs" && apt-get download "$pkg" >/dev/null)
        dpkg -x "$WORK"/debs/"$pkg"_*.deb "$KDIR"
        depmod -b "$KDIR" "$(ls "$KDIR/lib/modules")"
        touch "$KDIR/.complete"
    fi
    KREL=$(ls "$KDIR/lib/modules")
    VMLINUZ=$(ls "$KDIR"/boot/vmlinuz-*)
}

# Copies modules with their dependencies into an initramfs tree and writes
# /modules.order (dependencies first). _ftrace_eval_map is stripped: loading
# nfsv4.ko under TCG drops from 1.6 s to 0.26 s (vm-recipe.md section 5).
vm_modules() { # tree module...
    local tree=$1
    shift
    local mdir=$KDIR/lib/modules/$KREL
    : >"$tree/modules.order"
    local m dep
    for m in "$@"; do
        for dep in $(modprobe -d "$KDIR" -S "$KREL" --show-depends "$m" 2>/dev/null | awk '/^insmod/{print $2}'); do
            local rel=${dep#"$mdir"/}
            grep -qxF "$rel" "$tree/modules.order" && continue
            mkdir -p "$tree/lib/modules/$(dirname "$rel")"
            objcopy --remove-section=_ftrace_eval_map --remove-section=.rela_ftrace_eval_map \
                "$dep" "$tree/lib/modules/$rel" 2>/dev/null || cp "$dep" "$tree/lib/modules/$rel"
            echo "$rel" >>"$tree/modules.order"
        done
    done
}

# Runs "$@" (vm_qemu included) in a private network namespace with
# nfs-ganesha exporting $1 as /export (v4; with VM_NFS_V3=1 also v3, by its
# path, with rpcbind; by /export too with VM_NFS_V3_PSEUDO=1, as a server
# whose NFSv3 and NFSv4 paths agree), and each PSEUDO=DIR of $VM_EXTRA_EXPORTS as PSEUDO;
# the guest reaches it at 10.0.2.2.
# With VM_DNS_RECORDS ("name=address …") a DNS server (dnsmasq) answers
# those names in the same namespace, authoritative for VM_DNS_DOMAIN (no
# such name there is NXDOMAIN); the guest reaches it through QEMU's DNS
# proxy (10.0.2.3, what QEMU's DHCP names) or at 10.0.2.2:53.
vm_with_nfs() { # export-dir command...
    local export=$1
    shift
    # A server directory per run: tests and benches may run side by side.
    local g
    g=$(mktemp -d "$WORK/ganesha.XXXXXX")
    mkdir -p "$g/recov" "$g/log" "$g/run"
    # NFSv3 needs rpcbind (for MOUNT), which lives in /run: a private one.
    local protocols=4 unshare_args=(-n)
    [ -n "${VM_NFS_V3:-}" ] && protocols=3,4
    if [ -n "${VM_NFS_V3:-}${VM_DNS_RECORDS:-}" ]; then
        unshare_args=(-n -m --propagation private)
    fi
    cat >"$g/ganesha.conf" <<CONF
NFS_CORE_PARAM { Bind_addr = 127.0.0.1; NFS_Port = 2049; Protocols = $protocols; Enable_NLM = false;
  Enable_RQUOTA = false; Enable_UDP = false; Plugins_Dir = "/usr/lib/x86_64-linux-gnu/ganesha";
  ${VM_NFS_V3_PSEUDO:+Mount_Path_Pseudo = true;} }
NFSV4 { Graceless = true; Lease_Lifetime = 10; RecoveryBackend = fs; RecoveryRoot = "$g/recov"; Only_Numeric_Owners = true; }
NFS_KRB5 { Active_krb5 = false; }
LOG { Default_Log_Level = EVENT; }
EXPORT { Export_Id = 1; Path = "$export"; Pseudo = "/export"; Protocols = $protocols; Transports = TCP;
  Access_Type = RW; Squash = No_Root_Squash; SecType = sys; FSAL { Name = VFS; } }
CONF
    local id=2 extra
    for extra in ${VM_EXTRA_EXPORTS:-}; do
        printf 'EXPORT { Export_Id = %d; Path = "%s"; Pseudo = "%s"; Protocols = %s; Transports = TCP;\n  Access_Type = RW; Squash = No_Root_Squash; SecType = sys; FSAL { Name = VFS; } }\n' \
            "$id" "${extra#*=}" "${extra%%=*}" "$protocols" >>"$g/ganesha.conf"
        id=$((id + 1))
    done
    export -f vm_qemu
    export VMLINUZ
    local rc=0
    VM_NFS_V3="${VM_NFS_V3:-}" VM_DNS_RECORDS="${VM_DNS_RECORDS:-}" VM_DNS_DOMAIN="${VM_DNS_DOMAIN:-cluster}" \
        unshare "${unshare_args[@]}" bash -c '
        set -euo pipefail
        ip link set lo up
        ip addr add 127.0.0.2/32 dev lo   # glibc AI_ADDRCONFIG needs a non-loopback-only v4 view
        RPCB= DNS=
        if [ -n "$VM_DNS_RECORDS" ]; then
            # QEMU forwards DNS from the guest to the resolv.conf it sees: this one.
            echo "nameserver 127.0.0.1" >"$1/resolv.conf"
            mount --bind "$1/resolv.conf" /etc/resolv.conf
            records=()
            for r in $VM_DNS_RECORDS; do records+=("--host-record=${r%%=*},${r#*=}"); done
            dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces --listen-address=127.0.0.1 \
                --local="/$VM_DNS_DOMAIN/" "${records[@]}" --log-queries --log-facility="$1/log/dnsmasq.log" \
                --pid-file= --user=root &
            DNS=$!
            for _ in $(seq 50); do ss -lun | grep -q "127.0.0.1:53 " && break; sleep 0.1; done
        fi
        if [ -n "${VM_NFS_V3:-}" ]; then
            mount -t tmpfs tmpfs /run
            rpcbind -f &
            RPCB=$!
            for _ in $(seq 50); do [ -S /run/rpcbind.sock ] && break; sleep 0.1; done
        fi
        ganesha.nfsd -F -f "$1/ganesha.conf" -L "$1/log/ganesha.log" -p "$1/run/ganesha.pid" -N NIV_EVENT 2>>"$1/log/stderr" &
        GAN=$!
        # ganesha before rpcbind: the other way round its unregister stalls.
        trap "kill $GAN 2>/dev/null || true; wait $GAN 2>/dev/null || true; [ -z \"$RPCB\" ] || kill $RPCB 2>/dev/null || true; [ -z \"$DNS\" ] || kill $DNS 2>/dev/null || true" EXIT
        for _ in $(seq 50); do ss -ltn | grep -q ":2049 " && break; sleep 0.1; done
        shift
        "$@"
    ' vm "$g" "$@" || rc=$?
    # The log stays for a look after a failure; the rest goes.
    mv "$g/log/ganesha.log" "$WORK/ganesha-last.log" 2>/dev/null || true
    mv "$g/log/dnsmasq.log" "$WORK/dnsmasq-last.log" 2>/dev/null || true
    rm -rf "$g"
    return $rc
}

# Boots the cloud kernel with an initrd; extra arguments go to QEMU (disks).
# The NIC is on QEMU's user network (DHCP, 10.0.2.2 = the host) unless
# VM_NO_NET is set, when the extra arguments bring their own.
vm_qemu() { # initrd append [timeout [qemu-arg...]]
    local initrd=$1 append=$2 limit=${3:-120}
    shift $(($# < 3 ? $# : 3))
    # VM_NETDEV: more options of QEMU's user network (dnssearch=, domainname=).
    local net=(-netdev "user,id=n0${VM_NETDEV:+,$VM_NETDEV}" -device virtio-net-pci,netdev=n0,romfile=)
    [ -z "${VM_NO_NET:-}" ] || net=(-nic none)
    timeout -k 5 "$limit" qemu-system-x86_64 -M pc -accel tcg,thread=multi -cpu max -smp 2 -m "${VM_MEM:-768}" \
        -nographic -no-reboot -kernel "$VMLINUZ" -initrd "$initrd" \
        -append "console=ttyS0 panic=-1 quiet cryptomgr.notests=1 $append" \
        "${net[@]}" "$@"
}

# The agent, built once per test run (release: the size and speed nodes get),
# where cargo puts it (CARGO_TARGET_DIR, relative to the checkout, else target/).
vm_agent() {
    ROOT_DIR=$(cd "$VM_DIR/.." && pwd)
    (cd "$ROOT_DIR" && cargo build --release --quiet)
    local target=${CARGO_TARGET_DIR:-target}
    case $target in /*) ;; *) target=$ROOT_DIR/$target ;; esac
    AGENT=$target/x86_64-unknown-linux-gnu/release/init-agent
}

# A standard root for sync boots: the cached debootstrapped Debian root plus
# an init that reports what it booted on, appends to a node-local log and
# powers off. Fresh for every run, so that earlier tests' changes are gone.
# With `small`, without documentation, manual pages, locales, time zones and
# apt's lists and caches (what cluster images often leave out with dpkg's
# path-exclude): 2,800 entries instead of 6,700, so that the tests' first
# syncs under TCG take a minute, not three. With a base, that root instead
# of the test root (a vm_tool_root with more packages).
vm_standard_root() { # dir [small] [base]
    local std=$1 src=${3:-} trim=()
    [ -n "$src" ] || src=$("$VM_DIR/../tests-support/test-root.sh")
    if [ "${2:-}" = small ]; then
        trim=(--exclude '/usr/share/doc/**' --exclude '/usr/share/man/**' --exclude '/usr/share/locale/**'
            --exclude '/usr/share/zoneinfo/**' --exclude '/usr/share/info/**'
            --exclude '/var/lib/apt/lists/**' --exclude '/var/cache/apt/**')
    fi
    rm -rf "$std"
    mkdir -p "$std"
    "$AGENT" sync "$src" "$std" --exclude /.complete --exclude '/var/cache/apt/archives/*.deb' "${trim[@]}" -q
    # A tool root's policy-rc.d kept services from starting in its chroot.
    rm -rf "$std/.init-agent" "$std/usr/sbin/policy-rc.d"
    # As nfs-common makes it in a real root; dracut's nfs module binds its
    # rpc_pipefs there at switch_root and would otherwise create it.
    mkdir -p "$std/var/lib/nfs/rpc_pipefs"
    cat >"$std/sbin/ia-test-init" <<'NODEINIT'
#!/bin/sh
# vmtests: the node's init. Reports, leaves a node-local trace, powers off.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
root=$(awk '$2 == "/" {t = $3} END {print t}' /proc/mounts)
echo "NODE-INIT pid $$ root $root machine-id $(cat /etc/machine-id 2>/dev/null) hostname $(cat /etc/hostname 2>/dev/null)"
echo "boot $(cat /proc/sys/kernel/random/boot_id) root $root" >>/var/log/ia-test.log
if [ -x /sbin/ia-test-extra ]; then /sbin/ia-test-extra; fi
sync
mount -o remount,ro / 2>/dev/null
# sleep (and the directories on the way to it) in the page cache first: the
# disk goes away during the power-off, and an exec that has to read it fails,
# pid 1 exits and the kernel panics on the way down.
sleep 0
echo o >/proc/sysrq-trigger
sleep 30
NODEINIT
    chmod 755 "$std/sbin/ia-test-init"
}

# Mounts partition N of a raw disk image read-only on DIR, from outside the
# guest (no partition nodes here: a loop device at the partition's offset;
# writable, so that ext4 can replay a journal the guest left behind).
vm_mount_partition() { # image n dir
    local start size
    read -r start size < <(sfdisk -J "$1" | python3 -c '
import json, sys
p = json.load(sys.stdin)["partitiontable"]["partitions"][int(sys.argv[1]) - 1]
print(p["start"], p["size"])' "$2")
    mkdir -p "$3"
    mount -o ro "$(losetup -f --show -o $((start * 512)) --sizelimit $((size * 512)) "$1")" "$3"
}

vm_unmount() { # dir
    local dev
    dev=$(findmnt -no SOURCE "$1" || true)
    umount "$1" 2>/dev/null || true
    [ -n "$dev" ] && losetup -d "$dev" 2>/dev/null || true
}

# A Debian root with an initramfs tool installed (cached): a copy of the test
# root plus packages from the Debian mirror, as an admin's standard root with
# dracut or initramfs-tools would be.
vm_tool_root() { # name package...
    local name=$1
    shift
    TOOL_ROOT=$WORK/root-$name
    # The package list is the cache key: a new list installs what it adds.
    [ "$(cat "$TOOL_ROOT/.complete" 2>/dev/null)" = "$*" ] && return
    if [ ! -f "$TOOL_ROOT/.complete" ]; then
        rm -rf "$TOOL_ROOT"
        mkdir -p "$TOOL_ROOT"
        "$AGENT" sync "$("$VM_DIR/../tests-support/test-root.sh")" "$TOOL_ROOT" --exclude /.complete -q
        rm -rf "$TOOL_ROOT/.init-agent"
    fi
    cp /etc/resolv.conf "$TOOL_ROOT/etc/resolv.conf"
    # No service may start in the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$TOOL_ROOT/usr/sbin/policy-rc.d"
    chmod 755 "$TOOL_ROOT/usr/sbin/policy-rc.d"
    vm_chroot "$TOOL_ROOT" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null' \
        apt "$@"
    echo "$*" >"$TOOL_ROOT/.complete"
}

# Runs a command chrooted in DIR with /proc /sys /dev bound, in a private
# mount namespace (nothing stays mounted when it ends).
vm_chroot() { # dir command...
    local dir=$1
    shift
    unshare -m --propagation private sh -c '
        d=$1; shift
        mount --bind /proc "$d/proc" && mount --bind /sys "$d/sys" && mount --bind /dev "$d/dev"
        exec chroot "$d" "$@"' vm "$dir" "$@"
}

# A standard root that is a real OS: Debian with systemd, udev, ssh and
# ifupdown (debootstrap once, cached beside the minbase root), copied to DIR
# with the cloud kernel's modules and a unit that reports what the node's own
# system sees once it is up (IATEST lines on the serial console), then powers
# off.
vm_systemd_root() { # dir
    local std=$1 cache=/var/cache/init-agent-tests/bookworm-systemd mirror
    if [ ! -f "$cache/.complete" ]; then
        command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
        mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
        echo "==> debootstrap bookworm with systemd into $cache (once)" >&2
        rm -rf "$cache.partial"
        debootstrap --variant=minbase --include=systemd-sysv,udev,dbus,openssh-server,ifupdown,iproute2,kmod \
            bookworm "$cache.partial" "${mirror:-http://deb.debian.org/debian}" >/dev/null
        rm -rf "$cache"
        mv "$cache.partial" "$cache"
        touch "$cache/.complete"
    fi
    rm -rf "$std"
    mkdir -p "$std"
    "$AGENT" sync "$cache" "$std" --exclude /.complete --exclude '/var/cache/apt/archives/*.deb' -q
    rm -rf "$std/.init-agent"
    mkdir -p "$std/lib/modules"
    cp -a "$KDIR/lib/modules/$KREL" "$std/lib/modules/"
    # The standard's own identity, which the hooks must replace per node.
    echo master >"$std/etc/hostname"
    cat >"$std/usr/local/sbin/ia-report" <<'REPORT'
#!/bin/bash
# vmtests: what the node's own system sees once it is up, then power off.
exec >/dev/console 2>&1
for i in $(seq 600); do
    state=$(systemctl is-system-running)
    case $state in initializing | starting) ;; *) break ;; esac
    [ $((i % 30)) != 0 ] || echo "IATEST-WAIT $state: $(systemctl list-jobs --no-legend | head -3 | tr '\n' ' ')"
    sleep 1
done
echo "IATEST state=$state"
systemctl list-units --failed --no-legend --plain | sed 's/^/IATEST failed /'
echo "IATEST hostname=$(hostname) machine-id=$(cat /etc/machine-id)"
echo "IATEST ssh=$(cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub)"
echo "IATEST root=$(findmnt -no SOURCE,FSTYPE,OPTIONS / | awk '{split($3, o, ","); print $1, $2, o[1]}')"
echo "IATEST iface=$(ip -o -4 addr show scope global | awk '{print $2, $4}')"
echo "IATEST ifupdown=$(ifquery --state 2>/dev/null | tr '\n' ' ')"
if timeout 5 bash -c 'echo >/dev/tcp/10.0.2.2/2049' 2>/dev/null; then echo "IATEST master=reachable"; else echo "IATEST master=unreachable"; fi
echo "IATEST persistent-net=$(ls /etc/udev/rules.d/70-persistent-net.rules 2>/dev/null || echo none)"
systemctl poweroff --no-block
REPORT
    chmod 755 "$std/usr/local/sbin/ia-report"
    cat >"$std/etc/systemd/system/ia-report.service" <<'UNIT'
[Unit]
Description=init-agent VM test report
After=multi-user.target

[Service]
Type=oneshot
# The report waits for the boot to be over, which it would hold up as one of
# its jobs: it goes on in the background, outside the job.
ExecStart=/bin/sh -c '/usr/local/sbin/ia-report </dev/null >/dev/null 2>&1 &'
KillMode=process

[Install]
WantedBy=multi-user.target
UNIT
    ln -sf ../ia-report.service "$std/etc/systemd/system/multi-user.target.wants/ia-report.service"
}

# The initramfs of a packaging: standalone (init-agent mkinitramfs), dracut
# or initramfs-tools (the real tools, in a Debian root where dpkg installed
# init-agent's package, `make deb`), for the cloud kernel, with an optional
# site configuration.
vm_initrd() { # packaging output [config]
    local packaging=$1 out=$2 conf=${3:-} deb
    case $packaging in
    standalone)
        # VM_INITRD_ARGS: more mkinitramfs options (word-split on purpose).
        # shellcheck disable=SC2086
        "$AGENT" mkinitramfs --kernel-release "$KREL" --modules-dir "$KDIR/lib/modules" \
            ${conf:+--config "$conf"} ${VM_INITRD_ARGS:-} --output "$out" 2>"$out.log"
        return
        ;;
    dracut) vm_tool_root dracut dracut dracut-network nfs-common isc-dhcp-client iputils-arping iproute2 procps sysvinit-core fdisk e2fsprogs kmod ;;
    initramfs-tools) vm_tool_root initramfs-tools initramfs-tools klibc-utils busybox fdisk e2fsprogs kmod ;;
    *)
        echo "unknown packaging $packaging (standalone, dracut, initramfs-tools)" >&2
        return 2
        ;;
    esac
    # One image build per tool root at a time (tests may run side by side).
    exec 9>"$TOOL_ROOT.lock"
    flock 9
    rm -rf "$TOOL_ROOT/lib/modules"
    mkdir -p "$TOOL_ROOT/lib/modules" "$TOOL_ROOT/boot"
    cp -a "$KDIR/lib/modules/$KREL" "$TOOL_ROOT/lib/modules/"
    cp "$KDIR"/boot/config-"$KREL" "$TOOL_ROOT/boot/"
    # The package as admins install it; one build of it at a time.
    (
        flock 8
        deb=$(make -s -C "$VM_DIR/.." deb 2>"$out.deb.log" | tail -n 1)
        # Relative to the checkout, or absolute under CARGO_TARGET_DIR.
        case $deb in /*) ;; *) deb=$VM_DIR/../$deb ;; esac
        cp "$deb" "$TOOL_ROOT/tmp/init-agent.deb"
    ) 8>"$WORK/deb.lock"
    vm_chroot "$TOOL_ROOT" dpkg --force-confnew -i /tmp/init-agent.deb </dev/null >"$out.dpkg.log" 2>&1 || {
        echo "dpkg -i init-agent's package failed in $TOOL_ROOT: $(tail -3 "$out.dpkg.log")" >&2
        return 1
    }
    vm_chroot "$TOOL_ROOT" dpkg -L init-agent | grep -qx /usr/sbin/init-agent || {
        echo "dpkg -L init-agent does not list /usr/sbin/init-agent in $TOOL_ROOT" >&2
        return 1
    }
    rm -f "$TOOL_ROOT/etc/init-agent.toml"
    [ -n "$conf" ] && cp "$conf" "$TOOL_ROOT/etc/init-agent.toml"
    case $packaging in
    dracut) vm_chroot "$TOOL_ROOT" dracut --force --no-hostonly -a init-agent --kver "$KREL" /tmp/initrd.img >"$out.log" 2>&1 ;;
    initramfs-tools) vm_chroot "$TOOL_ROOT" mkinitramfs -o /tmp/initrd.img "$KREL" >"$out.log" 2>&1 ;;
    esac
    mv "$TOOL_ROOT/tmp/initrd.img" "$out"
    exec 9>&-
}

# The command line keys that hand the boot to init-agent in each packaging;
# with a path, the agent mounts the standard root by NFSv3 from that path
# (not under dracut, whose own nfs module mounts it).
vm_root_args() { # packaging [v3-path]
    local root="nfs:10.0.2.2:/export"
    [ -n "${2:-}" ] && root="nfs:10.0.2.2:$2:vers=3"
    case $1 in
    standalone) echo "root=$root" ;;
    # dracut's nfs module mounts it, by NFSv4's pseudo path (ganesha's v4
    # knows no other); VM_NFS_V3_PSEUDO=1 lets NFSv3 MOUNT take that path too.
    dracut) echo "root=nfs4:10.0.2.2:/export ip=dhcp rd.neednet=1" ;;
    initramfs-tools) echo "boot=init-agent root=$root ip=dhcp" ;;
    esac
}
