//! The planner: from the sealed evidence's suspicious clients, the containment policy and one
//! `ClusterView`, the plan document — which addresses to block (and which are left out, and
//! why), then the steps in runbook order (block, rotate, invalidate), each with what it read,
//! its exact changes, its preconditions, its warnings and, where CONTAINMENT.md says a step
//! cannot be done safely, its refusals. A pure function: reading the cluster and the dry-runs
//! are its callers'.

mod addresses;
mod block;
mod pod_network;
mod rollback;
mod rotate;
mod sessions;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;
use time::OffsetDateTime;

use super::document::{
    Addresses, BlockedAddress, ClusterIdentity, DryRun, PinnedEvidence, PlanDoc, PlanKind,
    ProposerClaim, QuorumNeed, Step, StepStatus, PLAN_FORMAT,
};
use crate::analysis::Suspicious;
use crate::containment::cluster::{ClusterView, NamespaceView};
use crate::containment::netpol::{Labels, Owners};
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};
use crate::net::Cidr;
use crate::policy::containment::{ContainmentPolicy, StepKind, Target, Veto};
use crate::timefmt;

pub use addresses::{merge, Client};
use pod_network::PodNetworkState;
pub use rollback::{plan_rollback, RollbackInput, NOT_ROLLED_BACK};
pub use rotate::{scan, Found, NEW_SECRET_PLACEHOLDER};

/// Everything the planner needs.
#[derive(Clone, Debug)]
pub struct PlannerInput<'a> {
    pub case: &'a CaseId,
    pub plan: &'a PlanId,
    pub policy: &'a ContainmentPolicy,
    /// The detection allowlist: never blocked either.
    pub detection_allowlist: &'a [Cidr],
    /// The trusted proxies of `formats.yaml`: clients behind them came from `X-Forwarded-For`.
    pub trusted_proxies: &'a [Cidr],
    /// Each sealed bundle's id and its summary's suspicious clients.
    pub suspicious: &'a [(String, Vec<Suspicious>)],
    pub evidence: PinnedEvidence,
    pub view: &'a ClusterView,
    /// Per target, the owners the journal records for its custody block policy.
    pub block_owners: &'a BTreeMap<String, Owners>,
    pub proposer: ProposerClaim,
    pub roster_sha256: Sha256Digest,
    pub now: OffsetDateTime,
}

/// What the steps share.
struct Ctx<'a> {
    case: &'a CaseId,
    plan: &'a PlanId,
    view: &'a ClusterView,
    ns: &'a NamespaceView,
    target: &'a Target,
    addresses: &'a [(IpAddr, BlockedAddress)],
    block_owners: Option<&'a Owners>,
    trusted_proxies: &'a [Cidr],
    /// What is known of the pod network (`pod_network::PodNetworkState`), when the policy blocks.
    pod_network: Option<&'a PodNetworkState>,
    now: OffsetDateTime,
}

/// Builds the plan. Dry-run outcomes are `not_run` until the caller runs them.
pub fn plan(input: &PlannerInput<'_>) -> PlanDoc {
    let policy = input.policy;
    let clients = merge(input.suspicious);
    let forwarded = !input.trusted_proxies.is_empty();
    let pod_network = policy
        .block_ips
        .as_ref()
        .map(|b| PodNetworkState::of(b, input.view));
    let (blocked, left_out) = match (&policy.block_ips, &pod_network) {
        (Some(block), Some(pod_network)) => {
            let protected = addresses::Protected::new(
                block,
                input.detection_allowlist,
                input.trusted_proxies,
                input.view,
                pod_network,
            );
            addresses::select(&clients, block, &protected, forwarded, input.now)
        }
        _ => (Vec::new(), Vec::new()),
    };
    let empty = NamespaceView::default();
    let shared = Shared {
        blocked: &blocked,
        empty: &empty,
        pod_network: pod_network.as_ref(),
    };
    let mut steps: Vec<Step> = Vec::new();
    if let Some(block) = &policy.block_ips {
        for target in &policy.targets {
            if let Some(ctx) = ctx_of(input, &target.name, &shared) {
                steps.push(block::step(&ctx, 0, block.method));
            }
        }
    }
    for rotation in &policy.rotate_secrets {
        if let Some(ctx) = ctx_of(input, &rotation.target, &shared) {
            steps.push(rotate::step(&ctx, 0, rotation));
        }
    }
    for call in &policy.invalidate_sessions {
        if let Some(ctx) = ctx_of(input, &call.target, &shared) {
            steps.push(sessions::step(&ctx, 0, call));
        }
    }
    for (i, step) in steps.iter_mut().enumerate() {
        step.number = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
    refuse_shared_writes(&mut steps);
    let kinds: Vec<StepKind> = steps
        .iter()
        .filter(|s| s.status == StepStatus::Planned)
        .map(|s| s.kind)
        .collect();
    let by_kind = [
        StepKind::BlockIps,
        StepKind::RotateSecrets,
        StepKind::InvalidateSessions,
    ]
    .into_iter()
    .map(|k| (k, policy.quorum.for_kind(k)))
    .collect();
    let frame = Frame {
        case: input.case,
        plan: input.plan,
        policy,
        evidence: input.evidence.clone(),
        view: input.view,
        proposer: input.proposer.clone(),
        roster_sha256: input.roster_sha256,
        now: input.now,
    };
    let addresses = Addresses {
        block: blocked.into_iter().map(|(_, a)| a).collect(),
        left_out,
    };
    document(
        frame,
        (policy.quorum.required_for(&kinds), by_kind),
        addresses,
        steps,
        None,
    )
}

/// What every plan document holds whatever its kind.
pub(super) struct Frame<'a> {
    pub case: &'a CaseId,
    pub plan: &'a PlanId,
    pub policy: &'a ContainmentPolicy,
    pub evidence: PinnedEvidence,
    pub view: &'a ClusterView,
    pub proposer: ProposerClaim,
    pub roster_sha256: Sha256Digest,
    pub now: OffsetDateTime,
}

/// The plan document: a containment plan, or with `rolls_back` the rollback of that plan. Its
/// quorum is `(required, by_kind)`; it may start until the policy's `plan.not_after` from now.
pub(super) fn document(
    frame: Frame<'_>,
    (required, by_kind): (u32, BTreeMap<StepKind, u32>),
    addresses: Addresses,
    steps: Vec<Step>,
    rolls_back: Option<(PlanKind, super::document::RolledBack)>,
) -> PlanDoc {
    let policy = frame.policy;
    let not_after = frame.now
        + time::Duration::seconds(i64::try_from(policy.plan.not_after.as_secs()).unwrap_or(7200));
    PlanDoc {
        format: PLAN_FORMAT.to_owned(),
        case: frame.case.clone(),
        plan: frame.plan.clone(),
        kind: rolls_back
            .as_ref()
            .map_or(PlanKind::Containment, |(kind, _)| *kind),
        evidence: frame.evidence,
        cluster: ClusterIdentity {
            kube_system_uid: frame.view.kube_system_uid.clone(),
            server: frame.view.server.clone(),
        },
        proposer: frame.proposer,
        created_at: timefmt::rfc3339(frame.now),
        not_after: timefmt::rfc3339(not_after),
        quorum: QuorumNeed {
            required,
            by_kind,
            veto: match policy.plan.veto {
                Veto::AnyReject => "any_reject".to_owned(),
            },
        },
        policy_sha256: policy.digest,
        roster_sha256: frame.roster_sha256,
        addresses,
        steps,
        rolls_back: rolls_back.map(|(_, rb)| rb),
    }
}

/// What every step's context shares, worked out once per plan.
struct Shared<'a> {
    blocked: &'a [(IpAddr, BlockedAddress)],
    empty: &'a NamespaceView,
    pod_network: Option<&'a PodNetworkState>,
}

fn ctx_of<'a>(
    input: &'a PlannerInput<'a>,
    target: &crate::policy::containment::DnsLabel,
    shared: &Shared<'a>,
) -> Option<Ctx<'a>> {
    let target = input.policy.target(target)?;
    Some(Ctx {
        case: input.case,
        plan: input.plan,
        view: input.view,
        ns: input
            .view
            .namespaces
            .get(target.namespace.as_str())
            .unwrap_or(shared.empty),
        target,
        addresses: shared.blocked,
        block_owners: input.block_owners.get(target.name.as_str()),
        trusted_proxies: input.trusted_proxies,
        pod_network: shared.pod_network,
        now: input.now,
    })
}

/// Refuses a step that writes an object an earlier step writes too (two targets in one
/// namespace whose pods one policy selects): both writes would be guarded by the same
/// `resourceVersion`, so the second would fail at execution after the first had applied.
fn refuse_shared_writes(steps: &mut [Step]) {
    use super::document::ChangeOp;
    let mut written: BTreeMap<(Option<String>, String, String), u32> = BTreeMap::new();
    for step in steps.iter_mut() {
        let writes: Vec<(Option<String>, String, String)> = step
            .changes
            .iter()
            .filter(|c| c.op != ChangeOp::Call)
            .map(|c| {
                (
                    c.object.namespace.clone(),
                    c.object.kind.clone(),
                    c.object.name.clone(),
                )
            })
            .collect();
        let clashes: Vec<String> = writes
            .iter()
            .filter_map(|w| {
                written.get(w).map(|n| {
                    format!("{} {} is also written by step {n}: give the targets policies of their own, or make them one target", w.1, w.2)
                })
            })
            .collect();
        if clashes.is_empty() {
            for w in writes {
                written.insert(w, step.number);
            }
        } else {
            step.refusals.extend(clashes);
            step.status = StepStatus::Refused;
            step.changes.clear();
        }
    }
}

/// A dry-run not run yet.
fn not_run() -> DryRun {
    DryRun::NotRun {
        why: "not run yet".to_owned(),
    }
}

fn labels_of(p: &Pod) -> Labels {
    p.metadata.labels.clone().unwrap_or_default()
}

/// A pod in phase Running, not being deleted.
fn is_running(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// The pod's `Ready` condition is `True`.
fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}
