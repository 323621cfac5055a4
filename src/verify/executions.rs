//! A case's execution entries, checked against the journal's own record: every `step_started`,
//! `step_write`, `step_done`, `step_failed` and `actions_sealed` entry must come after an
//! `execution_started` entry of the same plan and digest with no `actions_sealed` between, and every
//! `execution_started` must name a plan an earlier `plan_proposed` entry recorded with that
//! digest. Whether that plan had quorum when it started is `plans`' check.

use super::Report;
use crate::case::{CheckedChain, Details};
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};
use crate::store::StoreKey;

/// Reports `execution_unknown_plan` and `step_without_execution`.
pub(super) fn check_executions(case: &CaseId, chain: &CheckedChain, report: &mut Report) {
    let mut proposed: Vec<(PlanId, Sha256Digest)> = Vec::new();
    let mut started: Vec<(PlanId, Sha256Digest)> = Vec::new();
    for (entry, _) in &chain.entries {
        let seq = entry.seq;
        let subject = || StoreKey::JournalEntry(case.clone(), seq).path();
        let (plan, digest) = match &entry.details {
            Details::PlanProposed(p) => {
                proposed.push((p.plan.clone(), p.plan_sha256));
                continue;
            }
            Details::ExecutionStarted(s) => {
                if !proposed.contains(&(s.plan.clone(), s.plan_sha256)) {
                    report.problem(
                        "execution_unknown_plan",
                        subject(),
                        format!("entry {seq} starts executing plan {} with digest {}, which no earlier plan_proposed entry records", s.plan, s.plan_sha256),
                    );
                }
                started.push((s.plan.clone(), s.plan_sha256));
                continue;
            }
            Details::StepStarted(s) => (&s.plan, Some(s.plan_sha256)),
            Details::StepDone(s) => (&s.plan, Some(s.plan_sha256)),
            Details::StepFailed(s) => (&s.plan, Some(s.plan_sha256)),
            Details::ActionsSealed(s) => (&s.plan, Some(s.plan_sha256)),
            Details::StepWrite(s) => (&s.plan, Some(s.plan_sha256)),
            _ => continue,
        };
        let ok = started
            .iter()
            .any(|(p, d)| p == plan && digest.is_none_or(|x| x == *d));
        // An execution ends with its actions bundle: entries after it need a new start.
        if let Details::ActionsSealed(a) = &entry.details {
            started.retain(|(p, d)| !(p == &a.plan && *d == a.plan_sha256));
        }
        if !ok {
            report.problem(
                "step_without_execution",
                subject(),
                format!(
                    "entry {seq} ({:?}) records a step of plan {plan}, but no execution of that plan is under way there (no execution_started since its last actions bundle)",
                    entry.kind()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::entry::{CountedApproval, ExecutionStarted, StepStarted};
    use crate::policy::containment::StepKind;
    use crate::verify::fixtures::{entry, proposed};

    const AT: &str = "2026-12-02T02:00:00.000Z";

    fn started(plan: &str, digest_of: &str) -> Details {
        Details::ExecutionStarted(ExecutionStarted {
            approvals: Vec::<CountedApproval>::new(),
            api_server_date: "2026-12-02T02:00:00Z".into(),
            done_before: Vec::new(),
            plan: PlanId::new(plan).unwrap(),
            plan_sha256: Sha256Digest::of(digest_of.as_bytes()),
            required: 2,
        })
    }

    fn step(plan: &str, digest_of: &str) -> Details {
        Details::StepStarted(StepStarted {
            intended: Vec::new(),
            kind: StepKind::BlockIps,
            number: 1,
            plan: PlanId::new(plan).unwrap(),
            plan_sha256: Sha256Digest::of(digest_of.as_bytes()),
            target: "api-gateway".into(),
        })
    }

    fn codes(details: Vec<Details>) -> Vec<(String, String)> {
        let entries = details
            .into_iter()
            .enumerate()
            .map(|(i, d)| entry(i as u64 + 1, AT, d))
            .collect();
        let chain = CheckedChain {
            entries,
            ..CheckedChain::default()
        };
        let case = CaseId::new("20261202-020000-0000abcd").unwrap();
        let mut report = Report::default();
        check_executions(&case, &chain, &mut report);
        report
            .problems
            .iter()
            .map(|p| (p.code.to_owned(), p.subject.clone()))
            .collect()
    }

    const PLAN: &str = "20261202-020000-0000beef";

    #[test]
    fn steps_of_a_started_execution_of_a_proposed_plan_are_sound() {
        assert!(codes(vec![proposed(PLAN), started(PLAN, PLAN), step(PLAN, PLAN)]).is_empty());
    }

    #[test]
    fn a_step_without_its_execution_or_of_another_digest_is_reported() {
        let got = codes(vec![proposed(PLAN), step(PLAN, PLAN)]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "step_without_execution");
        assert!(got[0].1.ends_with("journal/0000000002.json"), "{got:?}");
        let got = codes(vec![
            proposed(PLAN),
            started(PLAN, PLAN),
            step(PLAN, "another"),
        ]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "step_without_execution");
    }

    #[test]
    fn a_step_after_its_execution_was_sealed_is_reported() {
        use crate::case::entry::{ActionsSealed, ExecutionOutcome, SealRef, SealedArchiveRef};
        let sealed = Details::ActionsSealed(ActionsSealed {
            archive: SealedArchiveRef {
                sha256: Sha256Digest::of(b"a"),
                size: 1,
                uri: "file:///a".into(),
                version_id: None,
            },
            bundle_id: crate::id::BundleId::new("20261202-020000-00000001").unwrap(),
            key_id: crate::id::KeyId::new("0123456789abcdef").unwrap(),
            outcome: ExecutionOutcome::Done,
            plan: PlanId::new(PLAN).unwrap(),
            plan_sha256: Sha256Digest::of(PLAN.as_bytes()),
            seal: SealRef {
                sha256: Sha256Digest::of(b"s"),
                uri: "file:///s".into(),
                version_id: None,
            },
        });
        let got = codes(vec![
            proposed(PLAN),
            started(PLAN, PLAN),
            sealed,
            step(PLAN, PLAN),
        ]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, "step_without_execution");
    }

    #[test]
    fn an_execution_of_a_plan_never_proposed_is_reported() {
        let got = codes(vec![proposed(PLAN), started(PLAN, "forged")]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "execution_unknown_plan");
    }
}
