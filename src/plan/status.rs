//! A plan's approval status, for `plan status`, `plan show` and the daemon's API: what it needs,
//! what each recorded approval counted for (or why not), and whether quorum is reached — or
//! every reason it is not. Decided by `approval::evaluate` (through `Plan::tally`, the same rules `Plan::approve_check` applies), never
//! by rules of its own.

use serde::Serialize;
use time::OffsetDateTime;

use super::state::{Plan, Proposed};
use super::store::{self, PlanError};
use crate::approval::quorum::{Outcome, Reason, Tally};
use crate::approval::StoredApproval;
use crate::approval::{ApprovalRecorded, Decision, KeyFingerprint, Principal, Roster};
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};
use crate::policy::containment::ContainmentPolicy;
use crate::store::Store;

/// One recorded approval, as the quorum saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApprovalView {
    pub number: u64,
    pub principal: Option<Principal>,
    pub key_fingerprint: Option<KeyFingerprint>,
    pub decision: Option<Decision>,
    /// `counted`, `veto`, or why it does not count (`not_in_pinned_roster`, `proposer`, …).
    pub outcome: &'static str,
    /// The outcome in words.
    pub why: String,
}

/// Where a plan stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanStatus {
    pub case: CaseId,
    pub plan: PlanId,
    pub plan_sha256: Sha256Digest,
    /// Who proposed it: `collector key <id>` or `<principal> (<fingerprint>)`.
    pub proposer: String,
    pub created_at: String,
    pub not_after: String,
    pub required: u32,
    pub counted: u32,
    pub approvals: Vec<ApprovalView>,
    pub quorum_reached: bool,
    /// Every reason quorum is not reached (empty when it is).
    pub reasons: Vec<Reason>,
    pub expired: bool,
    pub rejected: bool,
}

/// The status of `plan` with `current_roster` as the roster in force and `policy` as the
/// containment policy in force (whose quorum the plan needs at least), at `now`.
pub fn status(
    plan: &Plan<Proposed>,
    current_roster: &Roster,
    policy: Option<&ContainmentPolicy>,
    stored: &[StoredApproval],
    journaled: &[ApprovalRecorded],
    now: OffsetDateTime,
) -> PlanStatus {
    let (tally, reasons) = plan.tally(current_roster, policy, stored, journaled, now);
    view(plan, tally, reasons, now)
}

/// `status` of plan `plan` of `case` as stored, with the store's approvals and journal.
pub fn status_in(
    store: &dyn Store,
    plan: &Plan<Proposed>,
    current_roster: &Roster,
    policy: Option<&ContainmentPolicy>,
    now: OffsetDateTime,
) -> Result<PlanStatus, PlanError> {
    let (stored, _) = store::stored_approvals(store, plan.case(), plan.id())?;
    let chain = store::trusted_chain(store, plan.case(), plan.trusted())?;
    let journaled: Vec<ApprovalRecorded> = store::journaled_approvals(&chain)
        .into_iter()
        .map(|(_, _, r)| r)
        .collect();
    Ok(status(
        plan,
        current_roster,
        policy,
        &stored,
        &journaled,
        now,
    ))
}

fn view(
    plan: &Plan<Proposed>,
    tally: Tally,
    reasons: Vec<Reason>,
    now: OffsetDateTime,
) -> PlanStatus {
    let approvals = tally
        .approvals
        .iter()
        .map(|t| {
            let (outcome, why) = match &t.outcome {
                Outcome::Counted => ("counted", "counted".to_owned()),
                Outcome::Veto => ("veto", "a reject: the plan is vetoed".to_owned()),
                Outcome::NotCounted(n) => (n.code(), n.to_string()),
            };
            ApprovalView {
                number: t.number,
                principal: t.principal.clone(),
                key_fingerprint: t.fingerprint,
                decision: t.decision,
                outcome,
                why,
            }
        })
        .collect::<Vec<_>>();
    let proposer = match (
        plan.proposer().collector_key(),
        plan.proposer().person_key(),
    ) {
        (Some(id), _) => format!("collector key {id}"),
        (None, Some((p, fp))) => format!("{p} ({fp})"),
        (None, None) => "unknown".into(),
    };
    PlanStatus {
        case: plan.case().clone(),
        plan: plan.id().clone(),
        plan_sha256: plan.digest(),
        proposer,
        created_at: plan.doc().created_at.clone(),
        not_after: plan.doc().not_after.clone(),
        required: tally.required,
        counted: tally.counted,
        rejected: approvals.iter().any(|a| a.outcome == "veto"),
        approvals,
        quorum_reached: reasons.is_empty(),
        expired: now > plan.not_after(),
        reasons,
    }
}
