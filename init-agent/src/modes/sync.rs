//! Sync mode at boot: the local disks prepared (partitioned and formatted on
//! the first boot only), the local root mounted on the plan's root and made an
//! exact copy of the standard root; and the `local` fallback, which boots the
//! last complete copy when the master cannot be reached.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::boot::plan::{BootPlan, Step, SOURCE_MOUNT};
use crate::cmdline::NfsClient;
use crate::config::{Config, Disk, Partition};
use crate::sync::{Options, Report, STATE_DIR};

/// How long a disk named by the configuration may take to appear.
const DISK_WAIT: Duration = Duration::from_secs(10);
/// The last boot sync's report, beside the state marker (never synced).
pub const REPORT: &str = "last-sync.json";

/// A local root ready to be switched to.
#[derive(Debug)]
pub struct Synced {
    pub report: Report,
    /// The disk was partitioned and formatted by this boot.
    pub first: bool,
    /// fstab lines for the layouts' partitions.
    pub fstab: Vec<String>,
}

fn root_partition(d: &Disk) -> Result<(usize, &Partition), String> {
    d.partition
        .iter()
        .enumerate()
        .find(|(_, p)| p.mount.as_deref() == Some("/"))
        .ok_or_else(|| format!("disk {}: no partition has mount = \"/\"", d.device))
}

fn mount_root(d: &Disk, device: &Path, at: &str) -> Result<(), String> {
    let (i, p) = root_partition(d)?;
    let dev = crate::modes::disk::partition_path(device, i + 1);
    let dev = crate::modes::disk::wait_for(&dev, DISK_WAIT)?;
    let fstype = crate::modes::disk::mount_type(p.fs)
        .ok_or_else(|| format!("{}: not mountable", dev.display()))?;
    std::fs::create_dir_all(at).map_err(|e| format!("{at}: {e}"))?;
    crate::sys::mount_fs(&dev.to_string_lossy(), Path::new(at), fstype, false, "")
        .map_err(|e| e.to_string())?;
    log::info!("local root {} ({fstype}) mounted on {at}", dev.display());
    Ok(())
}

/// Prepares the disks, mounts the local root and syncs it from the standard
/// root (`source`, `server:path`): the kernel mount, or read with the
/// userspace NFSv3 client.
pub fn run(plan: &BootPlan, c: &Config, source: &str) -> Result<Synced, String> {
    let Some(Step::Sync {
        exclude,
        protect,
        checksum,
        ..
    }) = plan.steps.iter().find(|s| matches!(s, Step::Sync { .. }))
    else {
        return Err("sync mode without a disk to sync to".into());
    };
    let mut first = false;
    let mut root_device = None;
    for (n, d) in plan.disks.iter().enumerate() {
        let p = crate::modes::disk::prepare(d, DISK_WAIT).map_err(|e| e.to_string())?;
        first |= n == 0 && p.fresh;
        if n == 0 {
            root_device = Some(p.device);
        }
    }
    let (root_disk, device) = match (plan.disks.first(), root_device) {
        (Some(d), Some(dev)) => (d, dev),
        _ => return Err("sync mode without a disk to sync to".into()),
    };
    mount_root(root_disk, &device, &plan.root)?;
    let (src, manifest) = match plan.source.client {
        NfsClient::Kernel => {
            let m = Path::new(SOURCE_MOUNT).join(STATE_DIR).join("manifest");
            (PathBuf::from(SOURCE_MOUNT), m.exists().then_some(m))
        }
        NfsClient::User => {
            let (server, path) = source
                .split_once(':')
                .ok_or_else(|| format!("{source}: not server:path"))?;
            let url = crate::source::user_url(server, path, &plan.source.options);
            (PathBuf::from(url), None)
        }
    };
    let opts = Options {
        exclude: exclude.clone(),
        protect: protect.clone(),
        checksum: *checksum,
        jobs: c.sync.jobs as usize,
        inflight: c.sync.inflight as usize,
        // The userspace client has no path to look at: it reads it through.
        source_manifest: manifest.is_none(),
        manifest,
        ..Options::default()
    };
    let report =
        crate::sync::run(&src, Path::new(&plan.root), &opts).map_err(|e| format!("sync: {e}"))?;
    let k = &report.counts;
    log::info!(
        "synced {} entries in {:.1} s: {} created, {} updated, {} deleted, {} unchanged, {} protected; {} bytes copied; manifest {}",
        k.entries,
        report.seconds,
        k.created,
        k.updated,
        k.deleted,
        k.unchanged,
        k.protected,
        report.bytes_copied,
        report.manifest
    );
    if let Err(e) = write_report(&report, &plan.root) {
        // The copy is complete and marked so; only the record of it is missing.
        log::warn!("writing the sync report: {e}");
    }
    Ok(Synced {
        report,
        first,
        fstab: crate::modes::disk::fstab_lines(&plan.disks),
    })
}

fn write_report(report: &Report, root: &str) -> std::io::Result<()> {
    let dir = PathBuf::from(root).join(STATE_DIR);
    let tmp = dir.join(format!("{REPORT}.tmp"));
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, json + "\n")?;
    std::fs::rename(&tmp, dir.join(REPORT))
}

/// The `local` fallback: mounts the root disk's local copy, but only when the
/// disk is ours and its last sync completed; nothing is written before that
/// is known. Returns the copy's generation.
pub fn mount_last_complete(plan: &BootPlan) -> Result<String, String> {
    let d = plan
        .disks
        .first()
        .ok_or("no local disk in the plan to fall back to")?;
    let (device, _, found) =
        crate::modes::disk::inspect(d, DISK_WAIT).map_err(|e| e.to_string())?;
    if found != crate::modes::disk::Found::Ours {
        return Err(format!(
            "disk {}: no prepared local copy on it ({found:?})",
            device.display()
        ));
    }
    mount_root(d, &device, &plan.root)?;
    let root = crate::sys::fsops::open_root(Path::new(&plan.root))
        .map_err(|e| format!("opening {}: {e}", plan.root))?;
    match crate::sync::state::read(std::os::fd::AsFd::as_fd(&root)) {
        crate::sync::state::State::Complete(g) => Ok(g),
        other => {
            drop(root);
            let _ = crate::sys::unmount(Path::new(&plan.root), true);
            Err(format!(
                "the local copy on {} is not complete (state {other}): it cannot be booted",
                device.display()
            ))
        }
    }
}
