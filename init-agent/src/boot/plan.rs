//! (command line, configuration) → [`BootPlan`]: what the agent will do, in order.
//!
//! Pure: the same inputs give the same plan, which `init-agent explain` prints and
//! PID 1 executes. Every precedence rule between the kernel command line, the
//! node's `[[node]]` entry and the site configuration lives here.

use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::cmdline::{
    BootParams, BreakStage, Fallback, IpConfig, Mode, NetMethod, NfsClient, NfsLocation, NfsSpec,
    RootSpec,
};
use crate::config::{Config, Disk, FsType, Node, Partition, Size, TableType};
use crate::hwaddr::Mac;

/// Where the agent assembles the root it will switch to.
pub const NEW_ROOT: &str = "/sysroot";
/// Where the standard root is mounted when it is not itself the new root.
pub const SOURCE_MOUNT: &str = "/run/init-agent/source";
/// The init run when neither `init=` nor the configuration names one.
pub const DEFAULT_INIT: &str = "/sbin/init";

/// Everything the agent will do for one boot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BootPlan {
    pub mode: Mode,
    /// Where the new root is assembled: [`NEW_ROOT`] as PID 1, the host
    /// initramfs's root mount point under dracut or initramfs-tools.
    pub root: String,
    pub net: NetPlan,
    pub source: SourcePlan,
    /// Persistent store for statelite/overlay (`{server, path}`); `server: null`
    /// means the standard root's server.
    pub statemnt: Option<NfsLocation>,
    /// NFS options of the persistent store.
    pub statemnt_options: Vec<String>,
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
    pub init: String,
    pub init_args: Vec<String>,
    /// `rd.shell`: a shell is allowed on failure.
    pub shell: bool,
    /// `rd.debug`: verbose logging.
    pub debug: bool,
    pub breaks: Vec<BreakStage>,
    pub modules: Vec<String>,
    pub steps: Vec<Step>,
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
    /// First server to try; `None` = DHCP next-server, then server id.
    pub server: Option<String>,
    /// All servers, in the order they are tried.
    pub servers: Vec<String>,
    /// Exported path; `None` = DHCP option 17 (root-path).
    pub path: Option<String>,
    /// 3 or 4; `None` = negotiate (4.2, 4.1, 4.0, then 3).
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

/// One step of the boot, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Mount /proc, /sys, /dev, /run; log to the console and /dev/kmsg.
    Early,
    /// Stop in a shell (`rd.break`).
    Break {
        stage: BreakStage,
    },
    LoadModules {
        modules: Vec<String>,
    },
    Network,
    MountSource,
    /// Sync mode with the userspace client: reach the server, mount nothing.
    ConnectSource,
    /// Sync mode: partition and format where needed (first boot).
    PrepareDisks {
        devices: Vec<String>,
    },
    /// Sync mode: mount the local root (and its other partitions).
    MountLocal {
        device: String,
        partition: String,
    },
    /// Sync mode: make the local root an exact copy of the standard root.
    Sync {
        from: String,
        to: String,
        exclude: Vec<String>,
        protect: Vec<String>,
        checksum: bool,
    },
    /// Statelite: litefile/litetree/persistent bind mounts on the read-only root.
    Statelite {
        image: Option<String>,
        /// Resolved litefile entries: "<path>[/] <option>", parents first.
        entries: Vec<String>,
        litetree_rows: usize,
    },
    /// Overlay: overlayfs of the read-only root and a tmpfs upper.
    Overlay {
        lower: String,
        upper: String,
    },
    /// CDSL: bind `<tree>/<nodeid>` on `<link>`.
    Cdsl {
        nodeid: String,
        tree: String,
        link: String,
    },
    /// Run hook scripts against the new root.
    Hooks {
        phases: Vec<String>,
        dir: String,
    },
    SwitchRoot {
        root: String,
        init: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Early => write!(
                f,
                "mount /proc /sys /dev /run; log to console and /dev/kmsg"
            ),
            Step::Break { stage } => write!(f, "rd.break: emergency shell ({stage})"),
            Step::LoadModules { modules } => {
                write!(f, "load kernel modules: {}", modules.join(" "))
            }
            Step::Network => write!(f, "bring up the network"),
            Step::MountSource => write!(f, "mount the standard root"),
            Step::ConnectSource => write!(
                f,
                "reach the standard root with the userspace NFSv3 client (nothing mounted)"
            ),
            Step::PrepareDisks { devices } => write!(
                f,
                "partition and format where not ours yet: {}",
                devices.join(" ")
            ),
            Step::MountLocal { device, partition } => write!(
                f,
                "mount local root: partition `{partition}` of {device} on {NEW_ROOT}"
            ),
            Step::Sync {
                from,
                to,
                exclude,
                protect,
                checksum,
            } => write!(
                f,
                "sync {from}/ -> {to}/ (exact copy{}; exclude {}; protect {})",
                if *checksum { ", compare contents" } else { "" },
                list_or_none(exclude),
                list_or_none(protect)
            ),
            Step::Statelite {
                image,
                entries,
                litetree_rows,
            } => write!(
                f,
                "statelite for image {}: {litetree_rows} litetree rows, {} entries: {}",
                image.as_deref().unwrap_or("(any)"),
                entries.len(),
                list_or_none(entries)
            ),
            Step::Overlay { lower, upper } => {
                write!(f, "overlayfs: lower {lower}, upper {upper} on {NEW_ROOT}")
            }
            Step::Cdsl { nodeid, tree, link } => write!(f, "CDSL: bind {tree}/{nodeid} on {link}"),
            Step::Hooks { phases, dir } => write!(f, "run hooks {} from {dir}", phases.join(", ")),
            Step::SwitchRoot { root, init } => write!(f, "switch_root {root}, exec {init}"),
        }
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

/// Computes the plan. Never fails: problems are collected in `errors`.
pub fn boot(p: &BootParams, c: &Config) -> BootPlan {
    let mut errors: Vec<String> = p.errors.iter().map(|e| e.to_string()).collect();
    let entry: Option<&Node> = p.bootif.as_ref().and_then(|m| c.node_by_mac(m));

    let mode = p
        .agent
        .mode
        .or(entry.and_then(|n| n.mode))
        .or(c.boot.mode)
        .unwrap_or(if p.statemnt.is_some() {
            Mode::Statelite
        } else {
            Mode::Nfsroot
        });

    let net = net_plan(p, entry, &mut errors);
    let node = p
        .node
        .clone()
        .or_else(|| entry.and_then(|n| n.name.clone()))
        .or_else(|| net.hostname.clone());
    let source = source_plan(p, c, mode, &net, node.as_deref(), &mut errors);

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

    let (statemnt, statemnt_options) =
        statemnt_plan(p, c, entry, node.as_deref(), image.as_deref());
    if statemnt.is_some() && node.is_none() && matches!(mode, Mode::Statelite | Mode::Overlay) {
        // The persistent directory is <statemnt>/<node>; it may still come from DHCP.
        if net.method != NetMethod::Dhcp {
            errors.push(
                "the persistent store needs a node name: NODE=, [[node]] name or ip= host name"
                    .into(),
            );
        }
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

    let mut steps = vec![Step::Early];
    let brk = |steps: &mut Vec<Step>, stage| {
        if p.breaks.contains(&stage) {
            steps.push(Step::Break { stage });
        }
    };
    brk(&mut steps, BreakStage::Cmdline);
    steps.push(Step::LoadModules {
        modules: modules.clone(),
    });
    brk(&mut steps, BreakStage::Net);
    steps.push(Step::Network);
    brk(&mut steps, BreakStage::PreMount);
    steps.push(match source.client {
        NfsClient::Kernel => Step::MountSource,
        NfsClient::User => Step::ConnectSource,
    });
    brk(&mut steps, BreakStage::Mount);
    let mut phases = Vec::new();
    match mode {
        Mode::Sync => {
            if let Some(root_disk) = disks.first() {
                steps.push(Step::PrepareDisks {
                    devices: disks.iter().map(|d| d.device.clone()).collect(),
                });
                let part = root_disk
                    .partition
                    .iter()
                    .find(|p| p.mount.as_deref() == Some("/"))
                    .map_or_else(String::new, |p| p.name.clone());
                steps.push(Step::MountLocal {
                    device: root_disk.device.clone(),
                    partition: part,
                });
                let mut exclude: Vec<String> = SYNC_EXCLUDE.iter().map(|s| s.to_string()).collect();
                exclude.extend(c.sync.exclude.iter().cloned());
                let mut protect: Vec<String> = SYNC_PROTECT.iter().map(|s| s.to_string()).collect();
                protect.extend(
                    c.sync
                        .protect
                        .iter()
                        .filter(|p| !protect.contains(p))
                        .cloned()
                        .collect::<Vec<_>>(),
                );
                let from = match source.client {
                    NfsClient::Kernel => SOURCE_MOUNT.to_string(),
                    NfsClient::User => format!(
                        "nfs://{}{}",
                        source.server.as_deref().unwrap_or("(DHCP server)"),
                        source.path.as_deref().unwrap_or("(DHCP root-path)")
                    ),
                };
                steps.push(Step::Sync {
                    from,
                    to: NEW_ROOT.into(),
                    exclude,
                    protect,
                    checksum: p.agent.checksum.unwrap_or(c.sync.checksum),
                });
                phases.push("post-sync".to_string());
            }
        }
        Mode::Statelite => {
            let resolved = crate::modes::statelite::plan::entries(
                &c.statelite.litefile,
                image.as_deref().unwrap_or_default(),
            );
            let entries = match resolved {
                Ok(e) => e
                    .iter()
                    .map(crate::modes::statelite::plan::Entry::describe)
                    .collect(),
                Err(table_errors) => {
                    errors.extend(table_errors.iter().map(|e| e.to_string()));
                    Vec::new()
                }
            };
            steps.push(Step::Statelite {
                image: image.clone(),
                entries,
                litetree_rows: applicable(&c.statelite.litetree, |r| &r.image, image.as_deref()),
            })
        }
        Mode::Overlay => steps.push(Step::Overlay {
            lower: SOURCE_MOUNT.into(),
            upper: "/run/init-agent/upper (tmpfs)".into(),
        }),
        Mode::Nfsroot | Mode::Update => {}
    }
    if let Some(id) = &cdsl {
        steps.push(Step::Cdsl {
            nodeid: id.clone(),
            tree: c.cdsl.tree.clone(),
            link: c.cdsl.link.clone(),
        });
    }
    phases.push("pre-switch".to_string());
    steps.push(Step::Hooks {
        phases,
        dir: c.hooks.dir.clone(),
    });
    brk(&mut steps, BreakStage::PrePivot);
    steps.push(Step::SwitchRoot {
        root: NEW_ROOT.into(),
        init: init.clone(),
    });

    BootPlan {
        mode,
        root: NEW_ROOT.into(),
        net,
        source,
        statemnt,
        statemnt_options,
        node,
        nodeid,
        image,
        disks,
        fallback,
        timeout: p.agent.timeout.unwrap_or(c.boot.timeout),
        init,
        init_args: p.init_args.clone(),
        shell: p.shell == Some(true),
        debug: p.debug,
        breaks: p.breaks.clone(),
        modules,
        steps,
        errors,
    }
}

impl BootPlan {
    /// The same plan with the new root assembled at `dir` instead of [`NEW_ROOT`].
    pub fn with_root(mut self, dir: &str) -> BootPlan {
        if self.source.mountpoint == self.root {
            self.source.mountpoint = dir.into();
        }
        for s in &mut self.steps {
            match s {
                Step::Sync { to, .. } => *to = dir.into(),
                Step::SwitchRoot { root, .. } => *root = dir.into(),
                _ => {}
            }
        }
        self.root = dir.into();
        self
    }
}

/// Rows whose image column is empty, `ALL`, or this image.
fn applicable<T>(rows: &[T], image_of: impl Fn(&T) -> &String, image: Option<&str>) -> usize {
    rows.iter()
        .filter(|r| {
            let i = image_of(r);
            i.is_empty() || i == "ALL" || Some(i.as_str()) == image
        })
        .count()
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
    net: &NetPlan,
    hostname: Option<&str>,
    errors: &mut Vec<String>,
) -> SourcePlan {
    let from_config = || {
        c.source.path.as_ref().map(|path| NfsSpec {
            server: None,
            path: path.clone(),
            version: None,
            options: Vec::new(),
        })
    };
    let errors_before = errors.len();
    let spec: Option<NfsSpec> = match &p.root {
        Some(RootSpec::Nfs(s)) => Some(s.clone()),
        Some(RootSpec::KernelNfs) => {
            if p.nfsroot.is_none() {
                errors.push("root=/dev/nfs needs nfsroot=[<server>:]<path>".into());
            }
            p.nfsroot.clone()
        }
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
    if spec.is_none() && net.method != NetMethod::Dhcp && errors.len() == errors_before {
        errors.push(
            "no standard root: give root=nfs:<server>:<path>, NFSROOT=, [source] path, or use DHCP root-path".into(),
        );
    }
    let mut servers: Vec<String> = Vec::new();
    let spec_server = spec.as_ref().and_then(|s| s.server.clone());
    let ip_server = p.ip.as_ref().and_then(|i| i.server).map(|a| a.to_string());
    for s in spec_server
        .into_iter()
        .chain(ip_server)
        .chain(c.source.servers.iter().cloned())
    {
        if !servers.contains(&s) {
            servers.push(s);
        }
    }
    // dracut: `%s` in the path is the host name.
    let path = spec.as_ref().map(|s| match hostname {
        Some(h) => s.path.replace("%s", h),
        None => s.path.clone(),
    });
    let spec_options = spec.as_ref().map(|s| s.options.clone()).unwrap_or_default();
    let mut options = merge_options(&spec_options, &c.source.options);
    let version = spec.as_ref().and_then(|s| s.version).or_else(|| {
        crate::cmdline::version_from_options(&options)
            .ok()
            .flatten()
    });
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
        Mode::Sync | Mode::Overlay => SOURCE_MOUNT,
        _ => NEW_ROOT,
    };
    let asked = p.agent.nfs.or(c.source.client);
    // Measured (BENCHMARKS.md): the userspace client syncs faster and skips
    // loading the NFS modules, so sync mode uses it unless NFSv4 is asked for.
    let default = match (mode, version) {
        (Mode::Sync, None | Some(3)) => NfsClient::User,
        _ => NfsClient::Kernel,
    };
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
        mountpoint: mountpoint.into(),
    }
}

fn statemnt_plan(
    p: &BootParams,
    c: &Config,
    entry: Option<&Node>,
    node: Option<&str>,
    image: Option<&str>,
) -> (Option<NfsLocation>, Vec<String>) {
    let groups: &[String] = entry.map_or(&[], |n| &n.groups);
    // xCAT statelite table: a row for the node itself beats a row for its group.
    let row = |for_name: &dyn Fn(&str) -> bool| {
        c.statelite.node.iter().find(|r| {
            for_name(&r.node)
                && (r.image.is_empty() || r.image == "ALL" || Some(r.image.as_str()) == image)
        })
    };
    let row = row(&|n| Some(n) == node).or_else(|| row(&|n| groups.iter().any(|g| g == n)));
    let location = match &p.statemnt {
        Some(given) => given.clone(),
        None => row
            .map(|r| r.statemnt.as_str())
            .or(c.statelite.statemnt.as_deref())
            .and_then(|s| crate::cmdline::parse_statemnt(s).ok().flatten()),
    };
    let row_opts = row
        .and_then(|r| r.mntopts.as_deref())
        .and_then(|o| crate::cmdline::parse_options(o).ok());
    let options = p
        .mntopts
        .clone()
        .or(row_opts)
        .unwrap_or_else(|| c.statelite.mntopts.clone());
    (location, options)
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
