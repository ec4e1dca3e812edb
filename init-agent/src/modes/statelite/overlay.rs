//! The overlay variant (`initagent.mode=overlay`): the read-only standard root
//! as overlayfs lower layer, a tmpfs upper layer, and the node's persistent
//! litefile entries bound from its STATEMNT directory on top. Everything else a
//! node writes lives in RAM and is gone at reboot.

use std::path::Path;

use super::StateliteError;
use crate::sys;

/// The overlayfs mount options for these layers.
pub fn options(lower: &Path, upper: &Path, work: &Path) -> String {
    // index/xino off: the lower layer is NFS, whose inode numbers and file
    // handles overlayfs cannot vouch for.
    format!(
        "lowerdir={},upperdir={},workdir={},index=off,xino=off",
        lower.display(),
        upper.display(),
        work.display()
    )
}

/// Mounts the overlay of `lower` on `target`, its writable layers in a tmpfs
/// at `scratch`.
pub fn mount(lower: &Path, scratch: &Path, target: &Path) -> Result<(), StateliteError> {
    let io = |e: std::io::Error| StateliteError::Root(format!("{}: {e}", scratch.display()));
    let m = |e: sys::MountError| StateliteError::Root(e.to_string());
    std::fs::create_dir_all(scratch).map_err(io)?;
    sys::mount_tmpfs(scratch, "mode=0755").map_err(m)?;
    let (upper, work) = (scratch.join("upper"), scratch.join("work"));
    std::fs::create_dir_all(&upper).map_err(io)?;
    std::fs::create_dir_all(&work).map_err(io)?;
    sys::mount_fs(
        "overlay",
        target,
        "overlay",
        false,
        &options(lower, &upper, &work),
    )
    .map_err(m)
}
