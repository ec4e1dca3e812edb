#!/usr/bin/env bash
# Servers named by host name, booted in QEMU as PID 1 of the standalone
# initramfs (and inside initramfs-tools and dracut), statelite mode: the
# standard root, STATEMNT and a litetree (its server the node row's xCAT
# `noderes.nfsserver`, matched by NODE=) all named by host name:
#   dns:      a real DNS server (dnsmasq, in the test's network namespace),
#             reached through what DHCP says (QEMU's DNS proxy, search
#             domain by option 119); `master` is a single label;
#   ip-dns0:  a static ip= whose dns0 field names the DNS server;
#   hosts:    no DNS server at all, the config's [hosts] alone;
#   unknown:  a name the DNS server does not know: one line naming the name
#             and the servers asked, then the configured outcome (reboot).
set -euo pipefail
. "$(dirname "$0")/lib/setup.sh"
. "$(dirname "$0")/lib/check.sh" names
vm_install
vm_kernel
vm_agent

T=$WORK/names
rm -rf "$T"
mkdir -p "$T/state" "$T/trees/cn01/etc"
echo "from the litetree of cn01" >"$T/trees/cn01/etc/ia-motd"
STD=$T/standard
# A small root: busybox, an init that proves the persistent entry works.
mkdir -p "$STD"/{bin,sbin,dev,proc,sys,run,etc,root,tmp,.statelite}
echo "from the image" >"$STD/etc/ia-motd"
cp /bin/busybox "$STD/bin/busybox"
ln -s busybox "$STD/bin/sh"
cat >"$STD/sbin/init" <<'NODEINIT'
#!/bin/busybox sh
PATH=/bin
busybox echo "NODE-INIT pid $$ root $(busybox awk '$2 == "/" {print $3}' /proc/mounts | busybox tail -1)"
busybox echo "persistent: $(busybox cat /root/ia-boots 2>/dev/null | busybox wc -l) earlier boots"
busybox echo "motd: $(busybox cat /etc/ia-motd)"
busybox echo "boot" >>/root/ia-boots
busybox sync
busybox poweroff -f
NODEINIT
chmod +x "$STD/sbin/init"

# The litetree's server comes from the node row's xCAT noderes.nfsserver:
# a name too.
conf() { # file [extra toml]
    cat >"$1" <<TOML
[boot]
reboot_delay = 1
timeout = 20

[[statelite.litefile]]
file = "/root/"
options = "persistent"

[[statelite.litefile]]
file = "/etc/ia-motd"
options = "tmpfs"

[[statelite.litetree]]
priority = 1.0
directory = "\$noderes.nfsserver:/trees/\$node"

[[node]]
name = "cn01"
[node.noderes]
nfsserver = "trees.cluster"
${2:-}
TOML
    "$AGENT" check-config "$1" >/dev/null
    "$AGENT" mkinitramfs --kernel-release "$KREL" --modules-dir "$KDIR/lib/modules" \
        --config "$1" --output "${1%.toml}.img" 2>"$1.log"
}
conf "$T/dns.toml"
conf "$T/hosts.toml" $'\n[hosts]\nmaster = "10.0.2.2"\n"state.cluster" = "10.0.2.2"\n"trees.cluster" = "10.0.2.2"\n'

export VM_EXTRA_EXPORTS="/state=$T/state /trees=$T/trees"
SL="STATEMNT=state.cluster:/state MNTOPTS=vers=4.2 NODE=cn01 initagent.mode=statelite initagent.fallback=reboot"
STATIC="ip=10.0.2.15::10.0.2.2:255.255.255.0:cn01:eth0:off"
boot() { # name image cmdline
    BOOT=$1
    vm_with_nfs "$STD" vm_qemu "$2" "$3" 120 </dev/null | tr -d '\r' >"$T/console-$BOOT.log" || true
    ! grep -aq "Kernel panic" "$T/console-$BOOT.log" || fail "kernel panic"
}
booted() { # what
    expect "NODE-INIT pid 1 root nfs4" "$1: the node did not boot its NFS root"
    expect "motd: from the litetree of cn01" "$1: the litetree (server by name, from noderes.nfsserver) did not serve the node's file"
}

export VM_DNS_RECORDS="master.cluster=10.0.2.2 state.cluster=10.0.2.2 trees.cluster=10.0.2.2" VM_DNS_DOMAIN=cluster
VM_NETDEV=dnssearch=cluster boot dns "$T/dns.img" "root=nfs:master:/export $SL"
explain=$("$AGENT" explain --config "$T/dns.toml" --cmdline "root=nfs:master:/export $SL")
grep -q "name:      master (resolved at boot by DNS via DHCP)" <<<"$explain" || fail "explain does not say how master is resolved"
grep -q "name:      trees.cluster (resolved at boot by DNS via DHCP)" <<<"$explain" || fail "explain does not list the litetree's server"
expect "init-agent: master is 10.0.2.2 (DNS 10.0.2.3)" "dns: master was not resolved through DHCP's DNS server and search domain"
expect "init-agent: state.cluster is 10.0.2.2 (DNS 10.0.2.3)" "dns: the STATEMNT server was not resolved"
expect "init-agent: trees.cluster is 10.0.2.2 (DNS 10.0.2.3)" "dns: the litetree server was not resolved"
booted dns
expect "persistent: 0 earlier boots" "dns: the persistent entry was not empty on the first boot"
grep -q "query\[A\] master.cluster" "$WORK/dnsmasq-last.log" || fail "dns: the DNS server was not asked"

boot ip-dns0 "$T/dns.img" "root=nfs:master.cluster:/export $SL $STATIC:10.0.2.2"
expect "init-agent: master.cluster is 10.0.2.2 (DNS 10.0.2.2)" "ip-dns0: not resolved by ip='s dns0"
booted ip-dns0
expect "persistent: 1 earlier boots" "ip-dns0: the persistent entry from boot 1 is missing"

boot unknown "$T/dns.img" "root=nfs:nosuch.cluster:/export $SL"
expect 'init-agent: boot stopped: names: host name `nosuch.cluster` does not resolve: no such name (NXDOMAIN or no A record) from 10.0.2.3 (asked 10.0.2.3 for nosuch.cluster)' \
    "unknown: the name and the server asked were not named"
expect "init-agent: rebooting in 1 s" "unknown: the configured outcome (reboot) was not taken"

# Inside dracut and initramfs-tools the host initramfs's DHCP brought the
# resolvers (klibc's IPV4DNS0, dracut's /etc/resolv.conf); the agent
# resolves what it mounts (initramfs-tools: the root too; dracut mounts
# root= itself, here by address).
for packaging in initramfs-tools dracut; do
    vm_initrd "$packaging" "$T/$packaging.img" "$T/dns.toml"
    case $packaging in
    initramfs-tools) args="boot=init-agent root=nfs:master.cluster:/export ip=dhcp" ;;
    dracut) args="root=nfs4:10.0.2.2:/export ip=dhcp rd.neednet=1" ;;
    esac
    boot "$packaging" "$T/$packaging.img" "$args $SL"
    [ "$packaging" = dracut ] || expect "master.cluster is 10.0.2.2 (DNS 10.0.2.3)" "$packaging: the root's name was not resolved"
    expect "state.cluster is 10.0.2.2 (DNS 10.0.2.3)" "$packaging: the STATEMNT name was not resolved by the host's DNS server"
    booted "$packaging"
done

unset VM_DNS_RECORDS
boot hosts "$T/hosts.img" "root=nfs:master:/export $SL $STATIC"
explain=$("$AGENT" explain --config "$T/hosts.toml" --cmdline "root=nfs:master:/export $SL $STATIC")
grep -q "name:      master (10.0.2.2 from \[hosts\])" <<<"$explain" || fail "explain does not show the [hosts] address"
expect "init-agent: master is 10.0.2.2 (\[hosts\])" "hosts: master was not taken from [hosts]"
booted hosts
expect "persistent: 4 earlier boots" "hosts: the persistent entry of the earlier boots is missing"
[ "$(grep -c boot "$T/state/cn01/root/ia-boots")" = 5 ] || fail "the persistent file on the STATEMNT export does not hold five boots"
"$AGENT" explain --config "$T/dns.toml" --cmdline "root=nfs:master:/export $SL $STATIC" >"$T/explain-none.txt" &&
    fail "explain accepted a name nothing can resolve"
grep -q "server \`master\` is a host name with no way to resolve it" "$T/explain-none.txt" ||
    fail "explain did not say why master cannot be resolved"
echo "names: DNS via DHCP (search domain), ip= dns0, inside initramfs-tools and dracut, [hosts] alone; an unknown name named with the server asked, then reboot"
