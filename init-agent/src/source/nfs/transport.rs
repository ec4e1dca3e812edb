//! The wire under nfs3_client: its I/O traits are async, but the agent has no
//! async runtime and wants none in PID 1. A blocking socket with timeouts
//! answers every poll at once, so `block_on` is a loop that polls once.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use nfs3_client::io::{AsyncRead, AsyncWrite};

/// A reply slower than this counts as a dropped connection.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a future to completion on this thread. The transport below blocks
/// (with timeouts) instead of returning Pending, and nothing else in the
/// client waits, so the first poll finishes it; no async runtime is needed.
pub(super) fn block_on<F: Future>(f: F) -> F::Output {
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

/// A connection to the NFS server for the pool; from a privileged port when
/// the agent may bind one, as the MOUNT connection was.
pub(super) fn connect(addr: SocketAddr, privileged: bool) -> io::Result<Tcp> {
    if privileged {
        privileged_connect(addr)
    } else {
        tcp(addr, None)
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
