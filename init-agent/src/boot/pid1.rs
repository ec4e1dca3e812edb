//! PID 1: the boot flow cmdline → config → plan → modules → net → source →
//! mode → hooks → switch_root. Nothing here may panic its way out (that would
//! be a kernel panic): every failure becomes one line on the console and in
//! the kernel log, then the configured outcome.

use std::path::Path;
use std::time::Duration;

use crate::boot::plan;
use crate::cmdline::{self, BreakStage, Fallback};
use crate::{config, sys};

/// Why the boot stopped and what to do about it.
struct Failure {
    why: String,
    fallback: Fallback,
    reboot_delay: u32,
    retry_max_delay: u32,
    shell: String,
    /// The plan and hook settings, for the `local` fallback (sync mode only).
    local: Option<Box<(plan::BootPlan, config::Hooks)>>,
}

fn mount_pseudo() -> Result<(), String> {
    for (what, fstype, target, opts) in [
        ("proc", "proc", "/proc", ""),
        ("sysfs", "sysfs", "/sys", ""),
        ("devtmpfs", "devtmpfs", "/dev", "mode=0755"),
        ("tmpfs", "tmpfs", "/run", "mode=0755"),
    ] {
        let _ = std::fs::create_dir_all(target);
        match sys::mount_fs(what, Path::new(target), fstype, false, opts) {
            Ok(()) => {}
            // Already there: a retry, or an initramfs tool that mounted it.
            Err(e) if e.source.raw_os_error() == Some(16) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

fn boot() -> Result<std::convert::Infallible, Failure> {
    let early = |why: String| Failure {
        why,
        fallback: Fallback::Reboot,
        reboot_delay: 30,
        retry_max_delay: 30,
        shell: "/bin/sh".into(),
        local: None,
    };
    mount_pseudo().map_err(early)?;
    let raw =
        std::fs::read("/proc/cmdline").map_err(|e| early(format!("reading /proc/cmdline: {e}")))?;
    let params = cmdline::parse_bytes(&raw);
    crate::console::init_logger(params.debug);
    let loaded = config::load_for_boot(None, params.agent.config.as_deref());
    for e in &loaded.errors {
        log::warn!("config: {e} (built-in defaults in force)");
    }
    let c = &loaded.config;
    let plan = plan::boot(&params, c);
    let fail = |why: String| Failure {
        why,
        fallback: plan.fallback,
        reboot_delay: c.boot.reboot_delay,
        retry_max_delay: c.boot.retry_max_delay,
        shell: c.boot.shell.clone(),
        local: (plan.mode == cmdline::Mode::Sync && !plan.disks.is_empty())
            .then(|| Box::new((plan.clone(), c.hooks.clone()))),
    };
    log::info!("mode {:?}, fallback {:?}", plan.mode, plan.fallback);
    for step in &plan.steps {
        log::debug!("plan: {step}");
    }
    if let Some(first) = plan.errors.first() {
        return Err(fail(format!(
            "boot plan: {first} ({} problem(s) in all)",
            plan.errors.len()
        )));
    }
    release_mounts();
    breakpoint(&plan, BreakStage::Cmdline, &c.boot.shell);
    let skip = match plan.source.client {
        cmdline::NfsClient::User => crate::initramfs::NFS_MODULES,
        cmdline::NfsClient::Kernel => &[],
    };
    crate::modules::load_boot(&plan.modules, skip).map_err(fail)?;
    breakpoint(&plan, BreakStage::Net, &c.boot.shell);
    let up = crate::net::bring_up(&plan.net, &c.net).map_err(|e| fail(format!("network: {e}")))?;
    log::info!(
        "network up: {} {}/{}{}{}",
        up.link,
        up.address,
        up.prefix,
        up.gateway.map(|g| format!(" via {g}")).unwrap_or_default(),
        up.lease
            .as_ref()
            .and_then(|l| l.root_path.as_ref())
            .map(|r| format!(", DHCP root-path {r}"))
            .unwrap_or_default()
    );
    let root_path = up.lease.as_ref().and_then(|l| l.root_path.clone());
    breakpoint(&plan, BreakStage::PreMount, &c.boot.shell);
    let dhcp_server = up
        .lease
        .as_ref()
        .and_then(|l| l.next_server.or(l.server_id));
    let (source, client) = crate::source::reach(
        &plan.source,
        root_path.as_deref(),
        dhcp_server,
        std::time::Duration::from_secs(plan.timeout.into()),
    )
    .map_err(|e| fail(format!("nfs: {e}")))?;
    // The kernel client may have stood in for the userspace one.
    let plan = plan::BootPlan {
        source: plan::SourcePlan {
            client,
            ..plan.source.clone()
        },
        ..plan.clone()
    };
    breakpoint(&plan, BreakStage::Mount, &c.boot.shell);
    crate::boot::run::run(
        &plan,
        c,
        &source,
        up.lease.as_ref().and_then(|l| l.hostname.as_deref()),
    )
    .map_err(fail)?;
    let reaped = sys::reap_orphans();
    if reaped > 0 {
        log::debug!("{reaped} orphaned processes reaped");
    }
    breakpoint(&plan, BreakStage::PrePivot, &c.boot.shell);
    let why =
        crate::sys::switch_root::switch_root(Path::new(&plan.root), &plan.init, &plan.init_args);
    Err(fail(format!("switch_root: {why}")))
}

/// Undoes what an earlier, failed attempt mounted, so a retry starts clean.
fn release_mounts() {
    for m in [plan::SOURCE_MOUNT, plan::NEW_ROOT] {
        // Stacked mounts come off one at a time; "not mounted" ends the loop.
        for _ in 0..8 {
            if sys::unmount(Path::new(m), true).is_err() {
                break;
            }
        }
    }
}

/// `rd.break=<stage>`: an emergency shell; leaving it continues the boot.
fn breakpoint(plan: &plan::BootPlan, stage: BreakStage, shell: &str) {
    if !plan.breaks.contains(&stage) {
        return;
    }
    log::warn!("rd.break={stage}: starting {shell}; exit it to continue the boot");
    match std::process::Command::new(shell).status() {
        Ok(s) => log::info!("rd.break={stage}: shell ended ({s}), boot continues"),
        Err(e) => log::error!("rd.break={stage}: {shell}: {e}; boot continues"),
    }
}

/// Runs the boot and, when it stops, the configured outcome; never returns.
pub fn run() -> ! {
    // The kernel starts init without PATH; sfdisk, mke2fs and hooks' tools live here.
    std::env::set_var("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let mut attempt: u32 = 0;
    loop {
        let failure = match std::panic::catch_unwind(boot) {
            Ok(Ok(never)) => match never {},
            Ok(Err(f)) => f,
            Err(_) => Failure {
                why: "internal error (a bug: please report the lines above)".into(),
                fallback: Fallback::Reboot,
                reboot_delay: 30,
                retry_max_delay: 30,
                shell: "/bin/sh".into(),
                local: None,
            },
        };
        if log::max_level() == log::LevelFilter::Off {
            // Failed before the logger: the line still reaches the console.
            eprintln!("init-agent: boot stopped: {}", failure.why);
        }
        log::error!("boot stopped: {}", failure.why);
        match failure.fallback {
            Fallback::Shell => shell(&failure),
            Fallback::Reboot => reboot(&failure),
            Fallback::Retry | Fallback::Local => {
                if let (Fallback::Local, Some(local)) = (failure.fallback, &failure.local) {
                    let why = boot_local(&local.0, &local.1);
                    log::error!("fallback local: {why}");
                }
                attempt += 1;
                let delay = backoff(attempt, failure.retry_max_delay);
                log::warn!("retrying in {delay} s (attempt {attempt})");
                std::thread::sleep(Duration::from_secs(delay.into()));
            }
        }
    }
}

/// Boots the last complete local copy; returns only why it could not.
fn boot_local(plan: &plan::BootPlan, hooks: &config::Hooks) -> String {
    release_mounts();
    if let Err(e) = crate::boot::run::local(plan, hooks) {
        return e;
    }
    let why =
        crate::sys::switch_root::switch_root(Path::new(&plan.root), &plan.init, &plan.init_args);
    format!("switch_root: {why}")
}

/// Capped exponential backoff with jitter, so 500 nodes do not retry in step.
fn backoff(attempt: u32, cap: u32) -> u32 {
    let base = 1u32
        .checked_shl(attempt.min(16))
        .unwrap_or(u32::MAX)
        .min(cap.max(1));
    let jitter = (rustix::process::getpid().as_raw_nonzero().get() as u32).wrapping_mul(2654435761)
        % (base / 2 + 1);
    base / 2 + jitter
}

fn shell(f: &Failure) -> ! {
    use std::os::unix::process::CommandExt;
    if Path::new(&f.shell).exists() {
        log::error!("starting the emergency shell {}", f.shell);
        let err = std::process::Command::new(&f.shell).exec();
        log::error!("{}: {err}", f.shell);
    } else {
        log::error!("no emergency shell at {}: rebooting instead", f.shell);
    }
    reboot(f)
}

fn reboot(f: &Failure) -> ! {
    log::error!("rebooting in {} s", f.reboot_delay);
    std::thread::sleep(Duration::from_secs(f.reboot_delay.into()));
    rustix::fs::sync();
    let _ = rustix::system::reboot(rustix::system::RebootCommand::Restart);
    // Still here (not PID 1, or no permission): nothing better than waiting.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_grows_to_the_cap_and_never_to_zero() {
        for a in 1..40 {
            let d = backoff(a, 30);
            assert!((1..=30).contains(&d), "attempt {a}: {d}");
        }
        assert!(backoff(1, 30) <= 2);
    }
}
