//! `init-agent.toml`: the site's settings, from one file shared by all nodes.
//!
//! Every field has a default, so an empty file (or none) is a valid configuration;
//! the kernel command line overrides what both share. Unknown keys are errors: a
//! typo in a boot configuration must not be silently ignored.

mod load;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::cmdline::{Fallback, Mode};
use crate::hwaddr::Mac;
use crate::sync::trust::Key;

pub use load::{load_file, parse, parse_cluster, salvage_trust, ConfigError, LoadError};

/// Where the cluster configuration lives in the standard root, unless
/// `initagent.cluster=` says otherwise.
pub const CLUSTER_PATH: &str = "/etc/init-agent/cluster.toml";

/// Where the agent looks for its configuration when `initagent.config=` names none.
pub const DEFAULT_PATH: &str = "/etc/init-agent.toml";

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub boot: Boot,
    pub net: Net,
    pub source: Source,
    pub sync: Sync,
    pub disk: Vec<Disk>,
    pub statelite: Statelite,
    pub cdsl: Cdsl,
    pub node: Vec<Node>,
    pub group: Vec<Group>,
    pub hooks: Hooks,
    /// `[hosts]`: `name = "address"`, like /etc/hosts; wins over DNS.
    pub hosts: BTreeMap<String, Ipv4Addr>,
    pub trust: Trust,
}

/// `[boot]`: mode and failure policy.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Boot {
    /// Default mode; `initagent.mode=` and a node's own `mode` win.
    pub mode: Option<Mode>,
    /// Outcome when the boot cannot go on; default `local` in sync mode, else
    /// `shell` with `rd.shell`, else `retry`.
    pub fallback: Option<Fallback>,
    /// Seconds of retrying (network, NFS) before the fallback applies.
    pub timeout: u32,
    /// Cap of the jittered exponential backoff between retries, seconds.
    pub retry_max_delay: u32,
    /// Seconds the console shows the cause before a `reboot` outcome.
    pub reboot_delay: u32,
    /// The real init; `init=` wins.
    pub init: Option<String>,
    /// Emergency shell for the `shell` outcome and `rd.break`.
    pub shell: String,
    /// Extra kernel modules to load (NIC drivers, storage controllers).
    pub modules: Vec<String>,
}

impl Default for Boot {
    fn default() -> Self {
        Boot {
            mode: None,
            fallback: None,
            timeout: 300,
            retry_max_delay: 30,
            reboot_delay: 30,
            init: None,
            shell: "/bin/sh".into(),
            modules: Vec::new(),
        }
    }
}

/// `[net]`: how patiently the boot interface is brought up.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Net {
    /// Seconds to wait for a carrier on the chosen interface.
    pub link_timeout: u32,
    /// Seconds one DHCP exchange may take.
    pub dhcp_timeout: u32,
    /// DHCP exchanges before the boot-level retry/fallback takes over.
    pub dhcp_retries: u32,
    /// DNS servers, asked after `ip=`'s and `nameserver=`, before DHCP's.
    pub dns: Vec<Ipv4Addr>,
    /// Search domains for single-label names, before DHCP's.
    pub search: Vec<String>,
    /// Seconds one DNS server gets to answer one query.
    pub dns_timeout: u32,
    /// Rounds over the DNS servers before a name is given up.
    pub dns_attempts: u32,
}

impl Default for Net {
    fn default() -> Self {
        Net {
            link_timeout: 10,
            dhcp_timeout: 10,
            dhcp_retries: 3,
            dns: Vec::new(),
            search: Vec::new(),
            // resolv.conf's defaults (timeout:5 attempts:2) are for a
            // desktop; a booting node reports a missing name sooner.
            dns_timeout: 2,
            dns_attempts: 2,
        }
    }
}

/// `[source]`: the NFS standard root when the command line names none.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Source {
    /// Servers tried in order.
    pub servers: Vec<String>,
    /// Exported path of the standard root.
    pub path: Option<String>,
    /// Mount options added to those of `root=` (`vers=4.1`, `actimeo=600`, …).
    pub options: Vec<String>,
    /// Which NFS client reads it: "kernel" (default) or "user" (sync mode:
    /// NFSv3 from userspace, no NFS modules); `initagent.nfs=` overrides.
    pub client: Option<crate::cmdline::NfsClient>,
}

/// `[sync]`: sync-on-boot.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sync {
    /// Patterns neither copied nor deleted (added to the built-in pseudo-fs list).
    pub exclude: Vec<String>,
    /// Patterns of node-local state never deleted nor overwritten.
    pub protect: Vec<String>,
    /// Compare contents, not only size and mtime.
    pub checksum: bool,
    /// Parallel workers; 0 = one per CPU (for the NFSv3 client: `inflight`).
    pub jobs: u32,
    /// NFSv3 client: requests in flight at once, one connection each; 0 = 8.
    pub inflight: u32,
}

/// `[trust]`: the keys a standard root must be signed with. Only the
/// initramfs's configuration sets it (the cluster file read from the master
/// cannot): what the node trusts is not for the server to say.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Trust {
    /// minisign public keys (a `.pub` file's base64 line); any one of them
    /// may sign, so a new key is added before the old one goes (rotation).
    /// None: sync mode copies whatever the server serves, unverified.
    pub keys: Vec<String>,
    /// Take a signed manifest with a lower serial than the disk's last
    /// verified copy (an admin's deliberate rollback); else refused as a replay.
    pub allow_rollback: bool,
    /// Set (never read from a file) when the configuration named keys that
    /// could not be read: the node then trusts nothing rather than
    /// everything, and says why.
    #[serde(skip)]
    pub unreadable: Option<String>,
}

impl Trust {
    /// Each key, parsed (`check-config` reports those that do not parse at
    /// their line and column).
    pub fn parsed(&self) -> impl Iterator<Item = Result<Key, String>> + '_ {
        self.keys.iter().map(|k| Key::parse(k, "[trust] keys"))
    }

    /// Whether the node verifies what it syncs (and boots only verified copies).
    pub fn required(&self) -> bool {
        !self.keys.is_empty() || self.unreadable.is_some()
    }

    /// What a sync verifies with; `None` without keys. A key that does not
    /// parse is an error, never left out: the node would trust less than
    /// the admin wrote, or nothing at all.
    pub fn for_sync(&self) -> Result<Option<crate::sync::trust::Trust>, String> {
        if let Some(why) = &self.unreadable {
            return Err(format!(
                "[trust]: {why}: nothing is trusted, nothing synced"
            ));
        }
        let keys = self.parsed().collect::<Result<Vec<Key>, String>>()?;
        Ok((!keys.is_empty()).then_some(crate::sync::trust::Trust {
            keys,
            allow_rollback: self.allow_rollback,
        }))
    }
}

/// `[[disk]]`: a local disk the agent may partition and format.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// The exact device (`/dev/sda`, `/dev/disk/by-path/…`); never guessed.
    pub device: String,
    /// Allow repartitioning this disk although its partition table is not ours.
    #[serde(default)]
    pub wipe: bool,
    #[serde(default)]
    pub table: TableType,
    #[serde(default)]
    pub partition: Vec<Partition>,
    /// A BIOS boot loader installed on this disk after each complete sync,
    /// booting its local copy with this initramfs when the network gives the
    /// node no kernel (the master down): `"extlinux"`.
    #[serde(default)]
    pub bootloader: Option<Bootloader>,
}

/// `[[disk]] bootloader`. extlinux (Debian's `extlinux` + `syslinux-common`
/// in the standard root), not GRUB: it boots from the ext4 `/` partition
/// itself (its boot sector, and `gptmbr.bin` in the MBR on GPT), so the
/// layouts need no BIOS boot partition nor a separate /boot, and one small
/// text file configures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bootloader {
    Extlinux,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableType {
    #[default]
    Gpt,
    Dos,
}

/// `[[disk.partition]]`, in on-disk order.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Partition name (GPT) and file system label.
    pub name: String,
    /// `512M`, `20G`, `1T` (binary units) or `rest`.
    pub size: Size,
    pub fs: FsType,
    /// Where it is mounted in the node's root: `/` for the root itself.
    #[serde(default)]
    pub mount: Option<String>,
    /// Extra options for mkfs.
    #[serde(default)]
    pub mkfs_options: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsType {
    Ext4,
    Xfs,
    Vfat,
    Swap,
    /// Partition left unformatted.
    None,
}

/// A partition size in bytes, or the rest of the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Bytes(u64),
    Rest,
}

/// A partition size that does not parse; serde puts it beside its line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a size (e.g. 512M, 20G, 1T, rest)")]
pub struct NotASize(String);

impl FromStr for Size {
    type Err = NotASize;

    fn from_str(s: &str) -> Result<Self, NotASize> {
        if s == "rest" {
            return Ok(Size::Rest);
        }
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let shift = match unit {
            "K" | "KiB" => 10,
            "M" | "MiB" => 20,
            "G" | "GiB" => 30,
            "T" | "TiB" => 40,
            _ => return Err(NotASize(s.into())),
        };
        num.parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .and_then(|n| n.checked_mul(1u64 << shift))
            .map(Size::Bytes)
            .ok_or_else(|| NotASize(s.into()))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Size::Rest => f.write_str("rest"),
            Size::Bytes(b) => {
                let (n, u) = [(40, "T"), (30, "G"), (20, "M"), (10, "K")]
                    .into_iter()
                    .find(|(s, _)| b % (1u64 << s) == 0)
                    .map_or((b, ""), |(s, u)| (b >> s, u));
                write!(f, "{n}{u}")
            }
        }
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `[statelite]`: settings plus xCAT's three tables.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Statelite {
    /// This root's image name, matched against the tables' `image` column;
    /// `initagent.image=` and a node's own `image` win.
    pub image: Option<String>,
    /// Persistent store `[<server>:]<path>` when neither `STATEMNT=` nor a
    /// `[[statelite.node]]` row gives one.
    pub statemnt: Option<String>,
    /// NFS options for the persistent store when `MNTOPTS=` gives none.
    pub mntopts: Vec<String>,
    /// xCAT `litefile` table.
    pub litefile: Vec<LiteFile>,
    /// xCAT `litetree` table.
    pub litetree: Vec<LiteTree>,
    /// xCAT `statelite` table (node or group → persistent store).
    pub node: Vec<StateliteNode>,
}

impl Default for Statelite {
    fn default() -> Self {
        Statelite {
            image: None,
            statemnt: None,
            // xCAT's default when statelite.mntopts is empty.
            mntopts: ["nolock", "rsize=32768", "tcp", "timeo=14"]
                .map(String::from)
                .to_vec(),
            litefile: Vec::new(),
            litetree: Vec::new(),
            node: Vec::new(),
        }
    }
}

/// One `litefile` row.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LiteFile {
    /// Image name; `ALL` or empty matches every image.
    #[serde(default)]
    pub image: String,
    /// Absolute path; a trailing `/` makes it a directory.
    pub file: String,
    /// `tmpfs`, `persistent`, `persistent,con`, `con`, `ro`, `link`,
    /// `link,persistent`, `link,con`, `link,ro`, `localdisk` (refused), or empty.
    #[serde(default)]
    pub options: String,
}

/// Options a litefile row may carry (xCAT liteimg's list).
pub const LITEFILE_OPTIONS: &[&str] = &[
    "",
    "tmpfs",
    "rw",
    "tmpfs,rw",
    "persistent",
    "persistent,con",
    "con",
    "ro",
    "link",
    "link,persistent",
    "link,con",
    "link,ro",
    "localdisk",
];

/// One `litetree` row.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LiteTree {
    /// Lower is tried first.
    pub priority: f64,
    #[serde(default)]
    pub image: String,
    /// `<server>:<path>` (NFS) or a path inside the image; `$node`-style variables.
    pub directory: String,
    /// NFS options for this tree (xCAT ignores this column; we honour it).
    #[serde(default)]
    pub mntopts: Option<String>,
}

/// One row of xCAT's `statelite` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StateliteNode {
    /// Node name or group name.
    pub node: String,
    #[serde(default)]
    pub image: String,
    /// `[<server>:]<path>`; the node's own directory is `<path>/<node>`.
    pub statemnt: String,
    #[serde(default)]
    pub mntopts: Option<String>,
}

/// `[cdsl]`: Open-Sharedroot context-dependent symlinks.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cdsl {
    /// On by default whenever a node id is known; `false` turns it off.
    pub enabled: bool,
    /// Per-node trees: `<tree>/<nodeid>/…`.
    pub tree: String,
    /// Shared tree for paths made shared again.
    pub shared: String,
    /// Where the node's own tree is bound at boot.
    pub link: String,
    /// Template tree copied for a new node.
    pub default_dir: String,
}

impl Default for Cdsl {
    fn default() -> Self {
        Cdsl {
            enabled: true,
            tree: "/cluster/cdsl".into(),
            shared: "/cluster/shared".into(),
            link: "/cdsl.local".into(),
            default_dir: "default".into(),
        }
    }
}

/// `[[node]]`: a node known by its MACs, its name, or both.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// One MAC or a list; matched against `BOOTIF=`.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mac: Vec<Mac>,
    /// Node name (host name, persistent directory); matched against `NODE=`
    /// and `ip=`'s host name when no MAC matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// CDSL node id.
    #[serde(
        default,
        deserialize_with = "string_or_integer",
        skip_serializing_if = "Option::is_none"
    )]
    pub nodeid: Option<String>,
    /// Groups, for `[[statelite.node]]` rows and `[[group]]` attributes; an
    /// earlier group's value wins over a later one's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// This node's mode (e.g. the update node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// This node's disk for sync mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
    /// This node's statelite image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub noderes: Attributes,
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub nodetype: Attributes,
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub nodepos: Attributes,
}

/// `[[group]]`: attributes every node listing the group gets, unless the
/// node (or a group it lists earlier) has its own value. The three tables
/// repeat `Node`'s fields: serde's `flatten` of a shared struct would switch
/// off `deny_unknown_fields`, which catches a misspelt table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub noderes: Attributes,
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub nodetype: Attributes,
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub nodepos: Attributes,
}

/// One xCAT table's columns for a node or group: `[node.nodetype] os = "rhels8"`.
/// Column names are checked against [`XCAT_TABLES`] by `check-config`.
pub type Attributes = BTreeMap<String, String>;

/// The xCAT tables a node's attributes come from, with the columns a litetree
/// `$table.column` may name (xCAT's tabdump headers, less `node`, `comments`
/// and `disable`).
pub const XCAT_TABLES: [(&str, &[&str]); 3] = [
    (
        "noderes",
        &[
            "servicenode",
            "netboot",
            "tftpserver",
            "tftpdir",
            "nfsserver",
            "monserver",
            "nfsdir",
            "installnic",
            "primarynic",
            "discoverynics",
            "cmdinterface",
            "xcatmaster",
            "current_osimage",
            "next_osimage",
            "nimserver",
            "routenames",
            "nameservers",
            "proxydhcp",
            "syslog",
        ],
    ),
    (
        "nodetype",
        &[
            "os",
            "arch",
            "profile",
            "provmethod",
            "supportedarchs",
            "nodetype",
        ],
    ),
    (
        "nodepos",
        &["rack", "u", "chassis", "slot", "room", "height"],
    ),
];

/// Whether `table.column` is one of [`XCAT_TABLES`]' columns.
pub fn is_xcat_column(table: &str, column: &str) -> bool {
    XCAT_TABLES
        .iter()
        .any(|(t, cols)| *t == table && cols.contains(&column))
}

/// A node's or group's three tables, in [`XCAT_TABLES`] order.
fn tables<'a>(
    noderes: &'a Attributes,
    nodetype: &'a Attributes,
    nodepos: &'a Attributes,
) -> [(&'static str, &'a Attributes); 3] {
    [
        ("noderes", noderes),
        ("nodetype", nodetype),
        ("nodepos", nodepos),
    ]
}

impl Node {
    pub fn tables(&self) -> [(&'static str, &Attributes); 3] {
        tables(&self.noderes, &self.nodetype, &self.nodepos)
    }
}

impl Group {
    pub fn tables(&self) -> [(&'static str, &Attributes); 3] {
        tables(&self.noderes, &self.nodetype, &self.nodepos)
    }
}

/// `[hooks]`: scripts run against the new root before switch_root.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hooks {
    /// Directory holding `post-sync.d/` and `pre-switch.d/`.
    pub dir: String,
    /// Seconds one hook may run.
    pub timeout: u32,
    /// Hook file names not to run.
    pub skip: Vec<String>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            dir: "/usr/lib/init-agent/hooks".into(),
            timeout: 120,
            skip: Vec::new(),
        }
    }
}

/// `mac = "…"` or `mac = ["…", "…"]`.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Mac>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<Mac>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a MAC address or a list of them")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Vec<Mac>, E> {
            s.parse().map(|m| vec![m]).map_err(E::custom)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Mac>, A::Error> {
            let mut v = Vec::new();
            while let Some(m) = seq.next_element()? {
                v.push(m);
            }
            Ok(v)
        }
    }
    d.deserialize_any(V)
}

/// `nodeid = 3` or `nodeid = "node3"`.
fn string_or_integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a node id (string or non-negative integer)")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(Some(s.to_string()))
        }
        fn visit_u64<E: serde::de::Error>(self, i: u64) -> Result<Self::Value, E> {
            Ok(Some(i.to_string()))
        }
        fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Self::Value, E> {
            u64::try_from(i)
                .map(|u| Some(u.to_string()))
                .map_err(|_| E::custom(format!("node id {i} is negative")))
        }
    }
    d.deserialize_any(V)
}

/// The configuration a boot uses and where it came from.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// `None` when built-in defaults are in force.
    pub path: Option<PathBuf>,
    /// Why the named file could not be used (defaults are in force then).
    pub errors: Vec<String>,
}

/// Loads `explicit`, else the file `initagent.config=` names, else
/// [`DEFAULT_PATH`] if it exists, else built-in defaults. A file that was named
/// but cannot be used is an error; a missing default file is not.
pub fn load_for_boot(explicit: Option<&Path>, from_cmdline: Option<&str>) -> Loaded {
    let named = explicit
        .map(Path::to_path_buf)
        .or_else(|| from_cmdline.map(PathBuf::from));
    let path = match named {
        Some(p) => p,
        None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
        None => {
            return Loaded {
                config: Config::default(),
                path: None,
                errors: Vec::new(),
            }
        }
    };
    let fail = |errors| Loaded {
        config: Config::default(),
        path: Some(path.clone()),
        errors,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(source) => {
            let p = path.display().to_string();
            return fail(vec![LoadError::Read { path: p, source }.to_string()]);
        }
    };
    let errors = match parse(&text) {
        Ok(config) => {
            return Loaded {
                config,
                path: Some(path),
                errors: Vec::new(),
            }
        }
        Err(errors) => errors,
    };
    let p = path.display();
    let mut loaded = fail(errors.iter().map(|e| format!("{p}:{e}")).collect());
    match load::salvage_trust(&text) {
        Ok(Some(trust)) => loaded.config.trust = trust,
        Ok(None) => {}
        Err(why) => {
            loaded
                .errors
                .push(format!("{p}: {why}: nothing is trusted"));
            loaded.config.trust.unreadable = Some(format!("{p}: {why}"));
        }
    }
    loaded
}

impl Config {
    /// The `[[node]]` row owning `mac`, with its index.
    pub fn node_by_mac(&self, mac: &Mac) -> Option<(usize, &Node)> {
        self.node
            .iter()
            .enumerate()
            .find(|(_, n)| n.mac.contains(mac))
    }

    /// The `[[node]]` row named `name`, with its index.
    pub fn node_by_name(&self, name: &str) -> Option<(usize, &Node)> {
        self.node
            .iter()
            .enumerate()
            .find(|(_, n)| n.name.as_deref() == Some(name))
    }

    /// The `$table.column` values of `node`: its own, else those of its
    /// groups in the order it lists them (xCAT's precedence), keyed
    /// `table.column`.
    pub fn attributes(&self, node: &Node) -> Attributes {
        let groups = node
            .groups
            .iter()
            .filter_map(|g| self.group.iter().find(|r| &r.name == g));
        let mut out = Attributes::new();
        for layer in std::iter::once(node.tables()).chain(groups.map(Group::tables)) {
            for (table, columns) in layer {
                for (column, value) in columns {
                    out.entry(format!("{table}.{column}"))
                        .or_insert_with(|| value.clone());
                }
            }
        }
        out
    }

    /// The `[[disk]]` entry for exactly `device`.
    pub fn disk(&self, device: &str) -> Option<&Disk> {
        self.disk.iter().find(|d| d.device == device)
    }
}

// Its test keys serve the boot's tests too.
#[cfg(test)]
pub(crate) mod tests;
