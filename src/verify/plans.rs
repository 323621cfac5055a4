//! A case's containment plans, verified (`custody verify --approvers FILE`): each plan's
//! canonical bytes against its sidecar, its proposer's signature, the stored roster against its
//! pinned digest, its evidence against the sealed evidence, its `plan_proposed` entry, every
//! approval statement's signature (verified in Rust), the store's approvals against the
//! journal's and back, and the quorum as evaluated — by `approval::evaluate`, with FILE as the
//! roster in force (the pinned roster without it) at the journal time of the plan's last
//! approval. A plan that awaits approval, was vetoed or expired is information, not a problem.
//!
//! An expiry plan has no quorum: each of its executions must instead have been lawful when it
//! started by `plan::block_expiry` — custody's own plan, lifting only addresses an executed
//! block step of its plan blocked with an expiry at or before the expiry's cut-off
//! (`expiry_not_authorised`).

use serde::Serialize;

use super::{Options, Report};
use crate::approval::quorum::Reason;
use crate::approval::ApprovalRecorded;
use crate::case::CheckedChain;
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};
use crate::plan::store::{self as plans, PlanError};
use crate::store::{Store, StoreError, StoreKey, StorePrefix};

/// What `verify` found of one plan's quorum.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub case: CaseId,
    pub plan: PlanId,
    pub plan_sha256: Sha256Digest,
    pub required: u32,
    pub counted: u32,
    pub quorum_reached: bool,
    /// The time the quorum was evaluated at (RFC 3339): the last approval's journal time, or now.
    pub evaluated_at: String,
    /// Whether the roster in force was given (`--approvers`); without it the pinned roster
    /// stands in for it.
    pub approvers_given: bool,
    /// Every reason quorum is not reached (and the integrity faults, also reported as problems).
    pub reasons: Vec<Reason>,
}

/// Checks every plan of `case` (see the module's header).
pub(super) fn check_plans(
    store: &dyn Store,
    case: &CaseId,
    chain: &CheckedChain,
    options: &Options,
    report: &mut Report,
) -> Result<(), StoreError> {
    let (ids, strays) = match plans::list(store, case) {
        Ok(listed) => listed,
        // A linked case directory is reported as a `symlink` problem by the walk of the store.
        Err(PlanError::Store(StoreError::Symlink(_))) => return Ok(()),
        Err(PlanError::Store(e)) => return Err(e),
        Err(e) => {
            return Err(StoreError::Remote {
                uri: StorePrefix::Plans(case.clone()).path(),
                message: e.to_string(),
            })
        }
    };
    for name in strays {
        report.problem(
            "unexpected_file",
            format!("cases/{case}/{name}"),
            "not a plan",
        );
    }
    // A plan the journal records (proposed, approved, or found stale) must be in the store: deleting one is
    // not a way to make its record vanish.
    let mut recorded: Vec<PlanId> = chain
        .entries
        .iter()
        .filter_map(|(e, _)| match &e.details {
            crate::case::Details::PlanProposed(p) => Some(p.plan.clone()),
            crate::case::Details::ApprovalRecorded(a) => Some(a.plan.clone()),
            crate::case::Details::PlanStale(s) => Some(s.plan.clone()),
            crate::case::Details::ExecutionStarted(s) => Some(s.plan.clone()),
            _ => None,
        })
        .collect();
    recorded.sort();
    recorded.dedup();
    for id in recorded.iter().filter(|id| !ids.contains(id)) {
        report.problem(
            "plan_missing",
            StoreKey::Plan(case.clone(), id.clone()).path(),
            format!("the journal records plan {id} (its proposal or an approval), but the store holds no such plan"),
        );
    }
    for id in ids {
        check_plan(store, case, &id, chain, options, report)?;
    }
    Ok(())
}

fn check_plan(
    store: &dyn Store,
    case: &CaseId,
    id: &PlanId,
    chain: &CheckedChain,
    options: &Options,
    report: &mut Report,
) -> Result<(), StoreError> {
    let subject = StoreKey::Plan(case.clone(), id.clone()).path();
    check_plan_files(store, case, id, report)?;
    let mut plan = match plans::load_record(store, case, id, options.public_key.as_ref()) {
        Ok(p) => p,
        Err(PlanError::Store(StoreError::NotFound { uri })) => {
            report.problem("missing_file", subject, format!("{uri} is missing"));
            return Ok(());
        }
        Err(PlanError::Store(e)) => return Err(e),
        Err(e) => {
            report.problem(e.code(), subject, e.to_string());
            return Ok(());
        }
    };
    plan.find_journaled_at(chain);
    if let Err(message) = plans::check_evidence(plan.doc(), chain) {
        report.problem("plan_evidence_mismatch", subject.clone(), message);
    }
    if !plans::journaled_proposals(chain, id).any(|(_, p)| p.plan_sha256 == plan.digest()) {
        report.problem(
            "plan_not_journaled",
            subject.clone(),
            format!(
                "no plan_proposed entry of the journal records plan {id} with digest {}",
                plan.digest()
            ),
        );
    }
    let (stored, strays) = plans::stored_approvals(store, case, id)?;
    for name in strays {
        report.problem(
            "unexpected_file",
            format!(
                "{}/{name}",
                StorePrefix::Approvals(case.clone(), id.clone()).path()
            ),
            "not an approval",
        );
    }
    let mine: Vec<(u64, String, ApprovalRecorded)> = plans::journaled_approvals(chain)
        .into_iter()
        .filter(|(_, _, r)| &r.plan == id)
        .collect();
    let at = mine
        .last()
        .and_then(|(_, at, _)| crate::timefmt::parse(at))
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    let journaled: Vec<ApprovalRecorded> = mine.into_iter().map(|(_, _, r)| r).collect();
    if plan.doc().kind == crate::plan::document::PlanKind::Expiry {
        if !stored.is_empty() || !journaled.is_empty() {
            report.problem(
                "expiry_not_authorised",
                subject.clone(),
                format!(
                    "expiry plan {id} holds approvals, which custody never records for an expiry"
                ),
            );
        }
        let lawful = check_expiry_executed(store, (case, id, &plan), chain, options, report)?;
        report.plans.push(PlanReport {
            case: case.clone(),
            plan: id.clone(),
            plan_sha256: plan.digest(),
            required: 0,
            counted: 0,
            quorum_reached: lawful,
            evaluated_at: crate::timefmt::rfc3339(at),
            approvers_given: options.approvers.is_some(),
            reasons: Vec::new(),
        });
        return Ok(());
    }
    let current = options.approvers.as_ref().unwrap_or(plan.pinned_roster());
    let (tally, reasons) = plan.tally(
        current,
        options.containment.as_ref(),
        &stored,
        &journaled,
        at,
    );
    check_executed((case, id, &plan), (&stored, &journaled), chain, report);
    for reason in &reasons {
        if let Some((code, number)) = problem_code(reason) {
            let subject = match number {
                Some(n) => StoreKey::Approval(case.clone(), id.clone(), n).path(),
                None => subject.clone(),
            };
            report.problem(code, subject, reason.to_string());
        }
    }
    report.plans.push(PlanReport {
        case: case.clone(),
        plan: id.clone(),
        plan_sha256: plan.digest(),
        required: tally.required,
        counted: tally.counted,
        quorum_reached: reasons.is_empty(),
        evaluated_at: crate::timefmt::rfc3339(at),
        approvers_given: options.approvers.is_some(),
        reasons,
    });
    Ok(())
}

/// A plan that was executed must have had quorum each time an execution of it started — with
/// the approvals journaled before that `execution_started` entry, at its journal time, by the
/// roster the plan pins (the roster in force then is not recorded; an approver removed since
/// does not make an old execution unsound) — and have started before `not_after` and after the
/// evidence it pins was sealed (`execution_without_quorum`, `executed_after_not_after`,
/// `execution_before_evidence`).
fn check_executed(
    (case, id, plan): (&CaseId, &PlanId, &crate::plan::Plan<crate::plan::Proposed>),
    (stored, journaled): (&[crate::approval::StoredApproval], &[ApprovalRecorded]),
    chain: &CheckedChain,
    report: &mut Report,
) {
    let starts = chain.entries.iter().filter_map(|(e, _)| match &e.details {
        crate::case::Details::ExecutionStarted(x)
            if &x.plan == id && x.plan_sha256 == plan.digest() =>
        {
            Some(e)
        }
        _ => None,
    });
    for started in starts {
        let subject = StoreKey::JournalEntry(case.clone(), started.seq).path();
        let seq = started.seq;
        let Some(at) = crate::timefmt::parse(&started.at) else {
            report.problem(
                "journal",
                subject,
                format!("entry {seq} has no readable time"),
            );
            continue;
        };
        let before: Vec<u64> = plans::journaled_approvals(chain)
            .into_iter()
            .filter(|(s, _, r)| *s < seq && &r.plan == id)
            .map(|(_, _, r)| r.approval)
            .collect();
        let journaled_before: Vec<ApprovalRecorded> = journaled
            .iter()
            .filter(|r| before.contains(&r.approval))
            .cloned()
            .collect();
        let stored_before: Vec<crate::approval::StoredApproval> = stored
            .iter()
            .filter(|a| before.contains(&a.number))
            .cloned()
            .collect();
        let (_, reasons) = plan.tally(
            plan.pinned_roster(),
            None,
            &stored_before,
            &journaled_before,
            at,
        );
        if !reasons.is_empty() {
            report.problem(
                "execution_without_quorum",
                subject.clone(),
                format!(
                    "entry {seq} starts executing plan {id}, which did not have quorum then: {}",
                    reasons
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            );
        }
        check_start_times((id, plan), started, at, report);
    }
}

/// An execution of `plan` starting at `started` (journal time `at`) must start before the
/// plan's `not_after` and after the evidence it pins was sealed.
fn check_start_times(
    (id, plan): (&PlanId, &crate::plan::Plan<crate::plan::Proposed>),
    started: &crate::case::Entry,
    at: time::OffsetDateTime,
    report: &mut Report,
) {
    let seq = started.seq;
    let subject = StoreKey::JournalEntry(plan.case().clone(), seq).path();
    let doc = plan.doc();
    if at > plan.not_after() {
        report.problem(
            "executed_after_not_after",
            subject.clone(),
            format!(
                "entry {seq} starts executing plan {id} at {}, after its not_after {}",
                started.at, doc.not_after
            ),
        );
    }
    if seq <= doc.evidence.journal_head.seq {
        report.problem(
            "execution_before_evidence",
            subject,
            format!("entry {seq} starts executing plan {id} before the evidence it pins was sealed (journal head {})", doc.evidence.journal_head.seq),
        );
    }
}

/// An expiry plan's executions: each lawful when it started (`plan::block_expiry`, with the
/// block steps of the plan it lifts that the journal records as done before it), before its
/// `not_after` and after its evidence. `true` when no problem was found.
fn check_expiry_executed(
    store: &dyn Store,
    (case, id, plan): (&CaseId, &PlanId, &crate::plan::Plan<crate::plan::Proposed>),
    chain: &CheckedChain,
    options: &Options,
    report: &mut Report,
) -> Result<bool, StoreError> {
    let before = report.problems.len();
    let doc = plan.doc();
    let lifted = match &doc.rolls_back {
        Some(rb) => match plans::load_record(store, case, &rb.plan, options.public_key.as_ref()) {
            Ok(p) => Some(p),
            Err(PlanError::Store(e @ StoreError::Remote { .. })) => return Err(e),
            Err(e) => {
                report.problem(
                    "expiry_not_authorised",
                    StoreKey::Plan(case.clone(), id.clone()).path(),
                    format!(
                        "the plan whose blocks expiry plan {id} lifts, {}, cannot be read: {e}",
                        rb.plan
                    ),
                );
                None
            }
        },
        None => None,
    };
    for (started, _) in &chain.entries {
        let crate::case::Details::ExecutionStarted(x) = &started.details else {
            continue;
        };
        if &x.plan != id || x.plan_sha256 != plan.digest() {
            continue;
        }
        let seq = started.seq;
        let subject = StoreKey::JournalEntry(case.clone(), seq).path();
        let Some(at) = crate::timefmt::parse(&started.at) else {
            report.problem(
                "journal",
                subject,
                format!("entry {seq} has no readable time"),
            );
            continue;
        };
        // Judged by the earlier of the two clocks the start recorded, as execution judges it.
        let judged_at = crate::timefmt::parse(&x.api_server_date).map_or(at, |api| api.min(at));
        let reasons = match &lifted {
            Some(l) => {
                let executed = chain
                    .entries
                    .iter()
                    .filter(|(e, _)| e.seq < seq)
                    .filter_map(|(e, _)| match &e.details {
                        crate::case::Details::StepDone(d)
                            if d.kind == crate::policy::containment::StepKind::BlockIps
                                && d.plan == *l.id()
                                && d.plan_sha256 == l.digest() =>
                        {
                            Some(d.number)
                        }
                        _ => None,
                    })
                    .collect();
                let mut reasons = crate::plan::block_expiry::reasons(
                    doc,
                    (l.doc(), l.digest()),
                    &executed,
                    judged_at,
                );
                if plan.proposer().collector_key().is_none() {
                    reasons.push("it is not signed with the collector key".into());
                }
                reasons
            }
            None => vec!["it names no readable plan whose blocks it lifts".into()],
        };
        if !reasons.is_empty() {
            report.problem(
                "expiry_not_authorised",
                subject.clone(),
                format!(
                    "entry {seq} starts executing expiry plan {id}, which was not lawful then: {}",
                    reasons.join("; ")
                ),
            );
        }
        check_start_times((id, plan), started, at, report);
    }
    Ok(report.problems.len() == before)
}

/// Every file in the plan's directory must be one of a plan's.
fn check_plan_files(
    store: &dyn Store,
    case: &CaseId,
    id: &PlanId,
    report: &mut Report,
) -> Result<(), StoreError> {
    for name in store.list(&StorePrefix::Plan(case.clone(), id.clone()))? {
        // A backend without directories lists `approvals/…` whole; a local store, `approvals`.
        let first = name.split('/').next().unwrap_or_default();
        if first != "approvals" && !crate::store::layout::is_plan_file(&name) {
            report.problem(
                "unexpected_file",
                format!(
                    "{}/{name}",
                    StorePrefix::Plan(case.clone(), id.clone()).path()
                ),
                "not part of a plan",
            );
        }
    }
    Ok(())
}

/// The problem code of a quorum reason that is a fault in the record (not a plan awaiting
/// approval, vetoed or expired), and the approval it concerns.
fn problem_code(reason: &Reason) -> Option<(&'static str, Option<u64>)> {
    Some(match reason {
        Reason::NotJournaled { number } => ("approval_not_journaled", Some(*number)),
        Reason::NotStored { number } => ("approval_missing", Some(*number)),
        Reason::BadSignature { number, .. } => ("approval_signature_invalid", Some(*number)),
        Reason::BadStatement { number, .. } => ("approval_statement_invalid", Some(*number)),
        Reason::JournalDisagrees { number, .. } => ("approval_journal_mismatch", Some(*number)),
        Reason::DuplicateNumber { number } => ("approval_duplicate_number", Some(*number)),
        Reason::OtherPlan { number, .. } => ("approval_other_plan", Some(*number)),
        Reason::KeyMismatch { number, .. } => ("approval_key_mismatch", Some(*number)),
        Reason::PinnedRoster { .. } => ("plan_roster_mismatch", None),
        Reason::ProposerOtherPlan => ("plan_signature_invalid", None),
        Reason::QuorumInconsistent { .. } => ("plan_quorum_inconsistent", None),
        Reason::CreatedAtMismatch { .. } => ("plan_created_at_mismatch", None),
        // Judged against the roster and policy given today, not a fault of the record: a
        // proposer since removed, a lifetime since shortened. Reported in the plan's reasons.
        Reason::ProposerNotListed { .. }
        | Reason::LifetimeTooLong { .. }
        | Reason::NoQuorum
        | Reason::NotEnough { .. }
        | Reason::Vetoed { .. }
        | Reason::Expired { .. }
        | Reason::ClockSkew { .. } => return None,
    })
}
