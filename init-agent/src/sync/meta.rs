//! What the sync engine knows of one entry, and the pure decision of what to do
//! when a source entry meets its destination counterpart.

use std::ffi::CString;

use rustix::fs::{FileType, Stat};

/// The entry types rsync -a knows; sockets are seen but never copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Char,
    Block,
    Fifo,
    Socket,
}

impl Kind {
    pub fn letter(self) -> char {
        match self {
            Kind::File => 'f',
            Kind::Dir => 'd',
            Kind::Symlink => 'l',
            Kind::Char => 'c',
            Kind::Block => 'b',
            Kind::Fifo => 'p',
            Kind::Socket => 's',
        }
    }

    pub fn from_letter(c: u8) -> Option<Kind> {
        Some(match c {
            b'f' => Kind::File,
            b'd' => Kind::Dir,
            b'l' => Kind::Symlink,
            b'c' => Kind::Char,
            b'b' => Kind::Block,
            b'p' => Kind::Fifo,
            b's' => Kind::Socket,
            _ => return None,
        })
    }
}

/// Metadata of one entry as `lstat` reports it (never following a symlink).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (07777).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    pub rdev: u64,
    pub nlink: u64,
    pub dev: u64,
    pub ino: u64,
    /// 512-byte blocks allocated: fewer than the size needs means holes.
    pub blocks: u64,
    /// Inode change time, seconds: when the entry was last written at all
    /// (0 where unknown, as in a manifest record).
    pub ctime_sec: i64,
}

impl Meta {
    pub fn from_stat(st: &Stat) -> Option<Meta> {
        let kind = match FileType::from_raw_mode(st.st_mode as _) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::CharacterDevice => Kind::Char,
            FileType::BlockDevice => Kind::Block,
            FileType::Fifo => Kind::Fifo,
            FileType::Socket => Kind::Socket,
            FileType::Unknown => return None,
        };
        Some(Meta {
            kind,
            perm: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            mtime_sec: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec as u32,
            rdev: st.st_rdev,
            nlink: st.st_nlink,
            dev: st.st_dev,
            ino: st.st_ino,
            blocks: st.st_blocks as u64,
            ctime_sec: st.st_ctime,
        })
    }

    /// A hardlink group member: its other names must end up on the same inode.
    pub fn is_linked(&self) -> bool {
        self.kind != Kind::Dir && self.nlink > 1
    }

    /// Holes the source file system may not report through SEEK_HOLE (NFSv3 does not).
    pub fn looks_sparse(&self) -> bool {
        self.kind == Kind::File && self.blocks.saturating_mul(512) < self.size
    }

    pub fn same_mtime(&self, other: &Meta) -> bool {
        self.mtime_sec == other.mtime_sec && self.mtime_nsec == other.mtime_nsec
    }

    pub fn same_owner(&self, other: &Meta) -> bool {
        self.uid == other.uid && self.gid == other.gid
    }

    /// Symlinks have no settable permissions.
    pub fn same_perm(&self, other: &Meta) -> bool {
        self.kind == Kind::Symlink || self.perm == other.perm
    }

    fn same_owner_perm(&self, other: &Meta) -> bool {
        self.same_owner(other) && self.same_perm(other)
    }
}

/// Extended attributes rsync -X carries, sorted by name: user.*, trusted.*,
/// security.* (capabilities, labels) and the two POSIX ACL attributes. Other
/// system.* names (e.g. NFSv4's system.nfs4_acl) cannot be set on a local disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Xattrs(pub Vec<(CString, Vec<u8>)>);

impl Xattrs {
    pub fn wanted(name: &[u8]) -> bool {
        name.starts_with(b"user.")
            || name.starts_with(b"trusted.")
            || name.starts_with(b"security.")
            || name == b"system.posix_acl_access"
            || name == b"system.posix_acl_default"
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What one non-directory source entry needs at the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do.
    Unchanged,
    /// Same content; fix owner, permissions, xattrs and mtime in place.
    FixMeta,
    /// Write a new entry beside it and rename it over (content, type or link target changed).
    Replace,
    /// Compare contents before deciding (`--checksum`, size and mtime equal).
    CompareContent,
}

/// Inputs beyond the two `lstat`s that change the decision.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts {
    /// The source entry is a hardlink group member (its links are made later).
    pub in_group: bool,
    /// `--checksum`: equal size and mtime do not prove equal content.
    pub checksum: bool,
    pub same_xattrs: bool,
    /// Symlink targets or device numbers compare equal.
    pub same_payload: bool,
}

/// The pure change test: type, size, mtime to the nanosecond, owner, permissions,
/// xattrs. A destination file that shares its inode with other names while the
/// source does not is replaced, so that fixing it never alters the other names.
pub fn decide(src: &Meta, dst: Option<&Meta>, facts: Facts) -> Decision {
    let Some(dst) = dst else {
        return Decision::Replace;
    };
    if src.kind != dst.kind || !facts.same_payload {
        return Decision::Replace;
    }
    if dst.is_linked() && !facts.in_group {
        return Decision::Replace;
    }
    if src.kind == Kind::File {
        if src.size != dst.size || !src.same_mtime(dst) {
            return Decision::Replace;
        }
        if facts.checksum {
            return Decision::CompareContent;
        }
    }
    if src.same_owner_perm(dst) && facts.same_xattrs && src.same_mtime(dst) {
        Decision::Unchanged
    } else {
        Decision::FixMeta
    }
}

/// Whether a directory's own metadata (applied after its contents) differs.
pub fn dir_meta_differs(src: &Meta, dst: &Meta, same_xattrs: bool) -> bool {
    !(src.same_owner_perm(dst) && src.same_mtime(dst) && same_xattrs)
}

#[cfg(test)]
mod tests;
