//! A plan that passes its `not_after` without being executed: `expire` journals `plan_expired`
//! once — the journal is read first, and again after every append that lost a race, so a plan
//! is recorded as expired once however many writers notice it — with the quorum as it stood at
//! `not_after`. A plan a reject ended is not recorded as expired. `open_plans` names the plans
//! of a journal that may still expire: proposed, and neither recorded as expired nor rejected.
//!
//! Execution does not exist yet: every plan that is not rejected counts as awaiting it.

use time::OffsetDateTime;

use super::state::{Plan, Proposed};
use super::status::status_in;
use super::store::PlanError;
use crate::approval::{Decision, Roster};
use crate::case::entry::PlanExpired;
use crate::case::journal::{self, CheckedChain, Details, Journal, JournalError};
use crate::id::PlanId;
use crate::keys::SigningKey;
use crate::policy::containment::ContainmentPolicy;
use crate::store::{Store, StoreError};

/// What `expire` found or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// This call journaled the entry.
    Recorded(PlanExpired),
    /// The journal records the plan as expired already (another replica, an earlier run).
    AlreadyRecorded,
    /// A reject ended the plan: it is not recorded as expired.
    Rejected,
    /// The plan's execution started before: it did not expire unexecuted.
    Executed,
    /// `not_after` is not past on this clock yet.
    NotYet,
}

/// Journals `plan_expired` for `plan` if `now` is past its `not_after`, the journal does not
/// record it already and no reject ended it. The quorum recorded is the plan's at `not_after`,
/// judged with `current_roster`. `store` is the case's store as its claim's holder writes it.
pub fn expire(
    store: &dyn Store,
    key: &SigningKey,
    plan: &Plan<Proposed>,
    current_roster: &Roster,
    policy: Option<&ContainmentPolicy>,
    now: OffsetDateTime,
) -> Result<Expiry, PlanError> {
    let chain = journal::check_chain(store, plan.case())?;
    if recorded(&chain, plan.id()) {
        return Ok(Expiry::AlreadyRecorded);
    }
    if executed(&chain, plan.id()) {
        return Ok(Expiry::Executed);
    }
    if now <= plan.not_after() {
        return Ok(Expiry::NotYet);
    }
    let status = status_in(store, plan, current_roster, policy, plan.not_after())?;
    if status.rejected {
        return Ok(Expiry::Rejected);
    }
    let details = PlanExpired {
        counted: status.counted,
        not_after: plan.doc().not_after.clone(),
        plan: plan.id().clone(),
        plan_sha256: plan.digest(),
        quorum_reached: status.quorum_reached,
        // The plan's own need, as its proposal recorded it (`verify` compares the two); the
        // quorum judged may have needed more (the policy in force's), which `counted` and
        // `quorum_reached` reflect.
        required: plan.required(),
    };
    // When another writer appended first, the head is read again; that writer may have been
    // another replica recording this very expiry, so the journal is checked each time.
    let mut chain = chain;
    for _ in 0..8 {
        if recorded(&chain, plan.id()) {
            return Ok(Expiry::AlreadyRecorded);
        }
        let head = chain
            .head()
            .ok_or_else(|| PlanError::NoJournal(plan.case().clone()))?;
        let mut j = Journal::resume(store, plan.case().clone(), head, key);
        match j.append("custody", Details::PlanExpired(details.clone())) {
            Ok(_) => return Ok(Expiry::Recorded(details)),
            Err(JournalError::Append {
                source: StoreError::AlreadyExists { .. },
                ..
            }) => {}
            Err(e) => return Err(e.into()),
        }
        chain = journal::check_chain(store, plan.case())?;
    }
    Err(PlanError::Proposal {
        plan: plan.id().clone(),
        message: "the case's journal kept changing; the expiry is recorded later".into(),
    })
}

/// Whether the journal records `plan` as expired.
fn recorded(chain: &CheckedChain, plan: &PlanId) -> bool {
    journaled_expiries(chain).any(|(_, e)| &e.plan == plan)
}

/// Every `plan_expired` entry of the journal, with its sequence number.
pub fn journaled_expiries(chain: &CheckedChain) -> impl Iterator<Item = (u64, &PlanExpired)> {
    chain.entries.iter().filter_map(|(e, _)| match &e.details {
        Details::PlanExpired(x) => Some((e.seq, x)),
        _ => None,
    })
}

/// Whether an execution of `plan` started.
fn executed(chain: &CheckedChain, plan: &PlanId) -> bool {
    chain
        .entries
        .iter()
        .any(|(e, _)| matches!(&e.details, Details::ExecutionStarted(x) if &x.plan == plan))
}

/// The plans of the journal that may still expire, with their `not_after` as proposed: the
/// last `plan_proposed` of each plan, unless the plan is recorded as expired, a journaled
/// reject ended it, or its execution started. A `not_after` that is not a time is left to
/// `load` to refuse.
pub fn open_plans(chain: &CheckedChain) -> Vec<(PlanId, OffsetDateTime)> {
    let mut open = std::collections::BTreeMap::new();
    for (e, _) in &chain.entries {
        match &e.details {
            // An expiry plan is executed by custody at once, or closed: it never awaits approval.
            Details::PlanProposed(p)
                if p.lifts.as_ref().map(|l| l.kind)
                    == Some(crate::case::entry::LiftKind::Expiry) => {}
            Details::PlanProposed(p) => {
                if let Some(t) = crate::timefmt::parse(&p.not_after) {
                    open.insert(p.plan.clone(), t);
                }
            }
            Details::PlanExpired(x) => {
                open.remove(&x.plan);
            }
            Details::ExecutionStarted(x) => {
                open.remove(&x.plan);
            }
            Details::ApprovalRecorded(a) if a.decision == Decision::Reject => {
                open.remove(&a.plan);
            }
            _ => {}
        }
    }
    open.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::entry::{PlanProposed, ProposedBy};
    use crate::case::Entry;
    use crate::digest::Sha256Digest;
    use crate::id::KeyId;

    fn entry(seq: u64, details: Details) -> (Entry, Sha256Digest) {
        let e = Entry {
            seq,
            prev_sha256: None,
            at: "2026-12-02T01:00:00.000Z".into(),
            actor: "custody".into(),
            details,
        };
        (e, Sha256Digest::of(&seq.to_be_bytes()))
    }

    fn proposed(plan: &str, not_after: &str) -> Details {
        Details::PlanProposed(PlanProposed {
            not_after: not_after.into(),
            plan: PlanId::new(plan).unwrap(),
            plan_sha256: Sha256Digest::of(plan.as_bytes()),
            proposer: ProposedBy::Collector {
                key_id: KeyId::new("0123456789abcdef").unwrap(),
            },
            required: 2,
            lifts: None,
        })
    }

    fn expired(plan: &str) -> Details {
        Details::PlanExpired(PlanExpired {
            counted: 0,
            not_after: "2026-12-02T03:00:00Z".into(),
            plan: PlanId::new(plan).unwrap(),
            plan_sha256: Sha256Digest::of(plan.as_bytes()),
            quorum_reached: false,
            required: 2,
        })
    }

    fn rejected(plan: &str) -> Details {
        let text = format!(
            r#"{{"approval":1,"decision":"reject","key_fingerprint":"SHA256:0kqsQLaOGyL8rNQCsJ2iVsqstud4kQMLQgJlYu/usAE","plan":"{plan}","principal":"alice@example.org","statement_sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}}"#
        );
        Details::ApprovalRecorded(serde_json::from_str(&text).unwrap())
    }

    #[test]
    fn open_plans_leave_out_the_expired_and_the_rejected() {
        let chain = CheckedChain {
            entries: vec![
                entry(5, proposed("plan-a", "2026-12-02T03:00:00Z")),
                entry(6, proposed("plan-b", "2026-12-02T04:00:00Z")),
                entry(7, proposed("plan-c", "2026-12-02T05:00:00Z")),
                entry(8, proposed("plan-d", "not a time")),
                entry(9, expired("plan-a")),
                entry(10, rejected("plan-c")),
            ],
            problems: Vec::new(),
        };
        let open = open_plans(&chain);
        assert_eq!(
            open,
            vec![(
                PlanId::new("plan-b").unwrap(),
                crate::timefmt::parse("2026-12-02T04:00:00Z").unwrap()
            )]
        );
        assert!(recorded(&chain, &PlanId::new("plan-a").unwrap()));
        assert!(!recorded(&chain, &PlanId::new("plan-b").unwrap()));
        assert_eq!(journaled_expiries(&chain).count(), 1);
    }
}
