//! Directory-descriptor based file operations for the sync engine. Every call
//! names its target as (directory fd, single name) and never follows a symlink in
//! the final component, so a symlink planted anywhere in the destination cannot
//! redirect a create, replace or delete outside it.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{
    self as rfs, AtFlags, Mode, OFlags, SeekFrom, Timespec, Timestamps, XattrFlags, UTIME_OMIT,
};

use crate::sync::meta::{Kind, Meta, Xattrs};

/// Names the engine writes before renaming them into place. A leftover one in the
/// destination (after a crash) is removed even where a protect pattern matches.
pub const TEMP_PREFIX: &[u8] = b".init-agent~";

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens a tree's root directory; the root itself may be reached through symlinks.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

pub fn open_dir(dir: BorrowedFd, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rfs::openat(dir, name, DIR_FLAGS, Mode::empty())?)
}

/// Opens a regular file for reading; O_NONBLOCK so that a fifo swapped in by a
/// changing source cannot hang the walk.
pub fn open_file(dir: BorrowedFd, name: &CStr) -> io::Result<OwnedFd> {
    open_file_meta(dir, name).map(|(fd, _)| fd)
}

/// `open_file`, with the file's metadata as of the open.
pub fn open_file_meta(dir: BorrowedFd, name: &CStr) -> io::Result<(OwnedFd, Meta)> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )?;
    match Meta::from_stat(&rfs::fstat(&fd)?) {
        Some(m) if m.kind == Kind::File => Ok((fd, m)),
        _ => Err(io::Error::other("changed type while being read")),
    }
}

pub fn lstat(dir: BorrowedFd, name: &CStr) -> io::Result<Meta> {
    let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    Meta::from_stat(&st).ok_or_else(|| io::Error::other("unknown file type"))
}

/// The names in a directory, sorted bytewise, without `.` and `..`.
pub fn read_names(dir: BorrowedFd) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// The names in a directory with their inode numbers, in directory order.
pub fn read_entries(dir: BorrowedFd) -> io::Result<Vec<(CString, u64)>> {
    let mut out = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            out.push((name.to_owned(), entry.ino()));
        }
    }
    Ok(out)
}

pub fn readlink(dir: BorrowedFd, name: &CStr) -> io::Result<CString> {
    Ok(rfs::readlinkat(dir, name, Vec::new())?)
}

/// Whether a name is one `temp_name` gives: what a cut run may leave behind.
pub fn is_temp(name: &[u8]) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// A fresh temporary name, unique within this process.
pub fn temp_name() -> CString {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = TEMP_PREFIX.to_vec();
    name.extend_from_slice(format!("{}.{n}", std::process::id()).as_bytes());
    // The bytes are ASCII digits and the prefix: no NUL inside.
    CString::new(name).unwrap_or_default()
}

/// Read-write: a signed root's file is read back for its hash before it is installed.
pub fn create_temp_file(dir: BorrowedFd, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        dir,
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?)
}

pub fn mkdir(dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    // Private until its metadata is applied after its contents.
    Ok(rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?)
}

/// mkdir that takes a directory already there.
pub fn mkdir_in(dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    match mkdir(dir, name) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

pub fn symlink(target: &CStr, dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    Ok(rfs::symlinkat(target, dir, name)?)
}

pub fn mknod(dir: BorrowedFd, name: &CStr, meta: &Meta) -> io::Result<()> {
    let ft = match meta.kind {
        Kind::Char => rfs::FileType::CharacterDevice,
        Kind::Block => rfs::FileType::BlockDevice,
        Kind::Fifo => rfs::FileType::Fifo,
        _ => return Err(io::Error::other("not a device or fifo")),
    };
    Ok(rfs::mknodat(
        dir,
        name,
        ft,
        Mode::from_raw_mode(0o600),
        meta.rdev as _,
    )?)
}

pub fn link(from_dir: BorrowedFd, from: &CStr, to_dir: BorrowedFd, to: &CStr) -> io::Result<()> {
    Ok(rfs::linkat(from_dir, from, to_dir, to, AtFlags::empty())?)
}

pub fn rename(dir: BorrowedFd, from: &CStr, to: &CStr) -> io::Result<()> {
    Ok(rfs::renameat(dir, from, dir, to)?)
}

/// Renames from one directory into another (on the same file system).
pub fn rename_between(
    from_dir: BorrowedFd,
    from: &CStr,
    to_dir: BorrowedFd,
    to: &CStr,
) -> io::Result<()> {
    Ok(rfs::renameat(from_dir, from, to_dir, to)?)
}

pub fn unlink(dir: BorrowedFd, name: &CStr, is_dir: bool) -> io::Result<()> {
    let flags = if is_dir {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    Ok(rfs::unlinkat(dir, name, flags)?)
}

/// The entry reached through /proc without following its last component: the
/// only way to read or set xattrs and permissions on symlinks, devices and fifos
/// by directory descriptor (there is no l*xattrat before Linux 6.13).
fn proc_path(dir: BorrowedFd, name: &CStr) -> CString {
    use std::os::fd::AsRawFd;
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name.to_bytes());
    // `name` is a CStr and the prefix is ASCII: no interior NUL.
    CString::new(p).unwrap_or_default()
}

fn parse_xattr_names(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|&b| b == 0).filter(|n| !n.is_empty())
}

/// Runs a size-query-then-fetch xattr call, growing the buffer if the value grew.
fn fetch(mut call: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        match call(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < 1 << 20 => {
                let len = buf.len() * 4;
                buf.resize(len, 0);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn not_supported(e: &io::Error) -> bool {
    matches!(
        rustix::io::Errno::from_io_error(e),
        Some(rustix::io::Errno::NOTSUP | rustix::io::Errno::NODATA)
    )
}

/// Reads the xattrs rsync -X carries. A file system without xattr support has none.
/// Path-based through /proc: one syscall to list (most entries have none), no
/// open, and the same code for every kind of entry.
pub fn read_xattrs(dir: BorrowedFd, name: &CStr) -> io::Result<Xattrs> {
    let path = proc_path(dir, name);
    let list = match fetch(|b| rfs::llistxattr(&path, b)) {
        Ok(l) => l,
        Err(e) if not_supported(&e) => return Ok(Xattrs::default()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for attr in parse_xattr_names(&list).filter(|n| Xattrs::wanted(n)) {
        let attr = CString::new(attr).map_err(io::Error::other)?;
        match fetch(|b| rfs::lgetxattr(&path, &attr, b)) {
            Ok(v) => out.push((attr, v)),
            // Removed between list and get.
            Err(e) if not_supported(&e) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(Xattrs(out))
}

/// Makes the entry's xattrs exactly `want`, given what it has now.
pub fn write_xattrs(dir: BorrowedFd, name: &CStr, have: &Xattrs, want: &Xattrs) -> io::Result<()> {
    if have == want {
        return Ok(());
    }
    let path = proc_path(dir, name);
    for (attr, _) in &have.0 {
        if !want.0.iter().any(|(n, _)| n == attr) {
            rfs::lremovexattr(&path, attr)?;
        }
    }
    for (attr, value) in &want.0 {
        if have.0.iter().any(|(n, v)| n == attr && v == value) {
            continue;
        }
        rfs::lsetxattr(&path, attr, value, XattrFlags::empty()).map_err(|e| {
            io::Error::new(e.kind(), format!("setting {}: {e}", attr.to_string_lossy()))
        })?;
    }
    Ok(())
}

/// One xattr's value; None when the entry has no such attribute.
pub fn get_xattr(dir: BorrowedFd, name: &CStr, attr: &CStr) -> io::Result<Option<Vec<u8>>> {
    let path = proc_path(dir, name);
    match fetch(|b| rfs::lgetxattr(&path, attr, b)) {
        Ok(v) => Ok(Some(v)),
        Err(e) if not_supported(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn set_xattr(dir: BorrowedFd, name: &CStr, attr: &CStr, value: &[u8]) -> io::Result<()> {
    Ok(rfs::lsetxattr(
        proc_path(dir, name),
        attr,
        value,
        XattrFlags::empty(),
    )?)
}

pub fn chown(dir: BorrowedFd, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // --numeric-ids: ids go through unmapped. stat never reports -1 ("no change").
    let (uid, gid) = (
        rfs::Uid::from_raw_unchecked(uid),
        rfs::Gid::from_raw_unchecked(gid),
    );
    Ok(rfs::chownat(
        dir,
        name,
        Some(uid),
        Some(gid),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Sets permission bits on anything but a symlink, without following one.
pub fn chmod(dir: BorrowedFd, name: &CStr, kind: Kind, perm: u32) -> io::Result<()> {
    if kind == Kind::Symlink {
        return Ok(());
    }
    let fd = rfs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if Meta::from_stat(&rfs::fstat(&fd)?).map(|m| m.kind) == Some(Kind::Symlink) {
        return Err(io::Error::other("became a symlink"));
    }
    // fchmod refuses O_PATH descriptors (and opening a fifo or device for real
    // could block or have effects); the /proc magic link reaches the inode
    // itself, known not to be a symlink.
    Ok(rfs::chmod(proc_fd(&fd), Mode::from_raw_mode(perm))?)
}

fn proc_fd(fd: &OwnedFd) -> CString {
    use std::os::fd::AsRawFd;
    // ASCII only: no interior NUL.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// Sets the modification time (to the nanosecond); the access time is left alone.
pub fn set_mtime(dir: BorrowedFd, name: &CStr, meta: &Meta) -> io::Result<()> {
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: meta.mtime_sec,
            tv_nsec: meta.mtime_nsec as _,
        },
    };
    Ok(rfs::utimensat(
        dir,
        name,
        &times,
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Copies a file's bytes, keeping holes: a clone where the file systems share
/// extents, else per data extent (SEEK_DATA/SEEK_HOLE) with copy_file_range, else
/// read/write skipping all-zero blocks when the source looks sparse but cannot
/// say where its holes are (NFSv3). Returns the bytes written.
pub fn copy_data(src: &OwnedFd, dst: &OwnedFd, meta: &Meta, buf: &mut Vec<u8>) -> io::Result<u64> {
    if meta.size == 0 {
        return Ok(0);
    }
    if rfs::ioctl_ficlone(dst, src).is_ok() {
        return Ok(meta.size);
    }
    let mut written = 0;
    let mut pos = 0u64;
    let mut kernel_copy = true;
    while pos < meta.size {
        let data = match rfs::seek(src, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(_) => pos,
        };
        let end = match rfs::seek(src, SeekFrom::Hole(data)) {
            Ok(h) => h.min(meta.size),
            Err(_) => meta.size,
        };
        let whole_file_as_data = data == 0 && end >= meta.size;
        let skip_zeros = whole_file_as_data && meta.looks_sparse();
        if kernel_copy && !skip_zeros {
            match copy_range_kernel(src, dst, data, end) {
                Ok(n) => {
                    written += n;
                    pos = end;
                    continue;
                }
                // Across file systems (NFS to ext4) the kernel refuses: copy ourselves.
                Err(_) => kernel_copy = false,
            }
        }
        let mut read = |b: &mut [u8], off| Ok(rustix::io::pread(src, b, off)?);
        written += copy_range_user(&mut read, dst, data, end, skip_zeros, 256 * 1024, buf)?;
        pos = end;
    }
    rfs::ftruncate(dst, meta.size)?;
    Ok(written)
}

/// Copies `size` bytes through `read` (a source that is no local descriptor),
/// in `chunk`-sized reads; all-zero blocks stay holes when `sparse`.
pub fn copy_by_reads(
    read: &mut dyn FnMut(&mut [u8], u64) -> io::Result<usize>,
    dst: &OwnedFd,
    size: u64,
    sparse: bool,
    chunk: usize,
    buf: &mut Vec<u8>,
) -> io::Result<u64> {
    let written = copy_range_user(read, dst, 0, size, sparse, chunk, buf)?;
    rfs::ftruncate(dst, size)?;
    Ok(written)
}

fn copy_range_kernel(src: &OwnedFd, dst: &OwnedFd, start: u64, end: u64) -> io::Result<u64> {
    let (mut off_in, mut off_out) = (start, start);
    while off_in < end {
        let len = usize::try_from(end - off_in)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        let n = rfs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), len)?;
        if n == 0 {
            break; // the source shrank underneath us; the size check catches it
        }
    }
    Ok(off_in - start)
}

fn copy_range_user(
    read: &mut dyn FnMut(&mut [u8], u64) -> io::Result<usize>,
    dst: &OwnedFd,
    start: u64,
    end: u64,
    skip_zeros: bool,
    chunk: usize,
    buf: &mut Vec<u8>,
) -> io::Result<u64> {
    buf.resize(chunk, 0);
    let mut off = start;
    let mut written = 0;
    while off < end {
        let want = usize::try_from(end - off).unwrap_or(chunk).min(chunk);
        let n = read(&mut buf[..want], off)?;
        if n == 0 {
            break;
        }
        written += write_data_at(dst, &buf[..n], off, skip_zeros)?;
        off += n as u64;
    }
    Ok(written)
}

/// Writes `data` at `off`; with `skip_zeros` only its 4 KiB blocks that hold
/// data, so that zero blocks stay holes. Returns the bytes written.
pub fn write_data_at(dst: &OwnedFd, data: &[u8], off: u64, skip_zeros: bool) -> io::Result<u64> {
    if !skip_zeros {
        write_all_at(dst, data, off)?;
        return Ok(data.len() as u64);
    }
    let mut written = 0;
    for (i, block) in data.chunks(4096).enumerate() {
        if block.iter().any(|&b| b != 0) {
            write_all_at(dst, block, off + (i * 4096) as u64)?;
            written += block.len() as u64;
        }
    }
    Ok(written)
}

fn write_all_at(fd: &OwnedFd, mut data: &[u8], mut off: u64) -> io::Result<()> {
    while !data.is_empty() {
        let n = rustix::io::pwrite(fd, data, off)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
        off += n as u64;
    }
    Ok(())
}

pub fn fsync(fd: impl AsFd) -> io::Result<()> {
    Ok(rfs::fsync(fd)?)
}

pub fn syncfs(fd: impl AsFd) -> io::Result<()> {
    Ok(rfs::syncfs(fd)?)
}
