//! `init-agent hosted`: the agent inside a dracut or initramfs-tools
//! initramfs. The host initramfs owns the early boot (udev, modules, the
//! network, rd.break/rd.shell, the final switch_root); the agent owns the
//! standard root's use: under dracut, whose nfs module mounted it on the new
//! root, the mount is moved aside where the mode needs it (sync, overlay);
//! under initramfs-tools it mounts it itself with mount(2).

use std::net::Ipv4Addr;

use super::outcome;
use super::plan::{DhcpAnswer, Packaging, Target};
use super::run::{self, Facts};
use crate::cli::Hosted;
use crate::cmdline::Fallback;
use crate::sys::Real;

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
    crate::sys::mountinfo::parse(mountinfo)
        .into_iter()
        .rev()
        .find(|m| m.target == std::path::Path::new(target))
        .map(|m| (m.source, m.read_only))
}

/// What the host initramfs's network said: klibc ipconfig's files
/// (initramfs-tools), else the initramfs's /etc/resolv.conf for the
/// resolvers (dracut, which mounted the root itself and leaves no lease).
pub fn host_dhcp() -> DhcpAnswer {
    let mut dns: Vec<Ipv4Addr> = ["IPV4DNS0", "IPV4DNS1"]
        .iter()
        .filter_map(|k| from_netconf(k)?.parse().ok())
        .filter(|a: &Ipv4Addr| !a.is_unspecified())
        .collect();
    let mut search: Vec<String> = from_netconf("DOMAINSEARCH")
        .or_else(|| from_netconf("DNSDOMAIN"))
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    if dns.is_empty() {
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let (servers, domains) = crate::net::dns::resolv_conf(&text);
        dns = servers;
        if search.is_empty() {
            search = domains;
        }
    }
    DhcpAnswer {
        root_path: from_netconf("ROOTPATH"),
        next_server: from_netconf("ROOTSERVER").and_then(|s| s.parse().ok()),
        server_id: None,
        hostname: from_netconf("HOSTNAME"),
        dns,
        search,
    }
}

/// Runs the plan's steps on `args.root`; true when the host initramfs may
/// switch to it.
pub fn run(args: &Hosted) -> bool {
    let raw = super::read_cmdline().unwrap_or_default();
    let packaging = if args.mount {
        Packaging::InitramfsTools
    } else {
        Packaging::Dracut
    };
    let target = Target {
        packaging,
        root: &args.root,
    };
    let prepared = super::prepare(&raw, None, target);
    super::start_logging(&prepared);
    let replan = |text: &[u8]| super::replan(&prepared.params, &prepared.config, target, text);
    let (plan, ended) = run::run_boot(&prepared.plan, &replan, &mut Real, &mut Facts::default());
    let plan = &plan;
    let why = match ended {
        Ok(()) => return true,
        Err(why) => why,
    };
    log::error!("boot stopped: {why}");
    match plan.fallback {
        Fallback::Local if !plan.local.is_empty() => match outcome::boot_local(plan, &mut Real) {
            Ok(()) => return true,
            Err(e) => log::error!("fallback local: {e}"),
        },
        Fallback::Reboot => outcome::reboot(plan.reboot_delay),
        _ => {}
    }
    // Shell and retry are the host initramfs's: its emergency shell (rd.shell).
    false
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
