//! Rewriting one existing policy's ingress rules so that none of them admits an offending
//! address: open rules become explicit peers with `except`s, `ipBlock`s gain `except` entries,
//! and peers (then rules) that would admit nothing but offenders are removed.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{Offenders, Refusal};
use crate::net::{is_written_mapped, Cidr};

/// The new policy, or `None` when no rule of it admits an offending address.
pub(super) fn rewrite_policy(
    policy: &NetworkPolicy,
    offenders: &Offenders,
) -> Result<Option<NetworkPolicy>, Refusal> {
    let name = policy.metadata.name.clone().unwrap_or_default();
    let Some(spec) = policy.spec.as_ref() else {
        return Ok(None);
    };
    let mut rules = Vec::new();
    for rule in spec.ingress.iter().flatten() {
        rules.extend(rewrite_rule(&name, rule, offenders)?);
    }
    let old = spec.ingress.as_deref().unwrap_or_default();
    if rules == old {
        return Ok(None);
    }
    let mut new = policy.clone();
    if let Some(spec) = new.spec.as_mut() {
        spec.ingress = Some(rules);
    }
    Ok(Some(new))
}

/// The rule without offending addresses; `None` when it is left without peers.
fn rewrite_rule(
    policy: &str,
    rule: &NetworkPolicyIngressRule,
    offenders: &Offenders,
) -> Result<Option<NetworkPolicyIngressRule>, Refusal> {
    let from = rule.from.as_deref().unwrap_or_default();
    if from.is_empty() {
        return Ok(Some(NetworkPolicyIngressRule {
            from: Some(open_peers(&offenders.addrs().collect())),
            ports: rule.ports.clone(),
        }));
    }
    let mut peers = Vec::with_capacity(from.len());
    for peer in from {
        match &peer.ip_block {
            Some(block) => {
                if let Some(block) = rewrite_block(policy, block, offenders)? {
                    peers.push(NetworkPolicyPeer {
                        ip_block: Some(block),
                        ..peer.clone()
                    });
                }
            }
            None => peers.push(peer.clone()),
        }
    }
    Ok((!peers.is_empty()).then(|| NetworkPolicyIngressRule {
        from: Some(peers),
        ports: rule.ports.clone(),
    }))
}

/// The peers that admit every source but the offenders: both families' `ipBlock`s (each with
/// the family's offenders as `except`, or none) and every pod of every namespace.
pub(super) fn open_peers(offenders: &BTreeSet<IpAddr>) -> Vec<NetworkPolicyPeer> {
    let block = |cidr: &str, ipv4: bool| {
        let except: Vec<String> = offenders
            .iter()
            .filter(|a| a.is_ipv4() == ipv4)
            .map(|a| Cidr::host(*a).to_string())
            .collect();
        NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.to_owned(),
                except: (!except.is_empty()).then_some(except),
            }),
            ..Default::default()
        }
    };
    vec![
        block("0.0.0.0/0", true),
        block("::/0", false),
        NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector::default()),
            pod_selector: Some(LabelSelector::default()),
            ip_block: None,
        },
    ]
}

/// Reads a CIDR of `policy` as the API server does, refusing what custody cannot rewrite safely.
pub(super) fn read_cidr(policy: &str, text: &str) -> Result<Cidr, Refusal> {
    if is_written_mapped(text) {
        return Err(Refusal::MappedCidr {
            policy: policy.to_owned(),
            text: text.to_owned(),
        });
    }
    match Cidr::parse(text) {
        // A bare address is no CIDR to the API server.
        Some(c) if text.contains('/') => Ok(c),
        _ => Err(Refusal::UnreadableCidr {
            policy: policy.to_owned(),
            text: text.to_owned(),
        }),
    }
}

/// The `ipBlock` with the offenders it contains excepted, or `None` when it would admit nothing
/// but offenders.
fn rewrite_block(
    policy: &str,
    block: &IPBlock,
    offenders: &Offenders,
) -> Result<Option<IPBlock>, Refusal> {
    let cidr = read_cidr(policy, &block.cidr)?;
    let mut excepts = Vec::new();
    for text in block.except.iter().flatten() {
        excepts.push(read_cidr(policy, text)?);
    }
    let inside: BTreeSet<IpAddr> = offenders_in(offenders, &cidr).collect();
    // An offender inside an existing `except` is refused already.
    if inside.iter().all(|a| excepts.iter().any(|e| e.contains(a))) {
        return Ok(Some(block.clone()));
    }
    if covered(&cidr, &excepts, &inside) {
        return Ok(None);
    }
    let mut entries: Vec<Cidr> = Vec::new();
    let mut push = |c: Cidr| {
        if !entries.contains(&c) {
            entries.push(c);
        }
    };
    for e in &excepts {
        push(e.network());
    }
    for addr in inside {
        if !excepts.iter().any(|e| e.contains(&addr)) {
            push(Cidr::host(addr));
        }
    }
    Ok(Some(IPBlock {
        cidr: block.cidr.clone(),
        except: Some(entries.iter().map(Cidr::to_string).collect()),
    }))
}

/// The offenders inside `range`.
fn offenders_in<'a>(
    offenders: &'a Offenders,
    range: &'a Cidr,
) -> impl Iterator<Item = IpAddr> + 'a {
    offenders
        .of_family(range.is_ipv4())
        .filter(|a| range.contains(a))
}

/// Whether every address of `range` is excepted or offending: the block admits no one else.
/// Descends only into halves holding an offender or an `except`, so at most the prefix length
/// times their number of steps.
pub(super) fn covered(range: &Cidr, excepts: &[Cidr], offenders: &BTreeSet<IpAddr>) -> bool {
    if excepts.iter().any(|e| range.is_within(e)) {
        return true;
    }
    let first = range.network().addr();
    let last = range.last_addr();
    let holds_offender = offenders.range(first..=last).next().is_some();
    let holds_except = excepts.iter().any(|e| e.is_within(range));
    if !holds_offender && !holds_except {
        return false;
    }
    match range.halves() {
        None => holds_offender,
        Some((low, high)) => {
            covered(&low, excepts, offenders) && covered(&high, excepts, offenders)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    fn set(addrs: &[&str]) -> BTreeSet<IpAddr> {
        addrs.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn coverage_needs_every_address() {
        assert!(covered(&c("203.0.113.5/32"), &[], &set(&["203.0.113.5"])));
        assert!(covered(
            &c("203.0.113.4/31"),
            &[],
            &set(&["203.0.113.4", "203.0.113.5"])
        ));
        assert!(!covered(&c("203.0.113.4/31"), &[], &set(&["203.0.113.4"])));
        assert!(covered(
            &c("203.0.113.4/31"),
            &[c("203.0.113.5/32")],
            &set(&["203.0.113.4"])
        ));
        assert!(covered(
            &c("203.0.113.0/30"),
            &[c("203.0.113.0/31")],
            &set(&["203.0.113.2", "203.0.113.3"])
        ));
        assert!(!covered(&c("0.0.0.0/0"), &[], &set(&["203.0.113.5"])));
        assert!(covered(
            &c("2001:db8::/127"),
            &[],
            &set(&["2001:db8::", "2001:db8::1"])
        ));
        assert!(!covered(&c("2001:db8::/127"), &[], &set(&["2001:db8::1"])));
    }

    #[test]
    fn cidrs_are_read_as_the_api_server_would() {
        assert!(read_cidr("p", "10.0.0.0/8").is_ok());
        assert!(matches!(
            read_cidr("p", "10.0.0.1"),
            Err(Refusal::UnreadableCidr { .. })
        ));
        assert!(matches!(
            read_cidr("p", "nonsense"),
            Err(Refusal::UnreadableCidr { .. })
        ));
        assert!(matches!(
            read_cidr("p", "::ffff:10.0.0.0/104"),
            Err(Refusal::MappedCidr { .. })
        ));
    }
}
