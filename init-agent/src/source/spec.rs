//! NFS locations: the one parser of every way a kernel command line, a DHCP
//! root-path, the configuration or a statelite table names an NFS export,
//! and the types it yields. Nothing downstream splits a `server:path` string.
//!
//! One grammar, dracut's (dracut.cmdline(7), modules.d/95nfs/nfs-lib.sh):
//! `[nfs:|nfs4:][<server>:]<path>[:<options>]`, or `nfs://<server>[:<port>]<path>`.
//! - the server ends at the first `:/` (an IPv6 address goes in brackets);
//! - the path ends at the next `:`; what follows are mount options, so a path
//!   cannot hold a `:` (nor a `,`: the kernel's `<path>,<options>` form);
//! - a bare `<path>` names no server: the standard root's, `ip=`'s or DHCP's.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

fn err<T>(s: impl Into<String>) -> Result<T, SpecError> {
    Err(SpecError(s.into()))
}

/// A server: an address, or a name the boot resolves (`[hosts]`, DNS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Addr(IpAddr),
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Addr(IpAddr::V6(a)) => write!(f, "[{a}]"),
            Host::Addr(a) => write!(f, "{a}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

impl Serialize for Host {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A host name (RFC 1123 labels).
pub fn parse_hostname(s: &str) -> Result<String, SpecError> {
    let ok = s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(s.to_string())
    } else {
        err(format!("`{s}` is not a host name"))
    }
}

/// A host name, an IPv4 address, or a bracketed IPv6 address.
pub fn parse_host(s: &str) -> Result<Host, SpecError> {
    if let Some(v6) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .map(|a| Host::Addr(a.into()))
            .or_else(|_| err(format!("`{s}` is not an IPv6 address")));
    }
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Ok(Host::Addr(a.into()));
    }
    parse_hostname(s)
        .map(Host::Name)
        .or_else(|_| err(format!("`{s}` is not a server name or address")))
}

/// An NFS export and how to mount it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NfsExport {
    /// `None`: the standard root's server, `ip=`'s, or DHCP's.
    pub server: Option<Host>,
    /// Exported path; may hold `%s` (the host name, dracut) until planned.
    pub path: String,
    /// 3 or 4; `None` lets the mount negotiate.
    pub version: Option<u8>,
    /// Mount options as given (`vers=`, `port=` among them).
    pub options: Vec<String>,
}

impl NfsExport {
    /// The value of mount option `key=value`, if given.
    pub fn option(&self, key: &str) -> Option<&str> {
        option(&self.options, key)
    }

    fn port_option(&self, key: &str) -> Option<u16> {
        self.option(key).and_then(|p| p.parse().ok())
    }

    /// The NFS service's port (`port=`), if pinned.
    pub fn port(&self) -> Option<u16> {
        self.port_option("port")
    }

    /// The MOUNT service's port (`mountport=`), if pinned.
    pub fn mount_port(&self) -> Option<u16> {
        self.port_option("mountport")
    }

    /// `server:path` for people (and the kernel's device name).
    pub fn display_with(&self, server: &str) -> String {
        format!("{server}:{}", self.path)
    }
}

impl fmt::Display for NfsExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.server {
            Some(s) => write!(f, "{s}:{}", self.path),
            None => write!(f, "{}", self.path),
        }
    }
}

/// The value of option `key=value` in a list, if given.
pub fn option<'o>(options: &'o [String], key: &str) -> Option<&'o str> {
    options
        .iter()
        .find_map(|o| o.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

/// NFS mount options: comma separated, empty items dropped.
pub fn parse_options(s: &str) -> Result<Vec<String>, SpecError> {
    let opts: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = opts.iter().find(|o| o.contains(char::is_whitespace)) {
        return err(format!("option `{bad}` contains whitespace"));
    }
    for key in ["port", "mountport"] {
        if let Some(p) = option(&opts, key) {
            port(p)?;
        }
    }
    Ok(opts)
}

/// The NFS version an option list pins (`vers=`/`nfsvers=`), if any.
pub fn version_from_options(opts: &[String]) -> Result<Option<u8>, SpecError> {
    let mut version = None;
    for o in opts {
        if let Some(v) = o
            .strip_prefix("vers=")
            .or_else(|| o.strip_prefix("nfsvers="))
        {
            version = Some(match v {
                "3" => 3,
                "4" | "4.0" | "4.1" | "4.2" => 4,
                _ => {
                    return err(format!(
                        "unsupported NFS version `{v}` (3, 4, 4.0, 4.1, 4.2)"
                    ))
                }
            });
        }
    }
    Ok(version)
}

fn port(p: &str) -> Result<u16, SpecError> {
    p.parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .map_or_else(|| err(format!("`{p}` is not a port")), Ok)
}

fn export(
    server: Option<&str>,
    path: &str,
    options: Vec<String>,
    scheme_version: Option<u8>,
) -> Result<NfsExport, SpecError> {
    if !path.starts_with('/') {
        return err(format!("NFS path `{path}` does not start with `/`"));
    }
    if path.split('/').any(|c| c == "..") {
        return err(format!("NFS path `{path}`: `..` is not allowed"));
    }
    if path.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return err(format!("NFS path `{path}` contains whitespace"));
    }
    let server = server.map(parse_host).transpose()?;
    let version = match (scheme_version, version_from_options(&options)?) {
        (Some(4), Some(3)) => return err("`nfs4:` conflicts with vers=3"),
        (s, o) => o.or(s),
    };
    Ok(NfsExport {
        server,
        path: path.to_string(),
        version,
        options,
    })
}

/// `[nfs:|nfs4:][<server>:]<path>[:<options>]`, `<path>,<options>`, or an
/// `nfs://` URL: every form of the module documentation.
pub fn parse_location(s: &str) -> Result<NfsExport, SpecError> {
    if s.starts_with("nfs://") {
        return parse_url(s);
    }
    let (scheme_version, rest) = if let Some(r) = s.strip_prefix("nfs4:") {
        (Some(4), r)
    } else if let Some(r) = s.strip_prefix("nfs:") {
        (None, r)
    } else {
        (None, s)
    };
    let (server, after) = match rest.find(":/") {
        Some(i) if !rest.starts_with('/') => (Some(&rest[..i]), &rest[i + 1..]),
        _ => (None, rest),
    };
    let (path, mut options) = match after.split_once(':') {
        Some((p, o)) => (p, parse_options(o)?),
        None => (after, Vec::new()),
    };
    let path = match path.split_once(',') {
        Some((p, o)) => {
            let mut legacy = parse_options(o)?;
            legacy.append(&mut options);
            options = legacy;
            p
        }
        None => path,
    };
    export(server, path, options, scheme_version)
}

/// A location that must name its server (xCAT `NFSROOT=`).
pub fn parse_server_location(s: &str) -> Result<NfsExport, SpecError> {
    let e = parse_location(s)?;
    if e.server.is_none() {
        return err("expected <server>:<path>");
    }
    Ok(e)
}

/// RFC 2224 `nfs://<server>[:<port>]/<path>[?mountport=<n>]`; the ports
/// become the `port=` and `mountport=` options.
pub fn parse_url(s: &str) -> Result<NfsExport, SpecError> {
    let Some(rest) = s.strip_prefix("nfs://") else {
        return err(format!("`{s}` is not an nfs:// URL"));
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let (host, port_text) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| SpecError("unclosed [ in the server".into()))?;
            (&authority[..h.len() + 2], after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return err("nfs:// URL without a server");
    }
    let mut options = Vec::new();
    if let Some(p) = port_text {
        options.push(format!("port={}", port(p)?));
    }
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        match kv.split_once('=') {
            Some(("mountport", p)) => options.push(format!("mountport={}", port(p)?)),
            _ => return err(format!("unknown URL option `{kv}` (known: mountport=N)")),
        }
    }
    let path = match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    export(Some(host), path, options, None)
}

/// `STATEMNT=` and the statelite table's column: empty means no store.
pub fn parse_store(s: &str) -> Result<Option<NfsExport>, SpecError> {
    if s.is_empty() {
        return Ok(None);
    }
    parse_location(s).map(Some)
}

#[cfg(test)]
mod tests;
