//! Ethernet hardware addresses in every spelling boot loaders and cluster tools emit.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 48-bit Ethernet MAC address; displayed lower-case and `:`-separated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

/// ARP hardware type of Ethernet, the octet pxelinux (`IPAPPEND 2`) and iPXE put
/// in front of the address in `BOOTIF=01-aa-bb-cc-dd-ee-ff`.
const HWTYPE_ETHERNET: u8 = 1;

/// Why a text is not a NIC's MAC address; every message names the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    #[error("`{0}` is not a MAC address")]
    Form(String),
    #[error("`{text}` is not a MAC address (octet `{octet}`)")]
    Octet { text: String, octet: String },
    #[error("`{text}`: hardware type {hwtype:#04x} is not Ethernet (01)")]
    HardwareType { text: String, hwtype: u8 },
    #[error("`{text}` is not a MAC address (expected 6 octets, found {found})")]
    Count { text: String, found: usize },
    #[error("`{0}` is a multicast address, not a NIC's")]
    Multicast(String),
}

impl FromStr for Mac {
    type Err = MacError;

    /// Accepts `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff`, `aabbccddeeff` and the
    /// same with a leading `01` hardware-type octet, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let groups: Vec<&str> = if s.contains([':', '-']) {
            s.split([':', '-']).collect()
        } else if s.len() == 12 || s.len() == 14 {
            // Separator-less spelling (iPXE `${mac:hexraw}`): cut into octets.
            (0..s.len())
                .step_by(2)
                .map(|i| s.get(i..i + 2).unwrap_or(""))
                .collect()
        } else {
            return Err(MacError::Form(s.into()));
        };
        let mut octets = Vec::with_capacity(groups.len());
        for g in &groups {
            let v = Some(g)
                .filter(|g| g.len() == 2)
                .and_then(|g| u8::from_str_radix(g, 16).ok())
                .ok_or_else(|| MacError::Octet {
                    text: s.into(),
                    octet: g.to_string(),
                })?;
            octets.push(v);
        }
        let addr = match octets.as_slice() {
            [HWTYPE_ETHERNET, rest @ ..] if rest.len() == 6 => rest,
            [t, rest @ ..] if rest.len() == 6 => {
                return Err(MacError::HardwareType {
                    text: s.into(),
                    hwtype: *t,
                })
            }
            all if all.len() == 6 => all,
            _ => {
                return Err(MacError::Count {
                    text: s.into(),
                    found: octets.len(),
                })
            }
        };
        if addr[0] & 1 == 1 {
            // The group bit: no NIC has such an address, but `01-…` with one
            // octet missing looks like one.
            return Err(MacError::Multicast(s.into()));
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(addr);
        Ok(Mac(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_gives_the_same_address() {
        let want = Mac([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
        for s in [
            "52:54:00:ab:cd:ef",
            "52-54-00-AB-CD-EF",
            "01-52-54-00-ab-cd-ef",
            "01-52-54-00-AB-CD-EF",
            "01:52:54:00:ab:cd:ef",
            "525400abcdef",
            "01525400ABCDEF",
        ] {
            assert_eq!(s.parse::<Mac>(), Ok(want), "{s}");
        }
        assert_eq!(want.to_string(), "52:54:00:ab:cd:ef");
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for s in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:ef:01:02",
            "52:54:00:ab:cd:eg",
            "5:54:00:ab:cd:ef",
            "20-52-54-00-ab-cd-ef",
            "525400abcde",
            "52:54:00:ab:cd:éé",
            "01-52-54-00-ab-cd",
        ] {
            assert!(s.parse::<Mac>().is_err(), "{s}");
        }
        let why = |s: &str| s.parse::<Mac>().unwrap_err().to_string();
        assert_eq!(why("nonsense"), "`nonsense` is not a MAC address");
        assert_eq!(
            why("52:54:00:ab:cd:eg"),
            "`52:54:00:ab:cd:eg` is not a MAC address (octet `eg`)"
        );
        assert_eq!(
            why("20-52-54-00-ab-cd-ef"),
            "`20-52-54-00-ab-cd-ef`: hardware type 0x20 is not Ethernet (01)"
        );
        assert_eq!(
            why("52:54:00:ab:cd"),
            "`52:54:00:ab:cd` is not a MAC address (expected 6 octets, found 5)"
        );
        assert_eq!(
            why("01-52-54-00-ab-cd"),
            "`01-52-54-00-ab-cd` is a multicast address, not a NIC's"
        );
    }
}
