//! Host names at boot: A records over UDP from the resolvers DHCP, `ip=`,
//! `nameserver=` or `[net] dns` name. IPv4 only: the boot network is IPv4
//! (the DHCP client and static `ip=` are), so an AAAA answer could not be
//! used. No libc NSS: a static binary has none that works.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

/// Whom to ask and how patiently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub servers: Vec<Ipv4Addr>,
    /// Search domains, in order (resolv.conf's `search`).
    pub search: Vec<String>,
    /// Seconds one server gets to answer one query.
    pub timeout: u32,
    /// Rounds over all servers before a name is given up.
    pub attempts: u32,
}

impl Ask {
    /// The servers for people: `10.0.2.3, 10.0.2.4`.
    pub fn servers_text(&self) -> String {
        let s: Vec<String> = self.servers.iter().map(ToString::to_string).collect();
        s.join(", ")
    }
}

/// Why a name got no address.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error(
        "host name `{0}`: no DNS server to ask (DHCP gave none; ip= <dns0>, nameserver= or [net] dns name one) and no [hosts] entry"
    )]
    NoServer(String),
    #[error("host name `{name}` does not resolve: {why} (asked {servers} for {tried})")]
    NotFound {
        name: String,
        why: String,
        servers: String,
        tried: String,
    },
    #[error("host name `{name}`: {source}")]
    Socket {
        name: String,
        source: std::io::Error,
    },
}

/// What one query got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Addr(Ipv4Addr),
    /// Authoritative "no such name" (or no A record): the next candidate.
    NoSuchName,
    /// The server failed or refused: the next server.
    Failed(ResponseCode),
    NoReply,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Addr(a) => write!(f, "{a}"),
            Answer::NoSuchName => f.write_str("no such name (NXDOMAIN or no A record)"),
            Answer::Failed(code) => write!(f, "server error {code}"),
            Answer::NoReply => f.write_str("no reply"),
        }
    }
}

/// The names to ask for, in order, as resolv.conf's `ndots:1` does: a name
/// with a dot is tried as given first, a single label after the search
/// domains; a trailing dot means exactly that name.
pub fn candidates(name: &str, search: &[String]) -> Vec<String> {
    if let Some(exact) = name.strip_suffix('.') {
        return vec![exact.to_string()];
    }
    let searched = search
        .iter()
        .map(|d| format!("{name}.{}", d.trim_end_matches('.')));
    if name.contains('.') {
        std::iter::once(name.to_string()).chain(searched).collect()
    } else {
        searched.chain(std::iter::once(name.to_string())).collect()
    }
}

/// The A record query for `name`, with id `id`.
pub fn query(name: &str, id: u16) -> Option<Vec<u8>> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(
            Name::from_ascii(format!("{name}.")).ok()?,
            RecordType::A,
        ));
    m.to_vec().ok()
}

/// What a reply says about query `id`; `None`: not a reply to it.
fn read_reply(bytes: &[u8], id: u16) -> Option<Answer> {
    let m = Message::from_vec(bytes).ok()?;
    if m.id() != id || m.message_type() != MessageType::Response {
        return None;
    }
    match m.response_code() {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Some(Answer::NoSuchName),
        code => return Some(Answer::Failed(code)),
    }
    // A recursive server sends the CNAME chain with the A records.
    let addr = m.answers().iter().find_map(|r| match r.data() {
        RData::A(a) => Some(a.0),
        _ => None,
    });
    Some(addr.map_or(Answer::NoSuchName, Answer::Addr))
}

/// Asks `server` for `name` once.
fn ask_one(sock: &UdpSocket, to: SocketAddr, name: &str, id: u16, wait: Duration) -> Answer {
    let Some(q) = query(name, id) else {
        return Answer::NoSuchName;
    };
    if sock.send_to(&q, to).is_err() {
        return Answer::NoReply;
    }
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
            return Answer::NoReply;
        }
        match sock.recv_from(&mut buf) {
            // Only the server asked, only this query: a stray or spoofed
            // datagram from elsewhere is not an answer.
            Ok((n, from)) if from == to => {
                if let Some(a) = buf.get(..n).and_then(|b| read_reply(b, id)) {
                    return a;
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Answer::NoReply,
        }
    }
}

/// Resolvers and search domains of a resolv.conf (dracut's network
/// modules write the initramfs's /etc/resolv.conf from DHCP or `nameserver=`).
pub fn resolv_conf(text: &str) -> (Vec<Ipv4Addr>, Vec<String>) {
    let mut servers = Vec::new();
    let mut search = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                servers.extend(words.next().and_then(|a| a.parse::<Ipv4Addr>().ok()))
            }
            // The last of `search` / `domain` wins, as in resolv.conf(5).
            Some("search" | "domain") => {
                search = words.map(|d| d.trim_end_matches('.').to_string()).collect()
            }
            _ => {}
        }
    }
    (servers, search)
}

/// `name`'s IPv4 address in an /etc/hosts text.
fn in_hosts_file(text: &str, name: &str) -> Option<Ipv4Addr> {
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let addr = words.next()?.parse::<Ipv4Addr>().ok()?;
        words.any(|w| w.eq_ignore_ascii_case(name)).then_some(addr)
    })
}

/// A name as this machine resolves it for the admin's commands (`init-agent
/// sync nfs://master/…`): /etc/hosts, then the resolvers of /etc/resolv.conf
/// through the client the boot uses.
pub fn on_host(name: &str) -> Result<Ipv4Addr, DnsError> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    if let Some(a) = in_hosts_file(&read("/etc/hosts"), name) {
        return Ok(a);
    }
    let (servers, search) = resolv_conf(&read("/etc/resolv.conf"));
    resolve(
        name,
        &Ask {
            servers,
            search,
            timeout: 2,
            attempts: 2,
        },
    )
}

/// A server's address for the admin's commands: as given, or its name as
/// this machine resolves it ([`on_host`]).
pub fn host_addr(host: &crate::source::spec::Host) -> Result<std::net::IpAddr, DnsError> {
    match host {
        crate::source::spec::Host::Addr(a) => Ok(*a),
        crate::source::spec::Host::Name(n) => on_host(n).map(Into::into),
    }
}

/// A query id nobody on the wire can guess from the previous one.
fn query_id(n: u32) -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // Truncation keeps the low, fast-moving bits.
    (t ^ std::process::id().rotate_left(16) ^ n.wrapping_mul(0x9E37_79B9)) as u16
}

/// `name`'s IPv4 address: each candidate name (search domains), each round,
/// each server in order; "no such name" moves to the next candidate, no
/// reply or a server error to the next server.
pub fn resolve(name: &str, ask: &Ask) -> Result<Ipv4Addr, DnsError> {
    let servers: Vec<SocketAddr> = ask.servers.iter().map(|&s| (s, 53).into()).collect();
    resolve_at(name, ask, &servers)
}

fn resolve_at(name: &str, ask: &Ask, servers: &[SocketAddr]) -> Result<Ipv4Addr, DnsError> {
    if servers.is_empty() {
        return Err(DnsError::NoServer(name.into()));
    }
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|source| DnsError::Socket {
        name: name.into(),
        source,
    })?;
    let wait = Duration::from_secs(ask.timeout.max(1).into());
    let tried = candidates(name, &ask.search);
    let mut last: Vec<(SocketAddr, Answer)> = Vec::new();
    let mut n = 0;
    for candidate in &tried {
        last.clear();
        'rounds: for _ in 0..ask.attempts.max(1) {
            for &server in servers {
                n += 1;
                match ask_one(&sock, server, candidate, query_id(n), wait) {
                    Answer::Addr(a) => return Ok(a),
                    Answer::NoSuchName => {
                        last.push((server, Answer::NoSuchName));
                        break 'rounds;
                    }
                    other => last.push((server, other)),
                }
            }
        }
    }
    let why = match last.last() {
        Some((server, answer)) => format!("{answer} from {}", server.ip()),
        None => "no answer".into(),
    };
    Err(DnsError::NotFound {
        name: name.into(),
        why,
        servers: ask.servers_text(),
        tried: tried.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_domains_follow_resolv_conf_ndots_one() {
        let search = vec!["cluster".to_string(), "lab.example.".to_string()];
        assert_eq!(
            candidates("master", &search),
            ["master.cluster", "master.lab.example", "master"]
        );
        assert_eq!(
            candidates("master.cluster", &search),
            [
                "master.cluster",
                "master.cluster.cluster",
                "master.cluster.lab.example"
            ]
        );
        assert_eq!(candidates("master.cluster.", &search), ["master.cluster"]);
        assert_eq!(candidates("master", &[]), ["master"]);
    }

    fn reply(id: u16, code: ResponseCode, answers: &[Ipv4Addr]) -> Vec<u8> {
        use hickory_proto::rr::{rdata::A, Record};
        let mut m = Message::new();
        m.set_id(id)
            .set_message_type(MessageType::Response)
            .set_response_code(code);
        let name = Name::from_ascii("master.cluster.").unwrap();
        for a in answers {
            m.add_answer(Record::from_rdata(name.clone(), 60, RData::A(A(*a))));
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn replies_are_read_only_for_their_query() {
        let a = Ipv4Addr::new(10, 0, 2, 2);
        assert_eq!(
            read_reply(&reply(7, ResponseCode::NoError, &[a]), 7),
            Some(Answer::Addr(a))
        );
        assert_eq!(read_reply(&reply(8, ResponseCode::NoError, &[a]), 7), None);
        assert_eq!(
            read_reply(&reply(7, ResponseCode::NXDomain, &[]), 7),
            Some(Answer::NoSuchName)
        );
        assert_eq!(
            read_reply(&reply(7, ResponseCode::NoError, &[]), 7),
            Some(Answer::NoSuchName)
        );
        assert_eq!(
            read_reply(&reply(7, ResponseCode::ServFail, &[]), 7),
            Some(Answer::Failed(ResponseCode::ServFail))
        );
        // A query is not a reply; garbage is nothing.
        assert_eq!(read_reply(&query("master.cluster", 7).unwrap(), 7), None);
        assert_eq!(read_reply(b"\x00\x07garbage", 7), None);
    }

    /// A real exchange over loopback: a small server answers one name,
    /// says NXDOMAIN to the others, and ignores the first query it gets
    /// (a lost datagram): the client asks again, walks the search list.
    #[test]
    fn a_name_resolves_over_udp_through_the_search_list() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let at = server.local_addr().unwrap();
        let a = Ipv4Addr::new(10, 0, 2, 2);
        let t = std::thread::spawn(move || {
            let mut asked = Vec::new();
            let mut buf = [0u8; 512];
            for n in 0..4 {
                let (len, from) = server.recv_from(&mut buf).unwrap();
                let q = Message::from_vec(&buf[..len]).unwrap();
                let name = q.queries()[0].name().to_ascii();
                asked.push(name.clone());
                if n == 0 {
                    continue;
                }
                let code = if name == "master.cluster." {
                    ResponseCode::NoError
                } else {
                    ResponseCode::NXDomain
                };
                let answers = if code == ResponseCode::NoError {
                    vec![a]
                } else {
                    vec![]
                };
                server
                    .send_to(&reply(q.id(), code, &answers), from)
                    .unwrap();
                if code == ResponseCode::NoError {
                    break;
                }
            }
            asked
        });
        let ask = Ask {
            servers: vec![],
            search: vec!["lab".into(), "cluster".into()],
            timeout: 1,
            attempts: 2,
        };
        assert_eq!(resolve_at("master", &ask, &[at]).unwrap(), a);
        assert_eq!(
            t.join().unwrap(),
            ["master.lab.", "master.lab.", "master.cluster."]
        );
    }

    #[test]
    fn silence_is_named_with_the_servers_asked() {
        let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
        let ask = Ask {
            servers: vec![Ipv4Addr::LOCALHOST],
            search: vec![],
            timeout: 1,
            attempts: 1,
        };
        let e = resolve_at("master.cluster", &ask, &[quiet.local_addr().unwrap()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "host name `master.cluster` does not resolve: no reply from 127.0.0.1 (asked 127.0.0.1 for master.cluster)"
        );
    }

    #[test]
    fn resolv_conf_gives_servers_and_the_last_search_line() {
        let text = "# dracut\nnameserver 10.0.2.3\nnameserver fe80::1\nnameserver 10.0.2.4\n\
                    domain old.example\nsearch cluster lab.example.\noptions ndots:2\n";
        let (servers, search) = resolv_conf(text);
        assert_eq!(
            servers,
            [Ipv4Addr::new(10, 0, 2, 3), Ipv4Addr::new(10, 0, 2, 4)]
        );
        assert_eq!(search, ["cluster", "lab.example"]);
        assert_eq!(resolv_conf(""), (vec![], vec![]));
    }

    #[test]
    fn hosts_files_are_read_like_the_c_library_does() {
        let text = "127.0.0.1 localhost\n10.0.0.1 master.cluster master # the master\n::1 ip6-localhost\n#10.0.0.9 old\n";
        assert_eq!(
            in_hosts_file(text, "master"),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(
            in_hosts_file(text, "MASTER.cluster"),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(in_hosts_file(text, "old"), None);
        assert_eq!(in_hosts_file(text, "the"), None);
    }

    #[test]
    fn no_server_is_one_clear_line() {
        let e = resolve(
            "master",
            &Ask {
                servers: vec![],
                search: vec![],
                timeout: 1,
                attempts: 1,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("`master`: no DNS server to ask"));
    }
}
