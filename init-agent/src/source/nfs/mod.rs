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
//!
//! From the wire up: `transport` is the blocking TCP under nfs3_client's async
//! traits, `pool` the connections and the retries over them, `client` MOUNT
//! and the calls, `tree` the export as the sync engine's `Source`; `convert`
//! turns NFSv3's statuses and attributes into errnos and `Meta`. Here: where
//! to connect.

mod client;
mod convert;
mod pool;
mod transport;
mod tree;

use std::net::IpAddr;

pub use client::Nfs;
pub use transport::{Connector, Tcp};
pub use tree::{Dir, File};

use crate::source::spec::{self, NfsExport, SpecError};

/// Connections (requests in flight) when the caller names none.
pub const DEFAULT_INFLIGHT: usize = 8;

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

    /// An `nfs://` URL (the one parser); a server name is resolved as this
    /// machine does (/etc/hosts, /etc/resolv.conf).
    pub fn from_url(url: &str) -> Result<Endpoint, SpecError> {
        let export = spec::parse_url(url)?;
        let host = match &export.server {
            Some(h) => crate::net::dns::host_addr(h).map_err(|e| SpecError(e.to_string()))?,
            None => return Err(SpecError("nfs:// URL without a server".into())),
        };
        Ok(Endpoint::new(&export, host))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "nfs://{}", spec::Host::Addr(self.host))?;
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

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
}
