//! The steps of a plan: typed values that carry everything their executor
//! needs, and print as `explain` shows them.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::disks::root_partition_name;
use super::{Named, NetPlan, SourcePlan};
use crate::cmdline::{BreakStage, NfsClient};
use crate::config::{self, Disk, LiteTree};
use crate::hooks::Phase;
use crate::modes::bootloader::Install;
use crate::modes::statelite::plan::{applies, trees, Entry, Variables};
use crate::source::spec::{Host, NfsExport};
use crate::sync::trust::{Key, Trust};

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
    /// Give the servers named by host name their addresses: `[hosts]`, then DNS.
    Resolve {
        names: Vec<Named>,
    },
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
    /// Read the cluster configuration from the reached standard root; the
    /// boot goes on with the plan made with it merged in.
    ReadCluster {
        path: String,
        /// `[trust]` has keys: the file is taken only as the signed
        /// manifest has it (the master must not choose the node's disks,
        /// patterns or hooks unsigned).
        #[serde(serialize_with = "trust_json")]
        trust: Option<Trust>,
    },
    /// dracut mounted the standard root on `root`: move it to `aside` where
    /// the mode needs the new root (sync, overlay), or make it writable.
    /// With the userspace client (sync mode's default) the sync reads the
    /// same server and path through it; that mount is the kernel fallback.
    AdoptSource {
        root: String,
        aside: Option<String>,
        read_write: bool,
        client: NfsClient,
        kernel_fallback: bool,
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
        /// `[trust]`: sync only a manifest one of the keys signed; `None`
        /// (no keys): whatever the server serves.
        #[serde(serialize_with = "trust_json")]
        trust: Option<Trust>,
    },
    /// The node runs from its disk: the kernel mount of the standard root goes.
    ReleaseSource {
        at: String,
    },
    /// `local` fallback: mount the last complete copy, refusing anything else.
    MountLastComplete {
        disk: Disk,
        at: String,
        /// `[trust]` has keys: a copy not synced from a signed manifest is
        /// refused too.
        verified_only: bool,
    },
    /// Statelite: litefile/litetree/persistent bind mounts on the read-only root.
    Statelite {
        root: String,
        image: String,
        /// `None`: DHCP's host name, known once the network is up.
        node: Option<String>,
        entries: Vec<Entry>,
        /// Every `[[statelite.litetree]]` row (errors name them by their
        /// place); those of `image` are mounted.
        litetree: Vec<LiteTree>,
        /// The node's `table.column` values for litetree directories, from
        /// its `[[node]]` row and `[[group]]`s.
        attributes: BTreeMap<String, String>,
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
    /// CDSL: bind `<tree>/<nodeid>` on `<link>` in `root`, then the shared
    /// paths the inventory in the root lists (read at boot: the root is
    /// mounted only then) where the node's tree lacks their link.
    Cdsl {
        root: String,
        nodeid: String,
        tree: String,
        link: String,
    },
    /// Run one phase of hook scripts against the new root.
    Hooks(Phase),
    /// Sync mode, `[[disk]] bootloader`: make the root disk boot its local
    /// copy with this initramfs. Best effort: the copy is complete already.
    Bootloader(Install),
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
            Step::Resolve { .. } => "names",
            Step::MountSource { .. } | Step::ConnectSource { .. } | Step::AdoptSource { .. } => {
                "nfs"
            }
            Step::ReadCluster { .. } => "cluster",
            Step::PrepareDisks { .. } => "disks",
            Step::MountLocal { .. } | Step::MountLastComplete { .. } => "local root",
            Step::Sync { .. } => "sync",
            Step::ReleaseSource { .. } => "release source",
            Step::Statelite { .. } => "statelite",
            Step::Overlay { .. } => "overlay",
            Step::Cdsl { .. } => "cdsl",
            Step::Hooks(_) => "hooks",
            Step::Bootloader(_) => "bootloader",
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
                "read the network the host initramfs configured (DHCP root-path, host name, DNS)"
            ),
            Step::Resolve { names } => write!(
                f,
                "resolve host names: {}",
                names
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
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
                client,
                kernel_fallback,
            } => {
                match (aside, read_write) {
                    (Some(a), _) => {
                        write!(f, "move the standard root the host mounted on {root} to {a}")?
                    }
                    (None, true) => write!(f, "remount the standard root on {root} read-write")?,
                    (None, false) => write!(f, "use the standard root the host mounted on {root}")?,
                }
                match (client, kernel_fallback) {
                    (NfsClient::Kernel, _) => Ok(()),
                    (NfsClient::User, true) => write!(
                        f,
                        "; read its server and path with the userspace NFSv3 client, or through that mount where the server has no NFSv3 MOUNT"
                    ),
                    (NfsClient::User, false) => write!(
                        f,
                        "; read its server and path with the userspace NFSv3 client"
                    ),
                }
            }
            Step::ReadCluster { path, trust } => write!(
                f,
                "read the cluster configuration {path} from the standard root{}: the boot goes on with the plan made with it (explain --config-root shows that plan); absent{}: this one",
                if trust.is_some() { ", only as the signed manifest has it" } else { "" },
                if trust.is_some() { ", broken or not as signed" } else { " or broken" }
            ),
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
                trust,
                ..
            } => write!(
                f,
                "sync the standard root -> {to}/ (exact copy{}; exclude {}; protect {}); {}",
                if *checksum { ", compare contents" } else { "" },
                list_or_none(exclude),
                list_or_none(protect),
                verify_text(trust.as_ref())
            ),
            Step::ReleaseSource { at } => {
                write!(f, "unmount the standard root from {at} if the kernel client mounted it")
            }
            Step::MountLastComplete {
                disk,
                at,
                verified_only,
            } => write!(
                f,
                "mount the last complete local copy (partition `{}` of {}) on {at} (an interrupted sync first rolled back to the complete copy it kept), if the disk is ours and complete{}",
                root_partition_name(disk),
                disk.device,
                if *verified_only {
                    " and was verified against a signed manifest"
                } else {
                    ""
                }
            ),
            Step::Statelite {
                image,
                node,
                entries,
                litetree,
                attributes,
                store,
                ..
            } => write!(
                f,
                "statelite for image {} node {}{}: {}, store {}, {} entries: {}",
                if image.is_empty() { "(any)" } else { image },
                node.as_deref().unwrap_or("(DHCP host name)"),
                if attributes.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        attributes
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                trees_text(litetree, image, node.as_deref(), attributes),
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
            } => write!(
                f,
                "CDSL: bind {tree}/{nodeid} on {link} in {root}; shared paths of {tree}/.cdsl_inventory bound there where the node's tree lacks their link"
            ),
            Step::Hooks(h) => write!(f, "run {} hooks from {} in {}", h.phase, h.dir, h.root),
            Step::Bootloader(i) => write!(
                f,
                "install {} on {} (BIOS; each part only when changed): {root}{dir}/ gets the synced root's /boot/vmlinuz-<running kernel release>, this initramfs and extlinux.conf (APPEND {}); extlinux --install chrooted in {root}; partition {} marked bootable; {}'s first 440 bytes on {}. A failure is one line: the copy is complete, the boot goes on",
                format!("{:?}", i.loader).to_lowercase(),
                i.disk.device,
                i.append,
                i.partition,
                crate::modes::bootloader::boot_code_file(i.disk.table),
                i.disk.device,
                root = i.root,
                dir = crate::modes::bootloader::DIR,
            ),
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

/// What a sync checks the standard root against, as explain says it.
pub fn verify_text(trust: Option<&Trust>) -> String {
    match trust {
        Some(t) => format!(
            "verify: signed manifest required (keys {}; {})",
            t.keys.iter().map(Key::id).collect::<Vec<_>>().join(", "),
            if t.allow_rollback {
                "allow_rollback: a lower serial than the disk's last verified copy is taken"
            } else {
                "a lower serial than the disk's last verified copy is refused"
            }
        ),
        None => "not verified: no [trust] keys (the node syncs whatever the server serves)".into(),
    }
}

/// The keys with their ids, as minisign names them, for `explain --json`.
fn trust_json<S: serde::Serializer>(trust: &Option<Trust>, s: S) -> Result<S::Ok, S::Error> {
    trust
        .as_ref()
        .map(|t| {
            serde_json::json!({
                "keys": t.keys.iter().map(|k| serde_json::json!({"id": k.id(), "key": k.base64()})).collect::<Vec<_>>(),
                "allow_rollback": t.allow_rollback,
            })
        })
        .serialize(s)
}

fn store_text(store: &Option<NfsExport>) -> String {
    match store {
        Some(e) if e.server.is_none() => format!("(the standard root's server):{}", e.path),
        Some(e) => e.to_string(),
        None => "none".into(),
    }
}

/// The litetrees as the boot will mount them once the node's name is known
/// (the boot's own expansion), else how many rows the image has.
fn trees_text(
    rows: &[LiteTree],
    image: &str,
    node: Option<&str>,
    attributes: &BTreeMap<String, String>,
) -> String {
    let vars = Variables {
        node,
        image,
        attributes,
    };
    match (node, trees(rows, &vars)) {
        (Some(_), Ok(t)) if !t.is_empty() => format!(
            "litetrees {}",
            t.iter()
                .map(|t| t.location.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => format!(
            "{} litetree rows",
            rows.iter().filter(|r| applies(&r.image, image)).count()
        ),
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}
