//! The boot NIC: chosen by BOOTIF (else the first Ethernet link with carrier),
//! brought up, configured by DHCP or the static `ip=`, by netlink.

pub mod dhcp;
pub mod dns;
pub mod netlink;

use std::fmt;
use std::io;
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
fn find(plan: &NetPlan, wait: Duration) -> Result<Link, NetError> {
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
                (Some(mac), _) => NetError::NoBootif(*mac),
                (None, Some(dev)) => NetError::NoDevice(dev.clone()),
                (None, None) => NetError::NoEthernet,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Why the network did not come up, naming the interface and the step.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("no interface has the BOOTIF address {0}")]
    NoBootif(Mac),
    #[error("no interface {0}")]
    NoDevice(String),
    #[error("no Ethernet interface")]
    NoEthernet,
    #[error("ip=: static without an address")]
    StaticWithoutAddress,
    #[error("ip=off/none: the node needs the network")]
    Off,
    #[error("{0}: no hardware address for DHCP")]
    NoHardwareAddress(String),
    /// Every DHCP exchange failed; the last one's error.
    #[error("{link}: {last}")]
    NoLease { link: String, last: dhcp::DhcpError },
    #[error("{link}: {step}: {error}")]
    Netlink {
        link: String,
        step: LinkStep,
        error: io::Error,
    },
}

/// The netlink request that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStep {
    Up,
    BroadcastRoute,
    Address(Ipv4Addr, u8),
    DefaultRoute(Ipv4Addr),
}

impl fmt::Display for LinkStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkStep::Up => f.write_str("setting the link up"),
            LinkStep::BroadcastRoute => f.write_str("broadcast route"),
            LinkStep::Address(a, prefix) => write!(f, "address {a}/{prefix}"),
            LinkStep::DefaultRoute(gw) => write!(f, "default route via {gw}"),
        }
    }
}

/// Brings the boot NIC up and configures it; errors say which step failed.
pub fn bring_up(plan: &NetPlan, c: &config::Net) -> Result<Configured, NetError> {
    let link = find(plan, Duration::from_secs(c.link_timeout.into()))?;
    let failed = |step: LinkStep| {
        let link = link.name.clone();
        move |error: io::Error| NetError::Netlink { link, step, error }
    };
    netlink::link_up(link.index).map_err(failed(LinkStep::Up))?;
    let deadline = Instant::now() + Duration::from_secs(c.link_timeout.into());
    while !carrier(&link.name) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (address, prefix, gateway, lease) = match plan.method {
        NetMethod::Static => {
            let address = plan.address.ok_or(NetError::StaticWithoutAddress)?;
            (address, plan.prefix.unwrap_or(24), plan.gateway, None)
        }
        NetMethod::None => return Err(NetError::Off),
        NetMethod::Dhcp => {
            let mac = link
                .mac
                .ok_or_else(|| NetError::NoHardwareAddress(link.name.clone()))?;
            netlink::add_broadcast_route(link.index).map_err(failed(LinkStep::BroadcastRoute))?;
            let exchanges = c.dhcp_retries.max(1);
            log::info!(
                "{}: DHCP ({exchanges} exchanges of up to {} s)",
                link.name,
                c.dhcp_timeout
            );
            let mut attempt = 0;
            let lease = loop {
                let xid = u32::from_be_bytes([mac.0[2], mac.0[3], mac.0[4], mac.0[5]]) ^ attempt;
                match dhcp::exchange(&mac.0, xid, Duration::from_secs(c.dhcp_timeout.into())) {
                    Ok(l) => break l,
                    Err(e) => {
                        log::warn!("{}: {e} (attempt {})", link.name, attempt + 1);
                        attempt += 1;
                        if attempt == exchanges {
                            return Err(NetError::NoLease {
                                link: link.name,
                                last: e,
                            });
                        }
                    }
                }
            };
            (
                lease.address,
                lease.prefix,
                plan.gateway.or(lease.router),
                Some(lease),
            )
        }
    };
    netlink::add_address(link.index, address, prefix)
        .map_err(failed(LinkStep::Address(address, prefix)))?;
    if let Some(gw) = gateway {
        netlink::add_default_route(link.index, gw).map_err(failed(LinkStep::DefaultRoute(gw)))?;
    }
    Ok(Configured {
        link: link.name,
        address,
        prefix,
        gateway,
        lease,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The boot prints these after `network: `; the VM tests look for them.
    #[test]
    fn errors_name_the_interface_and_the_step() {
        let mac = "aa:bb:cc:dd:ee:ff".parse().unwrap();
        assert_eq!(
            NetError::NoBootif(mac).to_string(),
            "no interface has the BOOTIF address aa:bb:cc:dd:ee:ff"
        );
        let e = NetError::Netlink {
            link: "eth0".into(),
            step: LinkStep::Address(Ipv4Addr::new(10, 0, 2, 15), 24),
            error: io::Error::from_raw_os_error(17),
        };
        assert_eq!(
            e.to_string(),
            "eth0: address 10.0.2.15/24: File exists (os error 17)"
        );
        let e = NetError::NoLease {
            link: "eth0".into(),
            last: dhcp::DhcpError::Timeout("offer"),
        };
        assert_eq!(e.to_string(), "eth0: no DHCP offer within the timeout");
    }
}
