//! (command line, configuration, packaging) → [`BootPlan`]: what the agent
//! will do, in order, as typed steps that carry every value their executor
//! needs. `init-agent explain` prints these steps and `boot::run` executes
//! exactly these steps; facts only the boot can learn (the DHCP answer, the
//! server that answered, the client that reached it) are typed results the
//! executor hands to later steps, resolved by the same functions `explain`
//! uses for an assumed answer ([`resolve_source`]).
//!
//! Pure: the same inputs give the same plan. Every precedence rule between
//! the kernel command line, the node's `[[node]]` entry and the site
//! configuration lives here.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::Serialize;

use crate::cmdline::{
    BootParams, BreakStage, ClusterKey, Fallback, IpConfig, Mode, NetMethod, NfsClient,
};
use crate::config::{Config, Disk, Node};
use crate::hwaddr::Mac;
use crate::modes::bootloader::Install;
use crate::source::spec::NfsExport;

/// Where the agent assembles the root it will switch to.
pub const NEW_ROOT: &str = "/sysroot";
/// Where the standard root is mounted when it is not itself the new root.
pub const SOURCE_MOUNT: &str = "/run/init-agent/source";
/// Where the overlay mode keeps its tmpfs (upper and work directories).
pub const OVERLAY_SCRATCH: &str = "/run/init-agent/overlay";
/// The one words for a statelite / overlay boot without a node name.
pub const NEEDS_NODE: &str =
    "statelite needs the node's name: NODE=, [[node]] name, ip= host name or DHCP's";
/// The init run when neither `init=` nor the configuration names one.
pub const DEFAULT_INIT: &str = "/sbin/init";

/// How the agent got into the initramfs, which decides who does what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Packaging {
    /// Our own image: the agent is PID 1 and does everything.
    Standalone,
    /// dracut brought up the network and mounted the standard root on the new
    /// root; it keeps rd.break and switch_root.
    Dracut,
    /// initramfs-tools brought up the network (klibc ipconfig); the agent
    /// mounts the standard root; run-init switches.
    InitramfsTools,
}

/// A `--packaging` value that names none.
#[derive(Debug, thiserror::Error)]
#[error("unknown packaging `{0}` (standalone, dracut, initramfs-tools)")]
pub struct UnknownPackaging(String);

impl FromStr for Packaging {
    type Err = UnknownPackaging;
    fn from_str(s: &str) -> Result<Self, UnknownPackaging> {
        match s {
            "standalone" => Ok(Packaging::Standalone),
            "dracut" => Ok(Packaging::Dracut),
            "initramfs-tools" => Ok(Packaging::InitramfsTools),
            _ => Err(UnknownPackaging(s.into())),
        }
    }
}

/// Everything the agent will do for one boot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BootPlan {
    pub packaging: Packaging,
    pub mode: Mode,
    /// Where the mode came from: `initagent.mode=`, the node row, `[boot] mode`, …
    pub mode_from: &'static str,
    /// The cluster configuration's path in the standard root, read once it
    /// is reached; `None`: `initagent.cluster=off`, or nothing is reached.
    pub cluster: Option<String>,
    /// Where the new root is assembled: [`NEW_ROOT`] as PID 1, the host
    /// initramfs's root mount point under dracut or initramfs-tools.
    pub root: String,
    pub net: NetPlan,
    /// How host names become addresses: `[hosts]`, then DNS.
    pub names: NamePlan,
    pub source: SourcePlan,
    /// Persistent store for statelite/overlay; no server means the standard root's.
    pub statemnt: Option<NfsExport>,
    /// Node name: `NODE=`, the `[[node]]` entry, or `ip=`'s host name.
    pub node: Option<String>,
    /// The `[[node]]` row this boot uses, and what matched it.
    pub node_row: Option<NodeRow>,
    /// The node's `table.column` values (its row, then its `[[group]]`s),
    /// for litetree `$table.column` variables.
    pub attributes: BTreeMap<String, String>,
    pub nodeid: Option<String>,
    /// Statelite image name.
    pub image: Option<String>,
    /// Disks prepared in sync mode, the root disk first.
    pub disks: Vec<Disk>,
    /// Sync mode, `[[disk]] bootloader`: installed after each complete sync.
    pub bootloader: Option<Install>,
    pub fallback: Fallback,
    /// Seconds of retrying before the fallback.
    pub timeout: u32,
    pub reboot_delay: u32,
    pub retry_max_delay: u32,
    pub init: String,
    pub init_args: Vec<String>,
    /// `rd.shell`: a shell is allowed on failure.
    pub shell: bool,
    /// The emergency shell's path.
    pub shell_path: String,
    /// `rd.debug`: verbose logging.
    pub debug: bool,
    pub breaks: Vec<BreakStage>,
    pub modules: Vec<String>,
    pub steps: Vec<Step>,
    /// The `local` fallback's steps (sync mode): boot the last complete copy.
    pub local: Vec<Step>,
    /// Inputs the plan leaves aside, said so.
    pub notes: Vec<String>,
    /// Everything wrong with the inputs; the boot takes the fallback if not empty.
    pub errors: Vec<String>,
}

/// How the boot interface comes up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetPlan {
    /// The interface to use, lower-case; `None` = first with carrier.
    pub mac: Option<Mac>,
    pub method: NetMethod,
    pub device: Option<String>,
    pub address: Option<Ipv4Addr>,
    pub prefix: Option<u8>,
    pub gateway: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub dns: Vec<Ipv4Addr>,
    pub mtu: Option<u32>,
}

/// The `[[node]]` row of this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRow {
    /// 1-based, in `[[node]]` order.
    pub row: usize,
    pub name: Option<String>,
    pub by: MatchedBy,
}

/// What matched the `[[node]]` row, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchedBy {
    /// `BOOTIF=` is one of the row's `mac`s.
    Mac,
    /// `NODE=` is the row's `name`.
    Node,
    /// `ip=`'s host name field is the row's `name`.
    IpHostname,
}

impl fmt::Display for MatchedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchedBy::Mac => "BOOTIF= MAC",
            MatchedBy::Node => "NODE=",
            MatchedBy::IpHostname => "ip= host name",
        })
    }
}

/// The node's `[[node]]` row: by `BOOTIF=`'s MAC, else `NODE=`, else `ip=`'s
/// host name (DHCP's is learnt after the plan is made: see the note
/// [`boot`] leaves). `NODE=` naming another row than the MAC's is an error.
fn node_row<'c>(
    p: &BootParams,
    c: &'c Config,
    errors: &mut Vec<String>,
) -> Option<(NodeRow, &'c Node)> {
    let found = |(i, n): (usize, &'c Node), by| {
        let row = NodeRow {
            row: i + 1,
            name: n.name.clone(),
            by,
        };
        (row, n)
    };
    if let Some((i, n)) = p.bootif.as_ref().and_then(|m| c.node_by_mac(m)) {
        if let Some(asked) = &p.node {
            let other = c.node_by_name(asked).filter(|(j, _)| *j != i);
            let renamed = n.name.as_ref().filter(|name| *name != asked);
            if other.is_some() || renamed.is_some() {
                errors.push(format!(
                    "BOOTIF= matches [[node]] row {} ({}) but NODE={asked} names {}: give one of them, or make them agree",
                    i + 1,
                    n.name.as_deref().unwrap_or("no name"),
                    other.map_or_else(|| "another node".to_string(), |(j, _)| format!("row {}", j + 1)),
                ));
            }
        }
        return Some(found((i, n), MatchedBy::Mac));
    }
    if let Some(row) = p.node.as_deref().and_then(|n| c.node_by_name(n)) {
        return Some(found(row, MatchedBy::Node));
    }
    p.ip.as_ref()
        .and_then(|ip| ip.hostname.as_deref())
        .and_then(|h| c.node_by_name(h))
        .map(|row| found(row, MatchedBy::IpHostname))
}

/// Where the plan is carried out.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub packaging: Packaging,
    /// The new root: [`NEW_ROOT`], or the host initramfs's.
    pub root: &'a str,
}

impl Default for Target<'_> {
    fn default() -> Self {
        Target {
            packaging: Packaging::Standalone,
            root: NEW_ROOT,
        }
    }
}

/// Computes the plan. Never fails: problems are collected in `errors`.
pub fn boot(p: &BootParams, c: &Config, t: Target) -> BootPlan {
    let mut errors: Vec<String> = p.errors.iter().map(|e| e.to_string()).collect();
    let mut notes = Vec::new();
    let matched = node_row(p, c, &mut errors);
    let entry: Option<&Node> = matched.as_ref().map(|(_, n)| *n);
    let attributes = entry.map(|n| c.attributes(n)).unwrap_or_default();
    let root = t.root.to_string();

    let asked_mode = p
        .agent
        .mode
        .map(|m| (m, "initagent.mode="))
        .or(entry
            .and_then(|n| n.mode)
            .map(|m| (m, "the node's [[node]] row")))
        .or(c.boot.mode.map(|m| (m, "[boot] mode")));
    let live_overlay = p.live_overlay == Some(true);
    let (mode, mode_from) = match asked_mode {
        Some((m, from)) => {
            if live_overlay && m != Mode::Overlay {
                notes.push(format!(
                    "rd.live.overlay.overlayfs ignored: mode {m} was asked for (overlay mode gives a writable overlay)"
                ));
            }
            (m, from)
        }
        // dracut's writable overlay on a read-only root is our overlay mode.
        None if live_overlay => (Mode::Overlay, "rd.live.overlay.overlayfs"),
        None if p.statemnt.is_some() => (Mode::Statelite, "STATEMNT="),
        None => (Mode::Nfsroot, "the default"),
    };
    if c.trust.required() && !matches!(mode, Mode::Sync | Mode::Local) {
        // Signatures cover a manifest a sync checks every file against; a
        // live mount reads the server's files as they come.
        notes.push(format!(
            "[trust] keys are not used: mode {mode} mounts the standard root live, and reads of a live NFS root cannot be verified (sync mode verifies)"
        ));
    }
    let cluster = match (&p.agent.cluster, mode) {
        (_, Mode::Local) | (Some(ClusterKey::Off), _) => None,
        (Some(ClusterKey::Path(path)), _) => Some(path.clone()),
        (None, _) => Some(crate::config::CLUSTER_PATH.to_string()),
    };

    if let Some(x) = &p.xcat {
        // xCAT's initrd asks xcatd for postscripts; the agent runs hooks.
        notes.push(format!(
            "XCAT={}:{} is read and not used: init-agent asks no xcatd; xCAT postscripts run as hooks (post-sync.d/, pre-switch.d/ under [hooks] dir or in the standard root)",
            x.host, x.port
        ));
    }

    let net = net_plan(p, entry, mode, &mut errors);
    let node = p
        .node
        .clone()
        .or_else(|| entry.and_then(|n| n.name.clone()))
        .or_else(|| net.hostname.clone());
    let source = source_plan(p, c, mode, t, &net, node.as_deref(), &mut errors);
    if node.is_none() && net.method == NetMethod::Dhcp && c.node.iter().any(|n| n.name.is_some()) {
        // The plan (mode, image, groups, attributes) is made before DHCP
        // answers and never changed after: DHCP's host name names the node,
        // it does not pick its row.
        notes.push(
            "the node's name will come from DHCP: a [[node]] row matched only by that host name is not used (give BOOTIF= or NODE=)".into(),
        );
    }

    let nodeid = p
        .agent
        .nodeid
        .clone()
        .or_else(|| entry.and_then(|n| n.nodeid.clone()));
    let image = p
        .agent
        .image
        .clone()
        .or_else(|| entry.and_then(|n| n.image.clone()))
        .or_else(|| c.statelite.image.clone());

    let statemnt = statemnt_plan(p, c, entry, node.as_deref(), image.as_deref());
    // Every server the agent mounts gets an address at boot, or the plan
    // says why not; dracut resolves and mounts the standard root itself.
    let names = NamePlan::new(c, &net, t.packaging);
    let agent_mounts_root = t.packaging != Packaging::Dracut && mode != Mode::Local;
    let root_servers = source.servers.iter().filter(|_| agent_mounts_root);
    for (what, s) in root_servers.map(|s| ("standard root", s)).chain(
        statemnt
            .iter()
            .filter_map(|e| e.server.as_ref())
            .map(|s| ("STATEMNT", s)),
    ) {
        if let Err(e) = names.check(s) {
            errors.push(format!("{what}: {e}"));
        }
    }
    let wants_store = matches!(mode, Mode::Statelite | Mode::Overlay);
    if wants_store
        && node.is_none()
        && net.method != NetMethod::Dhcp
        && t.packaging == Packaging::Standalone
    {
        // The persistent directory is <statemnt>/<node>; it may still come from DHCP.
        errors.push(NEEDS_NODE.into());
    }

    if mode == Mode::Local && t.packaging != Packaging::Standalone {
        errors.push(
            "initagent.mode=local boots without network nor server: use the standalone image (under dracut / initramfs-tools the host initramfs mounts root= first)".into(),
        );
    }
    let disks = if matches!(mode, Mode::Sync | Mode::Local) {
        sync_disks(p, c, entry, &mut errors)
    } else {
        Vec::new()
    };
    let bootloader = disks::bootloader(p, &disks, mode, t, &mut notes);

    let cdsl_wanted = p.agent.cdsl.unwrap_or(c.cdsl.enabled);
    let cdsl = match (&nodeid, cdsl_wanted) {
        (Some(id), true) => Some(id.clone()),
        (None, true) if p.agent.cdsl == Some(true) => {
            errors.push(
                "initagent.cdsl=1 needs a node id: initagent.nodeid= or [[node]] nodeid".into(),
            );
            None
        }
        _ => None,
    };

    let fallback = p
        .agent
        .fallback
        .or(c.boot.fallback)
        .unwrap_or(if p.shell == Some(true) {
            Fallback::Shell
        } else if mode == Mode::Sync {
            Fallback::Local
        } else {
            Fallback::Retry
        });
    let init = p
        .init
        .clone()
        .or_else(|| c.boot.init.clone())
        .unwrap_or_else(|| DEFAULT_INIT.into());
    let timeout = p.agent.timeout.unwrap_or(c.boot.timeout);

    let mut modules = c.boot.modules.clone();
    let nfs_modules: &[&str] = match (source.client, source.version) {
        _ if mode == Mode::Local => &[],
        (NfsClient::User, _) => &[],
        (_, Some(3)) => &["nfsv3"],
        (_, Some(_)) => &["nfsv4"],
        (_, None) => &["nfsv4", "nfsv3"],
    };
    let mode_modules: &[&str] = match mode {
        Mode::Overlay => &["overlay"],
        Mode::Sync | Mode::Local => &["ext4"],
        _ => &[],
    };
    for m in nfs_modules.iter().chain(mode_modules) {
        if !modules.iter().any(|x| x == m) {
            modules.push(m.to_string());
        }
    }

    let mut plan = BootPlan {
        packaging: t.packaging,
        mode,
        mode_from,
        cluster,
        root,
        net,
        names,
        source,
        statemnt,
        node,
        node_row: matched.map(|(row, _)| row),
        attributes,
        nodeid,
        image,
        disks,
        bootloader,
        fallback,
        timeout,
        reboot_delay: c.boot.reboot_delay,
        retry_max_delay: c.boot.retry_max_delay,
        init,
        init_args: p.init_args.clone(),
        shell: p.shell == Some(true),
        shell_path: c.boot.shell.clone(),
        debug: p.debug,
        breaks: p.breaks.clone(),
        modules,
        steps: Vec::new(),
        local: Vec::new(),
        notes,
        errors,
    };
    let checksum = p.agent.checksum.unwrap_or(c.sync.checksum);
    let (steps, local, errors) = order::steps(&plan, c, checksum, cdsl.as_deref());
    plan.steps = steps;
    plan.local = local;
    plan.errors.extend(errors);
    plan
}

fn net_plan(p: &BootParams, entry: Option<&Node>, mode: Mode, errors: &mut Vec<String>) -> NetPlan {
    let ip =
        p.ip.clone()
            .unwrap_or_else(|| IpConfig::method_only(NetMethod::Dhcp));
    if ip.method == NetMethod::None && mode != Mode::Local {
        errors.push("ip=off/none: the standard root is on NFS, the node needs a network".into());
    }
    // BOOTIF picks the interface; else the MAC ifname= binds to ip='s device.
    let named = |dev: &str| p.ifnames.iter().find(|i| i.name == dev).map(|i| i.mac);
    let mac = p.bootif.or_else(|| ip.device.as_deref().and_then(named));
    let device = ip.device.clone().or_else(|| {
        p.bootif
            .and_then(|m| p.ifnames.iter().find(|i| i.mac == m))
            .map(|i| i.name.clone())
    });
    let mut dns = ip.dns.clone();
    dns.extend(p.nameservers.iter().filter(|a| !ip.dns.contains(a)));
    NetPlan {
        mac,
        method: ip.method,
        device,
        address: ip.address,
        prefix: ip.prefix,
        gateway: ip.gateway,
        hostname: ip
            .hostname
            .or_else(|| p.node.clone())
            .or_else(|| entry.and_then(|n| n.name.clone())),
        dns,
        mtu: ip.mtu,
    }
}

mod disks;
mod names;
mod order;
mod source;
mod step;

use disks::sync_disks;
pub use disks::{SYNC_EXCLUDE, SYNC_PROTECT};
pub use names::{How, NamePlan, Named, Unresolvable};
pub use source::{resolve_source, DhcpAnswer, SourceError, SourcePlan, SourceTarget};
use source::{source_plan, statemnt_plan};
pub use step::{servers_text, Step};

#[cfg(test)]
mod tests;
