//! The one builder of kernel NFS mount arguments, for the standard root, the
//! persistent store and litetree exports alike. No mount.nfs runs in the
//! initramfs, so the data string carries `addr=` and `proto=tcp` itself.

use std::net::IpAddr;

use serde::Serialize;

use super::spec::{Host, NfsExport};

/// The version asked for when neither the location nor its options pin one.
pub const DEFAULT_VERSION: &str = "4.2";

/// What mount(2) gets for one NFS export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NfsMount {
    /// The kernel's device name, `server:path`.
    pub source: String,
    pub fstype: &'static str,
    pub data: String,
    pub read_only: bool,
}

impl std::fmt::Display for NfsMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}{})",
            self.source,
            self.fstype,
            if self.read_only { "ro," } else { "rw," },
            self.data
        )
    }
}

/// Mount arguments for `export` on the server at `addr`; read-only unless
/// the options say `rw`.
pub fn nfs_mount(export: &NfsExport, addr: IpAddr) -> NfsMount {
    let options = &export.options;
    let read_only = !options.iter().any(|o| o == "rw");
    let mut data: Vec<String> = options
        .iter()
        .filter(|o| {
            *o != "ro"
                && *o != "rw"
                && !o.starts_with("addr=")
                && !o.starts_with("vers=")
                && !o.starts_with("nfsvers=")
        })
        .cloned()
        .collect();
    let vers = export
        .option("vers")
        .or_else(|| export.option("nfsvers"))
        .map(String::from)
        .unwrap_or_else(|| match export.version {
            Some(3) => "3".into(),
            _ => DEFAULT_VERSION.into(),
        });
    let fstype = if vers.starts_with('3') { "nfs" } else { "nfs4" };
    data.push(format!("vers={vers}"));
    data.push(format!("addr={addr}"));
    if !data.iter().any(|o| o.starts_with("proto=")) {
        // The kernel's NFS client here has no UDP (NFS_DISABLE_UDP_SUPPORT).
        data.push("proto=tcp".into());
    }
    if fstype == "nfs" && !data.iter().any(|o| o == "nolock" || o == "lock") {
        // No rpc.statd in the initramfs: v3 locking cannot work.
        data.push("nolock".into());
    }
    NfsMount {
        source: export.display_with(&Host::Addr(addr).to_string()),
        fstype,
        data: data.join(","),
        read_only,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::spec::parse_location;

    fn m(loc: &str) -> NfsMount {
        let e = parse_location(loc).unwrap();
        let Some(Host::Addr(a)) = e.server else {
            panic!("{loc}: these tests mount addresses")
        };
        nfs_mount(&e, a)
    }

    #[test]
    fn option_strings_carry_addr_proto_and_version() {
        let a = m("10.0.2.2:/r:ro,vers=3,actimeo=600");
        assert_eq!(
            (a.source.as_str(), a.fstype, a.data.as_str(), a.read_only),
            (
                "10.0.2.2:/r",
                "nfs",
                "actimeo=600,vers=3,addr=10.0.2.2,proto=tcp,nolock",
                true
            )
        );
        let b = m("nfs4:10.0.2.2:/r:rw");
        assert_eq!(
            (b.fstype, b.data.as_str(), b.read_only),
            ("nfs4", "vers=4.2,addr=10.0.2.2,proto=tcp", false)
        );
        assert_eq!(
            m("10.0.2.2:/r:nfsvers=4.1").data,
            "vers=4.1,addr=10.0.2.2,proto=tcp"
        );
        let v6 = m("[fd00::2]:/r:vers=3");
        assert_eq!(v6.source, "[fd00::2]:/r");
        assert!(v6.data.contains("addr=fd00::2"), "{}", v6.data);
    }
}
