//! What makes an expiry plan's release lawful without approvals of its own (CONTAINMENT.md,
//! "Rollback and expiry"): the plan it lifts set the expiry, and that plan had quorum. An expiry
//! plan is lawful at a time `at` only if it is custody's own (proposed with the collector key),
//! lifts one executed containment plan, and each of its release steps lifts a block step of
//! that plan on the same target, releasing or keeping only addresses that step blocked and whose
//! expiry, by that plan's `addresses.block`, is at or before the expiry plan's `created_at`,
//! itself no later than `at` — the earlier of custody's clock and the API server's `Date` when
//! the execution starts, so that a clock running ahead lifts nothing early. Its writes are only
//! to the NetworkPolicies that block wrote, removing only released addresses' `except` entries.
//! Execution (`Plan::expiry_check`) and `verify` both judge by this.

use std::collections::BTreeSet;

use time::OffsetDateTime;

use super::document::{PlanDoc, PlanKind, StepDetail, StepStatus};
use crate::digest::Sha256Digest;
use crate::policy::containment::StepKind;

/// The proof, bound to the expiry plan `doc` with digest `digest`, that `reasons` found
/// nothing: what `approval::Approved::pre_approved` takes. Else every reason.
pub(super) fn lawful(
    (doc, digest): (&PlanDoc, Sha256Digest),
    lifted: (&PlanDoc, Sha256Digest),
    executed: &BTreeSet<u32>,
    at: OffsetDateTime,
) -> Result<crate::approval::quorum::ExpiryLawful, Vec<String>> {
    let found = reasons(doc, lifted, executed, at);
    if found.is_empty() {
        Ok(crate::approval::quorum::ExpiryLawful::new(
            &doc.case, &doc.plan, digest,
        ))
    } else {
        Err(found)
    }
}

/// Every reason `doc` may not lift what it lifts at `at`, given the plan it lifts (`lifted`,
/// with digest `lifted_sha256`) and that plan's block steps that were executed before `at`.
/// Empty: the expiry is lawful.
pub fn reasons(
    doc: &PlanDoc,
    (lifted, lifted_sha256): (&PlanDoc, Sha256Digest),
    executed: &BTreeSet<u32>,
    at: OffsetDateTime,
) -> Vec<String> {
    let mut out = Vec::new();
    if doc.kind != PlanKind::Expiry {
        out.push(format!(
            "plan {} is a {} plan, not an expiry",
            doc.plan,
            doc.kind.as_str()
        ));
        return out;
    }
    if !matches!(
        doc.proposer,
        super::document::ProposerClaim::Collector { .. }
    ) {
        out.push("an expiry is custody's own: it must be proposed with the collector key, not by a person".into());
    }
    if lifted.kind != PlanKind::Containment || lifted.case != doc.case {
        out.push(format!(
            "plan {} is not a containment plan of case {}",
            lifted.plan, doc.case
        ));
    }
    match &doc.rolls_back {
        Some(rb) if rb.plan == lifted.plan && rb.plan_sha256 == lifted_sha256 => {}
        _ => out.push(format!(
            "the expiry does not name plan {} with digest {lifted_sha256}",
            lifted.plan
        )),
    }
    let Some(cut) = crate::timefmt::parse(&doc.created_at) else {
        out.push("its created_at is not an RFC 3339 time".into());
        return out;
    };
    if cut > at {
        out.push(format!(
            "its cut-off {} is later than {}",
            doc.created_at,
            crate::timefmt::rfc3339(at)
        ));
    }
    if !doc.steps.iter().any(|s| s.status == StepStatus::Planned) {
        out.push("it has no planned step".into());
    }
    for step in &doc.steps {
        let n = step.number;
        let StepDetail::ReleaseIps {
            plan,
            step: lifts,
            released,
            kept,
            owners,
            ..
        } = &step.detail
        else {
            out.push(format!(
                "step {n} is not a release: an expiry only releases addresses"
            ));
            continue;
        };
        if step.kind != StepKind::ReleaseIps || plan != &lifted.plan {
            out.push(format!(
                "step {n} does not release a block of plan {}",
                lifted.plan
            ));
            continue;
        }
        let block = lifted.steps.iter().find(|s| s.number == *lifts);
        let Some((block, StepDetail::BlockIps { addresses, .. })) = block.map(|b| (b, &b.detail))
        else {
            out.push(format!(
                "step {n} lifts step {lifts} of plan {}, which is not a block",
                lifted.plan
            ));
            continue;
        };
        if block.target != step.target || block.namespace != step.namespace {
            out.push(format!(
                "step {n} releases on another target than the block it lifts"
            ));
        }
        // A kept address no owner keeps in the custody block policy may leave it (another
        // target's block holds it, elsewhere).
        let unowned: Vec<String> = kept
            .iter()
            .filter(|k| !owners.contains_key(*k))
            .cloned()
            .collect();
        out.extend(writes_reasons(
            step,
            block,
            (released, &unowned, !owners.is_empty()),
        ));
        if !executed.contains(lifts) {
            out.push(format!(
                "step {n} lifts step {lifts} of plan {}, which had not been executed",
                lifted.plan
            ));
        }
        for address in released.iter().chain(kept) {
            let due = addresses.contains(address).then(|| {
                lifted
                    .addresses
                    .block
                    .iter()
                    .find(|a| &a.address == address)
                    .and_then(|a| crate::timefmt::parse(&a.expires_at))
            });
            match due.flatten() {
                Some(expires) if expires <= cut => {}
                Some(expires) => out.push(format!(
                    "step {n} lifts {address}, which plan {} blocks until {}, after the cut-off {}",
                    lifted.plan,
                    crate::timefmt::rfc3339(expires),
                    doc.created_at
                )),
                None => out.push(format!(
                    "step {n} lifts {address}, which step {lifts} of plan {} did not block with an expiry",
                    lifted.plan
                )),
            }
        }
    }
    out
}

/// What an expiry's step may write, approved by no one: only NetworkPolicies of its namespace
/// that the block it lifts wrote — the custody block policy (replaced, or deleted once no owner
/// is left) or a policy the block rewrote (replaced). A replaced policy keeps its shape but for
/// `except` lists, peer by peer: as it is now, it may only lose entries of released addresses
/// (in the custody block policy, also of kept ones no longer owned there); given back the shape
/// it had before the lifted block wrote it, it holds that shape's entries but for released
/// addresses', plus host entries of addresses kept or already excepted there. (Execution also
/// requires the writes to be exactly the plan made again.)
fn writes_reasons(
    step: &super::document::Step,
    block: &super::document::Step,
    (released, kept, owned): (&[String], &[String], bool),
) -> Vec<String> {
    use super::document::ChangeOp;
    let n = step.number;
    let custody = crate::containment::netpol::block_policy_name(&step.target).ok();
    let hosts = |list: &[String]| -> BTreeSet<String> {
        list.iter()
            .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
            .map(|a| crate::net::Cidr::host(a).to_string())
            .collect()
    };
    let (released, kept) = (hosts(released), hosts(kept));
    let mut out = Vec::new();
    for change in &step.changes {
        let o = &change.object;
        let rewritten = block.changes.iter().any(|c| {
            c.op == ChangeOp::Replace && c.object.kind == o.kind && c.object.name == o.name
        });
        let is_custody = custody.as_deref() == Some(o.name.as_str());
        let lawful_object = o.api_version == "networking.k8s.io/v1"
            && o.kind == "NetworkPolicy"
            && o.namespace.as_deref() == Some(step.namespace.as_str())
            && (is_custody || rewritten);
        let lawful_op = match change.op {
            ChangeOp::Replace => true,
            ChangeOp::Delete => is_custody && !owned,
            _ => false,
        };
        if !lawful_object || !lawful_op {
            out.push(format!(
                "step {n} writes ({:?}) {} {}, which an expiry of the block it lifts may not",
                change.op, o.kind, o.name
            ));
            continue;
        }
        if change.op != ChangeOp::Replace {
            continue;
        }
        let shape = |v: Option<&serde_json::Value>| v.map(|v| without_excepts(&v["spec"]));
        let after_shape = shape(change.after.as_ref());
        let after = except_lists(change.after.as_ref());
        let before = except_lists(change.before.as_ref());
        let mut removable = released.clone();
        if is_custody {
            removable.extend(kept.iter().cloned());
        }
        let complaint = if after_shape.is_some() && after_shape == shape(change.before.as_ref()) {
            // As it is now, but for entries removed.
            positions(&before, &after).find_map(|(was, is)| {
                if let Some(added) = is.difference(was).next() {
                    return Some(format!("adds the except entry {added}"));
                }
                was.difference(is)
                    .find(|e| !removable.contains(*e))
                    .map(|e| {
                        format!("removes the except entry {e}, which is not a released address")
                    })
            })
        } else {
            // What it was before the block, or that with the kept addresses excepted (a rule
            // the block removed for them stays removed).
            let kept_ips: Vec<std::net::IpAddr> = kept
                .iter()
                .filter_map(|c| crate::net::Cidr::parse(c).map(|c| c.network().addr()))
                .collect();
            let origins: Vec<serde_json::Value> = block
                .changes
                .iter()
                .filter(|c| c.object.name == o.name)
                .filter_map(|c| c.before.clone())
                .flat_map(|before| {
                    let again = serde_json::from_value::<
                        k8s_openapi::api::networking::v1::NetworkPolicy,
                    >(before.clone())
                    .ok()
                    .and_then(|p| {
                        crate::containment::netpol::excepting(&p, kept_ips.iter().copied())
                    })
                    .and_then(|p| serde_json::to_value(p).ok());
                    std::iter::once(before).chain(again)
                })
                .collect();
            let restored = origins
                .iter()
                .find(|b| after_shape.is_some() && shape(Some(*b)) == after_shape);
            match restored {
                None => Some("changes it otherwise than by removing except entries or giving it back what the block changed".to_owned()),
                Some(origin) => {
                    let origin = except_lists(Some(origin));
                    let excepted: BTreeSet<&String> = before.iter().flatten().flatten().collect();
                    let found = positions(&origin, &after).find_map(|(was, is)| {
                        let host = |e: &String| {
                            crate::net::Cidr::parse(e).is_some_and(|c| c == crate::net::Cidr::host(c.addr()))
                        };
                        if let Some(e) = is
                            .difference(was)
                            .find(|e| !(kept.contains(*e) || (excepted.contains(e) && host(e))))
                        {
                            return Some(format!("adds the except entry {e}"));
                        }
                        was.difference(is)
                            .find(|e| !released.contains(*e))
                            .map(|e| format!("leaves out the except entry {e} the policy had before the block, which is not a released address"))
                    });
                    found
                }
            }
        };
        if let Some(why) = complaint {
            out.push(format!("step {n} {why} in {}", o.name));
        }
    }
    out
}

/// The `except` entries of each ingress rule's peers, by rule and peer, as CIDR text in
/// normal form.
fn except_lists(policy: Option<&serde_json::Value>) -> Vec<Vec<BTreeSet<String>>> {
    let rules = policy
        .and_then(|p| p.pointer("/spec/ingress"))
        .and_then(|r| r.as_array());
    rules
        .into_iter()
        .flatten()
        .map(|rule| {
            rule["from"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|peer| {
                    peer["ipBlock"]["except"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e.as_str())
                        .map(|text| {
                            crate::net::Cidr::parse(text)
                                .map_or_else(|| text.to_owned(), |c| c.network().to_string())
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// The except lists of `a` and `b` peer by peer (the shapes are equal, so positions match).
fn positions<'x>(
    a: &'x [Vec<BTreeSet<String>>],
    b: &'x [Vec<BTreeSet<String>>],
) -> impl Iterator<Item = (&'x BTreeSet<String>, &'x BTreeSet<String>)> {
    a.iter()
        .zip(b)
        .flat_map(|(ra, rb)| ra.iter().zip(rb.iter()))
}

/// A NetworkPolicy spec without any `except` list.
fn without_excepts(spec: &serde_json::Value) -> serde_json::Value {
    let mut spec = spec.clone();
    if let Some(rules) = spec
        .get_mut("ingress")
        .and_then(serde_json::Value::as_array_mut)
    {
        for rule in rules {
            let peers = rule
                .get_mut("from")
                .and_then(serde_json::Value::as_array_mut);
            for peer in peers.into_iter().flatten() {
                if let Some(block) = peer
                    .get_mut("ipBlock")
                    .and_then(serde_json::Value::as_object_mut)
                {
                    block.remove("except");
                }
            }
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::id::{CaseId, KeyId, PlanId};
    use crate::plan::document::{
        Addresses, BlockedAddress, ClusterIdentity, JournalHead, PinnedEvidence, Preconditions,
        ProposerClaim, QuorumNeed, RolledBack, Step,
    };

    const CASE: &str = "c-20261203-000000-aaaa";

    fn blocked(address: &str, expires_at: &str) -> BlockedAddress {
        BlockedAddress {
            address: address.into(),
            rules: vec!["brute-force".into()],
            requests: 10,
            auth_failures: 10,
            first_seen: None,
            last_seen: None,
            sources: Vec::new(),
            forwarded: false,
            expires_at: expires_at.into(),
        }
    }

    fn step(number: u32, kind: StepKind, detail: StepDetail) -> Step {
        Step {
            number,
            kind,
            target: "api-gateway".into(),
            namespace: "waqiti".into(),
            status: StepStatus::Planned,
            refusals: Vec::new(),
            warnings: Vec::new(),
            read: Vec::new(),
            changes: Vec::new(),
            preconditions: Preconditions::default(),
            detail,
        }
    }

    fn doc(plan: &str, kind: PlanKind, created_at: &str, steps: Vec<Step>) -> PlanDoc {
        PlanDoc {
            format: crate::plan::PLAN_FORMAT.into(),
            case: CaseId::new(CASE).unwrap(),
            plan: PlanId::new(plan).unwrap(),
            kind,
            evidence: PinnedEvidence {
                bundles: Vec::new(),
                journal_head: JournalHead {
                    seq: 3,
                    sha256: Sha256Digest::of(b"head"),
                },
            },
            cluster: ClusterIdentity {
                kube_system_uid: "uid".into(),
                server: "https://127.0.0.1".into(),
            },
            proposer: ProposerClaim::Collector {
                key_id: KeyId::new("0123456789abcdef").unwrap(),
            },
            created_at: created_at.into(),
            not_after: "2026-12-04T00:00:00Z".into(),
            quorum: QuorumNeed {
                required: 0,
                by_kind: BTreeMap::new(),
                veto: "any_reject".into(),
            },
            policy_sha256: Sha256Digest::of(b"policy"),
            roster_sha256: Sha256Digest::of(b"roster"),
            addresses: Addresses::default(),
            steps,
            rolls_back: None,
        }
    }

    /// A containment plan blocking two addresses in step 1: one until 01:00, one until 03:00.
    fn lifted() -> PlanDoc {
        let mut d = doc(
            "p-20261203-000000-aaaa",
            PlanKind::Containment,
            "2026-12-03T00:00:00Z",
            vec![step(
                1,
                StepKind::BlockIps,
                StepDetail::BlockIps {
                    method: "networkpolicy".into(),
                    addresses: vec!["203.0.113.10".into(), "203.0.113.11".into()],
                    owners: BTreeMap::new(),
                },
            )],
        );
        d.addresses.block = vec![
            blocked("203.0.113.10", "2026-12-03T01:00:00Z"),
            blocked("203.0.113.11", "2026-12-03T03:00:00Z"),
        ];
        d
    }

    fn expiry(created_at: &str, released: &[&str]) -> PlanDoc {
        let of = lifted();
        let mut d = doc(
            "p-20261203-020000-bbbb",
            PlanKind::Expiry,
            created_at,
            vec![step(
                1,
                StepKind::ReleaseIps,
                StepDetail::ReleaseIps {
                    method: "networkpolicy".into(),
                    plan: of.plan.clone(),
                    plan_sha256: Sha256Digest::of(b"lifted"),
                    step: 1,
                    released: released.iter().map(|a| (*a).to_owned()).collect(),
                    kept: Vec::new(),
                    owners: BTreeMap::new(),
                },
            )],
        );
        d.rolls_back = Some(RolledBack {
            plan: of.plan,
            plan_sha256: Sha256Digest::of(b"lifted"),
        });
        d
    }

    fn at(s: &str) -> OffsetDateTime {
        crate::timefmt::parse(s).unwrap()
    }

    fn judged(d: &PlanDoc, executed: &[u32], when: &str) -> Vec<String> {
        let of = lifted();
        reasons(
            d,
            (&of, Sha256Digest::of(b"lifted")),
            &executed.iter().copied().collect(),
            at(when),
        )
    }

    fn change(
        op: crate::plan::document::ChangeOp,
        name: &str,
        before: &[&str],
        after: &[&str],
    ) -> crate::plan::document::ObjectChange {
        let body = |excepts: &[&str]| serde_json::json!({"spec": {"ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": excepts}}]}]}});
        crate::plan::document::ObjectChange {
            op,
            object: crate::plan::document::ObjectRef {
                api_version: "networking.k8s.io/v1".into(),
                kind: "NetworkPolicy".into(),
                namespace: Some("waqiti".into()),
                name: name.into(),
                resource_version: Some("4".into()),
            },
            before: Some(body(before)),
            after: Some(body(after)),
            patch: None,
            dry_run: crate::plan::document::DryRun::NotRun { why: String::new() },
        }
    }

    #[test]
    fn an_expiry_writes_only_the_policies_its_block_wrote_and_lifts_only_released_entries() {
        use crate::plan::document::ChangeOp;
        let lawful = |changes: Vec<crate::plan::document::ObjectChange>| {
            let mut d = expiry("2026-12-03T02:00:00Z", &["203.0.113.10"]);
            d.steps[0].changes = changes;
            judged(&d, &[1], "2026-12-03T02:00:05Z")
        };
        let custody = "custody-block-api-gateway";
        assert!(lawful(vec![change(
            ChangeOp::Replace,
            custody,
            &["203.0.113.10/32", "203.0.113.11/32"],
            &["203.0.113.11/32"]
        )])
        .is_empty());
        assert!(lawful(vec![change(ChangeOp::Delete, custody, &[], &[])]).is_empty());
        // Another address's entry removed.
        let r = lawful(vec![change(
            ChangeOp::Replace,
            custody,
            &["203.0.113.10/32", "203.0.113.11/32"],
            &[],
        )]);
        assert!(r.iter().any(|r| r.contains("203.0.113.11/32")), "{r:?}");
        // A policy the block never wrote, or a delete of one.
        let r = lawful(vec![change(ChangeOp::Delete, "deny-all", &[], &[])]);
        assert!(r.iter().any(|r| r.contains("deny-all")), "{r:?}");
        let mut other = change(ChangeOp::Replace, custody, &[], &[]);
        other.object.kind = "Deployment".into();
        assert!(!lawful(vec![other]).is_empty());
        // A peer added that admits everyone.
        let mut opened = change(ChangeOp::Replace, custody, &["203.0.113.10/32"], &[]);
        if let Some(after) = opened.after.as_mut() {
            after["spec"]["ingress"][0]["from"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({}));
        }
        let r = lawful(vec![opened]);
        assert!(r.iter().any(|r| r.contains("otherwise")), "{r:?}");
        // An entry added (a range blocked with no quorum).
        let r = lawful(vec![change(
            ChangeOp::Replace,
            custody,
            &["203.0.113.10/32"],
            &["0.0.0.0/1"],
        )]);
        assert!(r.iter().any(|r| r.contains("adds")), "{r:?}");
        // The custody block policy deleted while an owner is left.
        let mut d = expiry("2026-12-03T02:00:00Z", &["203.0.113.10"]);
        d.steps[0].changes = vec![change(ChangeOp::Delete, custody, &[], &[])];
        if let StepDetail::ReleaseIps { owners, .. } = &mut d.steps[0].detail {
            owners.insert("203.0.113.11".into(), Vec::new());
        }
        assert!(!judged(&d, &[1], "2026-12-03T02:00:05Z").is_empty());
    }

    #[test]
    fn an_expiry_of_addresses_whose_expiry_passed_is_lawful() {
        let d = expiry("2026-12-03T02:00:00Z", &["203.0.113.10"]);
        assert_eq!(
            judged(&d, &[1], "2026-12-03T02:00:05Z"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_address_lifted_before_its_expiry_is_refused() {
        let d = expiry("2026-12-03T02:00:00Z", &["203.0.113.10", "203.0.113.11"]);
        let r = judged(&d, &[1], "2026-12-03T02:00:05Z");
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].contains("203.0.113.11") && r[0].contains("after the cut-off"),
            "{r:?}"
        );
    }

    #[test]
    fn a_cut_off_in_the_future_a_person_proposer_an_unexecuted_block_or_an_address_never_blocked_is_refused(
    ) {
        // A cut-off later than the execution: its expiry times are judged by a clock ahead.
        let d = expiry("2026-12-03T04:00:00Z", &["203.0.113.10"]);
        assert!(judged(&d, &[1], "2026-12-03T02:00:00Z")
            .iter()
            .any(|r| r.contains("later than")));
        // The block step was never executed.
        let d = expiry("2026-12-03T02:00:00Z", &["203.0.113.10"]);
        assert!(judged(&d, &[], "2026-12-03T02:00:05Z")
            .iter()
            .any(|r| r.contains("had not been executed")));
        // An address the block never refused.
        let d = expiry("2026-12-03T02:00:00Z", &["198.51.100.1"]);
        assert!(judged(&d, &[1], "2026-12-03T02:00:05Z")
            .iter()
            .any(|r| r.contains("did not block")));
        // Proposed by a person: an expiry is custody's own.
        let mut d = expiry("2026-12-03T02:00:00Z", &["203.0.113.10"]);
        d.proposer = ProposerClaim::Person {
            principal: crate::approval::Principal::new("mallory@example.org").unwrap(),
            key_fingerprint: format!("SHA256:{}", "A".repeat(43)).parse().unwrap(),
        };
        assert!(judged(&d, &[1], "2026-12-03T02:00:05Z")
            .iter()
            .any(|r| r.contains("collector key")));
        // Another digest of the lifted plan, or a rollback dressed as an expiry.
        let mut d = expiry("2026-12-03T02:00:00Z", &["203.0.113.10"]);
        if let Some(rb) = d.rolls_back.as_mut() {
            rb.plan_sha256 = Sha256Digest::of(b"other");
        }
        assert!(!judged(&d, &[1], "2026-12-03T02:00:05Z").is_empty());
        let mut d = expiry("2026-12-03T02:00:00Z", &["203.0.113.10"]);
        d.kind = PlanKind::Rollback;
        assert!(!judged(&d, &[1], "2026-12-03T02:00:05Z").is_empty());
    }
}
