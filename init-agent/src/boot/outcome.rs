//! When a step cannot go on: one line saying why, then the configured way
//! out. Shared by PID 1 and the hosted driver: the unmounting of what a
//! failed attempt left, the `local` fallback's run, the reboot.

use std::path::Path;
use std::time::Duration;

use super::plan::{BootPlan, SOURCE_MOUNT};
use super::run::{self, Facts};
use crate::sys::{self, Sys};

/// Undoes what an earlier, failed attempt mounted, so a retry (or the
/// `local` fallback) starts clean.
pub fn release_mounts(root: &str) {
    for m in [SOURCE_MOUNT, root] {
        // Stacked mounts come off one at a time; "not mounted" ends the loop.
        for _ in 0..8 {
            if sys::unmount(Path::new(m), true).is_err() {
                break;
            }
        }
    }
}

/// The `local` fallback's steps (the last complete copy); returns only why
/// they could not finish, or `Ok` under a host initramfs, which switches.
pub fn boot_local(plan: &BootPlan, sys: &mut dyn Sys) -> Result<(), run::BootError> {
    release_mounts(&plan.root);
    let mut facts = Facts::default();
    run::run(plan, &plan.local, sys, &mut facts)
}

/// Syncs the disks and reboots; waits forever when that is not allowed.
pub fn reboot(delay: u32) -> ! {
    log::error!("rebooting in {delay} s");
    std::thread::sleep(Duration::from_secs(delay.into()));
    rustix::fs::sync();
    let _ = rustix::system::reboot(rustix::system::RebootCommand::Restart);
    // Still here (not PID 1, or no permission): nothing better than waiting.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
