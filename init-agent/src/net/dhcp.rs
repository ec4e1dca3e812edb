//! DHCPv4 (RFC 2131) with the dhcproto codec: DISCOVER, OFFER, REQUEST, ACK.
//! The exchange is pure (bytes in, bytes out, tested); `exchange` does the I/O.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};

/// What the server offered and the boot uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// Search domains: option 119, else option 15's domain.
    pub search: Vec<String>,
    pub hostname: Option<String>,
    /// Option 17: where the root lives when the command line does not say.
    pub root_path: Option<String>,
    pub next_server: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
}

impl Lease {
    /// What the boot takes from the lease besides the address.
    pub fn answer(&self) -> crate::boot::plan::DhcpAnswer {
        crate::boot::plan::DhcpAnswer {
            root_path: self.root_path.clone(),
            next_server: self.next_server,
            server_id: self.server_id,
            hostname: self.hostname.clone(),
            dns: self.dns.clone(),
            search: self.search.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DhcpError {
    #[error("no DHCP {0} within the timeout")]
    Timeout(&'static str),
    #[error("DHCP server said NAK")]
    Nak,
    #[error("DHCP: {0}")]
    Io(String),
}

fn base(xid: u32, mac: &[u8; 6], kind: MessageType) -> Message {
    let mut m = Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        mac,
    );
    // Broadcast replies reach a socket whose interface has no address yet.
    m.set_flags(Flags::default().set_broadcast());
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::DomainName,
        OptionCode::DomainSearch,
        OptionCode::Hostname,
        OptionCode::RootPath,
    ]));
    m
}

pub fn discover(xid: u32, mac: &[u8; 6]) -> Vec<u8> {
    base(xid, mac, MessageType::Discover)
        .to_vec()
        .unwrap_or_default()
}

pub fn request(xid: u32, mac: &[u8; 6], offer: &Lease) -> Vec<u8> {
    let mut m = base(xid, mac, MessageType::Request);
    m.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(offer.address));
    if let Some(s) = offer.server_id {
        m.opts_mut().insert(DhcpOption::ServerIdentifier(s));
    }
    m.to_vec().unwrap_or_default()
}

/// The lease in a reply of `kind` for our `xid`; None for anything else
/// (other clients' traffic, garbage), so the caller keeps listening.
pub fn parse(bytes: &[u8], xid: u32, kind: MessageType) -> Option<Result<Lease, DhcpError>> {
    // Any host on the segment can send us anything. dhcproto 0.14 asserts
    // (debug_assert) on some malformed options instead of failing, as
    // fuzzing found: such a packet is garbage like any other, never a panic.
    let decoded = std::panic::catch_unwind(|| Message::from_bytes(bytes));
    let m = decoded.ok()?.ok()?;
    if m.opcode() != Opcode::BootReply || m.xid() != xid {
        return None;
    }
    let o = m.opts();
    match o.get(OptionCode::MessageType) {
        Some(DhcpOption::MessageType(MessageType::Nak)) if kind == MessageType::Ack => {
            return Some(Err(DhcpError::Nak))
        }
        Some(DhcpOption::MessageType(t)) if *t == kind => {}
        _ => return None,
    }
    let prefix = match o.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(m)) => u32::from(*m).leading_ones() as u8,
        _ => 24,
    };
    let router = match o.get(OptionCode::Router) {
        Some(DhcpOption::Router(r)) => r.first().copied(),
        _ => None,
    };
    let dns = match o.get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(d)) => d.clone(),
        _ => Vec::new(),
    };
    let search = match (
        o.get(OptionCode::DomainSearch),
        o.get(OptionCode::DomainName),
    ) {
        (Some(DhcpOption::DomainSearch(names)), _) => names
            .iter()
            .map(|n| n.to_ascii().trim_end_matches('.').to_string())
            .filter(|n| !n.is_empty())
            .collect(),
        (_, Some(DhcpOption::DomainName(d))) if !d.trim().is_empty() => {
            vec![d.trim().trim_end_matches('.').to_string()]
        }
        _ => Vec::new(),
    };
    let hostname = match o.get(OptionCode::Hostname) {
        Some(DhcpOption::Hostname(h)) => Some(h.clone()),
        _ => None,
    };
    let root_path = match o.get(OptionCode::RootPath) {
        Some(DhcpOption::RootPath(r)) => Some(r.clone()),
        _ => None,
    };
    let server_id = match o.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => Some(*s),
        _ => None,
    };
    let next = m.siaddr();
    Some(Ok(Lease {
        address: m.yiaddr(),
        prefix,
        router,
        dns,
        search,
        hostname,
        root_path,
        next_server: (!next.is_unspecified()).then_some(next),
        server_id,
    }))
}

/// Sends a message and waits for the reply of `kind`, sending it again after
/// 1, 2, 4, 4… s (with a per-node offset, so that a rack that lost its link
/// together does not resend in step): a lost packet or a link that flapped
/// costs a second, not the exchange.
fn send_and_wait(
    sock: &UdpSocket,
    message: &[u8],
    xid: u32,
    kind: MessageType,
    name: &'static str,
    timeout: Duration,
) -> Result<Lease, DhcpError> {
    let server = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    let mut gap = Duration::from_millis(1000 + u64::from(xid % 250));
    let mut next_send = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(DhcpError::Timeout(name));
        }
        if now >= next_send {
            // A link that is down refuses the send: the next resend may pass.
            if let Err(e) = sock.send_to(message, server) {
                log::debug!("DHCP {name}: sending: {e}");
            }
            next_send = now + gap;
            gap = (gap * 2).min(Duration::from_secs(4));
        }
        let left = deadline
            .min(next_send)
            .saturating_duration_since(Instant::now());
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(|e| DhcpError::Io(e.to_string()))?;
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                if let Some(r) = parse(&buf[..n], xid, kind) {
                    return r;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(DhcpError::Io(e.to_string())),
        }
    }
}

/// One DISCOVER/OFFER/REQUEST/ACK exchange on the interface the broadcast
/// route points at; `timeout` bounds each of its two halves.
pub fn exchange(mac: &[u8; 6], xid: u32, timeout: Duration) -> Result<Lease, DhcpError> {
    let io = |e: std::io::Error| DhcpError::Io(e.to_string());
    let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68)).map_err(io)?;
    sock.set_broadcast(true).map_err(io)?;
    let offer = send_and_wait(
        &sock,
        &discover(xid, mac),
        xid,
        MessageType::Offer,
        "offer",
        timeout,
    )?;
    send_and_wait(
        &sock,
        &request(xid, mac, &offer),
        xid,
        MessageType::Ack,
        "acknowledgement",
        timeout,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    fn reply(xid: u32, kind: MessageType) -> Vec<u8> {
        let mut m = Message::new_with_id(
            xid,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(10, 0, 2, 15),
            Ipv4Addr::new(10, 0, 2, 2),
            Ipv4Addr::UNSPECIFIED,
            &MAC,
        );
        m.set_opcode(Opcode::BootReply);
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
        o.insert(DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 2, 2)]));
        o.insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
            10, 0, 2, 3,
        )]));
        o.insert(DhcpOption::DomainName("cluster.".into()));
        o.insert(DhcpOption::Hostname("cn01".into()));
        o.insert(DhcpOption::RootPath("10.0.2.2:/export".into()));
        o.insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 2, 2)));
        m.to_vec().unwrap()
    }

    /// Found by `fuzz/run.sh dhcp`: a bulk-leasequery option of the wrong
    /// length trips an assertion inside dhcproto.
    #[test]
    fn a_malformed_option_is_garbage_not_a_panic() {
        let bytes = include_bytes!("../../../fuzz/seeds/dhcp/malformed-bulk-leasequery-time");
        let xid = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        for kind in [MessageType::Offer, MessageType::Ack] {
            assert!(!matches!(parse(bytes, xid, kind), Some(Ok(_))));
        }
    }

    #[test]
    fn an_offer_becomes_a_lease_with_every_option() {
        let lease = parse(&reply(7, MessageType::Offer), 7, MessageType::Offer)
            .unwrap()
            .unwrap();
        assert_eq!(
            lease,
            Lease {
                address: Ipv4Addr::new(10, 0, 2, 15),
                prefix: 24,
                router: Some(Ipv4Addr::new(10, 0, 2, 2)),
                dns: vec![Ipv4Addr::new(10, 0, 2, 3)],
                search: vec!["cluster".into()],
                hostname: Some("cn01".into()),
                root_path: Some("10.0.2.2:/export".into()),
                next_server: Some(Ipv4Addr::new(10, 0, 2, 2)),
                server_id: Some(Ipv4Addr::new(10, 0, 2, 2)),
            }
        );
        let req = Message::from_bytes(&request(7, &MAC, &lease)).unwrap();
        assert_eq!(
            req.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(lease.address))
        );
    }

    #[test]
    fn the_domain_search_option_wins_over_the_domain_name() {
        let mut m = Message::from_bytes(&reply(7, MessageType::Ack)).unwrap();
        let names = ["lab.example.", "cluster."]
            .map(|n| hickory_proto::rr::Name::from_ascii(n).unwrap())
            .to_vec();
        m.opts_mut().insert(DhcpOption::DomainSearch(names));
        let lease = parse(&m.to_vec().unwrap(), 7, MessageType::Ack)
            .unwrap()
            .unwrap();
        assert_eq!(lease.search, ["lab.example", "cluster"]);
    }

    #[test]
    fn foreign_garbage_and_naks_are_told_apart() {
        assert_eq!(
            parse(&reply(8, MessageType::Offer), 7, MessageType::Offer),
            None,
            "other xid"
        );
        assert_eq!(
            parse(&reply(7, MessageType::Ack), 7, MessageType::Offer),
            None,
            "wrong kind"
        );
        assert_eq!(parse(b"\x02garbage", 7, MessageType::Offer), None);
        assert_eq!(
            parse(&reply(7, MessageType::Nak), 7, MessageType::Ack),
            Some(Err(DhcpError::Nak))
        );
        let d = Message::from_bytes(&discover(9, &MAC)).unwrap();
        assert_eq!(d.xid(), 9);
        assert_eq!(d.chaddr()[..6], MAC);
    }
}
