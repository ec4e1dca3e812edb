//! Mounting the export and the calls that read it by handle. MOUNT gives the
//! root handle; servers often export only a prefix of the path asked for, so
//! the longest exported prefix is mounted and the rest looked up. GETATTR,
//! LOOKUP and READDIRPLUS answer in `Meta`, which is all the tree above needs.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;

use nfs3_client::nfs3_types::nfs3::{
    self, diropargs3, nfs_fh3, nfsstat3, FSINFO3args, GETATTR3args, LOOKUP3args, Nfs3Option,
    Nfs3Result, READDIRPLUS3args,
};
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::{ConnectError, MountError, Nfs3ConnectionBuilder};

use super::convert::{connect_error, meta_of, name_arg, result, rpc_error, status_error};
use super::pool::{Backoff, Pool, ATTEMPTS};
use super::transport::{block_on, Connector, Tcp};
use super::{Endpoint, DEFAULT_INFLIGHT};
use crate::sync::meta::{Kind, Meta};

/// READ size ceiling; the server's preferred size (FSINFO) is used below it.
const MAX_READ: u32 = 1 << 20;

/// A mounted export, read through a pool of connections.
pub struct Nfs {
    /// `host:path`, for the log.
    pub(super) what: String,
    pub(super) root: nfs_fh3,
    /// Bytes per READ.
    pub(super) rsize: u32,
    pub(super) pool: Pool,
    /// Directory handles by (parent handle, name), for the run: with a
    /// manifest, every changed file's path is looked up from the root.
    pub(super) dirs: Mutex<HashMap<(Vec<u8>, CString), nfs_fh3>>,
}

impl Nfs {
    /// Mounts the URL's export (the longest prefix of its path the server
    /// exports; the rest is looked up) with `inflight` connections at most.
    pub fn connect(at: &Endpoint, inflight: usize) -> io::Result<Nfs> {
        Self::connect_with(at, inflight, ATTEMPTS)
    }

    /// One attempt at mounting, no retries: whether the server serves the
    /// URL over NFSv3 right now (the boot's own loop retries).
    pub fn probe(at: &Endpoint) -> io::Result<()> {
        Self::connect_with(at, 1, 1).map(drop)
    }

    fn connect_with(u: &Endpoint, inflight: usize, attempts: u32) -> io::Result<Nfs> {
        let machine = rustix::system::uname().nodename().to_bytes().to_vec();
        let credential = opaque_auth::auth_unix(&auth_unix {
            stamp: std::process::id(),
            machinename: Opaque::owned(machine),
            uid: 0,
            gid: 0,
            gids: vec![],
        });
        let privileged = rustix::process::geteuid().is_root();
        let (conn, rest) = mount_longest(u, &credential, privileged, attempts)?;
        let nfs_port = conn.nfs3_port;
        let mut root = conn.root_nfs_fh3();
        let mut client = conn.into_nfs3_client();
        let fsinfo = block_on(client.fsinfo(&FSINFO3args {
            fsroot: root.clone(),
        }));
        let rtpref = result(fsinfo.map_err(rpc_error)?)?.rtpref;
        let limit = if inflight == 0 {
            DEFAULT_INFLIGHT
        } else {
            inflight
        };
        let addr = SocketAddr::new(u.host, nfs_port);
        let mut nfs = Nfs {
            what: format!("{}:{}", u.host, u.path),
            root: root.clone(),
            rsize: rtpref.clamp(4096, MAX_READ),
            pool: Pool::new(addr, credential, privileged, limit, client),
            dirs: Mutex::new(HashMap::new()),
        };
        for part in rest.split('/').filter(|p| !p.is_empty()) {
            let name = CString::new(part).map_err(io::Error::other)?;
            let (fh, m) = nfs.lookup_fresh(&root, &name)?;
            if m.kind != Kind::Dir {
                return Err(io::Error::from_raw_os_error(20));
            }
            root = fh;
        }
        nfs.root = root;
        log::info!(
            "nfs {}: mounted from userspace (NFSv3, port {nfs_port}, {} KiB reads, {} in flight)",
            nfs.what,
            nfs.rsize >> 10,
            nfs.pool.limit()
        );
        Ok(nfs)
    }

    /// NFS calls made so far (every attempt counts).
    pub fn calls(&self) -> u64 {
        self.pool.calls()
    }

    /// The calls made and the connections re-opened, for the log.
    pub fn log_stats(&self) {
        log::info!(
            "nfs {}: {} calls, {} reconnects",
            self.what,
            self.pool.calls(),
            self.pool.reconnects()
        );
    }

    pub(super) fn getattr(&self, fh: &nfs_fh3) -> io::Result<Meta> {
        let args = GETATTR3args { object: fh.clone() };
        let r = self
            .pool
            .call("GETATTR", async |c| c.getattr(&args).await)?;
        Ok(meta_of(&result(r)?.obj_attributes))
    }

    /// LOOKUP: the handle and attributes of `name` in the directory `dir`.
    pub(super) fn lookup_fresh(&self, dir: &nfs_fh3, name: &CStr) -> io::Result<(nfs_fh3, Meta)> {
        let args = LOOKUP3args {
            what: diropargs3 {
                dir: dir.clone(),
                name: name_arg(name),
            },
        };
        let ok = result(self.pool.call("LOOKUP", async |c| c.lookup(&args).await)?)?;
        let meta = match ok.obj_attributes {
            Nfs3Option::Some(a) => meta_of(&a),
            Nfs3Option::None => self.getattr(&ok.object)?,
        };
        Ok((ok.object, meta))
    }

    /// READDIRPLUS from the first cookie to the end; a listing the server
    /// says went stale (the directory changed under it) starts over.
    pub(super) fn readdirplus(&self, dir: &nfs_fh3) -> io::Result<Vec<(CString, nfs_fh3, Meta)>> {
        let mut restarts = 0;
        'listing: loop {
            let mut out = Vec::new();
            let (mut cookie, mut verf) = (0, nfs3::cookieverf3::default());
            loop {
                let args = READDIRPLUS3args {
                    dir: dir.clone(),
                    cookie,
                    cookieverf: verf,
                    dircount: 64 * 1024,
                    maxcount: MAX_READ,
                };
                let ok = match self
                    .pool
                    .call("READDIRPLUS", async |c| c.readdirplus(&args).await)?
                {
                    Nfs3Result::Ok(ok) => ok,
                    Nfs3Result::Err((
                        nfsstat3::NFS3ERR_BAD_COOKIE | nfsstat3::NFS3ERR_NOT_SYNC,
                        _,
                    )) if restarts < 3 => {
                        restarts += 1;
                        continue 'listing;
                    }
                    Nfs3Result::Err((st, _)) => return Err(status_error(st)),
                };
                verf = ok.cookieverf;
                let entries = ok.reply.entries.0;
                let empty = entries.is_empty();
                for e in entries {
                    cookie = e.cookie;
                    let name = e.name.0.to_vec();
                    if name == b"." || name == b".." {
                        continue;
                    }
                    let name = CString::new(name).map_err(io::Error::other)?;
                    let found = match (e.name_handle, e.name_attributes) {
                        (Nfs3Option::Some(fh), Nfs3Option::Some(a)) => Some((fh, meta_of(&a))),
                        // The server left them out: ask for this one.
                        _ => match self.lookup_fresh(dir, &name) {
                            Ok(x) => Some(x),
                            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                            Err(e) => return Err(e),
                        },
                    };
                    if let Some((fh, m)) = found {
                        out.push((name, fh, m));
                    }
                }
                if ok.reply.eof {
                    return Ok(out);
                }
                if empty {
                    return Err(io::Error::other(
                        "READDIRPLUS returned nothing before the end",
                    ));
                }
            }
        }
    }
}

type Mounted = nfs3_client::Nfs3Connection<Tcp>;

/// MOUNT the path, else its parents in turn (the server may export only a
/// prefix of it); returns the connection and the part left to look up.
/// Connection failures are retried like any other call.
fn mount_longest(
    u: &Endpoint,
    credential: &opaque_auth<'static>,
    privileged: bool,
    attempts: u32,
) -> io::Result<(Mounted, String)> {
    let mut refused = None;
    let mut path = u.path.as_str();
    loop {
        let mut backoff = Backoff::new(attempts);
        let r = loop {
            let mut b = Nfs3ConnectionBuilder::new(Connector, u.host.to_string(), path)
                .credential(credential.clone())
                .connect_from_privileged_port(privileged);
            if let Some(p) = u.port {
                b = b.nfs3_port(p);
            }
            if let Some(p) = u.mount_port {
                b = b.mount_port(p);
            }
            match block_on(b.mount()) {
                Err(e) if !e.is_connection_reusable() && !backoff.exhausted() => {
                    log::warn!("nfs {}: mount {path}: {e}; retrying ({backoff})", u.host);
                    backoff.wait();
                }
                r => break r,
            }
        };
        match r {
            Ok(conn) => {
                let rest = u.path[path.len()..].to_string();
                return Ok((conn, rest));
            }
            Err(ConnectError::Mount(MountError::Denied(st))) => {
                refused.get_or_insert(format!("the server refused to mount {path}: {st}"));
                match path.rfind('/') {
                    Some(0) if path.len() > 1 => path = "/",
                    Some(i) if i > 0 => path = &path[..i],
                    _ => return Err(io::Error::other(refused.unwrap_or_default())),
                }
            }
            Err(e) => return Err(connect_error(e)),
        }
    }
}
