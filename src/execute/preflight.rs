//! Whether an approved plan may still run on the cluster as it is now (CONTAINMENT.md,
//! "Execution"): the plan is planned again, from the evidence it pins and the policy it pinned,
//! on a fresh read of the cluster, and each step's preconditions are compared with the stored
//! plan's (`plan::stale`). A different cluster, a policy other than the one pinned, or a step
//! planned then and not now (or refused now) is stale as well. Nothing here writes anything;
//! quorum and the evidence's verification are the caller's (`plan::state`, `propose::evidence`).

use crate::plan::document::{PinnedEvidence, PlanDoc, Step, StepStatus};
use crate::plan::stale;
use crate::policy::containment::StepKind;
use crate::propose::{self, BuildInput, Evidence, ProposeError};
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
    stale_of(&planned.steps, &now.steps)
}

fn stale_of(planned: &[Step], now: &[Step]) -> Vec<StaleStep> {
    let mut out = Vec::new();
    for step in planned {
        let again = now.iter().find(|s| same_step(s, step));
        let changes = match again {
            None => vec!["the step is no longer planned: its target is gone from the plan".into()],
            Some(again) => step_changes(step, again),
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

fn same_step(a: &Step, b: &Step) -> bool {
    a.kind == b.kind && a.target == b.target && a.namespace == b.namespace
}

fn step_changes(planned: &Step, now: &Step) -> Vec<String> {
    let mut out = stale::changes(&planned.preconditions, &now.preconditions);
    if planned.status == StepStatus::Planned && now.status == StepStatus::Refused {
        out.push(format!(
            "the step would be refused now: {}",
            esc(&now.refusals.join("; "))
        ));
    }
    out
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
    let digest = input.policies.containment.digest;
    if digest != plan.policy_sha256 {
        return Err(PreflightError::PolicyChanged {
            pinned: plan.policy_sha256.to_string(),
            now: digest.to_string(),
        });
    }
    let now = propose::plan_now(cluster, input, &plan.plan).await?;
    if now.cluster.kube_system_uid != plan.cluster.kube_system_uid {
        return Err(PreflightError::OtherCluster {
            planned: esc(&plan.cluster.kube_system_uid).into_owned(),
            now: esc(&now.cluster.kube_system_uid).into_owned(),
        });
    }
    Ok(stale_steps(plan, &now))
}

#[cfg(test)]
mod tests;
