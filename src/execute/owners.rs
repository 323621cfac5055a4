//! Who owns each blocked address, across every case of the store (CONTAINMENT.md, "Rollback
//! and expiry"): a claim is an address a `block_ips` step of an executed plan blocked for its
//! target, owned by that case and plan until the expiry the plan gives it. It is read from the
//! journals and the plans they name, never from annotations on the objects (`custody.io/owners`
//! only mirrors it for people). A plan blocking a target that earlier plans already block is
//! planned with their claims, so that the custody block policy keeps every owner's addresses and
//! records them, and so that lifting one plan's block leaves the addresses another still holds.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use time::OffsetDateTime;

use crate::case::journal::Details;
use crate::containment::netpol::{Owner, Owners};
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};
use crate::keys::PublicKey;
use crate::net::normalise_ip;
use crate::plan::document::StepDetail;
use crate::policy::containment::StepKind;
use crate::store::Store;

/// One case's and plan's claim on one address of one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub case: CaseId,
    pub plan: PlanId,
    pub plan_sha256: Sha256Digest,
    /// The plan's `block_ips` step that blocked it.
    pub step: u32,
    pub namespace: String,
    pub target: String,
    pub address: IpAddr,
    /// From the plan's `addresses.block`.
    pub expires_at: OffsetDateTime,
    /// The step's method (`networkpolicy`, `cilium`): a claim is an owner only for its method.
    pub method: String,
}

impl Claim {
    pub fn owner(&self) -> Owner {
        Owner {
            case: self.case.clone(),
            plan: self.plan.clone(),
            expires_at: self.expires_at,
        }
    }
}

/// Every claim the store's journals record: each `step_done` of a `block_ips` step, with the
/// addresses and expiry times of the plan it names (whose digest must be the one journaled). A
/// journal or a plan that does not verify is an error: owners read from a record that may have
/// been altered would decide what stays blocked.
pub fn claims(store: &dyn Store, trusted: Option<&PublicKey>) -> Result<Vec<Claim>, String> {
    let mut out = Vec::new();
    // What rollbacks and expiries lifted: (case, plan, step) → the addresses (`None`: all of
    // the step's, a rollback). Those claims are no longer held.
    let mut lifted: BTreeMap<(CaseId, PlanId, u32), Option<BTreeSet<IpAddr>>> = BTreeMap::new();
    for case in store.list_cases().map_err(|e| e.to_string())? {
        // Only a case whose journal records an executed block is read as a claim, and then its
        // whole journal must verify; a case that never blocked anything decides nothing here.
        let hashed = crate::case::journal::check_chain(store, &case).map_err(|e| e.to_string())?;
        let blocked = hashed.entries.iter().any(|(e, _)| {
            matches!(&e.details, Details::StepDone(d) if matches!(d.kind, StepKind::BlockIps | StepKind::ReleaseIps))
        });
        if !blocked && hashed.problems.is_empty() {
            continue;
        }
        let chain = crate::plan::store::trusted_chain(store, &case, trusted)
            .map_err(|e| format!("case {case}: {e}"))?;
        for (entry, _) in &chain.entries {
            let Details::StepDone(done) = &entry.details else {
                continue;
            };
            if !matches!(done.kind, StepKind::BlockIps | StepKind::ReleaseIps) {
                continue;
            }
            let plan = crate::plan::load(store, &case, &done.plan, trusted)
                .map_err(|e| format!("case {case}, plan {}: {e}", done.plan))?;
            if plan.digest() != done.plan_sha256 {
                return Err(format!(
                    "case {case}: entry {} records step {} of plan {} with digest {}, but the stored plan's is {}",
                    entry.seq, done.number, done.plan, done.plan_sha256, plan.digest()
                ));
            }
            if done.kind == StepKind::ReleaseIps {
                let (step, addresses) = lifted_by(&case, plan.doc(), done.number)?;
                let entry = lifted.entry(step).or_insert(Some(BTreeSet::new()));
                match (entry.as_mut(), addresses) {
                    (Some(all), Some(some)) => all.extend(some),
                    _ => *entry = None,
                }
                continue;
            }
            out.extend(claims_of(&case, plan.doc(), done.number, done.plan_sha256)?);
        }
    }
    out.retain(
        |c| match lifted.get(&(c.case.clone(), c.plan.clone(), c.step)) {
            None => true,
            Some(None) => false,
            Some(Some(addresses)) => !addresses.contains(&c.address),
        },
    );
    Ok(out)
}

/// The block step the release step `number` of the rollback or expiry plan `doc` lifted, and
/// the addresses it lifted: `None` (every claim of the step) for a rollback, the released and
/// kept addresses (those whose expiry passed) for an expiry.
#[allow(clippy::type_complexity)]
fn lifted_by(
    case: &CaseId,
    doc: &crate::plan::document::PlanDoc,
    number: u32,
) -> Result<((CaseId, PlanId, u32), Option<BTreeSet<IpAddr>>), String> {
    let step = doc.steps.iter().find(|s| s.number == number);
    let Some(StepDetail::ReleaseIps {
        plan,
        plan_sha256,
        step,
        released,
        kept,
        ..
    }) = step.map(|s| &s.detail)
    else {
        return Err(format!(
            "step {number} of plan {} is journaled as a release but is not one",
            doc.plan
        ));
    };
    if doc.rolls_back.as_ref().map(|r| (&r.plan, r.plan_sha256)) != Some((plan, *plan_sha256)) {
        return Err(format!(
            "plan {}: its release step {number} lifts plan {plan}, which the plan does not roll back",
            doc.plan
        ));
    }
    let addresses = match doc.kind {
        crate::plan::document::PlanKind::Expiry => {
            let mut set = BTreeSet::new();
            for text in released.iter().chain(kept) {
                let address: IpAddr = text.parse().map_err(|_| {
                    format!(
                        "plan {}: step {number} lifts {text:?}, which is not an address",
                        doc.plan
                    )
                })?;
                set.insert(normalise_ip(address));
            }
            Some(set)
        }
        _ => None,
    };
    Ok(((case.clone(), plan.clone(), *step), addresses))
}

/// The executed plan `plan` of `case`, for a rollback of it: loaded (trusted as the caller's
/// other reads) with the block steps its journal records as done.
pub fn lifted(
    store: &dyn Store,
    case: &CaseId,
    plan: &PlanId,
    trusted: Option<&PublicKey>,
) -> Result<crate::propose::RollbackOf, String> {
    let loaded = crate::plan::load(store, case, plan, trusted).map_err(|e| e.to_string())?;
    let doc = loaded.doc();
    if doc.kind != crate::plan::document::PlanKind::Containment {
        return Err(format!("plan {plan} is itself a {}: only a containment plan's blocks are rolled back or expire; propose the block again", doc.kind.as_str()));
    }
    let chain = crate::plan::store::trusted_chain(store, case, trusted)
        .map_err(|e| format!("case {case}: {e}"))?;
    let executed = chain
        .entries
        .iter()
        .filter_map(|(e, _)| match &e.details {
            Details::StepDone(d)
                if d.kind == StepKind::BlockIps
                    && &d.plan == plan
                    && d.plan_sha256 == loaded.digest() =>
            {
                Some(d.number)
            }
            _ => None,
        })
        .collect::<std::collections::BTreeSet<u32>>();
    if executed.is_empty() {
        return Err(format!("plan {plan} has no executed block step: there is nothing to roll back (Secrets and sessions are never rolled back)"));
    }
    Ok(crate::propose::RollbackOf {
        doc: doc.clone(),
        sha256: loaded.digest(),
        executed,
        expired_by: None,
    })
}

/// For a rollback or an expiry plan, the plan it lifts (`lifted`), whose digest must be the one
/// it names, and each of whose release steps must lift an executed block step of it on its own
/// target; `None` for a containment plan. An expiry's comes with its cut-off (`created_at`)
/// and only the block steps it lifts, as it was planned.
pub fn rollback_of(
    store: &dyn Store,
    doc: &crate::plan::document::PlanDoc,
    trusted: Option<&PublicKey>,
) -> Result<Option<crate::propose::RollbackOf>, String> {
    use crate::plan::document::PlanKind;
    match (doc.kind, &doc.rolls_back) {
        (PlanKind::Containment, None) => Ok(None),
        (PlanKind::Rollback | PlanKind::Expiry, Some(rb)) => {
            let mut of = lifted(store, &doc.case, &rb.plan, trusted)?;
            if of.sha256 != rb.plan_sha256 {
                return Err(format!(
                    "plan {} rolls back plan {} with digest {}, but the stored plan's is {}",
                    doc.plan, rb.plan, rb.plan_sha256, of.sha256
                ));
            }
            for step in &doc.steps {
                let lifted = match &step.detail {
                    StepDetail::ReleaseIps {
                        plan,
                        plan_sha256,
                        step: lifted,
                        ..
                    } if step.kind == StepKind::ReleaseIps
                        && plan == &rb.plan
                        && *plan_sha256 == rb.plan_sha256 =>
                    {
                        of.doc.steps.iter().find(|s| s.number == *lifted)
                    }
                    _ => None,
                };
                let matches = lifted.is_some_and(|l| {
                    of.executed.contains(&l.number)
                        && l.target == step.target
                        && l.namespace == step.namespace
                });
                if !matches {
                    return Err(format!(
                        "plan {}: step {} does not lift an executed block step of plan {} on its own target",
                        doc.plan, step.number, rb.plan
                    ));
                }
            }
            if doc.kind == PlanKind::Expiry {
                of.expired_by = Some(crate::timefmt::parse(&doc.created_at).ok_or_else(|| {
                    format!("plan {}: its created_at is not an RFC 3339 time", doc.plan)
                })?);
                of.executed = doc
                    .steps
                    .iter()
                    .filter_map(|s| match &s.detail {
                        StepDetail::ReleaseIps { step, .. } => Some(*step),
                        _ => None,
                    })
                    .collect();
            }
            Ok(Some(of))
        }
        _ => Err(format!(
            "plan {}: its kind and the plan it rolls back do not agree",
            doc.plan
        )),
    }
}

/// The claims step `number` of `doc` makes once done.
fn claims_of(
    case: &CaseId,
    doc: &crate::plan::document::PlanDoc,
    number: u32,
    plan_sha256: Sha256Digest,
) -> Result<Vec<Claim>, String> {
    let Some(step) = doc.steps.iter().find(|s| s.number == number) else {
        return Err(format!("plan {} has no step {number}", doc.plan));
    };
    let StepDetail::BlockIps {
        addresses, method, ..
    } = &step.detail
    else {
        return Err(format!(
            "step {number} of plan {} is journaled as a block but is not one",
            doc.plan
        ));
    };
    let mut out = Vec::new();
    for text in addresses {
        let bad = |why: &str| format!("plan {}: blocked address {text:?}: {why}", doc.plan);
        let address: IpAddr = text.parse().map_err(|_| bad("not an address"))?;
        let entry = doc
            .addresses
            .block
            .iter()
            .find(|a| a.address == *text)
            .ok_or_else(|| bad("not among the plan's addresses"))?;
        let expires_at = crate::timefmt::parse(&entry.expires_at)
            .ok_or_else(|| bad("its expiry is not an RFC 3339 time"))?;
        out.push(Claim {
            case: case.clone(),
            plan: doc.plan.clone(),
            plan_sha256,
            step: number,
            namespace: step.namespace.clone(),
            target: step.target.clone(),
            address: normalise_ip(address),
            expires_at,
            method: method.clone(),
        });
    }
    Ok(out)
}

/// Per target name, the owners of its blocked addresses in `namespace_of(target)`: what a new
/// plan is planned with. Claims made in another namespace (a target that moved) are not its.
pub fn owners_by_target(
    claims: &[Claim],
    method: &str,
    namespace_of: impl Fn(&str) -> Option<String>,
) -> BTreeMap<String, Owners> {
    let mut out: BTreeMap<String, Owners> = BTreeMap::new();
    for c in claims {
        if c.method != method || namespace_of(&c.target).as_deref() != Some(c.namespace.as_str()) {
            continue;
        }
        out.entry(c.target.clone())
            .or_default()
            .entry(c.address)
            .or_default()
            .insert(c.owner());
    }
    out
}

/// The owners `policy`'s targets have in the store, for a plan of `kind`: `claims` grouped by
/// target, of the method the policy blocks with now — or, for a plan that lifts blocks (a
/// rollback, an expiry), of the NetworkPolicy method, the only one custody lifts, whatever the
/// policy says now (a block made before the method changed is still lifted by its own).
pub fn block_owners(
    store: &dyn Store,
    trusted: Option<&PublicKey>,
    policy: &crate::policy::containment::ContainmentPolicy,
    kind: crate::plan::document::PlanKind,
) -> Result<BTreeMap<String, Owners>, String> {
    let claims = claims(store, trusted)?;
    let method = match policy.block_ips.as_ref().map(|b| b.method) {
        Some(crate::policy::containment::BlockMethod::Cilium) if !kind.lifts() => "cilium",
        _ => "networkpolicy",
    };
    Ok(owners_by_target(&claims, method, |name| {
        policy
            .targets
            .iter()
            .find(|t| t.name.as_str() == name)
            .map(|t| t.namespace.to_string())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(case: &str, plan: &str, target: &str, ns: &str, addr: &str) -> Claim {
        Claim {
            case: CaseId::new(case).unwrap(),
            plan: PlanId::new(plan).unwrap(),
            plan_sha256: Sha256Digest::of(plan.as_bytes()),
            step: 1,
            namespace: ns.into(),
            target: target.into(),
            address: addr.parse().unwrap(),
            expires_at: OffsetDateTime::UNIX_EPOCH,
            method: "networkpolicy".into(),
        }
    }

    #[test]
    fn owners_are_grouped_by_target_and_keep_every_case() {
        let claims = [
            claim(
                "c-20261202-000000-aaaa",
                "p-20261202-000000-aaaa",
                "gateway",
                "edge",
                "203.0.113.9",
            ),
            claim(
                "c-20261202-000001-bbbb",
                "p-20261202-000001-bbbb",
                "gateway",
                "edge",
                "203.0.113.9",
            ),
            claim(
                "c-20261202-000001-bbbb",
                "p-20261202-000001-bbbb",
                "gateway",
                "moved",
                "198.51.100.7",
            ),
        ];
        assert!(owners_by_target(&claims, "cilium", |_| Some("edge".into())).is_empty());
        let owners = owners_by_target(&claims, "networkpolicy", |t| {
            (t == "gateway").then(|| "edge".into())
        });
        let gateway = &owners["gateway"];
        assert_eq!(
            gateway.len(),
            1,
            "the claim made in another namespace is not the target's"
        );
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(gateway[&ip].len(), 2, "both cases own the shared address");
    }
}
