#!/bin/bash
# dracut module for init-agent. dracut keeps the early boot (udev, modules,
# network, rd.break/rd.shell) and mounts the standard root with its own nfs
# module (root=nfs:/nfs4:); init-agent then assembles the node's root on
# $NEWROOT in pre-pivot (sync, statelite, overlay, CDSL, update, hooks) and
# dracut's switch_root boots the result.

check() {
    require_binaries init-agent || return 1
    # Only when asked for (dracut -a init-agent, add_dracutmodules+=): a
    # host-only image of some workstation has no use for it.
    return 255
}

depends() {
    # network + nfs: dracut brings the NIC up and mounts root=nfs:…
    echo network nfs
    return 0
}

installkernel() {
    # The local disk (sync mode), the overlay mode and both NFS versions.
    hostonly='' instmods ext4 xfs vfat overlay nfsv3 nfsv4 \
        virtio_blk virtio_scsi sd_mod ahci nvme
}

install() {
    inst_binary "$(command -v init-agent)" /usr/sbin/init-agent
    # What sync mode partitions and formats with; what is absent is left out.
    inst_multiple -o sfdisk mke2fs mkswap mkfs.xfs mkfs.vfat
    inst_simple -o /etc/mke2fs.conf 2>/dev/null || true
    [ -f /etc/init-agent.toml ] && inst_simple /etc/init-agent.toml
    local hook
    for hook in /usr/lib/init-agent/hooks/*.d/*; do
        [ -f "$hook" ] && inst_simple "$hook"
    done
    inst_hook pre-pivot 10 "$moddir/init-agent-pre-pivot.sh"
}
