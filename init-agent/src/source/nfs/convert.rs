//! NFSv3's answers in the crate's terms: the sync engine knows `io::Error`
//! and `Meta`, not nfsstat3 and fattr3. Statuses become the errnos the kernel
//! client would report, so a sync reads the same failures whichever client
//! it goes through.

use std::ffi::CStr;
use std::io;

use nfs3_client::nfs3_types::nfs3::{fattr3, filename3, ftype3, nfsstat3, Nfs3Result};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::{ConnectError, MountError, RpcError};

use crate::sync::meta::{Kind, Meta};

/// An NFSv3 status as the errno the kernel client would report.
pub(super) fn status_error(st: nfsstat3) -> io::Error {
    use nfsstat3::*;
    let errno = match st {
        NFS3ERR_PERM => 1,
        NFS3ERR_NOENT => 2,
        NFS3ERR_IO => 5,
        NFS3ERR_NXIO => 6,
        NFS3ERR_ACCES => 13,
        NFS3ERR_NOTDIR => 20,
        NFS3ERR_ISDIR => 21,
        NFS3ERR_INVAL => 22,
        NFS3ERR_NAMETOOLONG => 36,
        NFS3ERR_STALE | NFS3ERR_BADHANDLE => 116,
        NFS3ERR_JUKEBOX => 11,
        other => return io::Error::other(format!("NFS error {other}")),
    };
    io::Error::from_raw_os_error(errno)
}

pub(super) fn result<T, E>(r: Nfs3Result<T, E>) -> io::Result<T> {
    match r {
        Nfs3Result::Ok(v) => Ok(v),
        Nfs3Result::Err((st, _)) => Err(status_error(st)),
    }
}

/// Whether the server no longer knows the handle (ESTALE).
pub(super) fn is_stale(e: &io::Error) -> bool {
    e.raw_os_error() == Some(116)
}

pub(super) fn rpc_error(e: RpcError) -> io::Error {
    match e {
        RpcError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

pub(super) fn connect_error(e: ConnectError) -> io::Error {
    match e {
        ConnectError::Io(e) => e,
        ConnectError::Mount(MountError::Rpc(e)) => rpc_error(e),
        other => io::Error::other(other.to_string()),
    }
}

pub(super) fn meta_of(a: &fattr3) -> Meta {
    let kind = match a.type_ {
        ftype3::NF3REG => Kind::File,
        ftype3::NF3DIR => Kind::Dir,
        ftype3::NF3BLK => Kind::Block,
        ftype3::NF3CHR => Kind::Char,
        ftype3::NF3LNK => Kind::Symlink,
        ftype3::NF3SOCK => Kind::Socket,
        ftype3::NF3FIFO => Kind::Fifo,
    };
    Meta {
        kind,
        perm: a.mode & 0o7777,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        mtime_sec: i64::from(a.mtime.seconds),
        mtime_nsec: a.mtime.nseconds,
        rdev: rustix::fs::makedev(a.rdev.specdata1, a.rdev.specdata2),
        nlink: u64::from(a.nlink),
        dev: a.fsid,
        ino: a.fileid,
        blocks: a.used / 512,
        ctime_sec: i64::from(a.ctime.seconds),
    }
}

pub(super) fn name_arg(name: &CStr) -> filename3<'_> {
    filename3(Opaque::borrowed(name.to_bytes()))
}

#[cfg(test)]
mod tests {
    use nfs3_client::nfs3_types::nfs3;

    use super::*;

    #[test]
    fn attributes_map_to_meta() {
        let a = fattr3 {
            type_: ftype3::NF3CHR,
            mode: 0o104755,
            nlink: 3,
            uid: 1000,
            gid: 100,
            size: 8192,
            used: 4096,
            rdev: nfs3::specdata3 {
                specdata1: 4,
                specdata2: 64,
            },
            fsid: 9,
            fileid: 77,
            atime: nfs3::nfstime3::default(),
            mtime: nfs3::nfstime3 {
                seconds: 1_700_000_000,
                nseconds: 123_456_789,
            },
            ctime: nfs3::nfstime3 {
                seconds: 1_700_000_001,
                nseconds: 0,
            },
        };
        let m = meta_of(&a);
        assert_eq!(m.kind, Kind::Char);
        assert_eq!(m.perm, 0o4755);
        assert_eq!((m.uid, m.gid, m.nlink, m.dev, m.ino), (1000, 100, 3, 9, 77));
        assert_eq!(m.rdev, rustix::fs::makedev(4, 64));
        assert_eq!((m.mtime_sec, m.mtime_nsec), (1_700_000_000, 123_456_789));
        assert_eq!((m.blocks, m.ctime_sec), (8, 1_700_000_001));
    }

    #[test]
    fn statuses_become_the_kernel_clients_errnos() {
        assert_eq!(
            status_error(nfsstat3::NFS3ERR_NOENT).kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            status_error(nfsstat3::NFS3ERR_ACCES).kind(),
            io::ErrorKind::PermissionDenied
        );
        assert_eq!(
            status_error(nfsstat3::NFS3ERR_STALE).raw_os_error(),
            Some(116)
        );
    }
}
