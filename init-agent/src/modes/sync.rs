//! Sync mode's pieces at boot that the executor calls through `Sys`: the
//! local root mounted, its state marker read, the sync report written.

use std::path::{Path, PathBuf};

use crate::config::Disk;
use crate::modes::disk::{self, DiskError, Refusal};
use crate::sync::state::State;
use crate::sync::{Report, STATE_DIR};
use crate::sys::machine::DISK_WAIT;

/// The last boot sync's report, beside the state marker (never synced).
pub const REPORT: &str = "last-sync.json";

/// The layout's `/` partition of `device` mounted on `at`.
pub fn mount_root(d: &Disk, device: &Path, at: &str) -> Result<(), DiskError> {
    let refused = |why: Refusal| DiskError::Refused {
        device: d.device.clone(),
        why,
    };
    let (i, p) = d
        .partition
        .iter()
        .enumerate()
        .find(|(_, p)| p.mount.as_deref() == Some("/"))
        .ok_or_else(|| refused(Refusal::NoRoot))?;
    let dev = disk::wait_for(&disk::partition_path(device, i + 1), DISK_WAIT).map_err(refused)?;
    let fstype =
        disk::mount_type(p.fs).ok_or_else(|| refused(Refusal::NotMountable(dev.clone())))?;
    std::fs::create_dir_all(at).map_err(|error| {
        refused(Refusal::MountPoint {
            at: at.into(),
            error,
        })
    })?;
    disk::on_partition(&dev, DISK_WAIT, || {
        crate::sys::mount_fs(&dev.to_string_lossy(), Path::new(at), fstype, false, "")
    })
    .map_err(|e| refused(Refusal::Mount(e)))?;
    log::info!("local root {} ({fstype}) mounted on {at}", dev.display());
    Ok(())
}

/// The report beside the state marker, replaced atomically.
pub fn write_report(report: &Report, root: &str) -> std::io::Result<()> {
    let dir = PathBuf::from(root).join(STATE_DIR);
    let tmp = dir.join(format!("{REPORT}.tmp"));
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, json + "\n")?;
    std::fs::rename(&tmp, dir.join(REPORT))
}

/// The sync state marker of the tree mounted at `root`.
pub fn state_of(root: &str) -> State {
    match crate::sys::fsops::open_root(Path::new(root)) {
        Ok(fd) => crate::sync::state::read(std::os::fd::AsFd::as_fd(&fd)),
        Err(e) => {
            log::warn!("opening {root}: {e}");
            State::None
        }
    }
}
