//! Whether an approved plan may still run on the cluster as it is now (CONTAINMENT.md,
//! "Execution"): the plan is planned again, from the evidence it pins and the policy it pinned,
//! on a fresh read of the cluster, and each step's preconditions are compared with the stored
//! plan's (`plan::stale`). A different cluster, a policy other than the one pinned, or a step
//! planned then and not now (refused, or with nothing to do), or whose block would cover other
//! addresses now, is stale as well. Steps that were not planned (they will not run) are not
//! compared. Nothing here writes to the cluster; quorum and the evidence's verification are the
//! caller's (`plan::state`, `propose::evidence`). On a resumed execution the caller compares only
//! the steps not yet done: the earlier steps' own writes change what the later ones read.

use crate::case::entry::{Details, PlanStale, StaleStepRecord};
use crate::case::journal;
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};
use crate::keys::SigningKey;
use std::collections::BTreeSet;

use crate::plan::document::{PinnedEvidence, PlanDoc, Step, StepDetail, StepStatus};
use crate::plan::stale;
use crate::policy::containment::StepKind;
use crate::propose::{self, BuildInput, Evidence, ProposeError};
use crate::store::Store;
use crate::terminal::escape as esc;

/// Why a plan cannot run here at all, before any step is compared.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("the plan was made on cluster {planned} (kube-system uid) but this one is {now}: it is never executed elsewhere")]
    OtherCluster { planned: String, now: String },
    #[error("containment.yaml is not the one the plan pinned (SHA-256 {pinned}, now {now}): the approvers signed what that policy allowed")]
    PolicyChanged { pinned: String, now: String },
    #[error("the evidence the plan pins: {0}")]
    Evidence(String),
    #[error(transparent)]
    Plan(#[from] ProposeError),
}

/// One step that would not run as approved, and each thing that changed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StaleStep {
    pub number: u32,
    pub kind: StepKind,
    pub target: String,
    pub changes: Vec<String>,
}

/// The stored plan's steps that are stale against `now`, the same plan made again on the
/// cluster as it is (matched by kind, target and namespace, since numbers shift when a step
/// comes or goes). Empty when every step still runs as approved.
pub fn stale_steps(planned: &PlanDoc, now: &PlanDoc) -> Vec<StaleStep> {
    stale_of(&planned.steps, &now.steps, &Resume::default())
}

/// What earlier runs of the plan did: steps done (not compared) and steps started and not
/// finished (compared only where their own writes cannot have changed what is read).
#[derive(Clone, Debug, Default)]
pub struct Resume {
    pub done: BTreeSet<u32>,
    pub started: BTreeSet<u32>,
    /// Each object those steps' writes were answered as applied for (`<Kind> <namespace>/
    /// <name>`), with its `resourceVersion` after the last of them (`None`: deleted, or not
    /// answered with one).
    pub written: std::collections::BTreeMap<String, Option<String>>,
}

/// Steps that will not run (refused or with nothing to do when planned) are not compared. A
/// policy may list one target for a kind more than once: the n-th such step is compared with
/// the n-th made now.
fn stale_of(planned: &[Step], now: &[Step], resume: &Resume) -> Vec<StaleStep> {
    let mut out = Vec::new();
    // What the plan's own earlier steps (done, or started) wrote changed what the others read
    // in their namespace: those objects are not compared for them.
    let earlier: Vec<&Step> = planned
        .iter()
        .filter(|s| resume.done.contains(&s.number) || resume.started.contains(&s.number))
        .collect();
    for (i, step) in planned.iter().enumerate() {
        if step.status != StepStatus::Planned || resume.done.contains(&step.number) {
            continue;
        }
        let nth = planned[..i].iter().filter(|s| same_step(s, step)).count();
        let again = now.iter().filter(|s| same_step(s, step)).nth(nth);
        let changes = match again {
            None => vec!["the step is no longer planned: its target is gone from the plan".into()],
            Some(again) if resume.started.contains(&step.number) => resumed_changes(step, again),
            Some(again) if earlier.is_empty() => step_changes(step, again),
            Some(again) => {
                let (planned, again) = masked_by(&earlier, &resume.written, step, again);
                step_changes(&planned, &again)
            }
        };
        if !changes.is_empty() {
            out.push(StaleStep {
                number: step.number,
                kind: step.kind,
                target: step.target.clone(),
                changes,
            });
        }
    }
    out
}

/// `planned` and `now` but for what `earlier` steps of the plan in the same namespace wrote: a
/// policy they wrote is compared with the `resourceVersion` their write was answered with
/// (`written`; not compared when none was journaled), one they created is not a new policy
/// selecting the target, one they deleted is not a policy gone.
fn masked_by(
    earlier: &[&Step],
    written_rv: &std::collections::BTreeMap<String, Option<String>>,
    planned: &Step,
    now: &Step,
) -> (Step, Step) {
    use crate::plan::document::ChangeOp;
    let mine = earlier
        .iter()
        .filter(|s| s.namespace == planned.namespace)
        .flat_map(|s| s.changes.iter());
    let (mut written, mut created, mut deleted) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for c in mine.filter(|c| c.object.kind == "NetworkPolicy") {
        written.insert(c.object.name.clone());
        match c.op {
            ChangeOp::Create => created.insert(c.object.name.clone()),
            ChangeOp::Delete => deleted.insert(c.object.name.clone()),
            _ => false,
        };
    }
    let (mut planned, mut now) = (planned.clone(), now.clone());
    let ns = planned.namespace.clone();
    for name in &written {
        let journaled = written_rv
            .get(&format!("NetworkPolicy {ns}/{name}"))
            .cloned()
            .flatten();
        let read_now = now.preconditions.network_policies.contains_key(name);
        match journaled {
            // Anyone else's write since ours changed it: compared.
            Some(rv) if read_now && !deleted.contains(name) => {
                planned
                    .preconditions
                    .network_policies
                    .insert(name.clone(), rv);
            }
            _ => {
                planned.preconditions.network_policies.remove(name);
                now.preconditions.network_policies.remove(name);
            }
        }
    }
    planned
        .preconditions
        .selecting
        .retain(|n| !deleted.contains(n));
    now.preconditions.selecting.retain(|n| !created.contains(n));
    (planned, now)
}

fn same_step(a: &Step, b: &Step) -> bool {
    a.kind == b.kind && a.target == b.target && a.namespace == b.namespace
}

fn step_changes(planned: &Step, now: &Step) -> Vec<String> {
    let mut out = stale::changes(&planned.preconditions, &now.preconditions);
    match now.status {
        StepStatus::Planned => {}
        StepStatus::Refused => out.push(format!(
            "the step would be refused now: {}",
            esc(&now.refusals.join("; "))
        )),
        StepStatus::NothingToDo => {
            out.push("the step would have nothing to do now".into());
        }
    }
    if let (
        StepDetail::BlockIps {
            addresses: was,
            owners: owned,
            ..
        },
        StepDetail::BlockIps {
            addresses: is,
            owners: owned_now,
            ..
        },
    ) = (&planned.detail, &now.detail)
    {
        if by_case_and_plan(owned) != by_case_and_plan(owned_now) {
            out.push("the owners of the custody block policy's addresses changed since the plan was made (another plan's block was executed): the approved owners would drop a claim".into());
        }
        was_is(&mut out, "blocked", was, is);
    }
    if let (
        StepDetail::ReleaseIps {
            released: was,
            kept: kept_was,
            owners: owned,
            ..
        },
        StepDetail::ReleaseIps {
            released: is,
            kept: kept_is,
            owners: owned_now,
            ..
        },
    ) = (&planned.detail, &now.detail)
    {
        if by_case_and_plan(owned) != by_case_and_plan(owned_now) || kept_was != kept_is {
            out.push("the owners of the blocked addresses changed since the rollback was made: the approved release would lift or keep other addresses".into());
        }
        was_is(&mut out, "released", was, is);
        // A release writes exactly what the rule gives on the cluster as it is: an expiry's
        // writes were approved by no one, so the plan made again must write the same objects.
        if !same_writes(&planned.changes, &now.changes) {
            out.push("the release made again writes other objects, or the same objects otherwise, than the plan: the cluster changed since it was made".into());
        }
    }
    out
}

/// The same writes, dry-run outcomes aside.
fn same_writes(
    planned: &[crate::plan::document::ObjectChange],
    now: &[crate::plan::document::ObjectChange],
) -> bool {
    planned.len() == now.len()
        && planned.iter().zip(now).all(|(a, b)| {
            a.op == b.op
                && a.object == b.object
                && a.before == b.before
                && a.after == b.after
                && a.patch == b.patch
        })
}

/// Each address planned then and not now, and now and not then.
fn was_is(out: &mut Vec<String>, what: &str, was: &[String], is: &[String]) {
    let was: BTreeSet<&String> = was.iter().collect();
    let is: BTreeSet<&String> = is.iter().collect();
    for gone in was.difference(&is) {
        out.push(format!(
            "{} would not be {what} now: the plan made again leaves it out",
            esc(gone)
        ));
    }
    for added in is.difference(&was) {
        out.push(format!(
            "{} would be {what} now, and the approvers did not see it",
            esc(added)
        ));
    }
}

/// The owners by address, each owner by case and plan (a plan's own claims carry expiry times
/// counted from when it was made again).
fn by_case_and_plan(
    owners: &std::collections::BTreeMap<String, Vec<crate::containment::netpol::Owner>>,
) -> std::collections::BTreeMap<String, BTreeSet<(String, String)>> {
    owners
        .iter()
        .map(|(a, o)| {
            let o = o
                .iter()
                .map(|o| (o.case.to_string(), o.plan.to_string()))
                .collect();
            (a.clone(), o)
        })
        .collect()
}

/// A step an earlier run started and did not finish: its own writes changed the policies it
/// wrote (and a policy it created now selects the target), and a rotation's own patches changed
/// the references it read, so those are not compared; a rotation's remaining patches are
/// guarded by their `test` ops. Every other policy of the namespace, the set of policies
/// selecting the target (but for those the step creates), and other engines' policies are.
fn resumed_changes(planned: &Step, now: &Step) -> Vec<String> {
    match planned.kind {
        StepKind::BlockIps | StepKind::ReleaseIps => {}
        // Its own patches moved references off the old Secret; any other referrer of it since
        // (a workload the step would refuse, a reference not planned) is stale.
        StepKind::RotateSecrets => {
            let mut out = Vec::new();
            if now.status == StepStatus::Refused {
                out.push(format!(
                    "the step would be refused now: {}",
                    esc(&now.refusals.join("; "))
                ));
            }
            for (deployment, refs) in &now.preconditions.deployment_refs {
                let planned_refs = planned.preconditions.deployment_refs.get(deployment);
                for path in refs.keys() {
                    if planned_refs.is_none_or(|p| !p.contains_key(path)) {
                        out.push(format!(
                            "Deployment {} references the Secret at {} now, which the plan does not repoint",
                            esc(deployment),
                            esc(path)
                        ));
                    }
                }
            }
            return out;
        }
        StepKind::InvalidateSessions => return Vec::new(),
    }
    let written: BTreeSet<&str> = planned
        .changes
        .iter()
        .map(|c| c.object.name.as_str())
        .collect();
    let created: BTreeSet<&str> = planned
        .changes
        .iter()
        .filter(|c| c.op == crate::plan::document::ChangeOp::Create)
        .map(|c| c.object.name.as_str())
        .collect();
    // A policy the step deletes (a release's custody block policy) selected the target when
    // the plan was made, and no longer does once the delete landed.
    let deleted: BTreeSet<&str> = planned
        .changes
        .iter()
        .filter(|c| c.op == crate::plan::document::ChangeOp::Delete)
        .map(|c| c.object.name.as_str())
        .collect();
    let mask = |p: &crate::plan::document::Preconditions, drop_created: bool| {
        let mut p = p.clone();
        p.network_policies
            .retain(|n, _| !written.contains(n.as_str()));
        if drop_created {
            p.selecting.retain(|n| !created.contains(n.as_str()));
        } else {
            p.selecting.retain(|n| !deleted.contains(n.as_str()));
        }
        p.deployment_refs.clear();
        p
    };
    stale::changes(
        &mask(&planned.preconditions, false),
        &mask(&now.preconditions, true),
    )
}

/// The plan's pinned evidence out of everything the case's store holds (`propose::evidence`,
/// which verified the journal and every sealed bundle): only the bundles the plan pins, each
/// still sealed with the archive SHA-256 pinned.
pub fn pinned_evidence(plan: &PinnedEvidence, all: &Evidence) -> Result<Evidence, PreflightError> {
    let mut suspicious = Vec::new();
    for pinned in &plan.bundles {
        let held = all
            .pinned
            .bundles
            .iter()
            .find(|b| b.bundle == pinned.bundle);
        match held {
            Some(b) if b.archive_sha256 == pinned.archive_sha256 => {}
            Some(b) => {
                return Err(PreflightError::Evidence(format!(
                    "bundle {} is sealed with archive SHA-256 {}, but the plan pins {}",
                    pinned.bundle, b.archive_sha256, pinned.archive_sha256
                )))
            }
            None => {
                return Err(PreflightError::Evidence(format!(
                    "bundle {} is not sealed in the case",
                    pinned.bundle
                )))
            }
        }
        let id = pinned.bundle.to_string();
        if let Some((_, clients)) = all.suspicious.iter().find(|(b, _)| *b == id) {
            suspicious.push((id, clients.clone()));
        }
    }
    if plan.bundles.is_empty() || suspicious.len() != plan.bundles.len() {
        return Err(PreflightError::Evidence(
            "the plan pins no bundle, or a pinned bundle's summary was not read".into(),
        ));
    }
    Ok(Evidence {
        pinned: plan.clone(),
        suspicious,
    })
}

/// Plans `plan` again on the cluster as it is now, with `input` (whose evidence is the plan's
/// own, from `pinned_evidence`), and returns its stale steps. Refuses another cluster and a
/// policy other than the one pinned before comparing anything.
pub async fn check(
    cluster: &crate::kube::Cluster,
    plan: &PlanDoc,
    input: &BuildInput<'_>,
) -> Result<Vec<StaleStep>, PreflightError> {
    check_resumed(cluster, plan, input, &Resume::default()).await
}

/// `check`, for a run that resumes: the steps `resume` says are done are not compared, those
/// started and not finished only as `resumed_changes` says.
pub async fn check_resumed(
    cluster: &crate::kube::Cluster,
    plan: &PlanDoc,
    input: &BuildInput<'_>,
    resume: &Resume,
) -> Result<Vec<StaleStep>, PreflightError> {
    let given: BTreeSet<&str> = input
        .evidence
        .suspicious
        .iter()
        .map(|(b, _)| b.as_str())
        .collect();
    let pinned: BTreeSet<&str> = plan
        .evidence
        .bundles
        .iter()
        .map(|p| p.bundle.as_str())
        .collect();
    let pinned_only = given == pinned && given.len() == input.evidence.suspicious.len();
    if input.case != &plan.case || input.evidence.pinned != plan.evidence || !pinned_only {
        return Err(PreflightError::Evidence(
            "the evidence given is not the plan's own (its case, bundles and journal head)".into(),
        ));
    }
    let digest = input.policies.containment.digest;
    if digest != plan.policy_sha256 {
        return Err(PreflightError::PolicyChanged {
            pinned: plan.policy_sha256.to_string(),
            now: digest.to_string(),
        });
    }
    let same_cluster = |uid: &str| {
        if uid == plan.cluster.kube_system_uid {
            return Ok(());
        }
        Err(PreflightError::OtherCluster {
            planned: esc(&plan.cluster.kube_system_uid).into_owned(),
            now: esc(uid).into_owned(),
        })
    };
    // The cluster first: nothing else it answers matters if it is not the plan's. The view
    // read next names it again, in case the address now leads elsewhere.
    let (uid, _) = crate::containment::cluster::identity(cluster)
        .await
        .map_err(ProposeError::from)?;
    same_cluster(&uid)?;
    let now = propose::plan_now(cluster, input, &plan.plan).await?;
    same_cluster(&now.cluster.kube_system_uid)?;
    Ok(stale_of(&plan.steps, &now.steps, resume))
}

/// Journals that `plan` of `case` (digest `digest`) was refused as stale, with each stale step: a
/// refused execution is recorded like any other step of the case. Another writer appending
/// first is waited out by reading the head again. The caller holds the case's claim (as for
/// any execution), so that the entry never comes between a seal and the head it pins.
pub fn record_stale(
    store: &dyn Store,
    key: &SigningKey,
    actor: &str,
    (case, plan): (&CaseId, &PlanId),
    digest: Sha256Digest,
    stale: &[StaleStep],
) -> Result<PlanStale, String> {
    let numbers: BTreeSet<u32> = stale.iter().map(|s| s.number).collect();
    if stale.is_empty() || numbers.len() != stale.len() {
        return Err("a stale plan is recorded with each stale step, once".into());
    }
    let details = PlanStale {
        plan: plan.clone(),
        plan_sha256: digest,
        steps: stale
            .iter()
            .map(|s| StaleStepRecord {
                changes: s.changes.clone(),
                kind: s.kind,
                number: s.number,
                target: s.target.clone(),
            })
            .collect(),
    };
    let chain = journal::check_chain(store, case).map_err(|e| e.to_string())?;
    if let Some(p) = chain.problems.first() {
        return Err(format!(
            "the journal of case {case}: {}: {}",
            p.key, p.message
        ));
    }
    crate::plan::store::append(store, key, case, actor, Details::PlanStale(details.clone()))
        .map_err(|e| e.to_string())?;
    Ok(details)
}

#[cfg(test)]
mod tests;
