//! Kernel command line → [`BootParams`]. Pure: no I/O, never panics.
//!
//! Understands the kernel's own keys (`ip=`, `root=/dev/nfs` + `nfsroot=`, `init=`,
//! `console=`, `ro`/`rw`), dracut's (`root=nfs:`/`nfs4:`, `ip=<dev>:dhcp`,
//! `ifname=`, `BOOTIF=`, `rd.shell`, `rd.debug`, `rd.break`, `nameserver=`), xCAT's
//! (`NFSROOT=`, `STATEMNT=`, `MNTOPTS=`, `NODE=`, `XCAT=`) and our `initagent.*`.
//! Unknown keys are ignored; a malformed known key yields a [`CmdlineError`] naming
//! the token. For single-valued keys the last occurrence wins, as in the kernel.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::Serialize;

use crate::hwaddr::{Mac, MacError};
use crate::source::spec::{self, NfsExport, SpecError};

/// Everything the agent takes from the kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BootParams {
    /// `ip=`: how to bring up the boot interface.
    pub ip: Option<IpConfig>,
    /// `BOOTIF=`: the MAC the node PXE-booted from.
    pub bootif: Option<Mac>,
    /// dracut `ifname=<name>:<mac>`: interface names bound to MACs.
    pub ifnames: Vec<IfName>,
    /// `root=`.
    pub root: Option<RootSpec>,
    /// Kernel `nfsroot=[<server>:]<path>[,<options>]`.
    pub nfsroot: Option<NfsExport>,
    /// xCAT `NFSROOT=<server>:<path>`.
    pub xcat_nfsroot: Option<NfsExport>,
    /// xCAT `STATEMNT=`: `Some(None)` when given empty, which means "no persistent store".
    pub statemnt: Option<Option<NfsExport>>,
    /// xCAT `MNTOPTS=`: NFS options for the STATEMNT mount.
    pub mntopts: Option<Vec<String>>,
    /// xCAT `NODE=`: the node name.
    pub node: Option<String>,
    /// xCAT `XCAT=<host>:<port>`: the xcatd endpoint.
    pub xcat: Option<HostPort>,
    /// `rd.shell` (`Some(true)`), `rd.shell=0` (`Some(false)`).
    pub shell: Option<bool>,
    /// `rd.debug`.
    pub debug: bool,
    /// `rd.break[=<stage>]`, each stage once, in boot order.
    pub breaks: Vec<BreakStage>,
    /// `init=`.
    pub init: Option<String>,
    /// Arguments after ` -- `, which the kernel hands to init.
    pub init_args: Vec<String>,
    /// Every token before ` -- `, as written (quotes kept): the command
    /// line a boot loader on the node's disk hands on (`[[disk]] bootloader`).
    pub tokens: Vec<String>,
    /// `console=`, in order (the kernel makes the last one /dev/console).
    pub consoles: Vec<String>,
    /// The `ro` / `rw` flags: `Some(true)` for `rw`.
    pub rw: Option<bool>,
    /// dracut `rd.live.overlay.overlayfs`: a writable overlay on the root.
    pub live_overlay: Option<bool>,
    /// dracut `nameserver=`.
    pub nameservers: Vec<Ipv4Addr>,
    /// Our own `initagent.*` keys.
    pub agent: AgentParams,
    /// Malformed known keys, each naming its token.
    pub errors: Vec<CmdlineError>,
}

/// The `initagent.*` keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentParams {
    pub mode: Option<Mode>,
    pub disk: Option<String>,
    pub config: Option<String>,
    pub fallback: Option<Fallback>,
    pub timeout: Option<u32>,
    pub nodeid: Option<String>,
    /// Statelite image name matched against the `image` column of the tables.
    pub image: Option<String>,
    /// Force content comparison in sync mode (`--checksum`).
    pub checksum: Option<bool>,
    /// Bind the node's CDSL tree (`initagent.cdsl=0` turns it off).
    pub cdsl: Option<bool>,
    /// Which NFS client reads the standard root (`initagent.nfs=`).
    pub nfs: Option<NfsClient>,
    /// `initagent.cluster=<path in the standard root>|off`: the cluster
    /// configuration read from the master.
    pub cluster: Option<ClusterKey>,
}

/// Where the cluster configuration is read from in the standard root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterKey {
    Off,
    Path(String),
}

/// Which NFS client reads the standard root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NfsClient {
    /// The kernel's, by mount(2): every mode.
    #[default]
    Kernel,
    /// Ours, NFSv3 from userspace, nothing mounted: sync mode only, and no
    /// NFS kernel modules needed.
    User,
}

/// How the node boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Bring a local disk to an exact copy of the standard root, boot it.
    Sync,
    /// Read-only NFS root with xCAT statelite bind mounts.
    Statelite,
    /// Read-only NFS root under an overlayfs with a tmpfs upper.
    Overlay,
    /// Plain NFS root, read-only unless `rw` (what dracut's `root=nfs:` does).
    Nfsroot,
    /// Read-write NFS root, for maintaining the standard itself.
    Update,
    /// Boot the last complete local copy without syncing: no network, no
    /// server (Clonezilla's `local`), e.g. while the master is serviced.
    Local,
}

/// What happens when the boot cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Boot the last complete local copy (sync mode); retry when there is none.
    Local,
    /// Exec the emergency shell.
    Shell,
    /// Reboot after a delay.
    Reboot,
    /// Retry with capped, jittered backoff.
    Retry,
}

/// A word that is none of a keyword enum's; argh prints it for a flag
/// (`mkinitramfs --nfs`) as the kernel command line parser does for a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{word}` (one of: {})", .choices.join(", "))]
pub struct UnknownWord {
    what: &'static str,
    word: String,
    choices: &'static [&'static str],
}

macro_rules! keyword_enum {
    ($ty:ident, $what:literal, { $($word:literal => $val:path),+ $(,)? }) => {
        impl FromStr for $ty {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $($word => Ok($val),)+
                    _ => Err(UnknownWord { what: $what, word: s.into(), choices: &[$($word),+] }),
                }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let word = match self { $($val => $word,)+ };
                f.write_str(word)
            }
        }
    };
}

keyword_enum!(Mode, "mode", {
    "sync" => Mode::Sync, "statelite" => Mode::Statelite, "overlay" => Mode::Overlay,
    "nfsroot" => Mode::Nfsroot, "update" => Mode::Update, "local" => Mode::Local,
});
keyword_enum!(NfsClient, "NFS client", { "kernel" => NfsClient::Kernel, "user" => NfsClient::User });
keyword_enum!(Fallback, "fallback", {
    "local" => Fallback::Local, "shell" => Fallback::Shell,
    "reboot" => Fallback::Reboot, "retry" => Fallback::Retry,
});

/// Stages `rd.break=` can stop before. dracut's hook names map onto ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakStage {
    /// After the command line is parsed, before anything else.
    Cmdline,
    /// Before the network comes up.
    Net,
    /// Before the standard root is mounted.
    PreMount,
    /// After the standard root is mounted, before the mode's work.
    Mount,
    /// After the mode's work and hooks, before switch_root.
    PrePivot,
}

keyword_enum!(BreakStage, "rd.break stage", {
    "cmdline" => BreakStage::Cmdline,
    "net" => BreakStage::Net,
    "pre-mount" => BreakStage::PreMount,
    "mount" => BreakStage::Mount,
    "pre-pivot" => BreakStage::PrePivot,
});

impl BreakStage {
    /// dracut hook names that have an equivalent point in our flow.
    fn from_dracut(s: &str) -> Option<Self> {
        Some(match s {
            "pre-udev" | "pre-trigger" => BreakStage::Net,
            "initqueue" => BreakStage::PreMount,
            // Bare `rd.break` and dracut's `cleanup` both mean "just before switch_root".
            "" | "cleanup" => BreakStage::PrePivot,
            _ => return None,
        })
    }
}

/// How the boot interface gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetMethod {
    Dhcp,
    Static,
    None,
}

/// A parsed `ip=`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IpConfig {
    pub method: NetMethod,
    pub device: Option<String>,
    pub address: Option<Ipv4Addr>,
    pub prefix: Option<u8>,
    pub gateway: Option<Ipv4Addr>,
    /// Kernel `<server-ip>` (dracut `<peer>`): the NFS server when `root=` names none.
    pub server: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub dns: Vec<Ipv4Addr>,
    pub mtu: Option<u32>,
    /// dracut's trailing `<macaddr>`: the address to set on the interface.
    pub mac: Option<Mac>,
}

impl IpConfig {
    pub(crate) fn method_only(method: NetMethod) -> Self {
        IpConfig {
            method,
            device: None,
            address: None,
            prefix: None,
            gateway: None,
            server: None,
            hostname: None,
            dns: Vec::new(),
            mtu: None,
            mac: None,
        }
    }
}

/// dracut `ifname=<name>:<mac>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IfName {
    pub name: String,
    pub mac: Mac,
}

/// A `host:port` pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

/// What `root=` asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RootSpec {
    /// `root=nfs:…`, `root=nfs4:…`, `root=nfs://…`, `root=<server>:/<path>`.
    Nfs(NfsExport),
    /// `root=/dev/nfs`: the location comes from `nfsroot=`.
    KernelNfs,
    /// `root=dhcp`: the location comes from DHCP option 17 (root-path).
    Dhcp,
    /// Anything else (a block device, `LABEL=`, another tool's scheme).
    Other { value: String },
}

/// A malformed known key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CmdlineError {
    /// The whole `key=value` token as it appeared.
    pub token: String,
    pub reason: InvalidValue,
}

/// What is wrong with a known key's value, each kind in its own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    #[error("needs a value (`key=value`)")]
    Missing,
    #[error("IPv6 addresses are not supported")]
    Ipv6,
    #[error(
        "not a method (dhcp, on, any, off, none) nor \
         <client>:<server>:<gw>:<netmask>:<host>:<dev>:<autoconf>"
    )]
    IpForm,
    #[error("unknown autoconf `{0}`")]
    UnknownAutoconf(String),
    #[error("autoconf `{0}` is not supported (use dhcp or a static address)")]
    UnsupportedAutoconf(String),
    #[error("autoconf off without a client address")]
    OffWithoutAddress,
    #[error("too many fields before the MAC address")]
    FieldsBeforeMac,
    #[error("too many fields (at most 10)")]
    TooManyFields,
    #[error("`{0}` is not an IPv4 address")]
    Ipv4(String),
    #[error("`{0}` is not a prefix length (0-32)")]
    Prefix(String),
    #[error("netmask `{0}` is not contiguous")]
    Netmask(String),
    #[error("`{0}` is not an MTU (68-65535)")]
    Mtu(String),
    #[error("`{0}` is not a valid name (letters, digits, `-`, `_`, `.`)")]
    Name(String),
    #[error("`{0}` is not an absolute path")]
    AbsPath(String),
    #[error("`{0}` is not a number of seconds")]
    Seconds(String),
    #[error("`{0}` is not a boolean (1/0, yes/no)")]
    Flag(String),
    #[error("expected ifname=<name>:<mac>")]
    IfnameForm,
    #[error("`{0}` is not an interface name")]
    Ifname(String),
    #[error("expected <host>:<port>")]
    HostPortForm,
    #[error("`{0}` is not a port")]
    Port(String),
    #[error("empty root")]
    EmptyRoot,
    #[error(transparent)]
    Keyword(#[from] UnknownWord),
    #[error(transparent)]
    Mac(#[from] MacError),
    /// An NFS location, host or options, in the one location parser's words.
    #[error(transparent)]
    Location(#[from] SpecError),
}

/// Its message, as every error reads in JSON output.
impl Serialize for InvalidValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.token, self.reason)
    }
}

/// Parses raw `/proc/cmdline` bytes; invalid UTF-8 is replaced, never fatal.
pub fn parse_bytes(raw: &[u8]) -> BootParams {
    parse(&String::from_utf8_lossy(raw))
}

/// Parses a kernel command line.
pub fn parse(cmdline: &str) -> BootParams {
    let (args, init_args) = split_args(cmdline);
    let mut p = BootParams {
        init_args,
        tokens: args.iter().map(|a| a.token.clone()).collect(),
        ..BootParams::default()
    };
    // Errors of single-valued keys are kept per key, so that a later valid
    // occurrence replaces an earlier malformed one (last occurrence wins).
    let mut errors: BTreeMap<String, CmdlineError> = BTreeMap::new();
    let mut multi_errors: Vec<CmdlineError> = Vec::new();
    for arg in &args {
        let key = arg.key.as_str();
        let val = arg.value.as_deref();
        let fail = |reason: InvalidValue| CmdlineError {
            token: arg.token.clone(),
            reason,
        };
        // Single-valued keys: Ok(()) clears an earlier error of the same key.
        let outcome: Result<(), InvalidValue> = match (key, val) {
            ("ip", Some(v)) => parse_ip(v).map(|c| p.ip = Some(c)),
            ("BOOTIF", Some(v)) => v
                .parse()
                .map_err(InvalidValue::from)
                .map(|m| p.bootif = Some(m)),
            ("root", Some(v)) => parse_root(v).map(|r| p.root = Some(r)),
            ("nfsroot", Some(v)) => spec::parse_location(v)
                .map(|s| p.nfsroot = Some(s))
                .map_err(InvalidValue::from),
            ("NFSROOT", Some(v)) => spec::parse_server_location(v)
                .map(|s| p.xcat_nfsroot = Some(s))
                .map_err(InvalidValue::from),
            ("STATEMNT", v) => spec::parse_store(v.unwrap_or(""))
                .map(|s| p.statemnt = Some(s))
                .map_err(InvalidValue::from),
            ("MNTOPTS", v) => spec::parse_options(v.unwrap_or(""))
                .map(|o| p.mntopts = Some(o))
                .map_err(InvalidValue::from),
            ("rd.live.overlay.overlayfs", v) => parse_flag(v).map(|b| p.live_overlay = Some(b)),
            ("NODE", Some(v)) => parse_name(v).map(|n| p.node = Some(n)),
            ("XCAT", Some(v)) => parse_host_port(v).map(|h| p.xcat = Some(h)),
            ("rd.shell", v) => parse_flag(v).map(|b| p.shell = Some(b)),
            ("rd.debug", v) => parse_flag(v).map(|b| p.debug = b),
            ("init", Some(v)) => parse_abs_path(v).map(|s| p.init = Some(s)),
            ("ro", None) => {
                p.rw = Some(false);
                Ok(())
            }
            ("rw", None) => {
                p.rw = Some(true);
                Ok(())
            }
            ("initagent.mode", Some(v)) => v
                .parse()
                .map_err(InvalidValue::from)
                .map(|m| p.agent.mode = Some(m)),
            ("initagent.disk", Some(v)) => parse_abs_path(v).map(|d| p.agent.disk = Some(d)),
            ("initagent.config", Some(v)) => parse_abs_path(v).map(|c| p.agent.config = Some(c)),
            ("initagent.cluster", Some("off" | "0")) => {
                p.agent.cluster = Some(ClusterKey::Off);
                Ok(())
            }
            ("initagent.cluster", Some(v)) => {
                parse_abs_path(v).map(|c| p.agent.cluster = Some(ClusterKey::Path(c)))
            }
            ("initagent.fallback", Some(v)) => v
                .parse()
                .map_err(InvalidValue::from)
                .map(|f| p.agent.fallback = Some(f)),
            ("initagent.timeout", Some(v)) => parse_seconds(v).map(|t| p.agent.timeout = Some(t)),
            ("initagent.nodeid", Some(v)) => parse_name(v).map(|n| p.agent.nodeid = Some(n)),
            ("initagent.image", Some(v)) => parse_name(v).map(|n| p.agent.image = Some(n)),
            ("initagent.checksum", v) => parse_flag(v).map(|b| p.agent.checksum = Some(b)),
            ("initagent.cdsl", v) => parse_flag(v).map(|b| p.agent.cdsl = Some(b)),
            ("initagent.nfs", Some(v)) => v
                .parse()
                .map_err(InvalidValue::from)
                .map(|n| p.agent.nfs = Some(n)),
            // Multi-valued keys: every occurrence counts, errors accumulate.
            ("console", Some(v)) => {
                p.consoles.push(v.to_string());
                continue;
            }
            ("ifname", Some(v)) => {
                match parse_ifname(v) {
                    Ok(i) => {
                        p.ifnames.retain(|o| o.name != i.name);
                        p.ifnames.push(i);
                    }
                    Err(e) => multi_errors.push(fail(e)),
                }
                continue;
            }
            ("nameserver", Some(v)) => {
                match parse_ipv4(v) {
                    Ok(a) => p.nameservers.push(a),
                    Err(e) => multi_errors.push(fail(e)),
                }
                continue;
            }
            ("rd.break", v) => {
                match parse_break(v.unwrap_or("")) {
                    Ok(s) => {
                        if !p.breaks.contains(&s) {
                            p.breaks.push(s);
                            p.breaks.sort();
                        }
                    }
                    Err(e) => multi_errors.push(fail(e.into())),
                }
                continue;
            }
            // A known key written without its `=value`.
            (
                "ip" | "BOOTIF" | "root" | "nfsroot" | "NFSROOT" | "NODE" | "XCAT" | "init"
                | "console" | "ifname" | "nameserver" | "initagent.mode" | "initagent.disk"
                | "initagent.config" | "initagent.cluster" | "initagent.fallback"
                | "initagent.timeout" | "initagent.nodeid" | "initagent.image" | "initagent.nfs",
                None,
            ) => Err(InvalidValue::Missing),
            _ => continue,
        };
        match outcome {
            Ok(()) => {
                errors.remove(key);
            }
            Err(reason) => {
                errors.insert(key.to_string(), fail(reason));
            }
        }
    }
    p.errors = errors.into_values().chain(multi_errors).collect();
    p.errors.sort_by(|a, b| a.token.cmp(&b.token));
    p
}

/// One `key[=value]` argument.
#[derive(Debug, PartialEq)]
struct Arg {
    token: String,
    key: String,
    value: Option<String>,
}

/// Splits like the kernel's `next_arg()` (lib/cmdline.c): whitespace separates,
/// double quotes group (`key="a b"`, `"key=a b"`) and are removed around values;
/// everything after a lone `--` goes to init.
fn split_args(cmdline: &str) -> (Vec<Arg>, Vec<String>) {
    let mut args = Vec::new();
    let mut rest = cmdline.trim_start();
    while !rest.is_empty() {
        let mut in_quote = false;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            if c.is_whitespace() && !in_quote {
                end = i;
                break;
            }
            if c == '"' {
                in_quote = !in_quote;
            }
        }
        let token = &rest[..end];
        rest = rest[end..].trim_start();
        if token == "--" {
            let init_args = split_args(rest).0.into_iter().map(|a| a.token).collect();
            return (args, init_args);
        }
        let unquoted = strip_quotes(token);
        let (key, value) = match unquoted.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(strip_quotes(v).to_string())),
            None => (unquoted.to_string(), None),
        };
        args.push(Arg {
            token: token.to_string(),
            key,
            value,
        });
    }
    (args, Vec::new())
}

/// Drops a leading `"` and, then, a trailing one, as the kernel does.
fn strip_quotes(s: &str) -> &str {
    match s.strip_prefix('"') {
        Some(inner) => inner.strip_suffix('"').unwrap_or(inner),
        None => s,
    }
}

/// `ip=`: kernel and dracut forms.
fn parse_ip(v: &str) -> Result<IpConfig, InvalidValue> {
    if let Some(m) = parse_autoconf(v) {
        return m.map(IpConfig::method_only);
    }
    let mut fields = split_outside_brackets(v, ':');
    if fields.iter().any(|f| f.starts_with('[')) {
        return Err(InvalidValue::Ipv6);
    }
    // dracut may end the value with a MAC, whose colons the split above cut apart.
    let mac = take_trailing_mac(&mut fields)?;
    // dracut `ip=<dev>:<method>[:[<mtu>][:<mac>]]`: the second field is a method.
    if (2..=3).contains(&fields.len()) {
        if let Some(method) = parse_autoconf(fields[1]) {
            let mut c = IpConfig::method_only(method?);
            c.device = non_empty(fields[0]).map(str::to_string);
            c.mtu = parse_opt(fields.get(2).copied().and_then(non_empty), parse_mtu)?;
            c.mac = mac;
            return Ok(c);
        }
    }
    if fields.len() < 2 {
        return Err(InvalidValue::IpForm);
    }
    let field = |i: usize| fields.get(i).copied().and_then(non_empty);
    let (address, addr_prefix) = match field(0) {
        Some(a) => match a.split_once('/') {
            Some((ip, len)) => (Some(parse_ipv4(ip)?), Some(parse_prefix(len)?)),
            None => (Some(parse_ipv4(a)?), None),
        },
        None => (None, None),
    };
    // Kernel: an empty <autoconf> means "any". With a client address the kernel
    // configures statically unless autoconf names a protocol (dracut does DHCP then).
    let autoconf = match field(6) {
        Some(a) => Some(parse_autoconf(a).ok_or_else(|| InvalidValue::UnknownAutoconf(a.into()))??),
        None => None,
    };
    let method = match (autoconf, address) {
        (Some(NetMethod::Dhcp), _) => NetMethod::Dhcp,
        (None, None) => NetMethod::Dhcp,
        (_, Some(_)) => NetMethod::Static,
        (_, None) => return Err(InvalidValue::OffWithoutAddress),
    };
    let mut c = IpConfig {
        method,
        device: field(5).map(str::to_string),
        address,
        prefix: addr_prefix.or(parse_opt(field(3), parse_netmask)?),
        gateway: parse_opt(field(2), parse_ipv4)?,
        server: parse_opt(field(1), parse_ipv4)?,
        hostname: parse_opt(field(4), spec::parse_hostname)?,
        dns: Vec::new(),
        mtu: None,
        mac,
    };
    if c.method == NetMethod::Static && c.prefix.is_none() {
        // The kernel derives a classful mask when none is given.
        c.prefix = address.map(classful_prefix);
    }
    // After <autoconf>: dracut `[<mtu>][:<mac>]`, or kernel `<dns0>:<dns1>:<ntp0>`.
    let tail = fields.get(7..).unwrap_or_default();
    let is_mtu = |s: &str| s.is_empty() || s.parse::<u32>().is_ok();
    match tail {
        [] => {}
        [mtu] if c.mac.is_some() || (is_mtu(mtu) && !mtu.is_empty()) => {
            c.mtu = parse_opt(non_empty(mtu), parse_mtu)?;
        }
        _ if c.mac.is_some() => return Err(InvalidValue::FieldsBeforeMac),
        [_, _, _, _, ..] => return Err(InvalidValue::TooManyFields),
        dns => {
            // dns0, dns1, then ntp0, which is checked but has no use here.
            for (i, f) in dns.iter().enumerate() {
                if let Some(f) = non_empty(f) {
                    let a = parse_ipv4(f)?;
                    if i < 2 {
                        c.dns.push(a);
                    }
                }
            }
        }
    }
    Ok(c)
}

/// Removes a trailing MAC address from split `ip=` fields: either one field in the
/// `-` spelling or the last six two-digit fields of the `:` spelling.
fn take_trailing_mac(fields: &mut Vec<&str>) -> Result<Option<Mac>, MacError> {
    if fields.len() >= 8 {
        let start = fields.len() - 6;
        if fields[start..]
            .iter()
            .all(|f| f.len() == 2 && f.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            let mac = fields[start..].join(":").parse()?;
            fields.truncate(start);
            return Ok(Some(mac));
        }
    }
    if let Some(last) = fields.last().filter(|f| f.len() == 17 && f.contains('-')) {
        let mac = last.parse()?;
        fields.pop();
        return Ok(Some(mac));
    }
    Ok(None)
}

/// A whole-value autoconf keyword: `Some(Ok)` for a supported one, `Some(Err)` for a
/// recognised but unsupported one, `None` when `s` is no autoconf keyword at all.
fn parse_autoconf(s: &str) -> Option<Result<NetMethod, InvalidValue>> {
    Some(match s {
        "dhcp" | "on" | "any" | "both" | "bootp" | "single-dhcp" => Ok(NetMethod::Dhcp),
        "off" | "none" => Ok(NetMethod::None),
        "dhcp6" | "auto6" | "either6" | "link6" | "ibft" | "rarp" => {
            Err(InvalidValue::UnsupportedAutoconf(s.into()))
        }
        _ => return None,
    })
}

/// Splits on `sep` except inside `[...]` (bracketed IPv6 addresses).
fn split_outside_brackets(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            c if c == sep && depth == 0 => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn parse_opt<T, E>(s: Option<&str>, f: impl FnOnce(&str) -> Result<T, E>) -> Result<Option<T>, E> {
    s.map(f).transpose()
}

fn parse_ipv4(s: &str) -> Result<Ipv4Addr, InvalidValue> {
    s.parse().map_err(|_| InvalidValue::Ipv4(s.into()))
}

fn parse_prefix(s: &str) -> Result<u8, InvalidValue> {
    match s.parse::<u8>() {
        Ok(p) if p <= 32 => Ok(p),
        _ => Err(InvalidValue::Prefix(s.into())),
    }
}

/// A dotted netmask (must be contiguous) or, as dracut allows, a prefix length.
fn parse_netmask(s: &str) -> Result<u8, InvalidValue> {
    if !s.contains('.') {
        return parse_prefix(s);
    }
    let bits = u32::from(parse_ipv4(s)?);
    if bits.leading_ones() + bits.trailing_zeros() != 32 {
        return Err(InvalidValue::Netmask(s.into()));
    }
    // leading_ones() of a u32 is at most 32, which fits in u8.
    Ok(bits.leading_ones() as u8)
}

/// The kernel's fallback when `ip=` gives an address but no netmask.
fn classful_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

fn parse_mtu(s: &str) -> Result<u32, InvalidValue> {
    match s.parse::<u32>() {
        Ok(m) if (68..=65535).contains(&m) => Ok(m),
        _ => Err(InvalidValue::Mtu(s.into())),
    }
}

/// RFC 1123 host names (labels of letters, digits and hyphens).
/// Node names and ids end up as path components: no `/`, no `..`, nothing odd.
pub(crate) fn parse_name(s: &str) -> Result<String, InvalidValue> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(InvalidValue::Name(s.into()))
    }
}

pub(crate) fn parse_abs_path(s: &str) -> Result<String, InvalidValue> {
    let clean = !s.split('/').any(|c| c == "..")
        && !s.contains(|c: char| c.is_whitespace() || c.is_control());
    if s.starts_with('/') && clean {
        Ok(s.to_string())
    } else {
        Err(InvalidValue::AbsPath(s.into()))
    }
}

fn parse_seconds(s: &str) -> Result<u32, InvalidValue> {
    s.parse::<u32>()
        .map_err(|_| InvalidValue::Seconds(s.into()))
}

/// A boolean key: bare means on; `=1|yes|on|true` and `=0|no|off|false`.
fn parse_flag(v: Option<&str>) -> Result<bool, InvalidValue> {
    match v {
        None | Some("1" | "yes" | "on" | "true" | "y") => Ok(true),
        Some("0" | "no" | "off" | "false" | "n") => Ok(false),
        Some(o) => Err(InvalidValue::Flag(o.into())),
    }
}

fn parse_break(v: &str) -> Result<BreakStage, UnknownWord> {
    BreakStage::from_dracut(v).map_or_else(|| v.parse(), Ok)
}

fn parse_ifname(v: &str) -> Result<IfName, InvalidValue> {
    let (name, mac) = v.split_once(':').ok_or(InvalidValue::IfnameForm)?;
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
        return Err(InvalidValue::Ifname(name.into()));
    }
    Ok(IfName {
        name: name.to_string(),
        mac: mac.parse()?,
    })
}

fn parse_host_port(v: &str) -> Result<HostPort, InvalidValue> {
    let (host, port) = v.rsplit_once(':').ok_or(InvalidValue::HostPortForm)?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| InvalidValue::Port(port.into()))?;
    Ok(HostPort {
        host: spec::parse_host(host)?.to_string(),
        port,
    })
}

/// `root=`: dracut's grammar (dracut modules.d/95nfs/nfs-lib.sh `nfsroot_to_var`),
/// read by the one NFS location parser.
fn parse_root(v: &str) -> Result<RootSpec, InvalidValue> {
    if v.is_empty() {
        return Err(InvalidValue::EmptyRoot);
    }
    if v == "/dev/nfs" {
        return Ok(RootSpec::KernelNfs);
    }
    if v == "dhcp" {
        return Ok(RootSpec::Dhcp);
    }
    // Legacy `root=<server>:/<path>` besides the schemes.
    let nfs = v.starts_with("nfs:")
        || v.starts_with("nfs4:")
        || v.starts_with("nfs://")
        || (v.contains(":/") && !v.contains('=') && !v.starts_with('/'));
    if !nfs {
        return Ok(RootSpec::Other {
            value: v.to_string(),
        });
    }
    Ok(RootSpec::Nfs(spec::parse_location(v)?))
}

#[cfg(test)]
mod tests;
