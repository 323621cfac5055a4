//! A case's `plan_expired` entries, checked against the journal's own record of the plans:
//! each must name a plan an earlier `plan_proposed` entry recorded, with that proposal's digest
//! and `not_after`, be journaled after that `not_after`, and be the only one for its plan.

use super::Report;
use crate::case::entry::{PlanExpired, PlanProposed};
use crate::case::{CheckedChain, Details};
use crate::id::CaseId;
use crate::store::StoreKey;

/// Reports what is wrong with the case's `plan_expired` entries (see the module's header):
/// `plan_expired_unknown_plan`, `plan_expired_digest_mismatch`, `plan_expired_mismatch` (its
/// `not_after` or `required` is not the proposal's), `plan_expired_early`,
/// `plan_expired_duplicate`.
pub(super) fn check_expiries(case: &CaseId, chain: &CheckedChain, report: &mut Report) {
    let mut proposed: Vec<&PlanProposed> = Vec::new();
    let mut expired: Vec<&PlanExpired> = Vec::new();
    for (entry, _) in &chain.entries {
        match &entry.details {
            Details::PlanProposed(p) => proposed.push(p),
            Details::PlanExpired(x) => {
                let subject = StoreKey::JournalEntry(case.clone(), entry.seq).path();
                if expired.iter().any(|e| e.plan == x.plan) {
                    report.problem(
                        "plan_expired_duplicate",
                        subject.clone(),
                        format!(
                            "entry {} records plan {} as expired again",
                            entry.seq, x.plan
                        ),
                    );
                }
                expired.push(x);
                check_one(entry.seq, &entry.at, x, &proposed, subject, report);
            }
            _ => {}
        }
    }
}

fn check_one(
    seq: u64,
    at: &str,
    x: &PlanExpired,
    proposed: &[&PlanProposed],
    subject: String,
    report: &mut Report,
) {
    let of_plan: Vec<&&PlanProposed> = proposed.iter().filter(|p| p.plan == x.plan).collect();
    if of_plan.is_empty() {
        report.problem(
            "plan_expired_unknown_plan",
            subject,
            format!(
                "entry {seq} records plan {} as expired, but no earlier plan_proposed entry records that plan",
                x.plan
            ),
        );
        return;
    }
    let Some(p) = of_plan.iter().find(|p| p.plan_sha256 == x.plan_sha256) else {
        report.problem(
            "plan_expired_digest_mismatch",
            subject,
            format!(
                "entry {seq} records plan {} with digest {} as expired, but its plan_proposed entry records digest {}",
                x.plan, x.plan_sha256, of_plan[0].plan_sha256
            ),
        );
        return;
    };
    if p.not_after != x.not_after || p.required != x.required {
        report.problem(
            "plan_expired_mismatch",
            subject.clone(),
            format!(
                "entry {seq} records plan {} as expiring at {} needing {} approvals, but it was proposed to expire at {} needing {}",
                x.plan, x.not_after, x.required, p.not_after, p.required
            ),
        );
    }
    let not_after = crate::timefmt::parse(&p.not_after);
    let journaled = crate::timefmt::parse(at);
    if let (Some(not_after), Some(journaled)) = (not_after, journaled) {
        if journaled <= not_after {
            report.problem(
                "plan_expired_early",
                subject,
                format!(
                    "entry {seq} records plan {} as expired at {at}, before its not_after {}",
                    x.plan, p.not_after
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Entry;
    use crate::digest::Sha256Digest;
    use crate::id::PlanId;
    use crate::verify::fixtures::{entry, proposed};

    fn expired(plan: &str, digest_of: &str, not_after: &str) -> Details {
        Details::PlanExpired(PlanExpired {
            counted: 1,
            not_after: not_after.into(),
            plan: PlanId::new(plan).unwrap(),
            plan_sha256: Sha256Digest::of(digest_of.as_bytes()),
            quorum_reached: false,
            required: 2,
        })
    }

    fn codes(entries: Vec<(Entry, Sha256Digest)>) -> Vec<(&'static str, String)> {
        let case = CaseId::new("20261202-010000-00000001").unwrap();
        let chain = CheckedChain {
            entries,
            problems: Vec::new(),
        };
        let mut report = Report::default();
        check_expiries(&case, &chain, &mut report);
        report
            .problems
            .into_iter()
            .map(|p| (p.code, p.subject))
            .collect()
    }

    const BEFORE: &str = "2026-12-02T02:00:00.000Z";
    const AFTER: &str = "2026-12-02T03:00:01.000Z";
    const NOT_AFTER: &str = "2026-12-02T03:00:00Z";

    #[test]
    fn a_sound_expiry_is_no_problem() {
        let found = codes(vec![
            entry(5, BEFORE, proposed("plan-a")),
            entry(6, AFTER, expired("plan-a", "plan-a", NOT_AFTER)),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn an_expiry_of_no_plan_of_another_digest_early_or_twice_is_reported() {
        let found = codes(vec![
            // Before its proposal: unknown at that point.
            entry(4, AFTER, expired("plan-a", "plan-a", NOT_AFTER)),
            entry(5, BEFORE, proposed("plan-a")),
            entry(6, BEFORE, proposed("plan-b")),
            entry(7, AFTER, expired("plan-a", "plan-a", NOT_AFTER)),
            entry(8, AFTER, expired("plan-b", "another plan", NOT_AFTER)),
            entry(9, BEFORE, expired("plan-a", "plan-a", NOT_AFTER)),
            entry(10, AFTER, expired("plan-z", "plan-z", NOT_AFTER)),
            entry(
                11,
                "2026-12-02T05:00:00.000Z",
                expired("plan-b", "plan-b", "2026-12-02T04:00:00Z"),
            ),
        ]);
        let at = |seq: u64| format!("cases/20261202-010000-00000001/journal/{seq:010}.json");
        assert_eq!(
            found,
            vec![
                ("plan_expired_unknown_plan", at(4)),
                ("plan_expired_duplicate", at(7)),
                ("plan_expired_digest_mismatch", at(8)),
                ("plan_expired_duplicate", at(9)),
                ("plan_expired_early", at(9)),
                ("plan_expired_unknown_plan", at(10)),
                ("plan_expired_duplicate", at(11)),
                ("plan_expired_mismatch", at(11)),
            ]
        );
    }
}
