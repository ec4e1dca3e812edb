//! The executor: runs statelite actions inside a root directory. Every path is
//! resolved with RESOLVE_IN_ROOT, so a symlink in the image (or in a litetree,
//! or in the persistent store) can never lead a copy, link or mount outside it.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};

use super::plan::{link_target, Action, Mountable, Probe, DEFAULT, LOG, STATELITE, TMPFS};
use crate::sys;

#[derive(Debug, thiserror::Error)]
#[error("statelite: {action}: {cause}")]
pub struct ApplyError {
    pub action: String,
    pub cause: StepError,
}

/// Why one action failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Mount(#[from] sys::MountError),
    /// A bind's source or target not reached in the root.
    #[error("{end}: {error}")]
    BindEnd { end: &'static str, error: io::Error },
}

/// An open root and the means to reach paths inside it.
pub struct Root {
    fd: OwnedFd,
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl Root {
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { fd })
    }

    /// O_PATH descriptor of `path` (absolute in the root), symlinks resolved
    /// inside the root; `follow_last` false keeps a final symlink itself.
    pub(crate) fn reach(&self, path: &str, follow_last: bool) -> io::Result<OwnedFd> {
        let mut flags = OFlags::PATH | OFlags::CLOEXEC;
        if !follow_last {
            flags |= OFlags::NOFOLLOW;
        }
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        Ok(rfs::openat2(&self.fd, rel, flags, Mode::empty(), IN_ROOT)?)
    }

    pub(crate) fn open_dir(&self, path: &str) -> io::Result<OwnedFd> {
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        Ok(rfs::openat2(
            &self.fd,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )?)
    }

    /// The parent directory (resolved in the root) and the last name.
    pub(crate) fn parent(&self, path: &str) -> io::Result<(OwnedFd, CString)> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        Ok((
            self.open_dir(dir)?,
            CString::new(name).map_err(io::Error::other)?,
        ))
    }

    /// A path the kernel resolves to exactly what `reach` found.
    pub(crate) fn proc(fd: &OwnedFd) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
    }

    pub(crate) fn mkdir_p(&self, path: &str) -> io::Result<()> {
        let mut at = String::new();
        for part in path
            .trim_start_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
        {
            at.push('/');
            at.push_str(part);
            let (dir, name) = self.parent(&at)?;
            match rfs::mkdirat(&dir, &name, Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    pub(crate) fn kind(&self, path: &str, follow: bool) -> Option<rfs::FileType> {
        let fd = self.reach(path, follow).ok()?;
        let st = rfs::fstat(&fd).ok()?;
        Some(rfs::FileType::from_raw_mode(st.st_mode))
    }
}

impl Probe for Root {
    fn found(&self, path: &str) -> Option<bool> {
        match self.kind(path, true)? {
            rfs::FileType::Directory => {
                let dir = self.open_dir(path).ok()?;
                Some(
                    crate::sys::fsops::read_names(dir.as_fd())
                        .map(|n| !n.is_empty())
                        .unwrap_or(false),
                )
            }
            _ => Some(true),
        }
    }

    fn is_prepared_link(&self, path: &str) -> bool {
        let Ok((dir, name)) = self.parent(path) else {
            return false;
        };
        rfs::readlinkat(&dir, &name, Vec::new())
            .map(|t| t.as_bytes() == link_target(path, &format!("{TMPFS}{path}")).as_bytes())
            .unwrap_or(false)
    }

    fn writable(&self) -> bool {
        rfs::fstatvfs(&self.fd)
            .map(|s| !s.f_flag.contains(rfs::StatVfsMountFlags::RDONLY))
            .unwrap_or(false)
    }
}

/// Runs the actions in order, logging each to /.statelite/statelite.log once
/// the layout exists. Warnings go to the log and to stderr, never silently.
pub fn run(root: &Root, actions: &[Action]) -> Result<(), ApplyError> {
    for action in actions {
        if let Action::Warn(w) = action {
            eprintln!("init-agent statelite: warning: {w}");
        }
        step(root, action).map_err(|cause| ApplyError {
            action: action.to_string(),
            cause,
        })?;
        append_log(root, action);
    }
    Ok(())
}

fn append_log(root: &Root, action: &Action) {
    let Ok((dir, name)) = root.parent(LOG) else {
        return;
    };
    let Ok(fd) = rfs::openat(
        &dir,
        &name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    ) else {
        return;
    };
    // The log is a courtesy for admins; a full tmpfs must not stop the boot.
    let _ = std::fs::File::from(fd).write_all(format!("{action}\n").as_bytes());
}

fn step(root: &Root, action: &Action) -> Result<(), StepError> {
    match action {
        Action::MountTmpfs(target) => {
            root.mkdir_p(target)?;
            let fd = root.reach(target, true)?;
            sys::mount_tmpfs(&Root::proc(&fd), "mode=0755")?;
        }
        Action::Mkdir(p) => root.mkdir_p(p)?,
        Action::MountSource {
            source,
            target,
            read_only,
        } => {
            let fd = root.reach(target, true)?;
            let at = Root::proc(&fd);
            match source {
                // A local directory (tests, --state DIR): outside the root by design.
                Mountable::Dir(dir) => sys::bind(Path::new(dir), &at, *read_only),
                Mountable::Nfs(m) => sys::mount_fs(&m.source, &at, m.fstype, *read_only, &m.data),
            }?;
        }
        Action::Copy {
            from,
            to,
            if_missing,
        } => {
            if *if_missing && root.kind(to, false).is_some() {
                return Ok(());
            }
            copy(root, from, to)?;
        }
        Action::Concat { from, to } => concat(root, from, to)?,
        Action::Symlink { path, target } => {
            let parent = path.rsplit_once('/').map_or("/", |(d, _)| d);
            root.mkdir_p(parent)?;
            let (dir, name) = root.parent(path)?;
            rfs::symlinkat(target.as_str(), &dir, &name).map_err(io::Error::from)?;
        }
        Action::Bind {
            source,
            target,
            read_only,
        } => {
            let s = root
                .reach(source, true)
                .map_err(|error| StepError::BindEnd {
                    end: "source",
                    error,
                })?;
            let t = root
                .reach(target, true)
                .map_err(|error| StepError::BindEnd {
                    end: "target",
                    error,
                })?;
            sys::bind(&Root::proc(&s), &Root::proc(&t), *read_only)?;
        }
        Action::PrepareLink { path } => prepare_link(root, path)?,
        Action::Warn(_) => {}
    }
    Ok(())
}

/// A file with its metadata, or a directory tree through the sync engine.
pub(crate) fn copy(root: &Root, from: &str, to: &str) -> io::Result<()> {
    let parent = to.rsplit_once('/').map_or("/", |(d, _)| d);
    root.mkdir_p(parent)?;
    let src = root.reach(from, true)?;
    let st = rfs::fstat(&src)?;
    if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory {
        root.mkdir_p(to)?;
        let dst = root.reach(to, true)?;
        let opts = crate::sync::Options {
            quiet: true,
            no_marker: true,
            ..Default::default()
        };
        crate::sync::run(
            &crate::sync::SyncSource::Dir(Root::proc(&src)),
            &Root::proc(&dst),
            &opts,
        )
        .map(drop)
        .map_err(io::Error::other)
    } else {
        let (sdir, name) = root.parent(from)?;
        let (ddir, _) = root.parent(to)?;
        // Statelite copies keep the base name (/etc/x to /.statelite/tmpfs/etc/x);
        // the sync engine's single-entry path keeps owner, mode, xattrs, mtime.
        crate::sync::copy_one(sdir.as_fd(), ddir.as_fd(), &name).map_err(io::Error::other)
    }
}

fn concat(root: &Root, from: &[String], to: &str) -> io::Result<()> {
    let parent = to.rsplit_once('/').map_or("/", |(d, _)| d);
    root.mkdir_p(parent)?;
    let (dir, name) = root.parent(to)?;
    let out = rfs::openat(
        &dir,
        &name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?;
    let mut out = std::fs::File::from(out);
    for f in from {
        let rel = f.trim_start_matches('/');
        let fd = rfs::openat2(
            &root.fd,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )?;
        let mut data = Vec::new();
        std::fs::File::from(fd).read_to_end(&mut data)?;
        out.write_all(&data)?;
    }
    Ok(())
}

/// liteimg for one link entry: the original goes to /.default<path> and
/// <path> becomes a relative link into /.statelite/tmpfs.
fn prepare_link(root: &Root, path: &str) -> io::Result<()> {
    let default = format!("{DEFAULT}{path}");
    let parent = default.rsplit_once('/').map_or("/", |(d, _)| d);
    root.mkdir_p(parent)?;
    let (odir, oname) = root.parent(path)?;
    let (ddir, dname) = root.parent(&default)?;
    if root.kind(&default, false).is_some() {
        // Never guess which copy the admin wants.
        return Err(io::Error::other(format!(
            "both {path} and {default} exist: remove the one that is stale"
        )));
    }
    rfs::renameat(&odir, &oname, &ddir, &dname)?;
    let target = link_target(path, &format!("{TMPFS}{path}"));
    rfs::symlinkat(target.as_str(), &odir, &oname)?;
    Ok(())
}

/// Whether `root` already has the statelite tmpfs (a second apply on a live root).
pub fn layout_mounted(root: &Root) -> bool {
    let Ok(top) = root.reach("/", true) else {
        return false;
    };
    let Ok(sl) = root.reach(STATELITE, true) else {
        return false;
    };
    match (rfs::fstat(&top), rfs::fstat(&sl)) {
        (Ok(a), Ok(b)) => a.st_dev != b.st_dev,
        _ => false,
    }
}
