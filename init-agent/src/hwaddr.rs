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

impl FromStr for Mac {
    type Err = String;

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
            return Err(format!("`{s}` is not a MAC address"));
        };
        let mut octets = Vec::with_capacity(groups.len());
        for g in &groups {
            if g.len() != 2 {
                return Err(format!("`{s}` is not a MAC address (octet `{g}`)"));
            }
            let v = u8::from_str_radix(g, 16)
                .map_err(|_| format!("`{s}` is not a MAC address (octet `{g}`)"))?;
            octets.push(v);
        }
        let addr = match octets.as_slice() {
            [HWTYPE_ETHERNET, rest @ ..] if rest.len() == 6 => rest,
            [t, rest @ ..] if rest.len() == 6 => {
                return Err(format!(
                    "`{s}`: hardware type {t:#04x} is not Ethernet (01)"
                ))
            }
            all if all.len() == 6 => all,
            _ => {
                return Err(format!(
                    "`{s}` is not a MAC address (expected 6 octets, found {})",
                    octets.len()
                ))
            }
        };
        if addr[0] & 1 == 1 {
            // The group bit: no NIC has such an address, but `01-…` with one
            // octet missing looks like one.
            return Err(format!("`{s}` is a multicast address, not a NIC's"));
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
    }
}
