//! The boot NIC: chosen by BOOTIF (else the first Ethernet link with carrier),
//! brought up, configured by DHCP or the static `ip=`, by netlink.

pub mod dhcp;
pub mod netlink;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::boot::plan::NetPlan;
use crate::cmdline::NetMethod;
use crate::config;
use crate::hwaddr::Mac;

/// A network interface as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub index: u32,
    pub mac: Option<Mac>,
}

/// How the node ended up configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configured {
    pub link: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub lease: Option<dhcp::Lease>,
}

fn links() -> Vec<Link> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return out;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let read = |f: &str| std::fs::read_to_string(e.path().join(f)).unwrap_or_default();
        // Type 1 is Ethernet (ARPHRD_ETHER); loopback and tunnels are skipped.
        if read("type").trim() != "1" {
            continue;
        }
        let Ok(index) = read("ifindex").trim().parse() else {
            continue;
        };
        let mac = read("address").trim().parse::<Mac>().ok();
        out.push(Link { name, index, mac });
    }
    out.sort_by_key(|l| l.index);
    out
}

fn carrier(name: &str) -> bool {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("carrier"))
        .map(|c| c.trim() == "1")
        .unwrap_or(false)
}

/// Waits for the wanted link to appear (drivers probe asynchronously).
fn find(plan: &NetPlan, wait: Duration) -> Result<Link, String> {
    let deadline = Instant::now() + wait;
    loop {
        let all = links();
        let hit = match (&plan.mac, &plan.device) {
            (Some(mac), _) => all.iter().find(|l| l.mac.as_ref() == Some(mac)),
            (None, Some(dev)) => all.iter().find(|l| &l.name == dev),
            (None, None) => all.first(),
        };
        if let Some(l) = hit {
            return Ok(l.clone());
        }
        if Instant::now() >= deadline {
            return Err(match (&plan.mac, &plan.device) {
                (Some(mac), _) => format!("no interface has the BOOTIF address {mac}"),
                (None, Some(dev)) => format!("no interface {dev}"),
                (None, None) => "no Ethernet interface".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Brings the boot NIC up and configures it; errors say which step failed.
pub fn bring_up(plan: &NetPlan, c: &config::Net) -> Result<Configured, NetError> {
    configure(plan, c).map_err(NetError)
}

/// Why the network did not come up, naming the interface and the step.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NetError(pub String);

fn configure(plan: &NetPlan, c: &config::Net) -> Result<Configured, String> {
    let link = find(plan, Duration::from_secs(c.link_timeout.into()))?;
    netlink::link_up(link.index).map_err(|e| format!("{}: setting the link up: {e}", link.name))?;
    let deadline = Instant::now() + Duration::from_secs(c.link_timeout.into());
    while !carrier(&link.name) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (address, prefix, gateway, lease) = match plan.method {
        NetMethod::Static => {
            let address = plan.address.ok_or("ip=: static without an address")?;
            (address, plan.prefix.unwrap_or(24), plan.gateway, None)
        }
        NetMethod::None => return Err("ip=off/none: the node needs the network".into()),
        NetMethod::Dhcp => {
            let mac = link
                .mac
                .ok_or_else(|| format!("{}: no hardware address for DHCP", link.name))?;
            netlink::add_broadcast_route(link.index)
                .map_err(|e| format!("{}: broadcast route: {e}", link.name))?;
            let mut last = String::new();
            let mut lease = None;
            log::info!(
                "{}: DHCP ({} exchanges of up to {} s)",
                link.name,
                c.dhcp_retries.max(1),
                c.dhcp_timeout
            );
            for attempt in 0..c.dhcp_retries.max(1) {
                let xid = u32::from_be_bytes([mac.0[2], mac.0[3], mac.0[4], mac.0[5]]) ^ attempt;
                match dhcp::exchange(&mac.0, xid, Duration::from_secs(c.dhcp_timeout.into())) {
                    Ok(l) => {
                        lease = Some(l);
                        break;
                    }
                    Err(e) => {
                        log::warn!("{}: {e} (attempt {})", link.name, attempt + 1);
                        last = e.to_string();
                    }
                }
            }
            let lease = lease.ok_or_else(|| format!("{}: {last}", link.name))?;
            (
                lease.address,
                lease.prefix,
                plan.gateway.or(lease.router),
                Some(lease),
            )
        }
    };
    netlink::add_address(link.index, address, prefix)
        .map_err(|e| format!("{}: address {address}/{prefix}: {e}", link.name))?;
    if let Some(gw) = gateway {
        netlink::add_default_route(link.index, gw)
            .map_err(|e| format!("{}: default route via {gw}: {e}", link.name))?;
    }
    Ok(Configured {
        link: link.name,
        address,
        prefix,
        gateway,
        lease,
    })
}
