//! The standard root over NFS, mounted with the kernel client by mount(2):
//! no mount.nfs in the initramfs, so the option string carries `addr=` and
//! `proto=tcp` itself; or, for sync mode, read by the userspace NFSv3 client
//! (`sync::nfs`), which mounts nothing. Servers are tried in order until the
//! timeout.

pub mod nfs;
pub mod tree;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::boot::plan::SourcePlan;
use crate::cmdline::NfsClient;

/// File system type, data string and read-only flag for mount(2).
pub fn mount_args(
    options: &[String],
    server: Ipv4Addr,
    version: Option<u8>,
) -> (&'static str, String, bool) {
    let read_only = !options.iter().any(|o| o == "rw");
    let mut data: Vec<String> = options
        .iter()
        .filter(|o| {
            *o != "ro"
                && *o != "rw"
                && !o.starts_with("addr=")
                && !o.starts_with("vers=")
                && !o.starts_with("nfsvers=")
        })
        .cloned()
        .collect();
    let vers = options
        .iter()
        .find_map(|o| {
            o.strip_prefix("vers=")
                .or_else(|| o.strip_prefix("nfsvers="))
        })
        .map(String::from)
        .unwrap_or_else(|| match version {
            Some(3) => "3".into(),
            _ => "4.2".into(),
        });
    let fstype = if vers.starts_with('3') { "nfs" } else { "nfs4" };
    data.push(format!("vers={vers}"));
    data.push(format!("addr={server}"));
    if !data.iter().any(|o| o.starts_with("proto=")) {
        // The kernel's NFS client here has no UDP (NFS_DISABLE_UDP_SUPPORT).
        data.push("proto=tcp".into());
    }
    if fstype == "nfs" && !data.iter().any(|o| o == "nolock" || o == "lock") {
        // No rpc.statd in the initramfs: v3 locking cannot work.
        data.push("nolock".into());
    }
    (fstype, data.join(","), read_only)
}

/// The standard root reached as the plan says: mounted by the kernel client,
/// or (sync mode) checked reachable by the userspace NFSv3 client, which the
/// sync then reads through. Returns `server:path` and the client that
/// reached it: where the userspace client was only the default, a server
/// that answers NFS but not NFSv3's MOUNT (v4 only) gets the kernel client.
pub fn reach(
    plan: &SourcePlan,
    root_path: Option<&str>,
    dhcp_server: Option<Ipv4Addr>,
    timeout: Duration,
) -> Result<(String, NfsClient), String> {
    let (servers, path) = resolve(plan, root_path, dhcp_server)?;
    if plan.client == NfsClient::Kernel {
        let target = mount_target(plan)?;
        let source = try_servers(&servers, &path, timeout, |ip, source| {
            mount_one(plan, target, ip, source)
        })?;
        return Ok((source, NfsClient::Kernel));
    }
    let mut used = NfsClient::User;
    let source = try_servers(&servers, &path, timeout, |ip, source| {
        let url = user_url(&ip.to_string(), &path, &plan.options);
        let e = match crate::source::nfs::Nfs::probe(&url) {
            Ok(()) => {
                log::info!("standard root {source}: reached by the userspace NFSv3 client");
                return Ok(());
            }
            Err(e) => e,
        };
        if !(plan.kernel_fallback && serves_nfs(ip, &plan.options)) {
            return Err(format!("{source}: {e}"));
        }
        log::warn!("{source}: no NFSv3 MOUNT service ({e}): mounting it with the kernel client");
        let wanted: Vec<String> = crate::initramfs::NFS_MODULES
            .iter()
            .map(|m| m.to_string())
            .collect();
        crate::modules::load_boot(&wanted, &[])?;
        mount_one(plan, mount_target(plan)?, ip, source)?;
        used = NfsClient::Kernel;
        Ok(())
    })?;
    Ok((source, used))
}

/// Whether the server accepts connections on its NFS port at all (it is up,
/// though it may speak NFSv4 only).
fn serves_nfs(ip: Ipv4Addr, options: &[String]) -> bool {
    let port = option(options, "port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(2049u16);
    std::net::TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(3)).is_ok()
}

/// The servers to try and the path: the plan's, else DHCP's root-path (option
/// 17, `<server>:<path>`), else the lease's next-server (then its server id).
fn resolve(
    plan: &SourcePlan,
    root_path: Option<&str>,
    dhcp_server: Option<Ipv4Addr>,
) -> Result<(Vec<String>, String), String> {
    let from_dhcp = root_path
        .and_then(|r| r.split_once(':'))
        .map(|(s, p)| (s.to_string(), p.to_string()));
    let mut servers = plan.servers.clone();
    if servers.is_empty() {
        servers.extend(
            plan.server
                .clone()
                .or(from_dhcp.as_ref().map(|d| d.0.clone()))
                .or(dhcp_server.map(|a| a.to_string())),
        );
    }
    let path = plan
        .path
        .clone()
        .or(from_dhcp.map(|d| d.1))
        .ok_or("no standard root: neither root= nor DHCP root-path names one")?;
    if servers.is_empty() {
        return Err(
            "no NFS server: neither root=, DHCP root-path nor DHCP next-server names one".into(),
        );
    }
    Ok((servers, path))
}

/// The value of mount option `key=value`, if given.
fn option<'o>(options: &'o [String], key: &str) -> Option<&'o str> {
    options
        .iter()
        .find_map(|o| o.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

/// The userspace client's URL for `server:path`; the mount options `port=`
/// and `mountport=` carry over.
pub fn user_url(server: &str, path: &str, options: &[String]) -> String {
    let port = option(options, "port")
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let query = option(options, "mountport")
        .map(|p| format!("?mountport={p}"))
        .unwrap_or_default();
    format!("nfs://{server}{port}{path}{query}")
}

fn mount_target(plan: &SourcePlan) -> Result<&Path, String> {
    let target = Path::new(&plan.mountpoint);
    std::fs::create_dir_all(target).map_err(|e| format!("{}: {e}", target.display()))?;
    Ok(target)
}

/// Mounts `source` (`server:path`, the server at `ip`) with the kernel client.
fn mount_one(plan: &SourcePlan, target: &Path, ip: Ipv4Addr, source: &str) -> Result<(), String> {
    let (fstype, data, ro) = mount_args(&plan.options, ip, plan.version);
    crate::sys::mount_fs(source, target, fstype, ro, &data)
        .map(|()| {
            log::info!(
                "standard root {source} mounted on {} ({fstype}, {data})",
                target.display()
            )
        })
        .map_err(|e| format!("{source}: {}", e.source))
}

/// `attempt(server, "server:path")` on each server in turn until one works,
/// again with a doubling pause until the timeout.
fn try_servers(
    servers: &[String],
    path: &str,
    timeout: Duration,
    mut attempt: impl FnMut(Ipv4Addr, &str) -> Result<(), String>,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut delay = 1;
    loop {
        let mut last = String::new();
        for s in servers {
            let Ok(ip) = s.trim_matches(|c| c == '[' || c == ']').parse::<Ipv4Addr>() else {
                last = format!("{s}: needs an IPv4 address (no name lookup in the initramfs)");
                continue;
            };
            let source = format!("{s}:{path}");
            match attempt(ip, &source) {
                Ok(()) => return Ok(source),
                Err(e) => {
                    log::warn!("{e}");
                    last = e;
                }
            }
        }
        if Instant::now() + Duration::from_secs(delay) > deadline {
            return Err(format!("{last} (gave up after {} s)", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_secs(delay));
        delay = (delay * 2).min(16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn user_urls_carry_the_port_options() {
        assert_eq!(
            user_url("10.0.2.2", "/srv/root", &s(&["ro"])),
            "nfs://10.0.2.2/srv/root"
        );
        assert_eq!(
            user_url(
                "10.0.2.2",
                "/r",
                &s(&["ro", "port=2050", "mountport=635", "nolock"])
            ),
            "nfs://10.0.2.2:2050/r?mountport=635"
        );
    }

    #[test]
    fn option_strings_carry_addr_proto_and_version() {
        let ip = Ipv4Addr::new(10, 0, 2, 2);
        assert_eq!(
            mount_args(&s(&["ro", "vers=3", "actimeo=600"]), ip, None),
            (
                "nfs",
                "actimeo=600,vers=3,addr=10.0.2.2,proto=tcp,nolock".to_string(),
                true
            )
        );
        assert_eq!(
            mount_args(&s(&["rw"]), ip, Some(4)),
            (
                "nfs4",
                "vers=4.2,addr=10.0.2.2,proto=tcp".to_string(),
                false
            )
        );
        assert_eq!(
            mount_args(&s(&["ro", "nfsvers=4.1"]), ip, None).1,
            "vers=4.1,addr=10.0.2.2,proto=tcp"
        );
    }
}
