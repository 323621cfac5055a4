//! A case's `plan_stale` entries, checked against the journal's own record of the plans: each
//! must name a plan an earlier `plan_proposed` entry recorded, with that proposal's digest, and
//! name at least one step, each once.

use std::collections::BTreeSet;

use super::Report;
use crate::case::entry::PlanProposed;
use crate::case::{CheckedChain, Details};
use crate::id::CaseId;
use crate::store::StoreKey;

/// Reports what is wrong with the case's `plan_stale` entries: `plan_stale_unknown_plan`,
/// `plan_stale_digest_mismatch`, `plan_stale_steps` (no step, or one named twice).
pub(super) fn check_stales(case: &CaseId, chain: &CheckedChain, report: &mut Report) {
    let mut proposed: Vec<&PlanProposed> = Vec::new();
    for (entry, _) in &chain.entries {
        match &entry.details {
            Details::PlanProposed(p) => proposed.push(p),
            Details::PlanStale(s) => {
                let subject = StoreKey::JournalEntry(case.clone(), entry.seq).path();
                let seq = entry.seq;
                let of_plan: Vec<&&PlanProposed> =
                    proposed.iter().filter(|p| p.plan == s.plan).collect();
                if of_plan.is_empty() {
                    report.problem(
                        "plan_stale_unknown_plan",
                        subject,
                        format!(
                            "entry {seq} records plan {} as stale, but no earlier plan_proposed entry records that plan",
                            s.plan
                        ),
                    );
                    continue;
                }
                if !of_plan.iter().any(|p| p.plan_sha256 == s.plan_sha256) {
                    report.problem(
                        "plan_stale_digest_mismatch",
                        subject.clone(),
                        format!(
                            "entry {seq} records plan {} with digest {} as stale, but its plan_proposed entry records digest {}",
                            s.plan, s.plan_sha256, of_plan[0].plan_sha256
                        ),
                    );
                }
                let numbers: BTreeSet<u32> = s.steps.iter().map(|x| x.number).collect();
                if s.steps.is_empty() || numbers.len() != s.steps.len() {
                    report.problem(
                        "plan_stale_steps",
                        subject,
                        format!(
                            "entry {seq} records plan {} as stale without naming each stale step once",
                            s.plan
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::entry::{PlanStale, StaleStepRecord};
    use crate::digest::Sha256Digest;
    use crate::id::PlanId;
    use crate::policy::containment::StepKind;
    use crate::verify::fixtures::{entry, proposed};

    const AT: &str = "2026-12-02T02:00:00.000Z";

    fn stale(plan: &str, digest_of: &str, numbers: &[u32]) -> Details {
        Details::PlanStale(PlanStale {
            plan: PlanId::new(plan).unwrap(),
            plan_sha256: Sha256Digest::of(digest_of.as_bytes()),
            steps: numbers
                .iter()
                .map(|n| StaleStepRecord {
                    changes: vec!["NetworkPolicy web changed".into()],
                    kind: StepKind::BlockIps,
                    number: *n,
                    target: "web".into(),
                })
                .collect(),
        })
    }

    #[test]
    fn stale_records_of_no_plan_another_digest_or_no_step_are_reported() {
        let case = CaseId::new("20261202-010000-00000001").unwrap();
        let chain = CheckedChain {
            entries: vec![
                entry(4, AT, stale("plan-a", "plan-a", &[1])),
                entry(5, AT, proposed("plan-a")),
                entry(6, AT, stale("plan-a", "plan-a", &[1, 2])),
                entry(7, AT, stale("plan-a", "plan-a", &[1])),
                entry(8, AT, stale("plan-a", "another", &[1])),
                entry(9, AT, stale("plan-a", "plan-a", &[])),
                entry(10, AT, stale("plan-a", "plan-a", &[2, 2])),
            ],
            problems: Vec::new(),
        };
        let mut report = Report::default();
        check_stales(&case, &chain, &mut report);
        let found: Vec<(&str, String)> = report
            .problems
            .into_iter()
            .map(|p| (p.code, p.subject))
            .collect();
        let at = |seq: u64| format!("cases/20261202-010000-00000001/journal/{seq:010}.json");
        assert_eq!(
            found,
            vec![
                ("plan_stale_unknown_plan", at(4)),
                ("plan_stale_digest_mismatch", at(8)),
                ("plan_stale_steps", at(9)),
                ("plan_stale_steps", at(10)),
            ]
        );
    }
}
