//! The addresses a plan blocks and who owns each block: `Offenders` (the planner's input, already
//! filtered and normalised) and `Owners` (per address, the cases and plans whose block holds it,
//! with its expiry — journaled by the plan, never read back from annotations).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::id::{CaseId, PlanId};
use crate::net::{normalise_ip, Cidr};

/// One case's and plan's claim on a blocked address, until it expires.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub case: CaseId,
    pub plan: PlanId,
    /// When the block expires (from the plan's `ttl`).
    #[serde(with = "rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Times as custody writes them everywhere (RFC 3339, UTC, seconds).
mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    use crate::timefmt;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&timefmt::rfc3339(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        timefmt::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time")))
    }
}

/// Per blocked address, its owners. An address stays blocked while it has one.
pub type Owners = BTreeMap<IpAddr, BTreeSet<Owner>>;

/// The offending addresses of one plan, each in normal form (IPv4-mapped IPv6 is IPv4) with its
/// owner. Filtering (`never_block`, the allowlist, node and pod addresses, `max_addresses`) is the
/// planner's, before this module: `exclude` helps it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offenders {
    by_addr: BTreeMap<IpAddr, BTreeSet<Owner>>,
}

impl Offenders {
    /// The offenders, normalised; an address given twice keeps every owner.
    pub fn new(entries: impl IntoIterator<Item = (IpAddr, Owner)>) -> Self {
        let mut by_addr: BTreeMap<IpAddr, BTreeSet<Owner>> = BTreeMap::new();
        for (addr, owner) in entries {
            by_addr.entry(normalise_ip(addr)).or_default().insert(owner);
        }
        Self { by_addr }
    }

    /// The addresses with no owner recorded: what a rewrite refuses when the owners are kept
    /// elsewhere (a rollback's addresses that stay blocked).
    pub fn bare(addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        Self {
            by_addr: addrs
                .into_iter()
                .map(|a| (normalise_ip(a), BTreeSet::new()))
                .collect(),
        }
    }

    /// Splits off the addresses inside any of `ranges`: returns what remains, and each address
    /// left out with the first range that covers it (the reason the plan shows).
    pub fn exclude(&self, ranges: &[Cidr]) -> (Offenders, Vec<(IpAddr, Cidr)>) {
        let mut kept = BTreeMap::new();
        let mut left_out = Vec::new();
        for (addr, owners) in &self.by_addr {
            match ranges.iter().find(|r| r.contains(addr)) {
                Some(range) => left_out.push((*addr, *range)),
                None => {
                    kept.insert(*addr, owners.clone());
                }
            }
        }
        (Offenders { by_addr: kept }, left_out)
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.by_addr.contains_key(&normalise_ip(*ip))
    }

    /// Every address, IPv4 first, in order.
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.by_addr.keys().copied()
    }

    /// The addresses of one family.
    pub fn of_family(&self, ipv4: bool) -> impl Iterator<Item = IpAddr> + '_ {
        self.addrs().filter(move |a| a.is_ipv4() == ipv4)
    }

    /// Each address with its owners.
    pub fn entries(&self) -> impl Iterator<Item = (&IpAddr, &BTreeSet<Owner>)> {
        self.by_addr.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn owner(case: &str, plan: &str) -> Owner {
        Owner {
            case: CaseId::new(case).unwrap(),
            plan: PlanId::new(plan).unwrap(),
            expires_at: time::macros::datetime!(2030-01-01 00:00 UTC),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_offenders_are_their_ipv4_address() {
        let o = Offenders::new([
            (ip("::ffff:203.0.113.9"), owner("c1", "p1")),
            (ip("203.0.113.9"), owner("c1", "p1")),
            (ip("2001:db8::9"), owner("c1", "p1")),
        ]);
        assert_eq!(o.len(), 2);
        assert!(o.contains(&ip("203.0.113.9")));
        assert!(o.contains(&ip("::ffff:203.0.113.9")));
        assert_eq!(
            o.of_family(true).collect::<Vec<_>>(),
            vec![ip("203.0.113.9")]
        );
        assert_eq!(
            o.of_family(false).collect::<Vec<_>>(),
            vec![ip("2001:db8::9")]
        );
    }

    #[test]
    fn exclude_names_the_range_that_left_an_address_out() {
        // never_block, the allowlist and node addresses all leave the planner as ranges.
        let o = Offenders::new([
            (ip("10.0.0.5"), owner("c1", "p1")),
            (ip("192.168.1.10"), owner("c1", "p1")),
            (ip("203.0.113.9"), owner("c1", "p1")),
        ]);
        let never = [
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("192.168.1.10").unwrap(),
        ];
        let (kept, out) = o.exclude(&never);
        assert_eq!(kept.addrs().collect::<Vec<_>>(), vec![ip("203.0.113.9")]);
        assert_eq!(
            out,
            vec![(ip("10.0.0.5"), never[0]), (ip("192.168.1.10"), never[1])]
        );
    }
}
