//! The standard root read straight from an NFSv3 server, from userspace: the
//! MOUNT protocol for the root handle, then LOOKUP, READDIRPLUS (one call lists
//! a directory with every entry's attributes and handle), READLINK and READ.
//! No kernel NFS modules, and as many requests in flight as there are pooled
//! connections (`inflight`). Every call is idempotent, so a dropped connection
//! is re-opened and the call repeated, with backoff, before the sync fails.
//!
//! What NFSv3 cannot carry: xattrs and ACLs (`xattrs` answers None, so the
//! destination's are left alone; a manifest carries them), times before 1970
//! or after 2106 (unsigned 32-bit seconds). Ids are numeric (AUTH_SYS, root).

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use nfs3_client::io::{AsyncRead, AsyncWrite};
use nfs3_client::nfs3_types::nfs3::{
    self, diropargs3, fattr3, filename3, ftype3, nfs_fh3, nfsstat3, FSINFO3args, GETATTR3args,
    LOOKUP3args, Nfs3Option, Nfs3Result, READ3args, READDIRPLUS3args, READLINK3args,
};
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::{ConnectError, MountError, Nfs3Client, Nfs3ConnectionBuilder, RpcError};

use crate::source::spec::{self, NfsExport, SpecError};
use crate::source::tree::Source;
use crate::sync::meta::{Kind, Meta, Xattrs};
use crate::sys::fsops;

/// Connections (requests in flight) when the caller names none.
pub const DEFAULT_INFLIGHT: usize = 8;
/// A reply slower than this counts as a dropped connection.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per call, with a doubling pause between them (0.25 s up to 4 s):
/// about 20 s for a server to come back before the sync fails.
const ATTEMPTS: u32 = 8;
/// READ size ceiling; the server's preferred size (FSINFO) is used below it.
const MAX_READ: u32 = 1 << 20;

/// Where the userspace client connects: an address, the export's path and
/// the ports pinned by `port=` / `mountport=` (else the portmapper's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: IpAddr,
    pub port: Option<u16>,
    pub mount_port: Option<u16>,
    pub path: String,
}

impl Endpoint {
    /// `export` on the server at `host`.
    pub fn new(export: &NfsExport, host: IpAddr) -> Endpoint {
        Endpoint {
            host,
            port: export.port(),
            mount_port: export.mount_port(),
            path: export.path.clone(),
        }
    }

    /// An `nfs://` URL (the one parser), its server an address.
    pub fn from_url(url: &str) -> Result<Endpoint, SpecError> {
        let export = spec::parse_url(url)?;
        let host = match &export.server {
            Some(h) => h.addr()?,
            None => return Err(SpecError("nfs:// URL without a server".into())),
        };
        Ok(Endpoint::new(&export, host))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "nfs://{}", crate::source::spec::Host::Addr(self.host))?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.path)?;
        if let Some(p) = self.mount_port {
            write!(f, "?mountport={p}")?;
        }
        Ok(())
    }
}

/// Runs a future to completion on this thread. The transport below blocks
/// (with timeouts) instead of returning Pending, and nothing else in the
/// client waits, so the first poll finishes it; no async runtime is needed.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// A blocking TCP stream behind the client's async I/O traits.
pub struct Tcp(TcpStream);

impl AsyncRead for Tcp {
    async fn async_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }

    // The provided method loops forever on a closed connection (a read of 0).
    async fn async_read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_exact(buf)
    }
}

impl AsyncWrite for Tcp {
    async fn async_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    async fn async_write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
}

/// Opens TCP connections, from a given (privileged) local port when asked:
/// Linux's nfsd refuses others by default.
pub struct Connector;

impl nfs3_client::net::Connector for Connector {
    type Connection = Tcp;

    async fn connect(&self, addr: SocketAddr) -> io::Result<Tcp> {
        tcp(addr, None)
    }

    async fn connect_with_port(&self, addr: SocketAddr, local_port: u16) -> io::Result<Tcp> {
        tcp(addr, Some(local_port))
    }
}

fn tcp(addr: SocketAddr, local_port: Option<u16>) -> io::Result<Tcp> {
    let stream = match local_port {
        None => TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?,
        Some(port) => {
            use rustix::net::{AddressFamily, SocketFlags, SocketType};
            let (family, any) = match addr {
                SocketAddr::V4(_) => (AddressFamily::INET, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                SocketAddr::V6(_) => (AddressFamily::INET6, IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            };
            let fd: OwnedFd =
                rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
            // A blocking connect gives up after the send timeout (EINPROGRESS).
            rustix::net::sockopt::set_socket_timeout(
                &fd,
                rustix::net::sockopt::Timeout::Send,
                Some(CONNECT_TIMEOUT),
            )?;
            rustix::net::bind(&fd, &SocketAddr::new(any, port))?;
            match rustix::net::connect(&fd, &addr) {
                Ok(()) => {}
                Err(rustix::io::Errno::INPROGRESS) => return Err(io::ErrorKind::TimedOut.into()),
                Err(e) => return Err(e.into()),
            }
            TcpStream::from(fd)
        }
    };
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
    Ok(Tcp(stream))
}

/// An NFSv3 status as the errno the kernel client would report.
fn status_error(st: nfsstat3) -> io::Error {
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

fn result<T, E>(r: Nfs3Result<T, E>) -> io::Result<T> {
    match r {
        Nfs3Result::Ok(v) => Ok(v),
        Nfs3Result::Err((st, _)) => Err(status_error(st)),
    }
}

fn meta_of(a: &fattr3) -> Meta {
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

fn name_arg(name: &CStr) -> filename3<'_> {
    filename3(Opaque::borrowed(name.to_bytes()))
}

type Client = Nfs3Client<Tcp>;

struct Pool {
    idle: Vec<Client>,
    open: usize,
}

/// A mounted export, read through a pool of connections.
pub struct Nfs {
    what: String,
    addr: SocketAddr,
    credential: opaque_auth<'static>,
    privileged: bool,
    root: nfs_fh3,
    rsize: u32,
    limit: usize,
    pool: Mutex<Pool>,
    freed: Condvar,
    calls: AtomicU64,
    reconnects: AtomicU64,
    /// Directory handles by (parent handle, name), for the run: with a
    /// manifest, every changed file's path is looked up from the root.
    dirs: Mutex<HashMap<(Vec<u8>, CString), nfs_fh3>>,
}

/// A file handle, and where it was found: a handle the server calls stale
/// (the entry was replaced, or a server cache held an old one) is looked up
/// again by name once, as the kernel client revalidates.
struct Handle {
    fh: Mutex<nfs_fh3>,
    origin: Option<(nfs_fh3, CString)>,
}

impl Handle {
    fn new(fh: nfs_fh3, origin: Option<(nfs_fh3, CString)>) -> Handle {
        Handle {
            fh: Mutex::new(fh),
            origin,
        }
    }

    fn get(&self) -> nfs_fh3 {
        match self.fh.lock() {
            Ok(fh) => fh.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, fh: nfs_fh3) {
        if let Ok(mut h) = self.fh.lock() {
            *h = fh;
        }
    }

    fn same(&self) -> Handle {
        Handle::new(self.get(), self.origin.clone())
    }
}

/// A source directory: its handle, and what its listing said of each entry,
/// so that opening an entry costs no LOOKUP.
pub struct Dir {
    h: Handle,
    listed: Mutex<HashMap<CString, (nfs_fh3, Meta)>>,
}

impl Dir {
    fn new(h: Handle) -> Dir {
        Dir {
            h,
            listed: Mutex::new(HashMap::new()),
        }
    }
}

/// A regular file being read; sparse by the server's attributes (a manifest's
/// record of the file has no block count).
pub struct File {
    h: Handle,
    sparse: bool,
}

fn is_stale(e: &io::Error) -> bool {
    e.raw_os_error() == Some(116)
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
        let nfs = Nfs {
            what: format!("{}:{}", u.host, u.path),
            addr: SocketAddr::new(u.host, nfs_port),
            credential,
            privileged,
            root: root.clone(),
            rsize: MAX_READ,
            limit: if inflight == 0 {
                DEFAULT_INFLIGHT
            } else {
                inflight
            },
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 1,
            }),
            freed: Condvar::new(),
            calls: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            dirs: Mutex::new(HashMap::new()),
        };
        let fsinfo = block_on(client.fsinfo(&FSINFO3args {
            fsroot: root.clone(),
        }));
        nfs.checkin(Some(client));
        let rtpref = result(fsinfo.map_err(rpc_error)?)?.rtpref;
        let mut nfs = Nfs {
            rsize: rtpref.clamp(4096, MAX_READ),
            ..nfs
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
            nfs.limit
        );
        Ok(nfs)
    }

    pub fn root(&self) -> Dir {
        Dir::new(Handle::new(self.root.clone(), None))
    }

    /// `op` on the handle; once more on a freshly looked-up one if it is stale.
    fn with_handle<T>(&self, h: &Handle, op: impl Fn(&nfs_fh3) -> io::Result<T>) -> io::Result<T> {
        let fh = h.get();
        match op(&fh) {
            Err(e) if is_stale(&e) => {
                let Some((parent, name)) = &h.origin else {
                    return Err(e);
                };
                log::debug!(
                    "nfs {}: stale handle for {name:?}, looking it up again",
                    self.what
                );
                let (new, _) = self.lookup_fresh(parent, name)?;
                h.set(new.clone());
                op(&new)
            }
            r => r,
        }
    }

    /// NFS calls made so far (every attempt counts).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The calls made and the connections re-opened, for the log.
    pub fn log_stats(&self) {
        log::info!(
            "nfs {}: {} calls, {} reconnects",
            self.what,
            self.calls.load(Ordering::Relaxed),
            self.reconnects.load(Ordering::Relaxed)
        );
    }

    /// An idle connection, a new one while under the limit, or a wait for one.
    fn checkout(&self) -> io::Result<Client> {
        let mut pool = self
            .pool
            .lock()
            .map_err(|_| io::Error::other("pool poisoned"))?;
        loop {
            if let Some(c) = pool.idle.pop() {
                return Ok(c);
            }
            if pool.open < self.limit {
                pool.open += 1;
                drop(pool);
                return self.open_connection().inspect_err(|_| self.checkin(None));
            }
            pool = self
                .freed
                .wait(pool)
                .map_err(|_| io::Error::other("pool poisoned"))?;
        }
    }

    /// Returns a connection to the pool, or (None) gives up its slot.
    fn checkin(&self, c: Option<Client>) {
        if let Ok(mut pool) = self.pool.lock() {
            match c {
                Some(c) => pool.idle.push(c),
                None => pool.open -= 1,
            }
        }
        self.freed.notify_one();
    }

    fn open_connection(&self) -> io::Result<Client> {
        let io = if self.privileged {
            privileged_connect(self.addr)?
        } else {
            tcp(self.addr, None)?
        };
        Ok(Nfs3Client::new_with_auth(
            io,
            self.credential.clone(),
            opaque_auth::default(),
        ))
    }

    /// One call, repeated on a fresh connection while the connection is what
    /// failed; an answer from the server (an NFS or RPC error) is final.
    fn call<T>(
        &self,
        op: &str,
        f: impl AsyncFn(&mut Client) -> Result<T, RpcError>,
    ) -> io::Result<T> {
        let mut pause = Duration::from_millis(250);
        let mut attempt = 1;
        loop {
            let outcome = self.checkout().map_err(|e| (e, false)).and_then(|mut c| {
                self.calls.fetch_add(1, Ordering::Relaxed);
                match block_on(f(&mut c)) {
                    Ok(v) => {
                        self.checkin(Some(c));
                        Ok(v)
                    }
                    Err(e) if e.is_connection_reusable() => {
                        self.checkin(Some(c));
                        Err((rpc_error(e), true))
                    }
                    Err(e) => {
                        self.checkin(None);
                        Err((rpc_error(e), false))
                    }
                }
            });
            match outcome {
                Ok(v) => return Ok(v),
                Err((e, true)) => return Err(e),
                Err((e, false)) if attempt >= ATTEMPTS => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{op}: server {}: {e} ({ATTEMPTS} attempts)", self.addr),
                    ));
                }
                Err((e, false)) => {
                    log::warn!(
                        "nfs {}: {op}: {e}; reconnecting ({attempt}/{ATTEMPTS})",
                        self.addr
                    );
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(4));
                    attempt += 1;
                }
            }
        }
    }

    fn getattr(&self, fh: &nfs_fh3) -> io::Result<Meta> {
        let args = GETATTR3args { object: fh.clone() };
        let r = self.call("GETATTR", async |c| c.getattr(&args).await)?;
        Ok(meta_of(&result(r)?.obj_attributes))
    }

    /// The entry's handle (with where it came from) and attributes: from the
    /// directory's listing when it has one, else by LOOKUP.
    fn lookup(&self, dir: &Dir, name: &CStr) -> io::Result<(Handle, Meta)> {
        if let Some((fh, m)) = dir.listed.lock().ok().and_then(|l| l.get(name).cloned()) {
            return Ok((Handle::new(fh, Some((dir.h.get(), name.to_owned()))), m));
        }
        self.with_handle(&dir.h, |d| {
            let (fh, m) = self.lookup_fresh(d, name)?;
            Ok((Handle::new(fh, Some((d.clone(), name.to_owned()))), m))
        })
    }

    fn lookup_fresh(&self, dir: &nfs_fh3, name: &CStr) -> io::Result<(nfs_fh3, Meta)> {
        let args = LOOKUP3args {
            what: diropargs3 {
                dir: dir.clone(),
                name: name_arg(name),
            },
        };
        let ok = result(self.call("LOOKUP", async |c| c.lookup(&args).await)?)?;
        let meta = match ok.obj_attributes {
            Nfs3Option::Some(a) => meta_of(&a),
            Nfs3Option::None => self.getattr(&ok.object)?,
        };
        Ok((ok.object, meta))
    }

    /// READDIRPLUS from the first cookie to the end; a listing the server
    /// says went stale (the directory changed under it) starts over.
    fn readdirplus(&self, dir: &nfs_fh3) -> io::Result<Vec<(CString, nfs_fh3, Meta)>> {
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
                let ok = match self.call("READDIRPLUS", async |c| c.readdirplus(&args).await)? {
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

    fn file_handle(&self, dir: &Dir, name: &CStr, want: Kind) -> io::Result<(Handle, Meta)> {
        let (h, m) = self.lookup(dir, name)?;
        if m.kind != want {
            return Err(match want {
                Kind::Dir => io::Error::from_raw_os_error(20),
                _ => io::Error::other("changed type while being read"),
            });
        }
        Ok((h, m))
    }
}

/// Connects from a free port in 600..1024 (the range the kernel client uses
/// below the portmapper's), as the server may insist on one.
fn privileged_connect(addr: SocketAddr) -> io::Result<Tcp> {
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for port in (600..1024).rev() {
        match tcp(addr, Some(port)) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            r => return r,
        }
    }
    Err(last)
}

fn rpc_error(e: RpcError) -> io::Error {
    match e {
        RpcError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

fn connect_error(e: ConnectError) -> io::Error {
    match e {
        ConnectError::Io(e) => e,
        ConnectError::Mount(MountError::Rpc(e)) => rpc_error(e),
        other => io::Error::other(other.to_string()),
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
        let mut pause = Duration::from_millis(250);
        let mut attempt = 1;
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
                Err(e) if !e.is_connection_reusable() && attempt < attempts => {
                    log::warn!(
                        "nfs {}: mount {path}: {e}; retrying ({attempt}/{attempts})",
                        u.host
                    );
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(4));
                    attempt += 1;
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

impl Source for Nfs {
    type Dir = Dir;
    type File = File;

    fn open_dir(&self, dir: &Dir, name: &CStr) -> io::Result<Dir> {
        if name == c"." {
            return Ok(Dir::new(dir.h.same()));
        }
        let parent = dir.h.get();
        let key = (parent.data.to_vec(), name.to_owned());
        let known = self.dirs.lock().ok().and_then(|d| d.get(&key).cloned());
        let h = match known {
            Some(fh) => Handle::new(fh, Some((parent, name.to_owned()))),
            None => {
                let (h, _) = self.file_handle(dir, name, Kind::Dir)?;
                if let Ok(mut d) = self.dirs.lock() {
                    d.insert(key, h.get());
                }
                h
            }
        };
        Ok(Dir::new(h))
    }

    fn list(&self, dir: &Dir) -> io::Result<Vec<(CString, Meta)>> {
        let mut entries = self.with_handle(&dir.h, |fh| self.readdirplus(fh))?;
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut listed = dir
            .listed
            .lock()
            .map_err(|_| io::Error::other("listing poisoned"))?;
        Ok(entries
            .into_iter()
            .map(|(name, fh, m)| {
                listed.insert(name.clone(), (fh, m.clone()));
                (name, m)
            })
            .collect())
    }

    fn lstat(&self, dir: &Dir, name: &CStr) -> io::Result<Meta> {
        if name == c"." {
            return self.with_handle(&dir.h, |fh| self.getattr(fh));
        }
        Ok(self.lookup(dir, name)?.1)
    }

    fn readlink(&self, dir: &Dir, name: &CStr) -> io::Result<CString> {
        let (h, _) = self.file_handle(dir, name, Kind::Symlink)?;
        self.with_handle(&h, |fh| {
            let args = READLINK3args {
                symlink: fh.clone(),
            };
            let ok = result(self.call("READLINK", async |c| c.readlink(&args).await)?)?;
            CString::new(ok.data.0.to_vec()).map_err(io::Error::other)
        })
    }

    fn xattrs(&self, _dir: &Dir, _name: &CStr) -> io::Result<Option<Xattrs>> {
        Ok(None)
    }

    fn open_file(&self, dir: &Dir, name: &CStr) -> io::Result<(File, Meta)> {
        let (h, m) = self.file_handle(dir, name, Kind::File)?;
        let sparse = m.looks_sparse();
        Ok((File { h, sparse }, m))
    }

    fn read_at(&self, file: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let count = u32::try_from(buf.len()).unwrap_or(u32::MAX).min(self.rsize);
        let ok = self.with_handle(&file.h, |fh| {
            let args = READ3args {
                file: fh.clone(),
                offset: off,
                count,
            };
            result(self.call("READ", async |c| c.read(&args).await)?)
        })?;
        let data = ok.data.as_ref();
        if data.len() > buf.len() {
            return Err(io::Error::other("READ returned more than asked"));
        }
        buf[..data.len()].copy_from_slice(data);
        Ok(data.len())
    }

    fn copy_to(
        &self,
        file: &File,
        meta: &Meta,
        dst: &OwnedFd,
        buf: &mut Vec<u8>,
    ) -> io::Result<u64> {
        // NFSv3 cannot say where the holes are: all-zero blocks of a file that
        // uses fewer blocks than its size are left as holes.
        let chunk = u64::from(self.rsize);
        if meta.size <= 2 * chunk {
            return fsops::copy_by_reads(
                &mut |b, off| self.read_at(file, b, off),
                dst,
                meta.size,
                file.sparse,
                self.rsize as usize,
                buf,
            );
        }
        // A big file: its READs in flight together, one thread per pooled
        // connection taking the next chunk, each written where it belongs.
        // Threads of its own, not the walk's pool: a pool worker waiting here
        // would pick up the walk's other work in the middle of this copy.
        let chunks = meta.size.div_ceil(chunk);
        let next = AtomicU64::new(0);
        let written = AtomicU64::new(0);
        let readers = (self.limit as u64).min(chunks);
        let worker = || -> io::Result<()> {
            let mut b = vec![0u8; self.rsize as usize];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= chunks {
                    return Ok(());
                }
                let off = i * chunk;
                let want = (meta.size - off).min(chunk) as usize;
                let copied = crate::source::tree::read_full(self, file, &mut b[..want], off)
                    .and_then(|n| fsops::write_data_at(dst, &b[..n], off, file.sparse));
                match copied {
                    Ok(w) => written.fetch_add(w, Ordering::Relaxed),
                    Err(e) => {
                        // The others stop at their next chunk.
                        next.store(chunks, Ordering::Relaxed);
                        return Err(e);
                    }
                };
            }
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..readers).map(|_| s.spawn(worker)).collect();
            handles.into_iter().try_for_each(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a reader thread panicked")))
            })
        })?;
        rustix::fs::ftruncate(dst, meta.size)?;
        Ok(written.into_inner())
    }

    fn workers(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_ports_and_path() {
        let u = Endpoint::from_url("nfs://10.0.2.2/export/root").unwrap();
        assert_eq!(u.host, IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!((u.port, u.mount_port), (None, None));
        assert_eq!(u.path, "/export/root");
        let u = Endpoint::from_url("nfs://127.0.0.1:2050/export/?mountport=20048").unwrap();
        assert_eq!(u.to_string(), "nfs://127.0.0.1:2050/export?mountport=20048");
        assert_eq!((u.port, u.mount_port), (Some(2050), Some(20048)));
        assert_eq!(u.path, "/export");
        let u = Endpoint::from_url("nfs://[fd00::1]:2049").unwrap();
        assert_eq!(u.host, "fd00::1".parse::<IpAddr>().unwrap());
        assert_eq!(u.path, "/");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, why) in [
            ("http://x/", "nfs://"),
            ("nfs://master/export", "host name"),
            ("nfs://10.0.0.1:0/x", "port"),
            ("nfs://10.0.0.1:99999/x", "port"),
            ("nfs://10.0.0.1/x?nfsvers=4", "unknown URL option"),
            ("nfs://10.0.0.1/x/../etc", ".."),
            ("nfs://[fd00::1/x", "unclosed"),
        ] {
            let e = Endpoint::from_url(url).unwrap_err().0;
            assert!(e.contains(why), "{url}: {e}");
        }
    }

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
