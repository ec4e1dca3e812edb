#!/usr/bin/env bash
# Runs every test of init-agent: format check, clippy with warnings denied, unit,
# property, root and CLI tests, and the QEMU VM tests of every mode through
# every packaging. Safe to run again and again on a fresh Debian machine as root:
# it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")"
# --long adds the fault scenarios (power cuts mid-sync, disk and DHCP faults)
# and the campaigns: power cuts and master kills at random moments, network
# and server faults mid-sync, a node with 256 MiB of RAM.
LONG=0
case "${1:-}" in
--long) LONG=1 ;;
"") ;;
*)
    echo "usage: $0 [--long]" >&2
    exit 2
    ;;
esac

log() { printf '==> %s\n' "$*"; }

ensure_component() {
    # rustfmt and clippy ship with rustup's default profile; add them only if absent.
    local probe=$1 component=$2
    if ! cargo "$probe" --version >/dev/null 2>&1; then
        log "installing rustup component $component"
        rustup component add "$component"
    fi
}

ensure_component fmt rustfmt
ensure_component clippy clippy

# The sync tests compare against rsync and build trees with ACLs and capabilities;
# the disk tests run sfdisk on image files.
missing=()
for pair in rsync:rsync setfacl:acl setcap:libcap2-bin python3:python3 sfdisk:fdisk mke2fs:e2fsprogs; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A real Debian root for the statelite and VM tests, made once and cached.
TEST_ROOT=$(tests-support/test-root.sh)
export INIT_AGENT_TEST_ROOT=$TEST_ROOT

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test"
cargo test --workspace --locked

# The migration pages' examples, run as written (the binary cargo test built).
log "documentation examples"
tests-support/doc-examples.sh "${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/debug/init-agent" docs/*.md

# The nfs:// source against a real NFSv3 server (nfs-ganesha in a private
# network namespace); one test at a time: one of them stops the server.
log "sync from nfs:// (userspace NFSv3 client, nfs-ganesha)"
NFS_EXPORT=$(mktemp -d /tmp/init-agent-nfs.XXXXXX)
tests-support/with-ganesha.sh --export "$NFS_EXPORT/plain" --squashed-export "$NFS_EXPORT/squashed" -- \
    env INIT_AGENT_TEST_NFS_DIR="$NFS_EXPORT/plain" INIT_AGENT_TEST_NFS_SQUASHED_DIR="$NFS_EXPORT/squashed" \
    INIT_AGENT_REQUIRE_NFS=1 cargo test --offline --locked --test nfs -- --test-threads=1
rm -rf "$NFS_EXPORT"

log "VM tests (QEMU/TCG + nfs-ganesha)"
vmtests/overlay-symlink-rename.sh
vmtests/pid1-outcome.sh
# Servers by host name: DNS (dnsmasq) via DHCP and ip=, [hosts], an unknown name.
vmtests/names.sh
# Signed roots: a node trusting the site key refuses what was not signed.
vmtests/signed-root.sh
# Capture: a hand-tuned golden node captured into a new directory of the
# export, checked against its disk, synced and booted by a second node.
vmtests/capture.sh
# [[disk]] bootloader: synced with extlinux installed, then the master down
# entirely (-boot order=nc, no boot file): the disk boots the local copy.
vmtests/bootloader.sh
# Every mode through every packaging: the standalone image, dracut, initramfs-tools.
for packaging in standalone dracut initramfs-tools; do
    log "sync mode, $packaging"
    vmtests/sync-boot.sh "$packaging"
    log "statelite, overlay, CDSL, NFSv3, $packaging"
    vmtests/modes.sh "$packaging"
    # The node as a real OS: synced, it boots its own systemd (two nodes
    # under the standalone image, one under each host tool).
    log "systemd on the synced root, $packaging"
    vmtests/systemd-boot.sh "$packaging"
done

# Sync mode read by the userspace NFSv3 client, from an image without the
# kernel's NFS modules.
log "sync mode, userspace NFS client"
vmtests/sync-boot.sh userspace-nfs
# The default client's fallback: a server without NFSv3 MOUNT gets the kernel client.
log "sync mode, kernel client fallback"
vmtests/sync-boot.sh kernel-fallback

if [ "$LONG" = 1 ]; then
    log "long: faults (power cuts, disks, DHCP)"
    vmtests/faults.sh
    log "long: campaign of power cuts and master kills (30 boots)"
    vmtests/power-campaign.sh -n 30
    log "long: campaign of network and server faults mid-sync (8 rounds)"
    vmtests/net-campaign.sh -n 8
    log "long: campaign of a node with 256 MiB of RAM and 100k entries"
    vmtests/memory-campaign.sh
fi

log "all tests passed"
