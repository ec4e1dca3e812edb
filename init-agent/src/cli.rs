//! Command-line interface of the `init-agent` binary: argument types only.

use std::path::PathBuf;

use argh::FromArgs;

/// init-agent: provisions a cluster node at boot (sync-on-boot, statelite, CDSL).
#[derive(FromArgs, Debug)]
pub struct Cli {
    #[argh(subcommand)]
    pub command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Explain(Explain),
    CheckConfig(CheckConfig),
}

/// Print the boot plan for a kernel command line and configuration.
///
/// Kernel command line keys: ip=, BOOTIF=, ifname=, root=nfs:|nfs4:|/dev/nfs|dhcp,
/// nfsroot=, NFSROOT=, STATEMNT=, MNTOPTS=, NODE=, XCAT=, rd.shell, rd.debug,
/// rd.break[=cmdline|net|pre-mount|mount|pre-pivot], init=, console=, ro, rw,
/// nameserver=, and initagent.mode=sync|statelite|overlay|nfsroot|update,
/// initagent.disk=, initagent.config=, initagent.fallback=local|shell|reboot|retry,
/// initagent.timeout=SECONDS, initagent.nodeid=, initagent.image=,
/// initagent.checksum[=0|1], initagent.cdsl=0|1. Exits 1 when the plan has errors.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "explain")]
pub struct Explain {
    /// kernel command line to plan for (default: /proc/cmdline)
    #[argh(option)]
    pub cmdline: Option<String>,
    /// configuration file (default: initagent.config= of the command line, else
    /// /etc/init-agent.toml when it exists, else built-in defaults)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// print one JSON object instead of text
    #[argh(switch)]
    pub json: bool,
}

/// Check configuration files; report every error with line and column.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check-config")]
pub struct CheckConfig {
    /// files to check
    #[argh(positional, greedy)]
    pub files: Vec<PathBuf>,
}
