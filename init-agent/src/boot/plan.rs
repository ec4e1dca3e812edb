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

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use serde::Serialize;

use crate::cmdline::{
    BootParams, BreakStage, Fallback, IpConfig, Mode, NetMethod, NfsClient, RootSpec,
};
use crate::config::{self, Config, Disk, FsType, LiteTree, Node, Partition, Size, TableType};
use crate::hooks::Phase;
use crate::hwaddr::Mac;
use crate::modes::statelite::plan::{Entry, Kind};
use crate::source::spec::{self, Host, NfsExport, SpecError};

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

/// What a DHCP server told the node, or what `explain --dhcp` assumes it tells.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DhcpAnswer {
    /// Option 17, in any form dracut.cmdline(7) documents.
    pub root_path: Option<String>,
    pub next_server: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    pub hostname: Option<String>,
}

/// Everything the agent will do for one boot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BootPlan {
    pub packaging: Packaging,
    pub mode: Mode,
    /// Where the new root is assembled: [`NEW_ROOT`] as PID 1, the host
    /// initramfs's root mount point under dracut or initramfs-tools.
    pub root: String,
    pub net: NetPlan,
    pub source: SourcePlan,
    /// Persistent store for statelite/overlay; no server means the standard root's.
    pub statemnt: Option<NfsExport>,
    /// Node name: `NODE=`, the `[[node]]` entry, or `ip=`'s host name.
    pub node: Option<String>,
    pub nodeid: Option<String>,
    /// Statelite image name.
    pub image: Option<String>,
    /// Disks prepared in sync mode, the root disk first.
    pub disks: Vec<Disk>,
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
    pub servers: Vec<IpAddr>,
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
    #[error(transparent)]
    Server(SpecError),
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
    let servers = hosts
        .iter()
        .map(Host::addr)
        .collect::<Result<Vec<_>, _>>()
        .map_err(SourceError::Server)?;
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

/// One step of the boot, in order, with everything its executor needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Mount /proc, /sys, /dev, /run; log to the console and /dev/kmsg.
    Early,
    /// Stop in a shell (`rd.break`); leaving it continues the boot.
    Break {
        stage: BreakStage,
        shell: String,
    },
    /// The userspace NFS client needs no NFS modules: `skip` names them.
    LoadModules {
        modules: Vec<String>,
        skip: Vec<String>,
    },
    Network {
        net: NetPlan,
        config: config::Net,
    },
    /// dracut / initramfs-tools brought the network up: read what DHCP said.
    HostNetwork,
    /// Mount the standard root with the kernel client, servers in order.
    MountSource {
        source: SourcePlan,
        timeout: u32,
    },
    /// Sync mode with the userspace client: reach the server, mount nothing.
    ConnectSource {
        source: SourcePlan,
        timeout: u32,
    },
    /// dracut mounted the standard root on `root`: move it to `aside` where
    /// the mode needs the new root (sync, overlay), or make it writable.
    AdoptSource {
        root: String,
        aside: Option<String>,
        read_write: bool,
    },
    /// Sync mode: partition and format where needed (first boot).
    PrepareDisks {
        disks: Vec<Disk>,
    },
    /// Sync mode: mount the root disk's `/` partition on `at`.
    MountLocal {
        disk: Disk,
        at: String,
    },
    /// Sync mode: make `to` an exact copy of the standard root.
    Sync {
        to: String,
        exclude: Vec<String>,
        protect: Vec<String>,
        checksum: bool,
        jobs: u32,
        inflight: u32,
    },
    /// The node runs from its disk: the kernel mount of the standard root goes.
    ReleaseSource {
        at: String,
    },
    /// `local` fallback: mount the last complete copy, refusing anything else.
    MountLastComplete {
        disk: Disk,
        at: String,
    },
    /// Statelite: litefile/litetree/persistent bind mounts on the read-only root.
    Statelite {
        root: String,
        image: String,
        /// `None`: DHCP's host name, known once the network is up.
        node: Option<String>,
        entries: Vec<Entry>,
        litetree: Vec<LiteTree>,
        store: Option<NfsExport>,
    },
    /// Overlay: overlayfs of the read-only root and a tmpfs upper, the
    /// persistent entries bound from the store.
    Overlay {
        lower: String,
        scratch: String,
        root: String,
        image: String,
        node: Option<String>,
        entries: Vec<Entry>,
        store: Option<NfsExport>,
    },
    /// CDSL: bind `<tree>/<nodeid>` on `<link>` in `root`.
    Cdsl {
        root: String,
        nodeid: String,
        tree: String,
        link: String,
    },
    /// Run one phase of hook scripts against the new root.
    Hooks(Phase),
    SwitchRoot {
        root: String,
        init: String,
        args: Vec<String>,
    },
}

impl Step {
    /// The step's name, as `rd.break=` and failure lines say it.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Early => "early",
            Step::Break { .. } => "break",
            Step::LoadModules { .. } => "modules",
            Step::Network { .. } | Step::HostNetwork => "network",
            Step::MountSource { .. } | Step::ConnectSource { .. } | Step::AdoptSource { .. } => {
                "nfs"
            }
            Step::PrepareDisks { .. } => "disks",
            Step::MountLocal { .. } | Step::MountLastComplete { .. } => "local root",
            Step::Sync { .. } => "sync",
            Step::ReleaseSource { .. } => "release source",
            Step::Statelite { .. } => "statelite",
            Step::Overlay { .. } => "overlay",
            Step::Cdsl { .. } => "cdsl",
            Step::Hooks(_) => "hooks",
            Step::SwitchRoot { .. } => "switch_root",
        }
    }
}

/// The servers to try, as explain and the steps say them.
pub fn servers_text(s: &SourcePlan) -> String {
    if s.servers.is_empty() {
        "(DHCP root-path / next-server)".to_string()
    } else {
        s.servers
            .iter()
            .map(Host::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn root_path_text(s: &SourcePlan) -> String {
    s.path
        .clone()
        .unwrap_or_else(|| "(DHCP root-path)".to_string())
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Early => write!(
                f,
                "mount /proc /sys /dev /run; log to console and /dev/kmsg"
            ),
            Step::Break { stage, shell } => write!(f, "rd.break: emergency shell {shell} ({stage})"),
            Step::LoadModules { modules, .. } => {
                write!(f, "load kernel modules: {}", list_or_none(modules))
            }
            Step::Network { net, .. } => write!(
                f,
                "bring up the network: {} on {}",
                format!("{:?}", net.method).to_lowercase(),
                net.mac.map_or_else(
                    || net.device.clone().unwrap_or("the first interface with carrier".into()),
                    |m| m.to_string()
                )
            ),
            Step::HostNetwork => write!(
                f,
                "read the network the host initramfs configured (DHCP root-path, host name)"
            ),
            Step::MountSource { source, .. } => write!(
                f,
                "mount the standard root {}:{} on {} [{}]",
                servers_text(source),
                root_path_text(source),
                source.mountpoint,
                source.options.join(",")
            ),
            Step::ConnectSource { source, .. } => write!(
                f,
                "reach the standard root {}:{} with the userspace NFSv3 client (nothing mounted){}",
                servers_text(source),
                root_path_text(source),
                if source.kernel_fallback {
                    format!(
                        "; a server without NFSv3 MOUNT is mounted by the kernel client on {}",
                        source.mountpoint
                    )
                } else {
                    String::new()
                }
            ),
            Step::AdoptSource {
                root,
                aside,
                read_write,
            } => match (aside, read_write) {
                (Some(a), _) => write!(f, "move the standard root the host mounted on {root} to {a}"),
                (None, true) => write!(f, "remount the standard root on {root} read-write"),
                (None, false) => write!(f, "use the standard root the host mounted on {root}"),
            },
            Step::PrepareDisks { disks } => write!(
                f,
                "partition and format where not ours yet: {}",
                disks
                    .iter()
                    .map(|d| d.device.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Step::MountLocal { disk, at } => write!(
                f,
                "mount local root: partition `{}` of {} on {at}",
                root_partition_name(disk),
                disk.device
            ),
            Step::Sync {
                to,
                exclude,
                protect,
                checksum,
                ..
            } => write!(
                f,
                "sync the standard root -> {to}/ (exact copy{}; exclude {}; protect {})",
                if *checksum { ", compare contents" } else { "" },
                list_or_none(exclude),
                list_or_none(protect)
            ),
            Step::ReleaseSource { at } => {
                write!(f, "unmount the standard root from {at} if the kernel client mounted it")
            }
            Step::MountLastComplete { disk, at } => write!(
                f,
                "mount the last complete local copy (partition `{}` of {}) on {at}, if the disk is ours and complete",
                root_partition_name(disk),
                disk.device
            ),
            Step::Statelite {
                image,
                node,
                entries,
                litetree,
                store,
                ..
            } => write!(
                f,
                "statelite for image {} node {}: {} litetree rows, store {}, {} entries: {}",
                if image.is_empty() { "(any)" } else { image },
                node.as_deref().unwrap_or("(DHCP host name)"),
                litetree.len(),
                store_text(store),
                entries.len(),
                list_or_none(&entries.iter().map(Entry::describe).collect::<Vec<_>>())
            ),
            Step::Overlay {
                lower,
                scratch,
                root,
                entries,
                store,
                ..
            } => write!(
                f,
                "overlayfs on {root}: lower {lower}, upper {scratch}/upper (tmpfs); persistent from {}: {}",
                store_text(store),
                list_or_none(&entries.iter().map(Entry::describe).collect::<Vec<_>>())
            ),
            Step::Cdsl {
                root,
                nodeid,
                tree,
                link,
            } => write!(f, "CDSL: bind {tree}/{nodeid} on {link} in {root}"),
            Step::Hooks(h) => write!(f, "run {} hooks from {} in {}", h.phase, h.dir, h.root),
            Step::SwitchRoot { root, init, args } => {
                write!(f, "switch_root {root}, exec {init}")?;
                if !args.is_empty() {
                    write!(f, " {}", args.join(" "))?;
                }
                Ok(())
            }
        }
    }
}

fn store_text(store: &Option<NfsExport>) -> String {
    match store {
        Some(e) if e.server.is_none() => format!("(the standard root's server):{}", e.path),
        Some(e) => e.to_string(),
        None => "none".into(),
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

/// Built-in sync exclusions: mount points of pseudo file systems keep their
/// directory but never their contents.
pub const SYNC_EXCLUDE: &[&str] = &["/proc/**", "/sys/**", "/dev/**", "/run/**"];

/// Built-in node-local state, protected in every sync-mode boot: the node's
/// identity (kept by the post-sync hooks) and its logs.
pub const SYNC_PROTECT: &[&str] = &[
    "/etc/machine-id",
    "/etc/hostname",
    "/etc/ssh/ssh_host_*",
    "/var/lib/systemd/random-seed",
    "/var/log/**",
];

/// The layout used for `initagent.disk=` when the configuration has no entry for it.
fn default_disk(device: &str) -> Disk {
    Disk {
        device: device.to_string(),
        wipe: false,
        table: TableType::Gpt,
        partition: vec![Partition {
            name: "root".into(),
            size: Size::Rest,
            fs: FsType::Ext4,
            mount: Some("/".into()),
            mkfs_options: Vec::new(),
        }],
    }
}

fn mounts_root(d: &Disk) -> bool {
    d.partition.iter().any(|p| p.mount.as_deref() == Some("/"))
}

fn root_partition_name(d: &Disk) -> &str {
    d.partition
        .iter()
        .find(|p| p.mount.as_deref() == Some("/"))
        .map_or("", |p| p.name.as_str())
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
    let entry: Option<&Node> = p.bootif.as_ref().and_then(|m| c.node_by_mac(m));
    let root = t.root.to_string();

    let asked_mode = p.agent.mode.or(entry.and_then(|n| n.mode)).or(c.boot.mode);
    let live_overlay = p.live_overlay == Some(true);
    let mode = match asked_mode {
        Some(m) => {
            if live_overlay && m != Mode::Overlay {
                notes.push(format!(
                    "rd.live.overlay.overlayfs ignored: mode {m} was asked for (overlay mode gives a writable overlay)"
                ));
            }
            m
        }
        // dracut's writable overlay on a read-only root is our overlay mode.
        None if live_overlay => Mode::Overlay,
        None if p.statemnt.is_some() => Mode::Statelite,
        None => Mode::Nfsroot,
    };

    let net = net_plan(p, entry, &mut errors);
    let node = p
        .node
        .clone()
        .or_else(|| entry.and_then(|n| n.name.clone()))
        .or_else(|| net.hostname.clone());
    let source = source_plan(p, c, mode, t, &net, node.as_deref(), &mut errors);

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

    let statemnt = statemnt_plan(p, c, entry, node.as_deref(), image.as_deref(), &mut errors);
    let wants_store = matches!(mode, Mode::Statelite | Mode::Overlay);
    if wants_store
        && node.is_none()
        && net.method != NetMethod::Dhcp
        && t.packaging == Packaging::Standalone
    {
        // The persistent directory is <statemnt>/<node>; it may still come from DHCP.
        errors.push(NEEDS_NODE.into());
    }

    let disks = if mode == Mode::Sync {
        sync_disks(p, c, entry, &mut errors)
    } else {
        Vec::new()
    };

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
        (NfsClient::User, _) => &[],
        (_, Some(3)) => &["nfsv3"],
        (_, Some(_)) => &["nfsv4"],
        (_, None) => &["nfsv4", "nfsv3"],
    };
    let mode_modules: &[&str] = match mode {
        Mode::Overlay => &["overlay"],
        Mode::Sync => &["ext4"],
        _ => &[],
    };
    for m in nfs_modules.iter().chain(mode_modules) {
        if !modules.iter().any(|x| x == m) {
            modules.push(m.to_string());
        }
    }

    let hooks = |phase: &str| {
        Step::Hooks(Phase {
            phase: phase.into(),
            root: root.clone(),
            dir: c.hooks.dir.clone(),
            skip: c.hooks.skip.clone(),
            timeout: c.hooks.timeout,
        })
    };
    let switch = Step::SwitchRoot {
        root: root.clone(),
        init: init.clone(),
        args: p.init_args.clone(),
    };
    let standalone = t.packaging == Packaging::Standalone;
    let mut steps = Vec::new();
    // rd.break and the shell are the host initramfs's under dracut and initramfs-tools.
    let brk = |steps: &mut Vec<Step>, stage| {
        if standalone && p.breaks.contains(&stage) {
            steps.push(Step::Break {
                stage,
                shell: c.boot.shell.clone(),
            });
        }
    };
    if standalone {
        steps.push(Step::Early);
        brk(&mut steps, BreakStage::Cmdline);
        steps.push(Step::LoadModules {
            modules: modules.clone(),
            skip: match source.client {
                NfsClient::User => crate::initramfs::NFS_MODULES
                    .iter()
                    .map(|m| m.to_string())
                    .collect(),
                NfsClient::Kernel => Vec::new(),
            },
        });
        brk(&mut steps, BreakStage::Net);
        steps.push(Step::Network {
            net: net.clone(),
            config: c.net.clone(),
        });
    } else {
        steps.push(Step::HostNetwork);
    }
    brk(&mut steps, BreakStage::PreMount);
    steps.push(match (t.packaging, source.client) {
        (Packaging::Dracut, _) => Step::AdoptSource {
            root: root.clone(),
            aside: (source.mountpoint != root).then(|| source.mountpoint.clone()),
            read_write: mode == Mode::Update,
        },
        (_, NfsClient::Kernel) => Step::MountSource {
            source: source.clone(),
            timeout,
        },
        (_, NfsClient::User) => Step::ConnectSource {
            source: source.clone(),
            timeout,
        },
    });
    brk(&mut steps, BreakStage::Mount);
    let mut local = Vec::new();
    match mode {
        Mode::Sync => {
            if let Some(root_disk) = disks.first() {
                steps.push(Step::PrepareDisks {
                    disks: disks.clone(),
                });
                steps.push(Step::MountLocal {
                    disk: root_disk.clone(),
                    at: root.clone(),
                });
                let mut exclude: Vec<String> = SYNC_EXCLUDE.iter().map(|s| s.to_string()).collect();
                exclude.extend(c.sync.exclude.iter().cloned());
                let mut protect: Vec<String> = SYNC_PROTECT.iter().map(|s| s.to_string()).collect();
                for extra in &c.sync.protect {
                    if !protect.contains(extra) {
                        protect.push(extra.clone());
                    }
                }
                steps.push(Step::Sync {
                    to: root.clone(),
                    exclude,
                    protect,
                    checksum: p.agent.checksum.unwrap_or(c.sync.checksum),
                    jobs: c.sync.jobs,
                    inflight: c.sync.inflight,
                });
                if source.client == NfsClient::Kernel || source.kernel_fallback {
                    steps.push(Step::ReleaseSource {
                        at: source.mountpoint.clone(),
                    });
                }
                steps.push(hooks("post-sync"));
                local = vec![
                    Step::MountLastComplete {
                        disk: root_disk.clone(),
                        at: root.clone(),
                    },
                    hooks("pre-switch"),
                ];
                if standalone {
                    local.push(switch.clone());
                }
            }
        }
        Mode::Statelite | Mode::Overlay => {
            let img = image.clone().unwrap_or_default();
            let entries = match crate::modes::statelite::plan::entries(&c.statelite.litefile, &img)
            {
                Ok(e) => e,
                Err(table_errors) => {
                    errors.extend(table_errors.iter().map(|e| e.to_string()));
                    Vec::new()
                }
            };
            let litetree: Vec<LiteTree> = c
                .statelite
                .litetree
                .iter()
                .filter(|r| crate::modes::statelite::plan::applies(&r.image, &img))
                .cloned()
                .collect();
            // The trees the boot will mount, checked now with what is known.
            let probe_node = node.clone().unwrap_or_else(|| "node".into());
            if let Err(table_errors) =
                crate::modes::statelite::node_trees(&litetree, &img, &probe_node)
            {
                errors.extend(table_errors.iter().map(|e| e.to_string()));
            }
            if mode == Mode::Statelite {
                steps.push(Step::Statelite {
                    root: root.clone(),
                    image: img,
                    node: node.clone(),
                    entries,
                    litetree,
                    store: statemnt.clone(),
                });
            } else {
                steps.push(Step::Overlay {
                    lower: source.mountpoint.clone(),
                    scratch: OVERLAY_SCRATCH.into(),
                    root: root.clone(),
                    image: img,
                    node: node.clone(),
                    entries: entries
                        .into_iter()
                        .filter(|e| matches!(e.kind, Kind::Persistent | Kind::LinkPersistent))
                        .collect(),
                    store: statemnt.clone(),
                });
            }
        }
        Mode::Nfsroot | Mode::Update => {}
    }
    if let Some(id) = &cdsl {
        steps.push(Step::Cdsl {
            root: root.clone(),
            nodeid: id.clone(),
            tree: c.cdsl.tree.clone(),
            link: c.cdsl.link.clone(),
        });
    }
    steps.push(hooks("pre-switch"));
    brk(&mut steps, BreakStage::PrePivot);
    if standalone {
        steps.push(switch);
    }

    BootPlan {
        packaging: t.packaging,
        mode,
        root,
        net,
        source,
        statemnt,
        node,
        nodeid,
        image,
        disks,
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
        steps,
        local,
        notes,
        errors,
    }
}

fn net_plan(p: &BootParams, entry: Option<&Node>, errors: &mut Vec<String>) -> NetPlan {
    let ip =
        p.ip.clone()
            .unwrap_or_else(|| IpConfig::method_only(NetMethod::Dhcp));
    if ip.method == NetMethod::None {
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

/// Merges option lists: on the same option name, the earlier list wins.
fn merge_options(first: &[String], then: &[String]) -> Vec<String> {
    let name = |o: &String| o.split('=').next().unwrap_or_default().to_string();
    let mut out = first.to_vec();
    for o in then {
        if !out.iter().any(|x| name(x) == name(o)) {
            out.push(o.clone());
        }
    }
    out
}

fn source_plan(
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
    if export.is_none() && net.method != NetMethod::Dhcp && errors.len() == errors_before {
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
    // dracut resolves the names it mounts; where the agent mounts, it cannot yet.
    if t.packaging != Packaging::Dracut {
        for s in &servers {
            if let Err(e) = s.addr() {
                errors.push(format!("standard root: {e}"));
            }
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
    // Under dracut the kernel client has mounted it before the agent runs.
    let client = match t.packaging {
        Packaging::Dracut => NfsClient::Kernel,
        _ => asked.unwrap_or(default),
    };
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
fn statemnt_plan(
    p: &BootParams,
    c: &Config,
    entry: Option<&Node>,
    node: Option<&str>,
    image: Option<&str>,
    errors: &mut Vec<String>,
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
    if let Some(Err(e)) = location.server.as_ref().map(Host::addr) {
        errors.push(format!("STATEMNT: {e}"));
    }
    Some(location)
}

fn sync_disks(
    p: &BootParams,
    c: &Config,
    entry: Option<&Node>,
    errors: &mut Vec<String>,
) -> Vec<Disk> {
    let named = p
        .agent
        .disk
        .as_deref()
        .or_else(|| entry.and_then(|n| n.disk.as_deref()));
    let root = match named {
        // wipe applies only to the exact device the configuration names.
        Some(dev) => c.disk(dev).cloned().unwrap_or_else(|| default_disk(dev)),
        None => match c.disk.iter().find(|d| mounts_root(d)) {
            Some(d) => d.clone(),
            None => {
                errors.push(if c.disk.is_empty() {
                    "sync mode needs a disk: initagent.disk=/dev/… or a [[disk]] in the configuration".into()
                } else {
                    "sync mode: no [[disk.partition]] has mount = \"/\"".into()
                });
                return Vec::new();
            }
        },
    };
    if !mounts_root(&root) {
        errors.push(format!(
            "disk {}: no partition has mount = \"/\"",
            root.device
        ));
    }
    // Data and swap disks of the configuration come along; other root disks do not.
    let others = c
        .disk
        .iter()
        .filter(|d| !mounts_root(d) && d.device != root.device)
        .cloned();
    std::iter::once(root.clone()).chain(others).collect()
}

#[cfg(test)]
mod tests;
