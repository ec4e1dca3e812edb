//! Mount-table operations, the one place that changes what is mounted where.
//! Every call names its target by absolute path and says what failed.

pub mod fsops;
pub mod machine;
pub mod mountinfo;
pub mod record;
pub mod root;
pub mod switch_root;

pub use machine::{Real, Sys, SysError};

use std::ffi::CString;
use std::path::Path;

use rustix::mount::{self as m, MountFlags, MountPropagationFlags, UnmountFlags};

#[derive(Debug, thiserror::Error)]
#[error("{op} {target}: {source}")]
pub struct MountError {
    pub op: &'static str,
    pub target: String,
    pub source: std::io::Error,
}

fn err<'t>(
    op: &'static str,
    target: &'t Path,
) -> impl FnOnce(rustix::io::Errno) -> MountError + 't {
    move |e| MountError {
        op,
        target: target.display().to_string(),
        source: e.into(),
    }
}

/// A fresh tmpfs; `options` as mount(8) takes them (`mode=0755,size=50%`).
pub fn mount_tmpfs(target: &Path, options: &str) -> Result<(), MountError> {
    let data = data(options, target)?;
    m::mount(
        "tmpfs",
        target,
        "tmpfs",
        MountFlags::empty(),
        data.as_c_str(),
    )
    .map_err(err("mounting tmpfs on", target))
}

fn data(options: &str, target: &Path) -> Result<CString, MountError> {
    CString::new(options).map_err(|_| MountError {
        op: "mount options with NUL for",
        target: target.display().to_string(),
        source: std::io::ErrorKind::InvalidInput.into(),
    })
}

/// Any file system by type, with mount(8)-style data options.
pub fn mount_fs(
    source: &str,
    target: &Path,
    fstype: &str,
    read_only: bool,
    options: &str,
) -> Result<(), MountError> {
    let flags = if read_only {
        MountFlags::RDONLY
    } else {
        MountFlags::empty()
    };
    let data = data(options, target)?;
    m::mount(source, target, fstype, flags, data.as_c_str()).map_err(err("mounting", target))
}

/// Binds `source` on `target` (file on file, directory on directory);
/// read-only binds need a second remount, which the kernel requires.
pub fn bind(source: &Path, target: &Path, read_only: bool) -> Result<(), MountError> {
    m::mount_bind(source, target).map_err(err("binding onto", target))?;
    if read_only {
        // A /proc/self/fd path still names the directory under the new mount;
        // the remount must name the mount point itself.
        let at = if target.starts_with("/proc/self/fd") {
            std::fs::read_link(target).map_err(|e| MountError {
                op: "resolving",
                target: target.display().to_string(),
                source: e,
            })?
        } else {
            target.to_path_buf()
        };
        m::mount_remount(&at, MountFlags::BIND | MountFlags::RDONLY, "")
            .map_err(err("making read-only", &at))?;
    }
    Ok(())
}

/// Moves a mount (switch_root moves /dev, /proc, /sys, /run into the new root).
pub fn move_mount(source: &Path, target: &Path) -> Result<(), MountError> {
    m::mount_move(source, target).map_err(err("moving mount to", target))
}

/// Keeps mounts made below `target` from propagating back to the host (tests).
pub fn make_private(target: &Path) -> Result<(), MountError> {
    m::mount_change(
        target,
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(err("making private", target))
}

/// Detaches a mount, lazily when busy.
pub fn unmount(target: &Path, lazy: bool) -> Result<(), MountError> {
    let flags = if lazy {
        UnmountFlags::DETACH
    } else {
        UnmountFlags::empty()
    };
    m::unmount(target, flags).map_err(err("unmounting", target))
}

/// Gives the calling thread its own mount namespace with private propagation:
/// mounts made afterwards (tests, `statelite apply` trials) vanish with it
/// and never reach the host's table.
pub fn private_mount_namespace() -> Result<(), MountError> {
    // SAFETY: only NEWNS is unshared; the descriptor table stays shared, which
    // is the hazard `unshare_unsafe` warns about (FILES).
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(err("unsharing the mount namespace of", Path::new("/")))?;
    make_private(Path::new("/"))
}

/// The admin's commands end quietly when their reader goes (`explain … |
/// head`), as other tools do: Rust starts with SIGPIPE ignored, and a write
/// to a closed pipe would then be a panic in `println!`.
pub fn die_of_sigpipe() {
    // SAFETY: SIG_DFL installs no handler; called once, before any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Makes `cmd` chroot into `root` (and chdir to its `/`) in the child, right
/// before exec, so that the program path and everything it opens resolve
/// inside `root`.
pub fn chroot_before_exec(cmd: &mut std::process::Command, root: &Path) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    // Made before the fork: the child must not allocate.
    let root = CString::new(root.as_os_str().as_bytes()).unwrap_or_default();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // the chroot and chdir syscalls on C strings made beforehand, which is
    // async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::chroot(root.as_c_str())?;
            rustix::process::chdir(c"/")?;
            Ok(())
        });
    }
}

/// Kills a child process (a hook past its time limit); it may be gone already.
pub fn kill(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Remounts a mount read-only or read-write, keeping its other options.
pub fn remount(target: &Path, read_only: bool) -> Result<(), MountError> {
    let flags = if read_only {
        MountFlags::RDONLY
    } else {
        MountFlags::empty()
    };
    m::mount_remount(target, flags, "").map_err(err("remounting", target))
}

/// Collects children that exited without being waited for (a hook's
/// background job, reparented to PID 1), so that none stays a zombie.
pub fn reap_orphans() -> usize {
    let mut n = 0;
    while let Ok(Some(_)) = rustix::process::waitpid(None, rustix::process::WaitOptions::NOHANG) {
        n += 1;
    }
    n
}
