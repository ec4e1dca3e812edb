//! The boot itself, one pipeline for every front end: [`prepare`] turns the
//! command line and the configuration into a plan (`plan`), `run` executes
//! its steps, `outcome` takes the configured way out when a step fails.
//! `pid1` (our own initramfs) and `hosted` (dracut, initramfs-tools) drive
//! it; `explain` prints it.

pub mod explain;
pub mod hosted;
pub mod outcome;
pub mod pid1;
pub mod plan;
pub mod report;
pub mod run;

use std::path::{Path, PathBuf};

use crate::cmdline::{self, BootParams};
use crate::config::{self, Config};
use plan::{BootPlan, Target};

/// Everything a boot (or `explain`) starts from.
#[derive(Debug)]
pub struct Prepared {
    pub params: BootParams,
    pub config: Config,
    /// The configuration file read, if any.
    pub config_path: Option<PathBuf>,
    /// Why the file (if any) was not used: built-in defaults in force.
    pub config_errors: Vec<String>,
    pub plan: BootPlan,
}

/// The running kernel's command line (empty when /proc is not there).
pub fn read_cmdline() -> std::io::Result<Vec<u8>> {
    std::fs::read("/proc/cmdline")
}

/// Command line + configuration (`config`, else `initagent.config=`, else
/// the initramfs's) → the plan, for `target`.
pub fn prepare(cmdline: &[u8], config: Option<&Path>, target: Target) -> Prepared {
    let params = cmdline::parse_bytes(cmdline);
    let loaded = config::load_for_boot(config, params.agent.config.as_deref());
    let plan = plan::boot(&params, &loaded.config, target);
    Prepared {
        params,
        config: loaded.config,
        config_path: loaded.path,
        config_errors: loaded.errors,
        plan,
    }
}

/// The plan made with the cluster configuration `text` (read from the
/// standard root) merged over the initramfs's. `Err` (`line:column: why`,
/// or the new plan's problems): the boot goes on with the first plan, so a
/// cluster file never leaves a node with no plan to boot.
pub fn replan(
    params: &BootParams,
    embedded: &Config,
    target: Target,
    text: &[u8],
) -> Result<BootPlan, String> {
    let join = |v: &[String]| v.join("; ");
    let text = std::str::from_utf8(text).map_err(|_| "1:1: not UTF-8 text".to_string())?;
    let (merged, _) = config::parse_cluster(text, embedded)
        .map_err(|errors| join(&errors.iter().map(ToString::to_string).collect::<Vec<_>>()))?;
    let second = plan::boot(params, &merged, target);
    if second.errors.is_empty() {
        Ok(second)
    } else {
        Err(format!(" the plan made with it: {}", join(&second.errors)))
    }
}

/// Starts the console + kmsg logger and says what the boot will do.
pub fn start_logging(p: &Prepared) {
    crate::console::init_logger(p.params.debug);
    for e in &p.config_errors {
        log::warn!("config: {e} (built-in defaults in force)");
    }
    log::info!(
        "mode {:?}, fallback {:?} ({:?})",
        p.plan.mode,
        p.plan.fallback,
        p.plan.packaging
    );
    for n in &p.plan.notes {
        log::warn!("{n}");
    }
    for step in &p.plan.steps {
        log::debug!("plan: {step}");
    }
}
