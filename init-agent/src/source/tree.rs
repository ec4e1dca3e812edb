//! Where the sync engine reads the standard root from: one small trait, with a
//! local tree (a kernel mount or any directory) and an NFSv3 server reached from
//! userspace (`nfs`) behind it. The engine only ever reads the source.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use crate::sync::digest::{self, Digest};
use crate::sync::meta::{Meta, Xattrs};
use crate::sys::fsops;

/// What `Source::copy_to` did: the bytes it wrote (holes left out) and, when
/// asked, the digest of the contents it read; None when they could not be
/// hashed as one (the file shrank while copied).
#[derive(Debug, Clone, Copy)]
pub struct Copied {
    pub bytes: u64,
    pub digest: Option<Digest>,
}

pub trait Source: Sync {
    /// A directory of the source tree, open for listing and lookups.
    type Dir: Send + Sync;
    /// A regular file, open for reading.
    type File: Send;

    /// A subdirectory; a symlink is never followed (`.` is the directory itself).
    fn open_dir(&self, dir: &Self::Dir, name: &CStr) -> io::Result<Self::Dir>;
    /// Every entry but `.` and `..` with its metadata, sorted bytewise by name;
    /// entries that vanish while being listed are left out.
    fn list(&self, dir: &Self::Dir) -> io::Result<Vec<(CString, Meta)>>;
    /// One entry's metadata, never following a symlink (`.`: the directory).
    fn lstat(&self, dir: &Self::Dir, name: &CStr) -> io::Result<Meta>;
    fn readlink(&self, dir: &Self::Dir, name: &CStr) -> io::Result<CString>;
    /// The xattrs rsync -X carries; None where the protocol cannot carry them
    /// (NFSv3): the destination's are then left as they are.
    fn xattrs(&self, dir: &Self::Dir, name: &CStr) -> io::Result<Option<Xattrs>>;
    /// A regular file with its metadata as it is now; an error if it is not one.
    fn open_file(&self, dir: &Self::Dir, name: &CStr) -> io::Result<(Self::File, Meta)>;
    /// Up to `buf.len()` bytes at `off`; 0 at the end of the file.
    fn read_at(&self, file: &Self::File, buf: &mut [u8], off: u64) -> io::Result<usize>;
    /// Writes the file's bytes into `dst`, keeping holes; with `hash`, also
    /// their digest, taken as they pass (no second read).
    fn copy_to(
        &self,
        file: &Self::File,
        meta: &Meta,
        dst: &OwnedFd,
        buf: &mut Vec<u8>,
        hash: bool,
    ) -> io::Result<Copied>;
    /// Worker threads the walk should have when the caller names none; 0 =
    /// one per CPU. A network source waits more than it computes.
    fn workers(&self) -> usize {
        0
    }
}

/// A directory tree of the local file system (a kernel NFS mount included);
/// its root is opened with `fsops::open_root`.
pub struct Local;

impl Source for Local {
    type Dir = OwnedFd;
    type File = OwnedFd;

    fn open_dir(&self, dir: &OwnedFd, name: &CStr) -> io::Result<OwnedFd> {
        fsops::open_dir(dir.as_fd(), name)
    }

    fn list(&self, dir: &OwnedFd) -> io::Result<Vec<(CString, Meta)>> {
        let mut out = Vec::new();
        for name in fsops::read_names(dir.as_fd())? {
            match fsops::lstat(dir.as_fd(), &name) {
                Ok(m) => out.push((name, m)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn lstat(&self, dir: &OwnedFd, name: &CStr) -> io::Result<Meta> {
        fsops::lstat(dir.as_fd(), name)
    }

    fn readlink(&self, dir: &OwnedFd, name: &CStr) -> io::Result<CString> {
        fsops::readlink(dir.as_fd(), name)
    }

    fn xattrs(&self, dir: &OwnedFd, name: &CStr) -> io::Result<Option<Xattrs>> {
        fsops::read_xattrs(dir.as_fd(), name).map(Some)
    }

    fn open_file(&self, dir: &OwnedFd, name: &CStr) -> io::Result<(OwnedFd, Meta)> {
        fsops::open_file_meta(dir.as_fd(), name)
    }

    fn read_at(&self, file: &OwnedFd, buf: &mut [u8], off: u64) -> io::Result<usize> {
        Ok(rustix::io::pread(file, buf, off)?)
    }

    fn copy_to(
        &self,
        file: &OwnedFd,
        meta: &Meta,
        dst: &OwnedFd,
        buf: &mut Vec<u8>,
        hash: bool,
    ) -> io::Result<Copied> {
        if !hash {
            let bytes = fsops::copy_data(file, dst, meta, buf)?;
            return Ok(Copied {
                bytes,
                digest: None,
            });
        }
        // Through the process, not the kernel's copy_file_range or a reflink,
        // whose bytes never pass where they could be hashed.
        let mut h = blake3::Hasher::new();
        let mut pread = |b: &mut [u8], off| self.read_at(file, b, off);
        let bytes = fsops::copy_by_reads(
            &mut digest::hashing(Some(&mut h), &mut pread),
            dst,
            meta.size,
            meta.looks_sparse(),
            256 * 1024,
            buf,
        )?;
        Ok(Copied {
            bytes,
            digest: Some(digest::finish(&h)),
        })
    }
}

/// Opens the directory holding `rel`, one component at a time (never through a
/// symlink), and returns it with the last component.
pub fn open_parent<S: Source>(s: &S, root: &S::Dir, rel: &[u8]) -> io::Result<(S::Dir, CString)> {
    let mut parts = rel.split(|&b| b == b'/');
    let last = parts.next_back().unwrap_or_default();
    let mut dir = s.open_dir(root, c".")?;
    for part in parts {
        dir = s.open_dir(&dir, &CString::new(part).map_err(io::Error::other)?)?;
    }
    Ok((dir, CString::new(last).map_err(io::Error::other)?))
}

/// A small file of the source (`rel` below the root), or None when it is not
/// there; at most `limit` bytes.
pub fn read_small<S: Source>(
    s: &S,
    root: &S::Dir,
    rel: &[u8],
    limit: u64,
) -> io::Result<Option<Vec<u8>>> {
    let opened = open_parent(s, root, rel).and_then(|(dir, name)| s.open_file(&dir, &name));
    let (file, meta) = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if meta.size > limit {
        return Err(io::Error::other(format!(
            "{} bytes, more than {limit}",
            meta.size
        )));
    }
    let mut out = vec![0u8; meta.size as usize];
    let n = read_full(s, &file, &mut out, 0)?;
    out.truncate(n);
    Ok(Some(out))
}

/// Reads until `buf` is full or the file ends.
pub fn read_full<S: Source>(
    s: &S,
    file: &S::File,
    buf: &mut [u8],
    mut off: u64,
) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = s.read_at(file, &mut buf[got..], off)?;
        if n == 0 {
            break;
        }
        got += n;
        off += n as u64;
    }
    Ok(got)
}

/// Whether a source file and a local file hold the same bytes (`--checksum`).
pub fn same_content<S: Source>(
    s: &S,
    a: &S::File,
    b: &OwnedFd,
    buf: &mut Vec<u8>,
) -> io::Result<bool> {
    const CHUNK: usize = 256 * 1024;
    buf.resize(2 * CHUNK, 0);
    let (x, y) = buf.split_at_mut(CHUNK);
    let mut off = 0u64;
    loop {
        let n = read_full(s, a, x, off)?;
        let m = read_full(&Local, b, y, off)?;
        if n != m || x[..n] != y[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
        off += n as u64;
    }
}
