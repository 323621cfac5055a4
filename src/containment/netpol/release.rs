//! Lifting one plan's block of one target again (CONTAINMENT.md, "Rollback and expiry"): only
//! the addresses and changes that plan owns. An address another owner still holds stays
//! refused; the custody block policy loses the plan's claims (and is deleted when no owner is
//! left); each policy the plan rewrote gets back what the plan took from it.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};

use super::block::{check_shape, remove_owners};
use super::rewrite::{read_cidr, rewrite_policy};
use super::{block_policy_name, for_replace, Change, Offenders, Owner, Owners, Refusal, Target};
use crate::net::Cidr;

/// One operator policy as the plan being lifted read it and wrote it.
#[derive(Clone, Debug, PartialEq)]
pub struct Rewritten {
    pub before: NetworkPolicy,
    pub after: NetworkPolicy,
}

/// What lifting needs, read from the target's namespace now.
#[derive(Clone, Copy, Debug)]
pub struct ReleaseInput<'a> {
    pub target: &'a Target,
    /// Every NetworkPolicy of the namespace, as read now.
    pub policies: &'a [NetworkPolicy],
    /// The target's owners, from the journals of every case (`execute::owners`).
    pub owners: &'a Owners,
    /// The policies other than the custody block policy the plan rewrote.
    pub rewritten: &'a [Rewritten],
    /// The addresses other targets' owners hold: a policy the plan rewrote may isolate their
    /// pods too, so it keeps refusing these.
    pub held_elsewhere: &'a BTreeSet<IpAddr>,
}

/// The changes that lift the claims `drop` selects, and what stays.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Release {
    pub changes: Vec<Change>,
    /// The custody block policy's owners afterwards.
    pub owners: Owners,
    /// Addresses of the dropped claims that no other owner holds: no longer refused.
    pub released: Vec<IpAddr>,
    /// Addresses of the dropped claims another owner still holds: still refused.
    pub kept: Vec<IpAddr>,
    pub warnings: Vec<String>,
}

/// Plans lifting the claims `drop` selects (one plan's) from `input.target`.
pub fn plan_release(
    input: &ReleaseInput<'_>,
    drop: impl Fn(&Owner) -> bool,
) -> Result<Release, Refusal> {
    let name = block_policy_name(&input.target.name)?;
    let mut out = Release::default();
    let mut mine: BTreeSet<IpAddr> = BTreeSet::new();
    for (addr, claims) in input.owners {
        if claims.iter().any(&drop) {
            mine.insert(*addr);
            if claims.iter().any(|o| !drop(o)) {
                out.kept.push(*addr);
            } else {
                out.released.push(*addr);
            }
        }
    }
    let existing = input
        .policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(name.as_str()));
    match existing {
        Some(policy) => {
            check_shape(input.target, &name, policy)?;
            let removal = remove_owners(policy, input.owners, &drop)?;
            out.owners = removal.owners;
            out.changes.extend(removal.change);
        }
        None => {
            let mut left = input.owners.clone();
            for claims in left.values_mut() {
                claims.retain(|o| !drop(o));
            }
            left.retain(|_, c| !c.is_empty());
            out.owners = left;
            if input.rewritten.is_empty() && !mine.is_empty() {
                out.warnings.push(format!(
                    "the custody block policy {name} is gone (deleted outside custody): nothing of it is left to lift; the journal records the claims as released"
                ));
            }
        }
    }
    if !input.rewritten.is_empty() {
        let shared: Vec<IpAddr> = out
            .released
            .iter()
            .filter(|a| input.held_elsewhere.contains(a))
            .copied()
            .collect();
        if !shared.is_empty() {
            out.released.retain(|a| !shared.contains(a));
            out.kept.extend(shared.iter().copied());
            out.kept.sort();
            out.warnings.push(format!(
                "{} stay refused: other targets' blocks hold them, and a policy this block rewrote may isolate those targets' pods too",
                shared.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let kept = Offenders::bare(out.kept.iter().copied());
    let released: BTreeSet<IpAddr> = out.released.iter().copied().collect();
    for r in input.rewritten {
        let pname = r.after.metadata.name.clone().unwrap_or_default();
        let Some(current) = input
            .policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(pname.as_str()))
        else {
            out.warnings.push(format!(
                "NetworkPolicy {pname}, which the plan rewrote, is gone: nothing of it is left to restore"
            ));
            continue;
        };
        let new = if same_spec(current, &r.after) {
            // As the plan left it: what it was before, with the addresses other owners hold
            // still refused (every peer the plan removed comes back).
            let mut before = r.before.clone();
            before.metadata = current.metadata.clone();
            if kept.is_empty() {
                before
            } else {
                rewrite_policy(&before, &kept)?.unwrap_or(before)
            }
        } else {
            out.warnings.push(format!(
                "NetworkPolicy {pname} was changed since the plan rewrote it: only the except entries the plan added for the released addresses are removed"
            ));
            if removed_peers(&r.before, &r.after) {
                return Err(Refusal::RewrittenPolicyChanged {
                    policy: pname,
                    what: "the plan's rewrite removed peers that admitted only blocked addresses, and the policy was edited since, so custody cannot tell where they belong: restore them by hand, then propose the rollback again".into(),
                });
            }
            without_excepts(&pname, current, r, &released)?
        };
        if !same_spec(&new, current) {
            out.changes.push(for_replace(new)?);
        }
    }
    Ok(out)
}

fn same_spec(a: &NetworkPolicy, b: &NetworkPolicy) -> bool {
    let norm = |p: &NetworkPolicy| p.spec.clone().unwrap_or_default();
    norm(a) == norm(b)
}

/// Whether the rewrite `before` → `after` removed a rule or a peer.
fn removed_peers(before: &NetworkPolicy, after: &NetworkPolicy) -> bool {
    let count = |p: &NetworkPolicy| {
        let rules = p
            .spec
            .as_ref()
            .and_then(|s| s.ingress.as_deref())
            .unwrap_or_default();
        let peers: usize = rules
            .iter()
            .map(|r| r.from.as_ref().map_or(0, Vec::len))
            .sum();
        (rules.len(), peers)
    };
    let (rules_before, peers_before) = count(before);
    let (rules_after, peers_after) = count(after);
    // An open rule rewritten gains three peers; any other rewrite keeps or drops peers.
    let opened = before
        .spec
        .as_ref()
        .and_then(|s| s.ingress.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|r| r.from.as_ref().is_none_or(Vec::is_empty))
        .count();
    rules_after < rules_before || peers_after < peers_before + 3 * opened
}

/// `current` without the `except` entries for `released` that the plan added: in its policy
/// after the rewrite and not before it.
fn without_excepts(
    name: &str,
    current: &NetworkPolicy,
    rewrite: &Rewritten,
    released: &BTreeSet<IpAddr>,
) -> Result<NetworkPolicy, Refusal> {
    let mut had: Vec<Cidr> = Vec::new();
    for text in excepts(&rewrite.before) {
        had.push(read_cidr(name, &text)?);
    }
    let mut added: Vec<Cidr> = Vec::new();
    for text in excepts(&rewrite.after) {
        let c = read_cidr(name, &text)?;
        if !had.contains(&c) {
            added.push(c);
        }
    }
    let mut new = current.clone();
    let spec: &mut NetworkPolicySpec = new.spec.get_or_insert_with(Default::default);
    for rule in spec.ingress.iter_mut().flatten() {
        for peer in rule.from.iter_mut().flatten() {
            let Some(block) = peer.ip_block.as_mut() else {
                continue;
            };
            let Some(entries) = block.except.as_mut() else {
                continue;
            };
            let mut kept = Vec::with_capacity(entries.len());
            for text in entries.iter() {
                let c = read_cidr(name, text)?;
                let host = c.prefix() == if c.is_ipv4() { 32 } else { 128 };
                if host && released.contains(&c.addr()) && added.contains(&c) {
                    continue;
                }
                kept.push(text.clone());
            }
            block.except = (!kept.is_empty()).then_some(kept);
        }
    }
    Ok(new)
}

fn excepts(p: &NetworkPolicy) -> Vec<String> {
    p.spec
        .iter()
        .flat_map(|s| s.ingress.iter().flatten())
        .flat_map(|r| r.from.iter().flatten())
        .flat_map(|peer| peer.ip_block.iter())
        .flat_map(|b| b.except.iter().flatten())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{apply, ip, offenders, owner, pol, World};
    use super::*;

    const OPEN: &str = "metadata: {name: gw-in}\nspec:\n  podSelector: {matchLabels: {app: gw}}\n  policyTypes: [Ingress]\n  ingress:\n  - ports: [{port: 8080}]\n";
    const CIDR: &str = "metadata: {name: gw-in}\nspec:\n  podSelector: {matchLabels: {app: gw}}\n  policyTypes: [Ingress]\n  ingress:\n  - from:\n    - ipBlock: {cidr: 203.0.113.9/32}\n    - ipBlock: {cidr: 0.0.0.0/0}\n";

    /// The block of `addrs` by case `c1`, applied: the rewrite, the policies after it, owners.
    fn blocked(w: &World, yaml: &str, addrs: &[&str]) -> (Rewritten, Vec<NetworkPolicy>, Owners) {
        let before = vec![pol(yaml)];
        let off = offenders("c1", addrs);
        let plan = w.plan(&before, &off, &Owners::new());
        assert!(plan.refusals.is_empty(), "{plan:?}");
        let mut after = apply(&before, &plan.changes);
        for p in &mut after {
            p.metadata.resource_version = Some("101".into());
        }
        let owners: Owners = off.entries().map(|(a, o)| (*a, o.clone())).collect();
        let rewrite = Rewritten {
            before: before[0].clone(),
            after: after[0].clone(),
        };
        (rewrite, after, owners)
    }

    fn release(
        w: &World,
        policies: &[NetworkPolicy],
        owners: &Owners,
        rewrite: &Rewritten,
        elsewhere: &BTreeSet<IpAddr>,
    ) -> Result<Release, Refusal> {
        let c1 = crate::id::CaseId::new("c1").unwrap();
        plan_release(
            &ReleaseInput {
                target: &w.target,
                policies,
                owners,
                rewritten: std::slice::from_ref(rewrite),
                held_elsewhere: elsewhere,
            },
            |o| o.case == c1,
        )
    }

    fn spec_of(change: &Change) -> serde_json::Value {
        let Change::Replace { policy, .. } = change else {
            panic!("{change:?}")
        };
        serde_json::to_value(&policy.spec).unwrap()
    }

    #[test]
    fn an_open_rule_gets_back_exactly_as_it_was() {
        let w = World::gateway();
        let (rewrite, after, owners) = blocked(&w, OPEN, &["203.0.113.9"]);
        let r = release(&w, &after, &owners, &rewrite, &BTreeSet::new()).unwrap();
        assert_eq!(r.released, vec![ip("203.0.113.9")]);
        let [change] = &r.changes[..] else {
            panic!("{r:?}")
        };
        assert_eq!(
            spec_of(change),
            serde_json::to_value(&rewrite.before.spec).unwrap()
        );
    }

    #[test]
    fn a_shared_address_or_another_targets_stays_refused() {
        let w = World::gateway();
        let (rewrite, after, mut owners) = blocked(&w, OPEN, &["203.0.113.9", "203.0.113.10"]);
        owners
            .get_mut(&ip("203.0.113.10"))
            .unwrap()
            .insert(owner("c2", "p2"));
        let elsewhere = BTreeSet::from([ip("203.0.113.9")]);
        let r = release(&w, &after, &owners, &rewrite, &elsewhere).unwrap();
        assert!(r.released.is_empty(), "{r:?}");
        assert_eq!(r.kept, vec![ip("203.0.113.9"), ip("203.0.113.10")]);
        assert!(r.changes.is_empty(), "both stay excepted: {r:?}");
    }

    #[test]
    fn a_policy_edited_since_loses_only_the_entries_the_block_added() {
        let w = World::gateway();
        let (rewrite, mut after, owners) = blocked(&w, OPEN, &["203.0.113.9"]);
        // By hand: another address refused beside the block's.
        let mut edited = serde_json::to_value(&after[0]).unwrap();
        edited["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!("198.51.100.50/32"));
        after[0] = serde_json::from_value(edited).unwrap();
        let r = release(&w, &after, &owners, &rewrite, &BTreeSet::new()).unwrap();
        assert!(r.warnings.iter().any(|w| w.contains("was changed since")));
        let [change] = &r.changes[..] else {
            panic!("{r:?}")
        };
        assert_eq!(
            spec_of(change)["ingress"][0]["from"][0]["ipBlock"]["except"],
            serde_json::json!(["198.51.100.50/32"])
        );
    }

    #[test]
    fn a_policy_edited_after_the_block_removed_a_peer_is_refused() {
        let w = World::gateway();
        let (rewrite, mut after, owners) = blocked(&w, CIDR, &["203.0.113.9"]);
        assert!(
            rewrite.after.spec != rewrite.before.spec,
            "the block removed the /32 peer"
        );
        let mut edited = serde_json::to_value(&after[0]).unwrap();
        edited["spec"]["ingress"][0]["ports"] = serde_json::json!([{"port": 8443}]);
        after[0] = serde_json::from_value(edited).unwrap();
        let r = release(&w, &after, &owners, &rewrite, &BTreeSet::new());
        assert!(
            matches!(r, Err(Refusal::RewrittenPolicyChanged { .. })),
            "{r:?}"
        );
        // Unedited, the peer comes back.
        let (rewrite, after, owners) = blocked(&w, CIDR, &["203.0.113.9"]);
        let r = release(&w, &after, &owners, &rewrite, &BTreeSet::new()).unwrap();
        assert_eq!(
            spec_of(&r.changes[0]),
            serde_json::to_value(&rewrite.before.spec).unwrap()
        );
    }
}
