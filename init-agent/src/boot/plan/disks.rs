//! Sync mode's disks in the plan: the layout named by `initagent.disk=`, a
//! `[[node]]` row or the configuration, and the built-in exclude/protect lists.

use super::{Packaging, Target};
use crate::cmdline::{BootParams, Mode};
use crate::config::{Config, Disk, FsType, Node, Partition, Size, TableType};
use crate::modes::bootloader::{self, Install};

/// Built-in sync exclusions: mount points of pseudo file systems keep their
/// directory but never their contents.
pub const SYNC_EXCLUDE: &[&str] = &["/proc/**", "/sys/**", "/dev/**", "/run/**"];

/// Built-in node-local state, protected in every sync-mode boot: the node's
/// identity (kept by the post-sync hooks) and its logs.
pub const SYNC_PROTECT: &[&str] = &[
    "/etc/machine-id",
    "/etc/hostname",
    "/etc/ssh/ssh_host_*",
    "/var/lib/systemd/random-seed",
    "/var/log/**",
];

/// The layout used for `initagent.disk=` when the configuration has no entry for it.
fn default_disk(device: &str) -> Disk {
    Disk {
        device: device.to_string(),
        wipe: false,
        table: TableType::Gpt,
        partition: vec![Partition {
            name: "root".into(),
            size: Size::Rest,
            fs: FsType::Ext4,
            mount: Some("/".into()),
            mkfs_options: Vec::new(),
        }],
        bootloader: None,
    }
}

fn mounts_root(d: &Disk) -> bool {
    d.partition.iter().any(|p| p.mount.as_deref() == Some("/"))
}

pub(super) fn root_partition_name(d: &Disk) -> &str {
    d.partition
        .iter()
        .find(|p| p.mount.as_deref() == Some("/"))
        .map_or("", |p| p.name.as_str())
}

pub(super) fn sync_disks(
    p: &BootParams,
    c: &Config,
    entry: Option<&Node>,
    errors: &mut Vec<String>,
) -> Vec<Disk> {
    let named = p
        .agent
        .disk
        .as_deref()
        .or_else(|| entry.and_then(|n| n.disk.as_deref()));
    let root = match named {
        // wipe applies only to the exact device the configuration names.
        Some(dev) => c.disk(dev).cloned().unwrap_or_else(|| default_disk(dev)),
        None => match c.disk.iter().find(|d| mounts_root(d)) {
            Some(d) => d.clone(),
            None => {
                errors.push(if c.disk.is_empty() {
                    "sync mode needs a disk: initagent.disk=/dev/… or a [[disk]] in the configuration".into()
                } else {
                    "sync mode: no [[disk.partition]] has mount = \"/\"".into()
                });
                return Vec::new();
            }
        },
    };
    if !mounts_root(&root) {
        errors.push(format!(
            "disk {}: no partition has mount = \"/\"",
            root.device
        ));
    }
    // Data and swap disks of the configuration come along; other root disks do not.
    let others = c
        .disk
        .iter()
        .filter(|d| !mounts_root(d) && d.device != root.device)
        .cloned();
    std::iter::once(root.clone()).chain(others).collect()
}

/// `[[disk]] bootloader` of the root disk, installed after each sync by
/// the standalone image only: a host initramfs (dracut, initramfs-tools)
/// mounts `root=` before the agent runs, so with the master down it could
/// not boot the local copy from the disk either; a note says so.
pub(super) fn bootloader(
    p: &BootParams,
    disks: &[Disk],
    mode: Mode,
    t: Target,
    notes: &mut Vec<String>,
) -> Option<Install> {
    let root = disks.first()?;
    let loader = root.bootloader?;
    if mode != Mode::Sync {
        return None;
    }
    if t.packaging != Packaging::Standalone {
        notes.push(format!(
            "[[disk]] {} bootloader: not installed under {}: its image mounts root= first and cannot boot the local copy when the master is down (the standalone image installs it)",
            root.device,
            match t.packaging {
                Packaging::Dracut => "dracut",
                _ => "initramfs-tools",
            }
        ));
        return None;
    }
    let partition = root
        .partition
        .iter()
        .position(|p| p.mount.as_deref() == Some("/"))?
        + 1;
    Some(Install {
        loader,
        disk: root.clone(),
        partition,
        root: t.root.to_string(),
        append: bootloader::append(&p.tokens, &p.init_args),
    })
}
