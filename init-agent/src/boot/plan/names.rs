//! Host names in the plan: how the boot will turn each into an address —
//! the `[hosts]` table first (no network), then DNS through the resolvers
//! the command line and `[net] dns` name, then those the network brings
//! (DHCP options 6 / 15 / 119, or the host initramfs's). The executor asks
//! in this order; `explain` prints it in the same words.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;

use super::{DhcpAnswer, Packaging};
use crate::cmdline::NetMethod;
use crate::net::dns::Ask;
use crate::source::spec::Host;

/// Where resolvers come from once the network is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AtBoot {
    /// Static `ip=` without DHCP: only the resolvers named beforehand.
    Nothing,
    /// PID 1's own DHCP exchange.
    Dhcp,
    /// dracut / initramfs-tools brought the network up and say what it got.
    HostInitramfs,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamePlan {
    /// `[hosts]`: wins over DNS, needs no network.
    pub hosts: BTreeMap<String, Ipv4Addr>,
    /// `ip=`'s dns0/dns1, `nameserver=`, `[net] dns`: asked before the network's.
    pub servers: Vec<Ipv4Addr>,
    /// `[net] search`, before the network's domains.
    pub search: Vec<String>,
    pub at_boot: AtBoot,
    /// Seconds per query and server.
    pub timeout: u32,
    /// Rounds over the servers.
    pub attempts: u32,
}

/// How one name gets its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum How {
    Hosts { addr: Ipv4Addr },
    Dns { via: String },
}

impl fmt::Display for How {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            How::Hosts { addr } => write!(f, "{addr} from [hosts]"),
            How::Dns { via } => write!(f, "resolved at boot by DNS via {via}"),
        }
    }
}

/// A name nothing can resolve, in the words `explain` and the boot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server `{0}` is a host name with no way to resolve it: add it to [hosts], name a DNS server (ip= <dns0>, nameserver=, [net] dns) or get one from DHCP")]
pub struct Unresolvable(pub String);

impl NamePlan {
    pub fn new(c: &crate::config::Config, net: &super::NetPlan, packaging: Packaging) -> NamePlan {
        let mut servers = net.dns.clone();
        servers.extend(c.net.dns.iter().filter(|a| !net.dns.contains(a)));
        let at_boot = match (packaging, net.method) {
            (Packaging::Standalone, NetMethod::Dhcp) => AtBoot::Dhcp,
            (Packaging::Standalone, _) => AtBoot::Nothing,
            _ => AtBoot::HostInitramfs,
        };
        NamePlan {
            hosts: c.hosts.clone(),
            servers,
            search: c.net.search.clone(),
            at_boot,
            timeout: c.net.dns_timeout,
            attempts: c.net.dns_attempts,
        }
    }

    /// How `name` will be resolved, or why it cannot be.
    pub fn how(&self, name: &str) -> Result<How, Unresolvable> {
        if let Some(&addr) = self.hosts.get(name) {
            return Ok(How::Hosts { addr });
        }
        let listed = (!self.servers.is_empty()).then(|| {
            let s: Vec<String> = self.servers.iter().map(ToString::to_string).collect();
            s.join(", ")
        });
        let network = match self.at_boot {
            AtBoot::Nothing => None,
            AtBoot::Dhcp => Some("DHCP"),
            AtBoot::HostInitramfs => Some("the host initramfs's network"),
        };
        let via = match (listed, network) {
            (Some(l), Some(n)) => format!("{l}, then {n}"),
            (Some(l), None) => l,
            (None, Some(n)) => n.to_string(),
            (None, None) => return Err(Unresolvable(name.into())),
        };
        Ok(How::Dns { via })
    }

    /// A server as the plan checks it: an address, or a name with a way.
    pub fn check(&self, host: &Host) -> Result<(), Unresolvable> {
        match host {
            Host::Addr(_) => Ok(()),
            Host::Name(n) => self.how(n).map(drop),
        }
    }

    /// Whom DNS asks, given what the network said: the named resolvers
    /// first, then the network's; the search domains likewise.
    pub fn ask(&self, learned: &DhcpAnswer) -> Ask {
        let mut servers = self.servers.clone();
        servers.extend(learned.dns.iter().filter(|a| !self.servers.contains(a)));
        let mut search = self.search.clone();
        search.extend(
            learned
                .search
                .iter()
                .filter(|d| !self.search.contains(d))
                .cloned(),
        );
        Ask {
            servers,
            search,
            timeout: self.timeout,
            attempts: self.attempts,
        }
    }
}

/// A name the boot resolves, and how: what `explain` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Named {
    pub name: String,
    pub how: How,
}

impl fmt::Display for Named {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.how)
    }
}
