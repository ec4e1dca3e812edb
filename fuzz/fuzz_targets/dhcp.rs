//! Arbitrary bytes as a DHCP reply on the wire (any host on the segment can
//! send one) → `dhcp::parse` for an offer and an acknowledgement, and a
//! REQUEST built from what it accepted.
#![no_main]

use dhcproto::v4::MessageType;
use init_agent::net::dhcp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    for kind in [MessageType::Offer, MessageType::Ack] {
        let xid = data
            .get(4..8)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if let Some(Ok(lease)) = dhcp::parse(data, xid, kind) {
            let _ = dhcp::request(xid, &mac, &lease);
        }
    }
});
