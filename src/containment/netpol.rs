//! The NetworkPolicy method of the `block_ips` step: given what was read from one namespace, the
//! changes that refuse ingress from the offending addresses to a target's pods and change nothing
//! else — and, for expiry and rollback, the changes that lift a plan's block again.
//!
//! # The algorithm
//!
//! Kubernetes admits ingress to a pod that no policy selects for Ingress; once one does, the pod
//! is *isolated* and admits exactly the union of the ingress rules of every policy selecting it.
//! A block therefore cannot be one more policy beside others (it could only add to the union):
//! every rule that admits an offending address has to stop admitting it.
//!
//! 1. **Refusals first.** No target pod running (isolation cannot be decided), a hostNetwork
//!    target pod (NetworkPolicy does not apply to it), target pods of which some are isolated and
//!    others not (a policy for the non-isolated ones would need a selector of its own), a CIDR
//!    custody cannot read or that is written as IPv4-mapped IPv6, a custody block policy that
//!    was changed outside custody or that the journal names but the cluster lacks, another
//!    target's custody block policy selecting the target's pods (its addresses are that target's
//!    plans'): the step is refused with the reason and no change is proposed.
//! 2. **No policy isolates the target pods**: one custody block policy per target,
//!    `custody-block-<target>`, selecting the target's pods for Ingress with a single rule that
//!    admits `ipBlock 0.0.0.0/0 except X4`, `ipBlock ::/0 except X6` and
//!    `{namespaceSelector: {}, podSelector: {}}` (every pod of every namespace) on every port,
//!    where X4 and X6 are the offending addresses as `/32` and `/128`. Before it, every source was
//!    admitted; after it, every source but the offenders is.
//! 3. **Policies isolate the target pods**: each policy that selects a target pod for Ingress is
//!    rewritten, rule by rule, keeping every rule's ports:
//!    - a rule without `from`, or with `from: []`, admits every source: it becomes the three
//!      peers above (both `ipBlock`s stay even when a family has no offender: they then have no
//!      `except`);
//!    - an `ipBlock` whose `cidr` contains an offending address gains that address as an `except`
//!      entry (canonical text, merged with the existing entries and deduplicated; an address
//!      already inside an existing `except` needs nothing). A host entry is always a strict
//!      subset of a larger `cidr`, as the API server requires;
//!    - an `ipBlock` that admits nothing but offending addresses (its `cidr` minus its `except`
//!      lies within the offending set) is removed, and a rule left without peers is removed —
//!      never left as `from: []`, which would admit everyone;
//!    - pod and namespace selectors are left alone: they do not match the address of a client
//!      outside the cluster.
//!
//!    A policy that selects pods outside the target blocks them as well: the plan names those
//!    pods in a warning. An existing custody block policy is extended instead of rewritten: its
//!    `except` lists become every address its owners hold plus the new ones.
//! 4. **Owners.** Each address in the custody block policy records the cases and plans that own
//!    it and when each claim expires. A second case blocking an address already blocked adds an
//!    owner, not a second entry. The owners map is what the plan journals; the
//!    `custody.io/owners` annotation only mirrors it for people reading the object.
//! 5. **What was read.** Every policy's `resourceVersion`, and the names of the policies
//!    selecting any target pod: execution refuses a plan when either changed.
//!
//! Removing a plan's block (`remove_owners`) drops its claims; an address another owner still
//! holds stays, and the custody block policy is deleted when no owner is left.
//!
//! `eval::admits` evaluates a set of policies as the API reference defines it, and
//! `eval::check_no_widening` checks at sample points that a proposed change refuses the offenders and changes nothing
//! else for sample sources, pods and ports: the planner runs it on its own output.

mod block;
pub mod eval;
mod offenders;
mod release;
mod rewrite;
pub mod selector;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;

pub use block::{
    block_policy_name, remove_owners, Removal, BLOCK_POLICY_PREFIX, OWNERS_ANNOTATION,
};
pub use offenders::{Offenders, Owner, Owners};
pub use release::{plan_release, Release, ReleaseInput, Rewritten};
pub use selector::Labels;

/// `policy` with `addresses` excepted wherever one of its rules would admit them (the rewrite
/// a block makes of an operator policy), or `None` when nothing needs to change or it cannot
/// be rewritten.
pub fn excepting(
    policy: &NetworkPolicy,
    addresses: impl IntoIterator<Item = std::net::IpAddr>,
) -> Option<NetworkPolicy> {
    rewrite::rewrite_policy(policy, &Offenders::bare(addresses))
        .ok()
        .flatten()
}

/// A target of the containment policy: the pods of one namespace that its selector picks.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub namespace: String,
    /// The target's name in `containment.yaml`; names the custody block policy.
    pub name: String,
    pub pod_selector: LabelSelector,
}

/// A pod as the planner read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub name: String,
    pub labels: Labels,
    pub host_network: bool,
}

/// Everything the algorithm needs, all read from the target's namespace beforehand.
#[derive(Clone, Copy, Debug)]
pub struct BlockInput<'a> {
    pub target: &'a Target,
    /// The pods the target's selector picks.
    pub target_pods: &'a [PodInfo],
    /// The namespace's other pods, to name those a changed policy also blocks.
    pub other_pods: &'a [PodInfo],
    /// Every NetworkPolicy of the namespace, as read (with `resourceVersion`).
    pub policies: &'a [NetworkPolicy],
    /// The addresses to block, already filtered by the planner.
    pub offenders: &'a Offenders,
    /// The owners the journal records for this target's custody block policy (empty if none).
    pub block_owners: &'a Owners,
}

/// One write to the cluster, with the whole new object.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// A new policy (the custody block policy, the first time).
    Create { policy: NetworkPolicy },
    /// A PUT of the whole policy, guarded by the `resourceVersion` that was read (also set in
    /// the object's metadata); a 409 means the plan is stale.
    Replace {
        policy: NetworkPolicy,
        resource_version: String,
    },
    /// The custody block policy once no owner is left, guarded by its `resourceVersion`.
    Delete {
        name: String,
        resource_version: String,
    },
}

impl Change {
    /// The name of the policy the change writes.
    pub fn name(&self) -> &str {
        match self {
            Change::Create { policy } | Change::Replace { policy, .. } => {
                policy.metadata.name.as_deref().unwrap_or_default()
            }
            Change::Delete { name, .. } => name,
        }
    }
}

/// Why the step cannot be planned with this method; the plan shows it and proposes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    #[error("no pod of the target is running, so whether it is isolated cannot be decided")]
    NoTargetPods,
    #[error("target pods {pods:?} use the host network, where NetworkPolicy does not apply")]
    HostNetwork { pods: Vec<String> },
    #[error("target pods {isolated:?} are isolated for ingress but {not_isolated:?} are not: a block for the others would need its own selector")]
    MixedIsolation {
        isolated: Vec<String>,
        not_isolated: Vec<String>,
    },
    #[error("NetworkPolicy {policy}: {text:?} is not a CIDR custody can read")]
    UnreadableCidr { policy: String, text: String },
    #[error(
        "NetworkPolicy {policy}: {text:?} is written as IPv4-mapped IPv6; rewrite it as IPv4 first"
    )]
    MappedCidr { policy: String, text: String },
    #[error("NetworkPolicy {policy} has no resourceVersion, so a replace cannot be guarded")]
    NoResourceVersion { policy: String },
    #[error("the custody block policy {policy} was changed outside custody ({what}); restore or delete it")]
    BlockPolicyChanged { policy: String, what: String },
    #[error("the journal records owners of {policy} but the cluster has no such policy (deleted outside custody)")]
    BlockPolicyMissing { policy: String },
    #[error("NetworkPolicy {policy}: {what}")]
    RewrittenPolicyChanged { policy: String, what: String },
    #[error("target name {name:?} cannot name a policy: use lowercase letters, digits and '-'")]
    TargetName { name: String },
    #[error("the custody block policy {policy} of another target selects target pods {pods:?}: its addresses are owned by that target's plans, so custody does not write it for this one; give the targets pod selectors that do not overlap (or, for a target no longer configured, roll back its plans)")]
    OtherTargetsBlockPolicy { policy: String, pods: Vec<String> },
}

/// What the approver must know about a change that is proposed anyway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Warning {
    #[error("NetworkPolicy {policy} also selects {pods:?}, outside the target: the block applies to them too")]
    AlsoBlocks { policy: String, pods: Vec<String> },
    #[error("the custody block policy {policy} refuses {entries:?}, which no owner in the journal holds: kept")]
    UnownedExcepts {
        policy: String,
        entries: Vec<String>,
    },
    #[error("the custody block policy {policy} lacks {addresses:?}, which the journal says are blocked: added again")]
    OwnedAddressesMissing {
        policy: String,
        addresses: Vec<String>,
    },
}

/// What the plan read, and execution will check again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Preconditions {
    /// Every policy of the namespace: name → `resourceVersion`.
    pub resource_versions: BTreeMap<String, String>,
    /// The policies whose `podSelector` selects any target pod (whatever their types): a policy
    /// added to or gone from this set makes the plan stale.
    pub selecting: BTreeSet<String>,
}

/// The outcome: the ordered changes, or the refusals; warnings either way.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BlockPlan {
    pub changes: Vec<Change>,
    pub refusals: Vec<Refusal>,
    pub warnings: Vec<Warning>,
    pub read: Preconditions,
    /// The custody block policy's owners once the changes apply: what the plan journals.
    pub owners: Owners,
    /// Whether the operator's NetworkPolicies alone decide ingress to the target pods: see
    /// [`operator_decides`].
    pub operator_decides: bool,
}

/// Plans the block of `input.offenders` for `input.target`.
pub fn plan_block(input: &BlockInput<'_>) -> BlockPlan {
    let mut plan = BlockPlan {
        read: preconditions(input),
        owners: input.block_owners.clone(),
        ..Default::default()
    };
    let name = match block_policy_name(&input.target.name) {
        Ok(name) => name,
        Err(refusal) => {
            plan.refusals.push(refusal);
            return plan;
        }
    };
    let existing = input
        .policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(name.as_str()));
    plan.operator_decides = operator_decides(input);
    plan.refusals = refusals(input, &name, existing);
    if !plan.refusals.is_empty() || input.offenders.is_empty() {
        return plan;
    }
    let isolated = input
        .target_pods
        .iter()
        .any(|pod| is_isolated(input.policies, &pod.labels));
    let outcome = if isolated {
        rewrite_all(input, &name, existing)
    } else {
        Ok(block::create(input, &name))
    };
    match outcome {
        Ok(done) => {
            plan.changes = done.changes;
            plan.warnings = done.warnings;
            if let Some(owners) = done.owners {
                plan.owners = owners;
            }
        }
        Err(refusal) => plan.refusals.push(refusal),
    }
    plan
}

/// Changes planned by one branch of the algorithm.
#[derive(Debug, Default)]
struct Planned {
    changes: Vec<Change>,
    warnings: Vec<Warning>,
    /// The custody block policy's new owners, when it is written.
    owners: Option<Owners>,
}

/// Whether every target pod is isolated for ingress by a policy that is not a custody block
/// policy, and no custody block policy selects one for ingress. Only then is no ingress to them
/// left to baseline policies (BaselineAdminNetworkPolicies, Baseline-tier
/// ClusterNetworkPolicies), nor admitted past what they deny by a custody block policy, which
/// admits every source but the blocked ones.
fn operator_decides(input: &BlockInput<'_>) -> bool {
    let custodys = |p: &NetworkPolicy| {
        p.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with(BLOCK_POLICY_PREFIX))
    };
    let decided = |pod: &PodInfo| {
        let mut isolating = input
            .policies
            .iter()
            .filter(|p| selector::isolates_for_ingress(p, &pod.labels))
            .peekable();
        isolating.peek().is_some() && isolating.all(|p| !custodys(p))
    };
    !input.target_pods.is_empty() && input.target_pods.iter().all(decided)
}

fn is_isolated(policies: &[NetworkPolicy], labels: &Labels) -> bool {
    policies
        .iter()
        .any(|p| selector::isolates_for_ingress(p, labels))
}

fn preconditions(input: &BlockInput<'_>) -> Preconditions {
    let mut read = Preconditions::default();
    for policy in input.policies {
        let name = policy.metadata.name.clone().unwrap_or_default();
        let rv = policy.metadata.resource_version.clone().unwrap_or_default();
        if input
            .target_pods
            .iter()
            .any(|pod| selector::policy_selects_pod(policy, &pod.labels))
        {
            read.selecting.insert(name.clone());
        }
        read.resource_versions.insert(name, rv);
    }
    read
}

fn refusals(input: &BlockInput<'_>, name: &str, existing: Option<&NetworkPolicy>) -> Vec<Refusal> {
    let mut out = Vec::new();
    if input.target_pods.is_empty() {
        out.push(Refusal::NoTargetPods);
    }
    let host: Vec<String> = input
        .target_pods
        .iter()
        .filter(|p| p.host_network)
        .map(|p| p.name.clone())
        .collect();
    if !host.is_empty() {
        out.push(Refusal::HostNetwork { pods: host });
    }
    let (isolated, not_isolated): (Vec<&PodInfo>, Vec<&PodInfo>) = input
        .target_pods
        .iter()
        .partition(|pod| is_isolated(input.policies, &pod.labels));
    if !isolated.is_empty() && !not_isolated.is_empty() {
        let names = |pods: Vec<&PodInfo>| pods.iter().map(|p| p.name.clone()).collect();
        out.push(Refusal::MixedIsolation {
            isolated: names(isolated),
            not_isolated: names(not_isolated),
        });
    }
    for policy in input.policies {
        let other = policy
            .metadata
            .name
            .as_deref()
            .filter(|n| n.starts_with(BLOCK_POLICY_PREFIX) && *n != name);
        let Some(other) = other else { continue };
        let pods: Vec<String> = input
            .target_pods
            .iter()
            .filter(|pod| selector::isolates_for_ingress(policy, &pod.labels))
            .map(|pod| pod.name.clone())
            .collect();
        if !pods.is_empty() {
            out.push(Refusal::OtherTargetsBlockPolicy {
                policy: other.to_owned(),
                pods,
            });
        }
    }
    match existing {
        Some(policy) => out.extend(block::check_shape(input.target, name, policy).err()),
        None if !input.block_owners.is_empty() => out.push(Refusal::BlockPolicyMissing {
            policy: name.to_owned(),
        }),
        None => {}
    }
    out
}

/// Rewrites every policy that selects a target pod for Ingress, in name order.
fn rewrite_all(
    input: &BlockInput<'_>,
    block_name: &str,
    existing: Option<&NetworkPolicy>,
) -> Result<Planned, Refusal> {
    let mut planned = Planned::default();
    let mut selecting: Vec<&NetworkPolicy> = input
        .policies
        .iter()
        .filter(|p| {
            input
                .target_pods
                .iter()
                .any(|pod| selector::isolates_for_ingress(p, &pod.labels))
        })
        .collect();
    selecting.sort_by_key(|p| p.metadata.name.clone());
    for policy in selecting {
        let name = policy.metadata.name.clone().unwrap_or_default();
        if name == block_name {
            if let Some(existing) = existing {
                block::extend(input, existing, &mut planned)?;
            }
            continue;
        }
        let Some(new) = rewrite::rewrite_policy(policy, input.offenders)? else {
            continue;
        };
        let also: Vec<String> = input
            .other_pods
            .iter()
            .filter(|pod| selector::isolates_for_ingress(policy, &pod.labels))
            .map(|pod| pod.name.clone())
            .collect();
        if !also.is_empty() {
            planned.warnings.push(Warning::AlsoBlocks {
                policy: name,
                pods: also,
            });
        }
        planned.changes.push(for_replace(new)?);
    }
    Ok(planned)
}

/// The `Replace` of `policy`: guarded by the `resourceVersion` it was read with, without the
/// server-owned fields a PUT must not carry back.
fn for_replace(mut policy: NetworkPolicy) -> Result<Change, Refusal> {
    let resource_version = policy
        .metadata
        .resource_version
        .clone()
        .filter(|rv| !rv.is_empty())
        .ok_or_else(|| Refusal::NoResourceVersion {
            policy: policy.metadata.name.clone().unwrap_or_default(),
        })?;
    policy.metadata.managed_fields = None;
    Ok(Change::Replace {
        policy,
        resource_version,
    })
}
