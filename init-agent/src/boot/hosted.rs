//! `init-agent hosted`: the agent inside a dracut or initramfs-tools
//! initramfs. The host initramfs owns the early boot (udev, modules, the
//! network, rd.break/rd.shell, the final switch_root); the agent owns the
//! standard root's use: under dracut, whose nfs module mounted it on the new
//! root, the mount is moved aside where the mode needs it (sync, overlay);
//! under initramfs-tools it mounts it itself with mount(2).

use std::path::Path;
use std::time::Duration;

use crate::boot::plan;
use crate::cli::Hosted;
use crate::cmdline::{Fallback, Mode};
use crate::{config, sys};

/// `KEY='value'` lines of the `/run/net-<dev>.conf` files klibc's ipconfig
/// writes (initramfs-tools): DHCP's root-path and host name.
pub fn netconf_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix('=')?;
        let v = v.trim().trim_matches('\'').trim_matches('"');
        (!v.is_empty()).then(|| v.to_string())
    })
}

fn from_netconf(key: &str) -> Option<String> {
    let rd = std::fs::read_dir("/run").ok()?;
    rd.filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("net-") && n.ends_with(".conf")
        })
        .find_map(|e| netconf_value(&std::fs::read_to_string(e.path()).ok()?, key))
}

/// The source (`server:path`) and flags of what is mounted on `target`, from
/// /proc/self/mountinfo (the last, i.e. topmost, mount there).
pub fn mounted_on(mountinfo: &str, target: &str) -> Option<(String, bool)> {
    mountinfo.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let sep = f.iter().position(|x| *x == "-")?;
        let read_only = f.get(5)?.split(',').any(|o| o == "ro");
        let source = f.get(sep + 2)?.to_string();
        (f.get(4)? == &target).then_some((source, read_only))
    })
}

/// Runs the mode on `args.root`; true when the host initramfs may switch to it.
pub fn run(args: &Hosted) -> bool {
    let raw = std::fs::read("/proc/cmdline").unwrap_or_default();
    let params = crate::cmdline::parse_bytes(&raw);
    crate::console::init_logger(params.debug);
    let loaded = config::load_for_boot(None, params.agent.config.as_deref());
    for e in &loaded.errors {
        log::warn!("config: {e} (built-in defaults in force)");
    }
    let c = &loaded.config;
    let plan = plan::boot(&params, c).with_root(&args.root);
    log::info!("mode {}, fallback {} (hosted)", plan.mode, plan.fallback);
    let why = match assemble(args, &plan, c) {
        Ok(()) => return true,
        Err(why) => why,
    };
    log::error!("boot stopped: {why}");
    match plan.fallback {
        Fallback::Local if plan.mode == Mode::Sync && !plan.disks.is_empty() => {
            for m in [plan::SOURCE_MOUNT, plan.root.as_str()] {
                for _ in 0..8 {
                    if sys::unmount(Path::new(m), true).is_err() {
                        break;
                    }
                }
            }
            match crate::boot::run::local(&plan, &c.hooks) {
                Ok(()) => return true,
                Err(e) => log::error!("fallback local: {e}"),
            }
        }
        Fallback::Reboot => {
            log::error!("rebooting in {} s", c.boot.reboot_delay);
            std::thread::sleep(Duration::from_secs(c.boot.reboot_delay.into()));
            rustix::fs::sync();
            let _ = rustix::system::reboot(rustix::system::RebootCommand::Restart);
        }
        _ => {}
    }
    // Shell and retry are the host initramfs's: its emergency shell (rd.shell).
    false
}

fn assemble(args: &Hosted, plan: &plan::BootPlan, c: &config::Config) -> Result<(), String> {
    if let Some(first) = plan.errors.first() {
        return Err(format!(
            "boot plan: {first} ({} problem(s) in all)",
            plan.errors.len()
        ));
    }
    if args.mount {
        let (source, client) = crate::source::reach(
            &plan.source,
            from_netconf("ROOTPATH").as_deref(),
            from_netconf("ROOTSERVER").and_then(|s| s.parse().ok()),
            Duration::from_secs(plan.timeout.into()),
        )
        .map_err(|e| format!("nfs: {e}"))?;
        let mut plan = plan.clone();
        plan.source.client = client;
        crate::boot::run::run(&plan, c, &source, from_netconf("HOSTNAME").as_deref())
    } else {
        // The host initramfs mounted it with the kernel client: sync reads that.
        let mut plan = plan.clone();
        plan.source.client = crate::cmdline::NfsClient::Kernel;
        let source = adopt(&plan)?;
        crate::boot::run::run(&plan, c, &source, from_netconf("HOSTNAME").as_deref())
    }
}

/// Takes over the standard root the host initramfs mounted on the new root.
fn adopt(plan: &plan::BootPlan) -> Result<String, String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    let (source, read_only) = mounted_on(&info, &plan.root).ok_or_else(|| {
        format!(
            "nothing is mounted on {}: the standard root should be (root=nfs:…)",
            plan.root
        )
    })?;
    let root = Path::new(&plan.root);
    match plan.mode {
        Mode::Sync | Mode::Overlay => {
            let aside = Path::new(plan::SOURCE_MOUNT);
            std::fs::create_dir_all(aside).map_err(|e| format!("{}: {e}", aside.display()))?;
            sys::move_mount(root, aside).map_err(|e| e.to_string())?;
            log::info!("standard root {source} moved to {}", aside.display());
        }
        Mode::Update if read_only => {
            sys::remount(root, false).map_err(|e| e.to_string())?;
            log::info!("standard root {source} remounted read-write (update mode)");
        }
        _ => {}
    }
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipconfig_files_and_mountinfo_are_read() {
        let conf = "DEVICE='eth0'\nIPV4ADDR='10.0.2.15'\nHOSTNAME='cn01'\nROOTPATH='10.0.2.2:/export'\nDNSDOMAIN=''\n";
        assert_eq!(netconf_value(conf, "HOSTNAME").as_deref(), Some("cn01"));
        assert_eq!(
            netconf_value(conf, "ROOTPATH").as_deref(),
            Some("10.0.2.2:/export")
        );
        assert_eq!(netconf_value(conf, "DNSDOMAIN"), None);
        assert_eq!(netconf_value(conf, "ROOT"), None);
        let info = "22 1 0:21 / / rw,relatime - rootfs rootfs rw\n\
                    40 22 0:35 / /sysroot ro,relatime shared:1 - nfs4 10.0.2.2:/export ro,vers=4.2\n\
                    41 40 0:36 / /sysroot/run rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mounted_on(info, "/sysroot"),
            Some(("10.0.2.2:/export".to_string(), true))
        );
        assert_eq!(mounted_on(info, "/root"), None);
    }
}
