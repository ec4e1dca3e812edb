//! A directory tree reached only from inside: [`Root`] opens every path with
//! RESOLVE_IN_ROOT, so a symlink in an image, a litetree, a persistent store
//! or a CDSL tree can never lead a copy, link or mount outside it. Shared by
//! the statelite and CDSL executors.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};

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

    /// A file in the root opened for reading, symlinks resolved inside it.
    pub(crate) fn open_file(&self, path: &str) -> io::Result<OwnedFd> {
        let rel = path.trim_start_matches('/');
        Ok(rfs::openat2(
            &self.fd,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )?)
    }

    /// Whether the file system of the root can be changed.
    pub(crate) fn writable(&self) -> bool {
        rfs::fstatvfs(&self.fd)
            .map(|s| !s.f_flag.contains(rfs::StatVfsMountFlags::RDONLY))
            .unwrap_or(false)
    }

    /// Whether `path` is a symlink whose text is exactly `target` (the links
    /// liteimg and CDSL make), the link itself not followed.
    pub(crate) fn links_to(&self, path: &str, target: &str) -> bool {
        let Ok((dir, name)) = self.parent(path) else {
            return false;
        };
        rfs::readlinkat(&dir, &name, Vec::new())
            .map(|t| t.as_bytes() == target.as_bytes())
            .unwrap_or(false)
    }

    pub(crate) fn kind(&self, path: &str, follow: bool) -> Option<rfs::FileType> {
        let fd = self.reach(path, follow).ok()?;
        let st = rfs::fstat(&fd).ok()?;
        Some(rfs::FileType::from_raw_mode(st.st_mode))
    }
}

/// Relative symlink text from the link at `from` to `to` (both absolute in the
/// root), as xCAT's liteimg and Open-Sharedroot write them, so the link works
/// in any mount namespace.
pub fn link_target(from: &str, to: &str) -> String {
    let depth = from.trim_start_matches('/').matches('/').count();
    format!("{}{}", "../".repeat(depth), to.trim_start_matches('/'))
}
