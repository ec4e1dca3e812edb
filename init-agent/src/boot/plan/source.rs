//! The standard root and the persistent store in the plan, and what a DHCP
//! answer makes of them: [`resolve_source`] is what the boot runs with the
//! lease and `explain --dhcp` with the answer it is given.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::{NetPlan, Target, SOURCE_MOUNT};
use crate::cmdline::{BootParams, Mode, NetMethod, NfsClient, RootSpec};
use crate::config::{Config, Node};
use crate::source::spec::{self, Host, NfsExport, SpecError};

/// What a DHCP server told the node, or what `explain --dhcp` assumes it tells.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DhcpAnswer {
    /// Option 17, in any form dracut.cmdline(7) documents.
    pub root_path: Option<String>,
    pub next_server: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    /// Option 6: DNS servers.
    pub dns: Vec<Ipv4Addr>,
    /// Options 119 / 15: search domains.
    pub search: Vec<String>,
}

/// The NFS standard root.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourcePlan {
    /// First server to try; `None` = DHCP root-path, next-server, server id.
    pub server: Option<Host>,
    /// All servers, in the order they are tried.
    pub servers: Vec<Host>,
    /// Exported path; `None` = DHCP option 17 (root-path).
    pub path: Option<String>,
    /// 3 or 4; `None` = the mount's default.
    pub version: Option<u8>,
    pub options: Vec<String>,
    /// Where it is mounted (the kernel client).
    pub mountpoint: String,
    pub client: NfsClient,
    /// The userspace client was chosen by default, not asked for: a server
    /// that serves NFS but no NFSv3 MOUNT (v4 only) is mounted by the kernel
    /// client instead.
    pub kernel_fallback: bool,
}

/// The standard root once DHCP's part is known: the servers to try, in
/// order, and the export (its server left to the one that answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceTarget {
    /// Names are resolved as each is tried.
    pub servers: Vec<Host>,
    pub export: NfsExport,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("DHCP root-path `{value}`: {reason}")]
    RootPath { value: String, reason: SpecError },
    #[error("no standard root: neither root= nor DHCP root-path names one")]
    NoPath,
    #[error("no NFS server: neither root=, DHCP root-path nor DHCP next-server names one")]
    NoServer,
}

/// The standard root the boot will reach, given what DHCP said. The boot
/// calls this with the lease; `explain --dhcp` with the assumed answer.
pub fn resolve_source(
    s: &SourcePlan,
    dhcp: &DhcpAnswer,
    hostname: Option<&str>,
) -> Result<SourceTarget, SourceError> {
    let from_dhcp = match &dhcp.root_path {
        Some(rp) => Some(
            spec::parse_location(rp).map_err(|reason| SourceError::RootPath {
                value: rp.clone(),
                reason,
            })?,
        ),
        None => None,
    };
    let mut hosts: Vec<Host> = s.servers.clone();
    if hosts.is_empty() {
        hosts.extend(
            from_dhcp
                .as_ref()
                .and_then(|e| e.server.clone())
                .or(dhcp.next_server.map(|a| Host::Addr(a.into())))
                .or(dhcp.server_id.map(|a| Host::Addr(a.into()))),
        );
    }
    let servers = hosts;
    if servers.is_empty() {
        return Err(SourceError::NoServer);
    }
    let (path, options, version) = match (&s.path, from_dhcp) {
        (Some(p), _) => (p.clone(), s.options.clone(), s.version),
        (None, Some(d)) => (
            d.path.clone(),
            merge_options(&s.options, &d.options),
            s.version.or(d.version),
        ),
        (None, None) => return Err(SourceError::NoPath),
    };
    let path = match hostname {
        Some(h) => path.replace("%s", h),
        None => path,
    };
    Ok(SourceTarget {
        servers,
        export: NfsExport {
            server: None,
            path,
            version,
            options,
        },
    })
}

/// Merges option lists: on the same option name, the earlier list wins.
pub(super) fn merge_options(first: &[String], then: &[String]) -> Vec<String> {
    let name = |o: &String| o.split('=').next().unwrap_or_default().to_string();
    let mut out = first.to_vec();
    for o in then {
        if !out.iter().any(|x| name(x) == name(o)) {
            out.push(o.clone());
        }
    }
    out
}

pub(super) fn source_plan(
    p: &BootParams,
    c: &Config,
    mode: Mode,
    t: Target,
    net: &NetPlan,
    hostname: Option<&str>,
    errors: &mut Vec<String>,
) -> SourcePlan {
    let from_config = || {
        c.source.path.as_ref().map(|path| NfsExport {
            server: None,
            path: path.clone(),
            version: None,
            options: Vec::new(),
        })
    };
    let errors_before = errors.len();
    let export: Option<NfsExport> = match &p.root {
        Some(RootSpec::Nfs(s)) => Some(s.clone()),
        // The kernel's nfsroot documentation: no nfsroot= means DHCP's root-path.
        Some(RootSpec::KernelNfs) => p.nfsroot.clone(),
        Some(RootSpec::Dhcp) => None,
        Some(RootSpec::Other { value }) => {
            errors.push(format!(
                "root={value} is not an NFS root (root=nfs:<server>:<path>)"
            ));
            None
        }
        None => p
            .xcat_nfsroot
            .clone()
            .or_else(|| p.nfsroot.clone())
            .or_else(from_config),
    };
    // Local mode reaches no server: whatever root= says is not used.
    if export.is_none()
        && mode != Mode::Local
        && net.method != NetMethod::Dhcp
        && errors.len() == errors_before
    {
        errors.push(
            "no standard root: give root=nfs:<server>:<path>, NFSROOT=, [source] path, or use DHCP root-path".into(),
        );
    }
    let mut servers: Vec<Host> = Vec::new();
    let export_server = export.as_ref().and_then(|s| s.server.clone());
    let ip_server =
        p.ip.as_ref()
            .and_then(|i| i.server)
            .map(|a| Host::Addr(a.into()));
    let config_servers = c
        .source
        .servers
        .iter()
        .filter_map(|s| spec::parse_host(s).ok());
    for s in export_server
        .into_iter()
        .chain(ip_server)
        .chain(config_servers)
    {
        if !servers.contains(&s) {
            servers.push(s);
        }
    }
    // dracut: `%s` in the path is the host name.
    let path = export.as_ref().map(|s| match hostname {
        Some(h) => s.path.replace("%s", h),
        None => s.path.clone(),
    });
    let export_options = export
        .as_ref()
        .map(|s| s.options.clone())
        .unwrap_or_default();
    let mut options = merge_options(&export_options, &c.source.options);
    let version = export
        .as_ref()
        .and_then(|s| s.version)
        .or_else(|| spec::version_from_options(&options).ok().flatten());
    let wants_rw = match mode {
        Mode::Update => true,
        Mode::Nfsroot => options.iter().any(|o| o == "rw") || p.rw == Some(true),
        Mode::Local => false,
        Mode::Sync | Mode::Statelite | Mode::Overlay => {
            if options.iter().any(|o| o == "rw") {
                errors.push(format!(
                    "`rw` in the standard root's options: mode {mode} mounts it read-only (only update mode writes it)"
                ));
            }
            false
        }
    };
    options.retain(|o| o != "ro" && o != "rw");
    options.insert(0, if wants_rw { "rw" } else { "ro" }.to_string());
    // dracut: NFSv3 roots get `nolock`; no statd follows into the real root.
    if version == Some(3) && !options.iter().any(|o| o == "lock" || o == "nolock") {
        options.push("nolock".into());
    }
    let mountpoint = match mode {
        Mode::Sync | Mode::Overlay => SOURCE_MOUNT.to_string(),
        _ => t.root.to_string(),
    };
    let asked = p.agent.nfs.or(c.source.client);
    // Measured (BENCHMARKS.md): the userspace client syncs faster and skips
    // loading the NFS modules, so sync mode uses it unless NFSv4 is asked for.
    let default = match (mode, version) {
        (Mode::Sync, None | Some(3)) => NfsClient::User,
        _ => NfsClient::Kernel,
    };
    // Under dracut the kernel client has mounted it before the agent runs:
    // sync mode still reads it with the userspace client, that mount being
    // the kernel fallback already in place.
    let client = asked.unwrap_or(default);
    if client == NfsClient::User {
        if mode != Mode::Sync {
            errors.push(format!(
                "initagent.nfs=user reads the standard root for sync mode only: mode {mode} runs from a kernel mount (initagent.nfs=kernel)"
            ));
        }
        if version.is_some_and(|v| v != 3) {
            errors.push(
                "initagent.nfs=user speaks NFSv3: root=nfs4: or vers=4 needs initagent.nfs=kernel"
                    .into(),
            );
        }
    }
    SourcePlan {
        client,
        kernel_fallback: asked.is_none() && client == NfsClient::User,
        server: servers.first().cloned(),
        servers,
        path,
        version,
        options,
        mountpoint,
    }
}

/// The persistent store: `STATEMNT=`, else the node's (or its group's)
/// statelite row, else `[statelite] statemnt`; options from `MNTOPTS=`, the
/// row, or `[statelite] mntopts`, after the location's own.
pub(super) fn statemnt_plan(
    p: &BootParams,
    c: &Config,
    entry: Option<&Node>,
    node: Option<&str>,
    image: Option<&str>,
) -> Option<NfsExport> {
    let groups: &[String] = entry.map_or(&[], |n| &n.groups);
    // xCAT statelite table: a row for the node itself beats a row for its group.
    let row = |for_name: &dyn Fn(&str) -> bool| {
        c.statelite.node.iter().find(|r| {
            for_name(&r.node)
                && (r.image.is_empty() || r.image == "ALL" || Some(r.image.as_str()) == image)
        })
    };
    let row = row(&|n| Some(n) == node).or_else(|| row(&|n| groups.iter().any(|g| g == n)));
    let mut location = match &p.statemnt {
        Some(given) => given.clone(),
        None => row
            .map(|r| r.statemnt.as_str())
            .or(c.statelite.statemnt.as_deref())
            .and_then(|s| spec::parse_store(s).ok().flatten()),
    }?;
    let row_opts = row
        .and_then(|r| r.mntopts.as_deref())
        .and_then(|o| spec::parse_options(o).ok());
    let options = p
        .mntopts
        .clone()
        .or(row_opts)
        .unwrap_or_else(|| c.statelite.mntopts.clone());
    location.options = merge_options(&location.options, &options);
    Some(location)
}
