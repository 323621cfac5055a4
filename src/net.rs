//! Network vocabulary shared by the policies and the analysis: address ranges (`Cidr`) and the
//! one normal form of a client address (`normalise_ip`). A leaf module: it depends on nothing
//! else in the crate, so both sides can use it without depending on each other.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The form addresses are compared and counted in: an IPv4-mapped IPv6 address
/// (`::ffff:10.1.2.3`) is the IPv4 address it maps.
#[inline]
pub fn normalise_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An address range, `192.0.2.0/24` or `2001:db8::/32`; a bare address is a single host.
/// In a policy file it is a string, checked when the file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let written: IpAddr = addr.trim().parse().ok()?;
        let addr = normalise_ip(written);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
            None => {
                if written.is_ipv6() {
                    128
                } else {
                    max
                }
            }
        };
        // `::ffff:10.0.0.0/104` is the IPv4 range 10.0.0.0/8 written in mapped form.
        let prefix = if written.is_ipv6() && addr.is_ipv4() {
            prefix.checked_sub(96)?
        } else {
            prefix
        };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(*ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(*ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Cidr::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("{text:?} is not an address or CIDR range"))
        })
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(&"10.1.255.1".parse().unwrap()));
        assert!(!c.contains(&"10.2.0.1".parse().unwrap()));
        assert!(Cidr::parse("::ffff:10.0.0.0/104")
            .unwrap()
            .contains(&"10.9.8.7".parse().unwrap()));
        assert!(Cidr::parse("::ffff:10.0.0.0/8").is_none());
        assert!(Cidr::parse("::ffff:10.1.2.3")
            .unwrap()
            .contains(&"10.1.2.3".parse().unwrap()));
        assert!(Cidr::parse("2001:db8::/32")
            .unwrap()
            .contains(&"2001:db8:1::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains(&"8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/").is_none());
    }

    #[test]
    fn cidrs_print_as_they_parse() {
        for text in ["10.1.0.0/16", "2001:db8::/32", "10.1.2.3/32"] {
            let c = Cidr::parse(text).unwrap();
            assert_eq!(c.to_string(), text);
            assert_eq!(Cidr::parse(&c.to_string()), Some(c));
        }
        assert_eq!(
            Cidr::parse("::ffff:10.0.0.0/104").unwrap().to_string(),
            "10.0.0.0/8"
        );
    }

    #[test]
    fn mapped_addresses_are_their_ipv4_address() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(normalise_ip(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(normalise_ip(v6), v6);
    }
}
