//! PID 1: prepare the plan, run its steps, and when a step fails take the
//! configured outcome. Nothing here may panic its way out (that would be a
//! kernel panic): every failure becomes one line on the console and in the
//! kernel log, then the outcome.

use std::path::Path;
use std::time::Duration;

use super::outcome;
use super::plan::{BootPlan, Target};
use super::run::{self, Facts};
use crate::cmdline::Fallback;
use crate::sys::Real;

/// Why the boot stopped and the plan it stopped in (none before there was one).
struct Failure {
    why: String,
    plan: Option<Box<BootPlan>>,
}

fn boot() -> Result<std::convert::Infallible, Failure> {
    let early = |why: String| Failure { why, plan: None };
    let mut sys = Real;
    crate::sys::Sys::mount_pseudo(&mut sys).map_err(|e| early(e.to_string()))?;
    let raw = super::read_cmdline().map_err(|e| early(format!("reading /proc/cmdline: {e}")))?;
    let prepared = super::prepare(&raw, None, Target::default());
    super::start_logging(&prepared);
    outcome::release_mounts(&prepared.plan.root);
    let replan =
        |text: &[u8]| super::replan(&prepared.params, &prepared.config, Target::default(), text);
    let (plan, ended) = run::run_boot(&prepared.plan, &replan, &mut sys, &mut Facts::default());
    let why = match ended {
        // The steps end in switch_root, which only returns with why not.
        Ok(()) => "the plan has no switch_root step".to_string(),
        Err(e) => e.to_string(),
    };
    Err(Failure {
        why,
        plan: Some(Box::new(plan)),
    })
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
                plan: None,
            },
        };
        if log::max_level() == log::LevelFilter::Off {
            // Failed before the logger: the line still reaches the console.
            eprintln!("init-agent: boot stopped: {}", failure.why);
        }
        log::error!("boot stopped: {}", failure.why);
        let Some(plan) = failure.plan else {
            outcome::reboot(30);
        };
        match plan.fallback {
            Fallback::Shell => shell(&plan),
            Fallback::Reboot => outcome::reboot(plan.reboot_delay),
            Fallback::Retry | Fallback::Local => {
                if plan.fallback == Fallback::Local && !plan.local.is_empty() {
                    if let Err(e) = outcome::boot_local(&plan, &mut Real) {
                        log::error!("fallback local: {e}");
                    }
                }
                attempt += 1;
                let delay = backoff(attempt, plan.retry_max_delay);
                log::warn!("retrying in {delay} s (attempt {attempt})");
                std::thread::sleep(Duration::from_secs(delay.into()));
            }
        }
    }
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

fn shell(plan: &BootPlan) -> ! {
    use std::os::unix::process::CommandExt;
    let sh = &plan.shell_path;
    if Path::new(sh).exists() {
        log::error!("starting the emergency shell {sh}");
        let err = std::process::Command::new(sh).exec();
        log::error!("{sh}: {err}");
    } else {
        log::error!("no emergency shell at {sh}: rebooting instead");
    }
    outcome::reboot(plan.reboot_delay)
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
