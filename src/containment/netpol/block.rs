//! The custody block policy, `custody-block-<target>`: the one policy custody owns per target,
//! used where no policy isolated the target's pods. Created once, extended by later plans, and
//! lifted again address by address as its owners' claims are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use sha2::{Digest, Sha256};

use super::rewrite::{open_peers, read_cidr};
use super::{for_replace, BlockInput, Change, Owner, Owners, Planned, Refusal, Target, Warning};

/// The name every custody block policy starts with.
pub const BLOCK_POLICY_PREFIX: &str = "custody-block-";

/// The annotation that mirrors the owners for people reading the object. Informational only:
/// owners and expiry times are read from the journal, never from here.
pub const OWNERS_ANNOTATION: &str = "custody.io/owners";

/// Names are kept to 63 characters, a DNS-1123 label, so that they also fit where a label value
/// or a kubectl column is expected.
const MAX_NAME: usize = 63;

/// The custody block policy's name for `target`: `custody-block-<target>`. A target name too long
/// for that is cut, and the first 10 hex digits of its SHA-256 appended, so distinct targets
/// keep distinct names. A target name that is not lowercase letters, digits and inner `-` is
/// refused.
pub fn block_policy_name(target: &str) -> Result<String, Refusal> {
    let b = target.as_bytes();
    let valid = !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-';
    if !valid {
        return Err(Refusal::TargetName {
            name: target.to_owned(),
        });
    }
    let name = format!("{BLOCK_POLICY_PREFIX}{target}");
    if name.len() <= MAX_NAME {
        return Ok(name);
    }
    let digest = hex::encode(Sha256::digest(target.as_bytes()));
    let keep = MAX_NAME - BLOCK_POLICY_PREFIX.len() - 11;
    let head = target[..keep].trim_end_matches('-');
    Ok(format!("{BLOCK_POLICY_PREFIX}{head}-{}", &digest[..10]))
}

/// The first custody block policy for the target, holding this plan's offenders.
pub(super) fn create(input: &BlockInput<'_>, name: &str) -> Planned {
    let owners = with_offenders(input.block_owners, input);
    let addrs: BTreeSet<IpAddr> = owners.keys().copied().collect();
    let policy = build(input.target, name, &addrs, &owners);
    Planned {
        changes: vec![Change::Create { policy }],
        warnings: Vec::new(),
        owners: Some(owners),
    }
}

/// The existing custody block policy with this plan's offenders added.
pub(super) fn extend(
    input: &BlockInput<'_>,
    existing: &NetworkPolicy,
    planned: &mut Planned,
) -> Result<(), Refusal> {
    let name = existing.metadata.name.clone().unwrap_or_default();
    let current = blocked_addrs(&name, existing)?;
    let owned: BTreeSet<IpAddr> = input.block_owners.keys().copied().collect();
    let unowned: Vec<String> = current.difference(&owned).map(|a| a.to_string()).collect();
    if !unowned.is_empty() {
        planned.warnings.push(Warning::UnownedExcepts {
            policy: name.clone(),
            entries: unowned,
        });
    }
    let missing: Vec<String> = owned.difference(&current).map(|a| a.to_string()).collect();
    if !missing.is_empty() {
        planned.warnings.push(Warning::OwnedAddressesMissing {
            policy: name.clone(),
            addresses: missing,
        });
    }
    let owners = with_offenders(input.block_owners, input);
    let addrs: BTreeSet<IpAddr> = current
        .union(&owned)
        .copied()
        .chain(owners.keys().copied())
        .collect();
    let new = rebuilt(existing, &addrs, &owners);
    if new != *existing {
        planned.changes.push(for_replace(new)?);
    }
    planned.owners = Some(owners);
    Ok(())
}

fn with_offenders(owners: &Owners, input: &BlockInput<'_>) -> Owners {
    let mut owners = owners.clone();
    for (addr, claims) in input.offenders.entries() {
        owners
            .entry(*addr)
            .or_default()
            .extend(claims.iter().cloned());
    }
    owners
}

/// A new custody block policy refusing `addrs`.
fn build(target: &Target, name: &str, addrs: &BTreeSet<IpAddr>, owners: &Owners) -> NetworkPolicy {
    let policy = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(target.namespace.clone()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "custody".to_owned(),
            )])),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(target.pod_selector.clone()),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(open_peers(addrs)),
                ports: None,
            }]),
            egress: None,
        }),
    };
    rebuilt(&policy, addrs, owners)
}

/// `policy` (a custody block policy of the expected shape) refusing `addrs`, annotated with
/// `owners`.
fn rebuilt(policy: &NetworkPolicy, addrs: &BTreeSet<IpAddr>, owners: &Owners) -> NetworkPolicy {
    let mut new = policy.clone();
    if let Some(spec) = new.spec.as_mut() {
        spec.ingress = Some(vec![NetworkPolicyIngressRule {
            from: Some(open_peers(addrs)),
            ports: None,
        }]);
    }
    let mirror: BTreeMap<String, &BTreeSet<Owner>> =
        owners.iter().map(|(a, o)| (a.to_string(), o)).collect();
    // Serialising strings, ids and RFC 3339 text into JSON cannot fail.
    let text = serde_json::to_string(&mirror).unwrap_or_default();
    new.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(OWNERS_ANNOTATION.to_owned(), text);
    new
}

/// A selector with empty lists and maps written as absent, so two spellings of one selector
/// compare equal.
fn normalised(selector: &LabelSelector) -> LabelSelector {
    LabelSelector {
        match_labels: selector.match_labels.clone().filter(|m| !m.is_empty()),
        match_expressions: selector.match_expressions.clone().filter(|e| !e.is_empty()),
    }
}

/// Refuses a custody block policy that is not as custody writes it for `target`.
pub(super) fn check_shape(
    target: &Target,
    name: &str,
    policy: &NetworkPolicy,
) -> Result<(), Refusal> {
    let changed = |what: &str| Refusal::BlockPolicyChanged {
        policy: name.to_owned(),
        what: what.to_owned(),
    };
    let spec = policy.spec.as_ref().ok_or_else(|| changed("no spec"))?;
    let selector = spec.pod_selector.clone().unwrap_or_default();
    if normalised(&selector) != normalised(&target.pod_selector) {
        return Err(changed("its podSelector is not the target's"));
    }
    if spec.policy_types.as_deref() != Some(&["Ingress".to_owned()][..]) {
        return Err(changed("its policyTypes are not [Ingress]"));
    }
    if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err(changed("it has egress rules"));
    }
    blocked_addrs(name, policy).map(drop)
}

/// The addresses a custody block policy refuses, refusing one whose rule is not the single rule
/// custody writes.
fn blocked_addrs(name: &str, policy: &NetworkPolicy) -> Result<BTreeSet<IpAddr>, Refusal> {
    let changed = |what: &str| Refusal::BlockPolicyChanged {
        policy: name.to_owned(),
        what: what.to_owned(),
    };
    let rules = policy
        .spec
        .as_ref()
        .and_then(|s| s.ingress.as_deref())
        .unwrap_or_default();
    let [rule] = rules else {
        return Err(changed("it does not have exactly one ingress rule"));
    };
    let mut addrs = BTreeSet::new();
    for peer in rule.from.iter().flatten() {
        for text in peer.ip_block.iter().flat_map(|b| b.except.iter().flatten()) {
            let c = read_cidr(name, text)?;
            if c.prefix() != if c.is_ipv4() { 32 } else { 128 } {
                return Err(changed("an except entry is not a single address"));
            }
            addrs.insert(c.addr());
        }
    }
    let expected = NetworkPolicyIngressRule {
        from: Some(open_peers(&addrs)),
        ports: None,
    };
    // Compared through the parsed addresses, so the entries' order and spelling do not matter.
    if *rule != expected && !same_shape(rule, &expected) {
        return Err(changed("its ingress rule is not the one custody writes"));
    }
    Ok(addrs)
}

/// Whether two rules differ only in the text and order of their `except` entries.
fn same_shape(a: &NetworkPolicyIngressRule, b: &NetworkPolicyIngressRule) -> bool {
    let strip = |r: &NetworkPolicyIngressRule| {
        let mut r = r.clone();
        for peer in r.from.iter_mut().flatten() {
            if let Some(block) = peer.ip_block.as_mut() {
                block.except = None;
            }
        }
        r
    };
    strip(a) == strip(b)
}

/// A removal from the custody block policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Removal {
    /// The write, if any: a `Replace` with fewer addresses, or a `Delete` once no owner is left.
    pub change: Option<Change>,
    /// The owners afterwards: what the journal records.
    pub owners: Owners,
    /// The addresses no longer blocked.
    pub released: Vec<IpAddr>,
}

/// Removes the claims `drop` selects (a plan's, for rollback; the expired ones, for expiry) from
/// the custody block policy `policy`, whose owners the journal records as `owners`. An address
/// another owner still holds stays; the policy is deleted when no owner is left — unless it
/// refuses addresses no owner holds (added outside custody), which it keeps refusing.
pub fn remove_owners(
    policy: &NetworkPolicy,
    owners: &Owners,
    drop: impl Fn(&Owner) -> bool,
) -> Result<Removal, Refusal> {
    let name = policy.metadata.name.clone().unwrap_or_default();
    let current = blocked_addrs(&name, policy)?;
    let mut left = Owners::new();
    let mut released = Vec::new();
    for (addr, claims) in owners {
        let kept: BTreeSet<Owner> = claims.iter().filter(|o| !drop(o)).cloned().collect();
        if kept.is_empty() {
            released.push(*addr);
        } else {
            left.insert(*addr, kept);
        }
    }
    let unowned = current.iter().any(|a| !owners.contains_key(a));
    let resource_version = || {
        policy
            .metadata
            .resource_version
            .clone()
            .filter(|rv| !rv.is_empty())
            .ok_or_else(|| Refusal::NoResourceVersion {
                policy: name.clone(),
            })
    };
    let change = if left == *owners {
        None
    } else if left.is_empty() && !unowned {
        Some(Change::Delete {
            name: name.clone(),
            resource_version: resource_version()?,
        })
    } else {
        let addrs: BTreeSet<IpAddr> = current
            .iter()
            .filter(|a| !released.contains(a))
            .copied()
            .collect();
        let mut new = rebuilt(policy, &addrs, &left);
        new.metadata.managed_fields = None;
        Some(Change::Replace {
            policy: new,
            resource_version: resource_version()?,
        })
    };
    Ok(Removal {
        change,
        owners: left,
        released,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels_even_for_long_targets() {
        assert_eq!(
            block_policy_name("gateway").unwrap(),
            "custody-block-gateway"
        );
        let long = "a".repeat(60);
        let name = block_policy_name(&long).unwrap();
        assert_eq!(name.len(), MAX_NAME);
        assert!(name.starts_with("custody-block-aaaa"));
        let other = block_policy_name(&format!("{}b", "a".repeat(59))).unwrap();
        assert_ne!(name, other, "distinct targets keep distinct names");
        // A cut that ends on '-' must not leave "--" or a trailing '-'.
        let dashed = block_policy_name(&format!("{}-{}", "a".repeat(37), "b".repeat(30))).unwrap();
        assert!(!dashed.contains("--"), "{dashed}");
        for bad in ["", "Gateway", "-a", "a-", "a.b", "a b", "ä"] {
            assert!(block_policy_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_host_entry_of_the_wrong_width_is_a_changed_policy() {
        let target = Target {
            namespace: "ns".into(),
            name: "gw".into(),
            pod_selector: LabelSelector::default(),
        };
        let addrs: BTreeSet<IpAddr> = ["203.0.113.9".parse().unwrap()].into();
        let mut policy = build(&target, "custody-block-gw", &addrs, &Owners::new());
        assert!(check_shape(&target, "custody-block-gw", &policy).is_ok());
        let spec = policy.spec.as_mut().unwrap();
        let rule = &mut spec.ingress.as_mut().unwrap()[0];
        let block = rule.from.as_mut().unwrap()[0].ip_block.as_mut().unwrap();
        block.except = Some(vec!["203.0.113.0/24".into()]);
        assert!(matches!(
            check_shape(&target, "custody-block-gw", &policy),
            Err(Refusal::BlockPolicyChanged { .. })
        ));
    }
}
