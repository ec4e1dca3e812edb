//! The connections requests go out on: one per request in flight, opened as
//! the walk's threads ask for them, up to the limit. A connection that fails
//! is dropped and the call repeated on a fresh one after a pause, since every
//! call the client makes is idempotent; the server's own answer, even an
//! error, is final.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use nfs3_client::nfs3_types::rpc::opaque_auth;
use nfs3_client::{Nfs3Client, RpcError};

use super::convert::rpc_error;
use super::transport::{self, block_on, Tcp};

/// Attempts per call, with a doubling pause between them (0.25 s up to 4 s):
/// about 20 s for a server to come back before the sync fails.
pub(super) const ATTEMPTS: u32 = 8;

pub(super) type Client = Nfs3Client<Tcp>;

/// Counts the attempts at something that needs the server, and pauses before
/// the next: doubling from 0.25 s up to 4 s. Shows as `attempt/attempts`.
pub(super) struct Backoff {
    attempt: u32,
    attempts: u32,
    pause: Duration,
}

impl Backoff {
    pub(super) fn new(attempts: u32) -> Backoff {
        Backoff {
            attempt: 1,
            attempts,
            pause: Duration::from_millis(250),
        }
    }

    /// Whether the attempt just made was the last one allowed.
    pub(super) fn exhausted(&self) -> bool {
        self.attempt >= self.attempts
    }

    /// Sleeps before the next attempt.
    pub(super) fn wait(&mut self) {
        std::thread::sleep(self.pause);
        self.pause = (self.pause * 2).min(Duration::from_secs(4));
        self.attempt += 1;
    }
}

impl std::fmt::Display for Backoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.attempt, self.attempts)
    }
}

struct Slots {
    idle: Vec<Client>,
    open: usize,
}

/// Connections to the server's NFS port, `limit` at most, all with the
/// credential the export was mounted with.
pub(super) struct Pool {
    addr: SocketAddr,
    credential: opaque_auth<'static>,
    privileged: bool,
    limit: usize,
    slots: Mutex<Slots>,
    freed: Condvar,
    calls: AtomicU64,
    reconnects: AtomicU64,
}

impl Pool {
    /// A pool whose first connection is `first` (the one MOUNT opened).
    pub(super) fn new(
        addr: SocketAddr,
        credential: opaque_auth<'static>,
        privileged: bool,
        limit: usize,
        first: Client,
    ) -> Pool {
        Pool {
            addr,
            credential,
            privileged,
            limit,
            slots: Mutex::new(Slots {
                idle: vec![first],
                open: 1,
            }),
            freed: Condvar::new(),
            calls: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        }
    }

    /// Requests in flight at most.
    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    /// Calls made so far (every attempt counts).
    pub(super) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Connections re-opened after one failed.
    pub(super) fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// An idle connection, a new one while under the limit, or a wait for one.
    fn checkout(&self) -> io::Result<Client> {
        let mut slots = self
            .slots
            .lock()
            .map_err(|_| io::Error::other("pool poisoned"))?;
        loop {
            if let Some(c) = slots.idle.pop() {
                return Ok(c);
            }
            if slots.open < self.limit {
                slots.open += 1;
                drop(slots);
                return self.open_connection().inspect_err(|_| self.checkin(None));
            }
            slots = self
                .freed
                .wait(slots)
                .map_err(|_| io::Error::other("pool poisoned"))?;
        }
    }

    /// Returns a connection to the pool, or (None) gives up its slot.
    fn checkin(&self, c: Option<Client>) {
        if let Ok(mut slots) = self.slots.lock() {
            match c {
                Some(c) => slots.idle.push(c),
                None => slots.open -= 1,
            }
        }
        self.freed.notify_one();
    }

    fn open_connection(&self) -> io::Result<Client> {
        let io = transport::connect(self.addr, self.privileged)?;
        Ok(Nfs3Client::new_with_auth(
            io,
            self.credential.clone(),
            opaque_auth::default(),
        ))
    }

    /// One call, repeated on a fresh connection while the connection is what
    /// failed; an answer from the server (an NFS or RPC error) is final.
    pub(super) fn call<T>(
        &self,
        op: &str,
        f: impl AsyncFn(&mut Client) -> Result<T, RpcError>,
    ) -> io::Result<T> {
        let mut backoff = Backoff::new(ATTEMPTS);
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
                Err((e, false)) if backoff.exhausted() => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{op}: server {}: {e} ({ATTEMPTS} attempts)", self.addr),
                    ));
                }
                Err((e, false)) => {
                    log::warn!("nfs {}: {op}: {e}; reconnecting ({backoff})", self.addr);
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    backoff.wait();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_gets_one_attempt_and_a_call_more() {
        let probe = Backoff::new(1);
        assert!(probe.exhausted());
        assert_eq!(probe.to_string(), "1/1");
        let call = Backoff::new(ATTEMPTS);
        assert!(!call.exhausted());
        assert_eq!(call.to_string(), format!("1/{ATTEMPTS}"));
    }
}
