//! Proposing a plan for a case, for the CLI (`plan propose`) and the daemon alike, in three
//! parts so that the store's blocking calls and the cluster's async reads stay apart:
//! `evidence` (the sealed bundles, each verified, and their summaries' suspicious clients),
//! `build` (the cluster view, the planner, the clock check and the server-side dry-runs), and
//! `plan::store::propose`, which signs and stores what was built.

use std::path::Path;

use serde_json::Value;
use time::OffsetDateTime;

use crate::analysis::Summary;
use crate::approval::{sshsig, KeyFingerprint, Principal, Roster, PROPOSAL_NAMESPACE};
use crate::case::journal::check_chain;
use crate::case::CaseState;
use crate::containment::cluster::{self, DryRun, DryRunRequest, Target};
use crate::id::{CaseId, PlanId};
use crate::keys::SigningKey;
use crate::kube::Cluster;
use crate::plan::document::{
    ChangeOp, JournalHead, ObjectChange, PinnedBundle, PinnedEvidence, PlanDoc, ProposerClaim,
};
use crate::plan::planner::{self, PlannerInput, NEW_SECRET_PLACEHOLDER};
use crate::policy::containment::BlockMethod;
use crate::policy::Policies;
use crate::store::Store;
use crate::verify::{self, read_member};

/// The largest `summary.json` read out of a bundle.
pub const MAX_SUMMARY_BYTES: u64 = 256 * 1024 * 1024;

/// How far custody's clock may be from the API server's when it proposes.
const MAX_SKEW_SECONDS: i64 = crate::approval::quorum::MAX_CLOCK_SKEW_SECONDS;

#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error("case {0} has no sealed bundle: there is no evidence to plan from")]
    NoSealedBundle(CaseId),
    #[error("case {case}: the evidence does not verify, so no plan is built from it: {message}")]
    Evidence { case: CaseId, message: String },
    #[error("containment.yaml names no target: there is nothing a plan may touch")]
    NoTargets,
    #[error("the cluster could not be read whole, so no plan is built from a partial view: {0}")]
    Cluster(#[from] cluster::ReadError),
    #[error("custody's clock is {seconds} s off the API server's Date: fix the clock first (a plan's times, and the checks of them, would be wrong)")]
    Clock { seconds: i64 },
    #[error("the proposer's key: {0}")]
    Proposer(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl ProposeError {
    /// 1 when evidence does not verify, 2 otherwise (nothing to plan from, or a usage or I/O
    /// error): nothing was proposed either way.
    pub fn exit_code(&self) -> u8 {
        match self {
            ProposeError::Evidence { .. } => 1,
            _ => 2,
        }
    }
}

/// The sealed evidence a plan is built from.
#[derive(Clone, Debug)]
pub struct Evidence {
    pub pinned: PinnedEvidence,
    /// Each bundle's id and its summary's suspicious clients.
    pub suspicious: Vec<(String, Vec<crate::analysis::Suspicious>)>,
}

/// Reads and verifies every sealed bundle of `case` and its summary: refuses a case with no
/// sealed bundle, a journal that does not verify, and any bundle that does not.
pub fn evidence(
    store: &dyn Store,
    case: &CaseId,
    options: &verify::Options,
) -> Result<Evidence, ProposeError> {
    let bad = |message: String| ProposeError::Evidence {
        case: case.clone(),
        message,
    };
    let chain = check_chain(store, case)?;
    if let Some(p) = chain.problems.first() {
        return Err(bad(format!("the journal: {}: {}", p.key, p.message)));
    }
    let unsigned = verify::entry_signature_problems(store, case, &chain, options)?;
    if let Some(p) = unsigned.first() {
        return Err(bad(format!("the journal: {}: {}", p.subject, p.message)));
    }
    let state = CaseState::of(&chain);
    let sealed: Vec<_> = state
        .bundles()
        .map(|(_, _, b)| (b.bundle_id.clone(), b.archive.sha256))
        .collect();
    if sealed.is_empty() {
        return Err(ProposeError::NoSealedBundle(case.clone()));
    }
    let head = chain
        .head()
        .ok_or_else(|| ProposeError::NoSealedBundle(case.clone()))?;
    let mut suspicious = Vec::new();
    let mut bundles = Vec::new();
    for (bundle, sha256) in sealed {
        let bytes = read_member(
            store,
            case,
            &bundle,
            "data/analysis/summary.json",
            MAX_SUMMARY_BYTES,
            options,
        )
        .map_err(|e| bad(e.to_string()))?;
        let summary: Summary = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("bundle {bundle}: summary.json: {e}")))?;
        suspicious.push((bundle.to_string(), summary.suspicious));
        bundles.push(PinnedBundle {
            bundle,
            archive_sha256: sha256,
        });
    }
    Ok(Evidence {
        pinned: PinnedEvidence {
            bundles,
            journal_head: JournalHead {
                seq: head.seq,
                sha256: head.sha256,
            },
        },
        suspicious,
    })
}

/// Who proposes: the collector key (the daemon, or `plan propose` without `--key`) or a
/// person's SSH key, named by the principal the roster gives it.
pub fn proposer_claim(
    collector: &SigningKey,
    person_key: Option<&Path>,
    principal: Option<&str>,
    roster: &Roster,
    now: OffsetDateTime,
) -> Result<ProposerClaim, ProposeError> {
    let Some(path) = person_key else {
        return Ok(ProposerClaim::Collector {
            key_id: collector.public().id().clone(),
        });
    };
    let key = sshsig::public_key_of(path).map_err(|e| ProposeError::Proposer(e.to_string()))?;
    let fingerprint = KeyFingerprint::of(&key);
    let principal = match principal {
        Some(p) => Principal::new(p).map_err(|e| ProposeError::Proposer(e.to_string()))?,
        None => roster.principal_for(&fingerprint, now).cloned().ok_or_else(|| {
            ProposeError::Proposer(format!(
                "{fingerprint} speaks for no principal in the approvers' roster: a person proposes with a key the roster names"
            ))
        })?,
    };
    roster
        .check(&fingerprint, &principal, PROPOSAL_NAMESPACE, now)
        .map_err(|e| ProposeError::Proposer(format!("{principal} may not propose plans: {e}")))?;
    Ok(ProposerClaim::Person {
        principal,
        key_fingerprint: fingerprint,
    })
}

/// What `build` needs beside the cluster.
pub struct BuildInput<'a> {
    pub case: &'a CaseId,
    pub policies: &'a Policies,
    pub evidence: &'a Evidence,
    pub proposer: ProposerClaim,
    pub roster_sha256: crate::digest::Sha256Digest,
    pub now: OffsetDateTime,
    /// Per target, the owners of the addresses executed plans of every case block there
    /// (`execute::owners`): a new block keeps and records them.
    pub block_owners: std::collections::BTreeMap<String, crate::containment::netpol::Owners>,
    /// For a rollback or an expiry plan: the executed plan it lifts (`None`: a containment
    /// plan).
    pub rollback: Option<RollbackOf>,
}

/// The executed plan a rollback lifts, as its case's journal records it.
#[derive(Clone, Debug)]
pub struct RollbackOf {
    pub doc: PlanDoc,
    pub sha256: crate::digest::Sha256Digest,
    /// Its block steps the journal records as done (for an expiry: those with a claim that
    /// expires by `expired_by`).
    pub executed: std::collections::BTreeSet<u32>,
    /// For an expiry plan: its cut-off (`created_at`). `None`: a rollback.
    pub expired_by: Option<OffsetDateTime>,
}

/// Reads the cluster, plans, and dry-runs every change that can be.
pub async fn build(cluster: &Cluster, input: &BuildInput<'_>) -> Result<PlanDoc, ProposeError> {
    let plan_id = PlanId::generate(input.now);
    let mut doc = plan_now(cluster, input, &plan_id).await?;
    for step in &mut doc.steps {
        for change in &mut step.changes {
            if matches!(change.dry_run, DryRun::NotRun { .. }) {
                change.dry_run = match request(change) {
                    Some(req) => cluster::dry_run(cluster, &req).await,
                    None => DryRun::NotSupported {
                        why: "no server-side dry-run exists for this change".to_owned(),
                    },
                };
            }
        }
    }
    Ok(doc)
}

/// Reads the cluster (refusing a clock off the API server's) and plans `plan_id` on it, its
/// dry-runs not run: what `build` proposes, and what execution compares a stored plan with.
pub async fn plan_now(
    cluster: &Cluster,
    input: &BuildInput<'_>,
    plan_id: &PlanId,
) -> Result<PlanDoc, ProposeError> {
    let policy = &input.policies.containment;
    if policy.targets.is_empty() {
        return Err(ProposeError::NoTargets);
    }
    let mut namespaces: Vec<String> = policy
        .targets
        .iter()
        .map(|t| t.namespace.to_string())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    let cilium = policy
        .block_ips
        .as_ref()
        .is_some_and(|b| b.method == BlockMethod::Cilium);
    let view = cluster::read_view(cluster, &namespaces, cilium).await?;
    // `read_view` refuses an answer without a usable `Date`, so the check is never skipped.
    let seconds = (input.now - view.server_date).whole_seconds();
    if seconds.abs() > MAX_SKEW_SECONDS {
        return Err(ProposeError::Clock { seconds });
    }
    if let Some(of) = &input.rollback {
        return Ok(planner::plan_rollback(&planner::RollbackInput {
            case: input.case,
            plan: plan_id,
            policy,
            evidence: input.evidence.pinned.clone(),
            view: &view,
            of: &of.doc,
            of_sha256: of.sha256,
            executed: &of.executed,
            block_owners: &input.block_owners,
            proposer: input.proposer.clone(),
            roster_sha256: input.roster_sha256,
            now: input.now,
            expired_by: of.expired_by,
        }));
    }
    Ok(planner::plan(&PlannerInput {
        case: input.case,
        plan: plan_id,
        policy,
        detection_allowlist: &input.policies.detection.allowlist,
        trusted_proxies: input.policies.formats.trusted_proxies(),
        suspicious: &input.evidence.suspicious,
        evidence: input.evidence.pinned.clone(),
        view: &view,
        block_owners: &input.block_owners,
        proposer: input.proposer.clone(),
        roster_sha256: input.roster_sha256,
        now: input.now,
    }))
}

/// The dry-run request of a change; a Deployment patch writes a stand-in name where the new
/// Secret's name goes (the name is chosen at execution).
fn request(change: &ObjectChange) -> Option<DryRunRequest> {
    request_naming(change, "custody-dry-run-stand-in")
}

/// The request of a change, a Deployment patch writing `new_secret` where the new Secret's
/// name goes: what execution dry-runs and sends.
pub fn request_naming(change: &ObjectChange, new_secret: &str) -> Option<DryRunRequest> {
    let o = &change.object;
    let resource = match o.kind.as_str() {
        "NetworkPolicy" => "networkpolicies",
        "Deployment" => "deployments",
        "CiliumNetworkPolicy" => "ciliumnetworkpolicies",
        _ => return None,
    };
    let target = Target {
        api_version: o.api_version.clone(),
        resource: resource.to_owned(),
        namespace: o.namespace.clone()?,
        name: o.name.clone(),
    };
    Some(match change.op {
        ChangeOp::Create => DryRunRequest::Create {
            target,
            object: change.after.clone()?,
        },
        ChangeOp::Replace => DryRunRequest::Replace {
            target,
            object: change.after.clone()?,
        },
        ChangeOp::Patch => DryRunRequest::Patch {
            target,
            patch: stand_in(change.patch.clone()?, new_secret),
        },
        ChangeOp::Delete => DryRunRequest::Delete {
            target,
            resource_version: o.resource_version.clone(),
        },
        ChangeOp::Call => return None,
    })
}

fn stand_in(mut patch: Value, new_secret: &str) -> Value {
    for op in patch.as_array_mut().into_iter().flatten() {
        if op["value"] == NEW_SECRET_PLACEHOLDER {
            op["value"] = Value::String(new_secret.to_owned());
        }
    }
    patch
}
