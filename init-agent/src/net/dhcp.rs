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
    pub hostname: Option<String>,
    /// Option 17: where the root lives when the command line does not say.
    pub root_path: Option<String>,
    pub next_server: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
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
    let m = Message::from_bytes(bytes).ok()?;
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
        hostname,
        root_path,
        next_server: (!next.is_unspecified()).then_some(next),
        server_id,
    }))
}

fn wait(
    sock: &UdpSocket,
    xid: u32,
    kind: MessageType,
    name: &'static str,
    timeout: Duration,
) -> Result<Lease, DhcpError> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DhcpError::Timeout(name));
        }
        sock.set_read_timeout(Some(left))
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
/// route points at.
pub fn exchange(mac: &[u8; 6], xid: u32, timeout: Duration) -> Result<Lease, DhcpError> {
    let io = |e: std::io::Error| DhcpError::Io(e.to_string());
    let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68)).map_err(io)?;
    sock.set_broadcast(true).map_err(io)?;
    let server = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    sock.send_to(&discover(xid, mac), server).map_err(io)?;
    let offer = wait(&sock, xid, MessageType::Offer, "offer", timeout)?;
    sock.send_to(&request(xid, mac, &offer), server)
        .map_err(io)?;
    wait(&sock, xid, MessageType::Ack, "acknowledgement", timeout)
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
        o.insert(DhcpOption::Hostname("cn01".into()));
        o.insert(DhcpOption::RootPath("10.0.2.2:/export".into()));
        o.insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 2, 2)));
        m.to_vec().unwrap()
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
