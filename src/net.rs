//! Network vocabulary shared by the policies and the analysis: address ranges (`Cidr`) and the
//! one normal form of a client address (`normalise_ip`). A leaf module: it depends on nothing
//! else in the crate, so both sides can use it without depending on each other. Containment
//! uses the prefix arithmetic (`network`, `is_within`, `is_strict_subset_of`, `halves`) to write
//! NetworkPolicy `ipBlock`s the API server accepts.

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

impl Cidr {
    /// The single-host range of `ip` (`/32` or `/128`), in its normal form.
    pub fn host(ip: IpAddr) -> Self {
        let addr = normalise_ip(ip);
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }

    /// The address as written (host bits may be set: `10.1.2.3/8` keeps `10.1.2.3`).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The bits this family has: 32 or 128.
    fn bits(&self) -> u8 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// The first address of the range as a number, with the host bits cleared.
    fn first(&self) -> u128 {
        let (value, bits) = match self.addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        };
        let host_bits = u32::from(bits - self.prefix);
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        value & mask
    }

    fn same_family(&self, value: u128, prefix: u8) -> Self {
        let addr = match self.addr {
            // Only ever called with values of this family, so the cast keeps every bit.
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(value as u32)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(value)),
        };
        Self { addr, prefix }
    }

    /// The canonical form of the range: host bits cleared (`10.1.2.3/8` is `10.0.0.0/8`), so
    /// that its text is what the API server's strict CIDR validation accepts.
    pub fn network(&self) -> Self {
        self.same_family(self.first(), self.prefix)
    }

    /// The last address of the range.
    pub fn last_addr(&self) -> IpAddr {
        let host_bits = u32::from(self.bits() - self.prefix);
        let span = u128::MAX.checked_shr(128 - host_bits).unwrap_or(0);
        self.same_family(self.first() | span, self.bits()).addr
    }

    /// Whether every address of `self` is in `other` (equal ranges included).
    pub fn is_within(&self, other: &Cidr) -> bool {
        self.addr.is_ipv4() == other.addr.is_ipv4()
            && self.prefix >= other.prefix
            && other.contains(&self.addr)
    }

    /// Whether `self` is within `other` and smaller: what the API server requires of an
    /// `ipBlock`'s `except` entries against its `cidr`.
    pub fn is_strict_subset_of(&self, other: &Cidr) -> bool {
        self.is_within(other) && self.prefix > other.prefix
    }

    /// The two halves of the range, or `None` for a single host.
    pub fn halves(&self) -> Option<(Cidr, Cidr)> {
        if self.prefix == self.bits() {
            return None;
        }
        let prefix = self.prefix + 1;
        let low = self.first();
        let high = low | (1u128 << u32::from(self.bits() - prefix));
        Some((
            self.same_family(low, prefix),
            self.same_family(high, prefix),
        ))
    }
}

/// Whether the address part of a CIDR's text is an IPv4-mapped IPv6 address
/// (`::ffff:10.0.0.0/104`): `Cidr::parse` reads it as IPv4, but the API server compares it as
/// IPv6, so an `except` written for it must not be mixed with IPv4 text.
pub fn is_written_mapped(text: &str) -> bool {
    let addr = text.split('/').next().unwrap_or(text).trim();
    addr.parse::<std::net::Ipv6Addr>()
        .is_ok_and(|a| a.to_ipv4_mapped().is_some())
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

    fn c(text: &str) -> Cidr {
        Cidr::parse(text).unwrap()
    }

    #[test]
    fn networks_clear_the_host_bits() {
        assert_eq!(c("10.1.2.3/8").network().to_string(), "10.0.0.0/8");
        assert_eq!(c("10.1.2.3/32").network().to_string(), "10.1.2.3/32");
        assert_eq!(c("10.1.2.3/0").network().to_string(), "0.0.0.0/0");
        assert_eq!(c("2001:DB8::1/32").network().to_string(), "2001:db8::/32");
        assert_eq!(c("::1/0").network().to_string(), "::/0");
        assert_eq!(c("10.1.2.3/8").last_addr().to_string(), "10.255.255.255");
        assert_eq!(c("0.0.0.0/0").last_addr().to_string(), "255.255.255.255");
        assert_eq!(c("2001:db8::/127").last_addr().to_string(), "2001:db8::1");
        assert_eq!(c("2001:db8::5").last_addr().to_string(), "2001:db8::5");
    }

    #[test]
    fn hosts_are_single_addresses_in_normal_form() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(Cidr::host(mapped).to_string(), "192.0.2.7/32");
        assert_eq!(
            Cidr::host("2001:db8::7".parse().unwrap()).to_string(),
            "2001:db8::7/128"
        );
    }

    #[test]
    fn subsets_are_strict_only_when_smaller() {
        assert!(c("10.1.0.0/16").is_strict_subset_of(&c("10.0.0.0/8")));
        assert!(c("10.1.2.3/32").is_strict_subset_of(&c("10.1.2.3/31")));
        assert!(!c("10.0.0.0/8").is_strict_subset_of(&c("10.0.0.0/8")));
        assert!(c("10.0.0.0/8").is_within(&c("10.9.0.0/8")));
        assert!(!c("11.0.0.0/16").is_within(&c("10.0.0.0/8")));
        assert!(!c("::/0").is_within(&c("0.0.0.0/0")));
        assert!(!c("10.0.0.0/32").is_within(&c("::/0")));
        assert!(c("2001:db8::1/128").is_strict_subset_of(&c("::/0")));
    }

    #[test]
    fn halves_split_a_range_in_two() {
        let (low, high) = c("10.0.0.0/8").halves().unwrap();
        assert_eq!(
            (low.to_string(), high.to_string()),
            ("10.0.0.0/9".into(), "10.128.0.0/9".into())
        );
        let (low, high) = c("::/0").halves().unwrap();
        assert_eq!(
            (low.to_string(), high.to_string()),
            ("::/1".into(), "8000::/1".into())
        );
        assert!(c("10.0.0.1/32").halves().is_none());
        assert!(c("::1/128").halves().is_none());
    }

    #[test]
    fn mapped_text_is_recognised() {
        assert!(is_written_mapped("::ffff:10.0.0.0/104"));
        assert!(is_written_mapped("::ffff:10.0.0.1"));
        assert!(!is_written_mapped("10.0.0.0/8"));
        assert!(!is_written_mapped("2001:db8::/32"));
    }

    #[test]
    fn mapped_addresses_are_their_ipv4_address() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(normalise_ip(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(normalise_ip(v6), v6);
    }
}
