//! A rollback plan (`custody plan rollback`): for each block step of an executed plan, a
//! `release_ips` step that lifts exactly what that plan owns on the cluster as it is now
//! (`containment::netpol::plan_release`), proven to reopen only the released addresses. Secrets
//! and sessions are not rolled back: the old key is compromised.
//!
//! An expiry plan (`custody plan expire`, the daemon) is made the same way with a cut-off: each
//! release lifts only the plan's claims whose expiry, by the plan, is at or before it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use time::OffsetDateTime;

use super::super::document::{
    Addresses, PinnedEvidence, PlanDoc, PlanKind, Preconditions, ProposerClaim, RolledBack, Step,
    StepDetail, StepStatus,
};
use super::block::{manager_warning, object_ref, owners_json, prove, to_object_change};
use super::{is_running, labels_of};
use crate::containment::cluster::ClusterView;
use crate::containment::netpol::{self, plan_release, Offenders, Owners, ReleaseInput, Rewritten};
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};
use crate::policy::containment::{ContainmentPolicy, StepKind};

/// Said on every rollback step: what a rollback never undoes.
pub const NOT_ROLLED_BACK: &str = "Secrets and sessions are not rolled back: the old key is compromised, and the sessions were invalidated because they may be an attacker's";

/// Everything a rollback plan is made from.
pub struct RollbackInput<'a> {
    pub case: &'a CaseId,
    pub plan: &'a PlanId,
    pub policy: &'a ContainmentPolicy,
    pub evidence: PinnedEvidence,
    pub view: &'a ClusterView,
    /// The executed plan lifted, with its digest.
    pub of: &'a PlanDoc,
    pub of_sha256: Sha256Digest,
    /// Its block steps that were done (`step_done`).
    pub executed: &'a BTreeSet<u32>,
    /// Per target, the owners of its blocked addresses across the store's cases.
    pub block_owners: &'a BTreeMap<String, Owners>,
    pub proposer: ProposerClaim,
    pub roster_sha256: Sha256Digest,
    pub now: OffsetDateTime,
    /// For an expiry plan: the cut-off (its `created_at`). Only claims expiring at or before
    /// it are lifted. `None`: a rollback, which lifts every claim of the plan.
    pub expired_by: Option<OffsetDateTime>,
}

impl RollbackInput<'_> {
    /// Whether `owner` is one of the claims this plan lifts.
    fn drops(&self, owner: &netpol::Owner) -> bool {
        owner.case == self.of.case
            && owner.plan == self.of.plan
            && self.expired_by.is_none_or(|cut| owner.expires_at <= cut)
    }
}

/// The rollback plan (or with `expired_by` the expiry plan). Dry-run outcomes are `not_run` until the caller runs them.
pub fn plan_rollback(input: &RollbackInput<'_>) -> PlanDoc {
    let policy = input.policy;
    let mut steps = Vec::new();
    for step in &input.of.steps {
        if step.kind == StepKind::BlockIps && input.executed.contains(&step.number) {
            steps.push(release_step(input, step));
        }
    }
    for (i, step) in steps.iter_mut().enumerate() {
        step.number = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
    // An expiry is pre-approved by the plan that set it: it has no quorum of its own.
    let need = match input.expired_by {
        Some(_) => 0,
        None => policy.quorum.for_kind(StepKind::ReleaseIps),
    };
    let kind = match input.expired_by {
        Some(_) => PlanKind::Expiry,
        None => PlanKind::Rollback,
    };
    let frame = super::Frame {
        case: input.case,
        plan: input.plan,
        policy,
        evidence: input.evidence.clone(),
        view: input.view,
        proposer: input.proposer.clone(),
        roster_sha256: input.roster_sha256,
        now: input.now,
    };
    super::document(
        frame,
        (need, [(StepKind::ReleaseIps, need)].into()),
        Addresses::default(),
        steps,
        Some((
            kind,
            RolledBack {
                plan: input.of.plan.clone(),
                plan_sha256: input.of_sha256,
            },
        )),
    )
}

/// A released address, held by no other owner, that the target's pods still refuse once
/// `changes` apply because a NetworkPolicy excepts it as a host entry (admitted were that entry
/// gone): the journal would call it released while it stays refused with no claim left to lift
/// it (an entry of another custody block already lifted, or the operator's). With that policy.
/// With no target pod running, a pod made up from the target's selector stands in.
fn still_refused(
    ns: &crate::containment::cluster::NamespaceView,
    target: &crate::policy::containment::Target,
    changes: &[netpol::Change],
    (released, held): (&[std::net::IpAddr], &BTreeSet<std::net::IpAddr>),
) -> Option<(std::net::IpAddr, String)> {
    use crate::containment::netpol::eval;
    let mut after: Vec<NetworkPolicy> = ns.network_policies.clone();
    for change in changes {
        after.retain(|p| p.metadata.name.as_deref() != Some(change.name()));
        match change {
            netpol::Change::Create { policy } | netpol::Change::Replace { policy, .. } => {
                after.push(policy.clone());
            }
            netpol::Change::Delete { .. } => {}
        }
    }
    let mut pods: Vec<eval::EvalPod> = super::block::eval_pods(ns, target)
        .into_iter()
        .filter(|p| p.target)
        .collect();
    if pods.is_empty() {
        if let Some(labels) = target.pod_selector.representative() {
            pods.push(eval::EvalPod {
                namespace: target.namespace.to_string(),
                name: "custody-representative".to_owned(),
                labels,
                ports: Vec::new(),
                target: true,
            });
        }
    }
    let samples = eval::Samples::around(&after, &Offenders::bare(released.iter().copied()), &[]);
    for x in released.iter().filter(|a| !held.contains(a)) {
        let host = crate::net::Cidr::host(*x);
        let mut without = after.clone();
        let mut holder = None;
        for p in &mut without {
            let name = p.metadata.name.clone().unwrap_or_default();
            let rules = p.spec.as_mut().and_then(|s| s.ingress.as_mut());
            for rule in rules.into_iter().flatten() {
                for peer in rule.from.iter_mut().flatten() {
                    if let Some(except) = peer.ip_block.as_mut().and_then(|b| b.except.as_mut()) {
                        let n = except.len();
                        except.retain(|e| crate::net::Cidr::parse(e) != Some(host));
                        if except.len() != n {
                            holder.get_or_insert_with(|| name.clone());
                        }
                    }
                }
            }
        }
        let Some(holder) = holder else { continue };
        for pod in &pods {
            let mut traffic: BTreeSet<eval::Traffic> = samples.traffic.iter().cloned().collect();
            traffic.extend(pod.ports.iter().map(|p| eval::Traffic {
                protocol: p.protocol.clone(),
                port: p.port,
            }));
            let source = eval::Source::Ip { addr: *x };
            let by_entry = traffic.iter().any(|t| {
                !eval::admits(&after, pod, &source, t) && eval::admits(&without, pod, &source, t)
            });
            if by_entry {
                return Some((*x, format!("NetworkPolicy {holder}")));
            }
        }
    }
    None
}

/// Whether some pod's labels satisfy both `target` and `policy`'s pod selector: the target's
/// representative labels, with the policy's `matchLabels` and a value for each `In` or
/// `Exists` of a key the target leaves free, must satisfy both.
fn could_select_both(
    target: &crate::policy::containment::PodSelector,
    policy: &NetworkPolicy,
) -> bool {
    let Some(mut labels) = target.representative() else {
        return false;
    };
    let selector = policy.spec.as_ref().and_then(|s| s.pod_selector.as_ref());
    for (k, v) in selector
        .and_then(|s| s.match_labels.as_ref())
        .into_iter()
        .flatten()
    {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for r in selector
        .and_then(|s| s.match_expressions.as_ref())
        .into_iter()
        .flatten()
    {
        let value = match r.operator.as_str() {
            "In" => r.values.as_ref().and_then(|v| v.first()).cloned(),
            "Exists" => Some("custody-representative".to_owned()),
            _ => None,
        };
        if let Some(value) = value {
            labels.entry(r.key.clone()).or_insert(value);
        }
    }
    target.matches(&labels) && netpol::selector::policy_selects_pod(policy, &labels)
}

/// The release of `block`, one executed block step of the lifted plan.
fn release_step(input: &RollbackInput<'_>, block: &Step) -> Step {
    let method = match &block.detail {
        StepDetail::BlockIps { method, .. } => method.clone(),
        _ => String::new(),
    };
    let mut step = Step {
        number: 0,
        kind: StepKind::ReleaseIps,
        target: block.target.clone(),
        namespace: block.namespace.clone(),
        status: StepStatus::Planned,
        refusals: Vec::new(),
        warnings: vec![NOT_ROLLED_BACK.to_owned()],
        read: Vec::new(),
        changes: Vec::new(),
        preconditions: Preconditions::default(),
        detail: StepDetail::ReleaseIps {
            method: method.clone(),
            plan: input.of.plan.clone(),
            plan_sha256: input.of_sha256,
            step: block.number,
            released: Vec::new(),
            kept: Vec::new(),
            owners: BTreeMap::new(),
        },
    };
    let refused = |mut step: Step, why: String| {
        step.refusals.push(why);
        step.status = StepStatus::Refused;
        step.changes.clear();
        step
    };
    if method != "networkpolicy" {
        return refused(step, format!("the block was made with the {method} method, which custody does not roll back: delete the CiliumNetworkPolicy custody-block-{} by hand once no other case's block of the target is in force", block.target));
    }
    let Some(target) = input
        .policy
        .targets
        .iter()
        .find(|t| t.name.as_str() == block.target && t.namespace.as_str() == block.namespace)
    else {
        return refused(
            step,
            format!(
                "target {} of namespace {} is no longer in containment.yaml: custody cannot tell which pods the block selects",
                block.target, block.namespace
            ),
        );
    };
    let empty = Default::default();
    let ns = input
        .view
        .namespaces
        .get(block.namespace.as_str())
        .unwrap_or(&empty);
    let owners = input
        .block_owners
        .get(&block.target)
        .cloned()
        .unwrap_or_default();
    let prefix = netpol::BLOCK_POLICY_PREFIX;
    let mut rewritten = Vec::new();
    for change in &block.changes {
        if change.op != super::super::document::ChangeOp::Replace
            || change.object.name.starts_with(prefix)
        {
            continue;
        }
        let parse = |v: &Option<serde_json::Value>| {
            v.clone()
                .and_then(|v| serde_json::from_value::<NetworkPolicy>(v).ok())
        };
        match (parse(&change.before), parse(&change.after)) {
            (Some(before), Some(after)) => rewritten.push(Rewritten { before, after }),
            _ => {
                return refused(
                    step,
                    format!(
                        "the plan's change of NetworkPolicy {} does not hold the policy before and after it",
                        change.object.name
                    ),
                )
            }
        }
    }
    let k8s_target = netpol::Target {
        namespace: target.namespace.to_string(),
        name: target.name.to_string(),
        pod_selector: target.pod_selector.to_k8s(),
    };
    let plan = &input.of.plan;
    // Another target's owners keep an address refused in a policy the block rewrote only where
    // that policy isolates that target's pods too: kept anywhere else, no release would ever
    // lift it.
    let shares = |other: &str| {
        input
            .policy
            .targets
            .iter()
            .filter(|t| t.name.as_str() == other && t.namespace.as_str() == block.namespace)
            .any(|t| {
                // A pod both the target and the policy could select (so scaled to zero, or
                // between pods, it still counts), or one of its running pods.
                rewritten
                    .iter()
                    .any(|r| could_select_both(&t.pod_selector, &r.after))
                    || ns
                        .pods
                        .iter()
                        .filter(|pod| is_running(pod))
                        .filter(|pod| t.pod_selector.matches(&labels_of(pod)))
                        .any(|pod| {
                            rewritten.iter().any(|r| {
                                netpol::selector::policy_selects_pod(&r.after, &labels_of(pod))
                            })
                        })
            })
    };
    let held_elsewhere: BTreeSet<std::net::IpAddr> = input
        .block_owners
        .iter()
        .filter(|(t, _)| **t != block.target && shares(t))
        .flat_map(|(_, owners)| owners.iter())
        .filter(|(_, o)| o.iter().any(|o| !input.drops(o)))
        .map(|(a, _)| *a)
        .collect();
    let release_input = ReleaseInput {
        target: &k8s_target,
        policies: &ns.network_policies,
        owners: &owners,
        rewritten: &rewritten,
        held_elsewhere: &held_elsewhere,
    };
    let release = match plan_release(&release_input, |o| input.drops(o)) {
        Ok(r) => r,
        Err(refusal) => return refused(step, refusal.to_string()),
    };
    step.preconditions.network_policies = ns
        .network_policies
        .iter()
        .map(|p| {
            (
                p.metadata.name.clone().unwrap_or_default(),
                p.metadata.resource_version.clone().unwrap_or_default(),
            )
        })
        .collect();
    step.preconditions.selecting = ns
        .network_policies
        .iter()
        .filter(|p| {
            ns.pods
                .iter()
                .filter(|pod| is_running(pod))
                .filter(|pod| target.pod_selector.matches(&labels_of(pod)))
                .any(|pod| netpol::selector::policy_selects_pod(p, &labels_of(pod)))
        })
        .filter_map(|p| p.metadata.name.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    step.read = ns
        .network_policies
        .iter()
        .map(|p| object_ref("networking.k8s.io/v1", "NetworkPolicy", &p.metadata))
        .collect();
    step.warnings.extend(release.warnings.iter().cloned());
    if let StepDetail::ReleaseIps {
        released,
        kept,
        owners,
        ..
    } = &mut step.detail
    {
        *released = release.released.iter().map(ToString::to_string).collect();
        *kept = release.kept.iter().map(ToString::to_string).collect();
        *owners = owners_json(&release.owners);
    }
    if release.released.is_empty() && release.kept.is_empty() {
        step.status = StepStatus::NothingToDo;
        step.warnings.push(match input.expired_by {
            Some(_) => format!("the journals hold no claim of plan {plan} on this target whose expiry passed: nothing expires here"),
            None => format!("the journals hold no claim of plan {plan} on this target: its block was lifted already (rolled back or expired)"),
        });
        return step;
    }
    // Every address an owner other than the lifted claims holds on this target, or any owner
    // (this plan too: its other steps lift those) on another target.
    let held: BTreeSet<std::net::IpAddr> = input
        .block_owners
        .iter()
        .flat_map(|(t, owners)| owners.iter().map(move |o| (t, o)))
        .filter(|(t, (_, o))| **t != block.target || o.iter().any(|o| !input.drops(o)))
        .map(|(_, (a, _))| *a)
        .collect();
    if let Some((address, policy)) =
        still_refused(ns, target, &release.changes, (&release.released, &held))
    {
        return refused(
            step,
            format!(
                "{address} would stay refused to the target's pods after the release ({policy} still refuses it), though no claim holds it any more: an entry of another custody block already lifted, or the operator's. Remove it by hand if it should go, then propose again"
            ),
        );
    }
    let released = Offenders::bare(release.released.iter().copied());
    if let Err(violations) = prove(ns, target, &release.changes, &released, true) {
        return refused(
            step,
            format!(
                "the computed change would not lift exactly the plan's block ({} differences, first: {}): custody does not propose it",
                violations.len(),
                serde_json::to_string(&violations[0]).unwrap_or_default()
            ),
        );
    }
    for change in &release.changes {
        step.warnings.extend(manager_warning(ns, change.name()));
        step.changes
            .push(to_object_change(ns, target.namespace.as_str(), change));
    }
    step
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, excepts: &[&str]) -> NetworkPolicy {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "resourceVersion": "3"},
            "spec": {"podSelector": {"matchLabels": {"app": "api-gateway"}},
                "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": excepts}}]}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_policy_selecting_a_label_the_target_does_not_name_can_still_select_its_pods() {
        let containment = ContainmentPolicy::parse(
            "containment.yaml",
            include_str!("../../../tests/data/policies/containment.yaml"),
        )
        .unwrap();
        let target = &containment.targets[0].pod_selector;
        let selecting = |labels: serde_json::Value| -> NetworkPolicy {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "q"},
                "spec": {"podSelector": {"matchLabels": labels}}
            }))
            .unwrap()
        };
        // Another label: a pod may carry both.
        assert!(could_select_both(
            target,
            &selecting(serde_json::json!({"tier": "web"}))
        ));
        // The target's own key with another value: no pod carries both.
        let mut other = target.representative().unwrap();
        for v in other.values_mut() {
            v.push_str("-other");
        }
        assert!(!could_select_both(
            target,
            &selecting(serde_json::to_value(other).unwrap())
        ));
    }

    #[test]
    fn a_released_address_the_target_still_refuses_is_named_and_one_admitted_again_is_not() {
        let containment = ContainmentPolicy::parse(
            "containment.yaml",
            include_str!("../../../tests/data/policies/containment.yaml"),
        )
        .unwrap();
        let target = &containment.targets[0];
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "gw-1", "labels": target.pod_selector.to_k8s().match_labels},
            "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8443}]}]},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        let ns = crate::containment::cluster::NamespaceView {
            pods: vec![pod],
            network_policies: vec![
                policy("gateway-ingress", &["203.0.113.10/32", "198.51.100.0/24"]),
                policy("custody-block-api-gateway", &["203.0.113.11/32"]),
            ],
            ..Default::default()
        };
        let ns = {
            let mut ns = ns;
            for p in &mut ns.network_policies {
                if let Some(spec) = p.spec.as_mut() {
                    spec.pod_selector = Some(target.pod_selector.to_k8s());
                }
            }
            ns
        };
        let x: std::net::IpAddr = "203.0.113.10".parse().unwrap();
        let y: std::net::IpAddr = "203.0.113.11".parse().unwrap();
        let none = BTreeSet::new();
        // The release deletes the custody block policy (y) but leaves gateway-ingress (x).
        let delete = netpol::Change::Delete {
            name: "custody-block-api-gateway".into(),
            resource_version: "3".into(),
        };
        let lone = std::slice::from_ref(&delete);
        assert_eq!(still_refused(&ns, target, lone, (&[y], &none)), None);
        let (named, by) = still_refused(&ns, target, lone, (&[x, y], &none)).unwrap();
        assert_eq!(named, x);
        assert!(by.contains("gateway-ingress"), "{by}");
        // Held by another owner, it may stay refused.
        assert_eq!(
            still_refused(&ns, target, lone, (&[x, y], &BTreeSet::from([x]))),
            None
        );
        // A replace that drops x's entry admits it again; an address inside an operator's range
        // is refused like its neighbours.
        let replace = netpol::Change::Replace {
            policy: {
                let mut p = policy("gateway-ingress", &["198.51.100.0/24"]);
                if let Some(spec) = p.spec.as_mut() {
                    spec.pod_selector = Some(target.pod_selector.to_k8s());
                }
                p
            },
            resource_version: "3".into(),
        };
        assert_eq!(
            still_refused(&ns, target, &[delete, replace], (&[x, y], &none)),
            None
        );
        let inside: std::net::IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(still_refused(&ns, target, &[], (&[inside], &none)), None);
    }
}
