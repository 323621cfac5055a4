//! What a person browsing a store sees of one case, read from its journal alone: when and how it
//! was opened, where its collection stands (the daemon API's state names), the bundles sealed
//! with their archive digests, the last findings journaled, every failure, and a timeline of its
//! entries with a one-line description each. A journal that does not check (a broken link, an
//! entry that cannot be read) is kept as the case's problems, never hidden: `summarize` always
//! answers. Nothing here verifies archives or signatures; that is `verify`'s.

use serde::Serialize;

use super::entry::{Details, EntryKind, Findings};
use super::state::{CaseState, Outcome, Status};
use super::{check_chain, CheckedChain};
use crate::digest::Sha256Digest;
use crate::id::{BundleId, CaseId, KeyId};
use crate::store::{Store, StoreError, StoreUri};

/// One case, as `custody cases` lists it and `cases show` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseSummary {
    pub case_id: CaseId,
    /// When entry 1 says the case was opened (RFC 3339).
    pub opened_at: Option<String>,
    pub trigger: Option<TriggerSummary>,
    /// `collecting`, `storing`, `sealed` or `failed` (see `state_name`).
    pub state: &'static str,
    pub alert_resolved: bool,
    pub journal_entries: usize,
    pub bundles: Vec<BundleSummary>,
    /// The last `findings` entry (the daemon journals one per sealed bundle; the CLI none).
    pub findings: Option<Findings>,
    pub failures: Vec<FailureSummary>,
    pub timeline: Vec<TimelineEntry>,
    /// Why the journal does not check; empty when it does.
    pub problems: Vec<CaseProblem>,
}

/// Who or what opened the case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TriggerSummary {
    /// `cli`, `alert` or `api`.
    pub kind: String,
    pub requested_by: String,
    /// The alert's `alertname` label, for a case an alert opened.
    pub alert: Option<String>,
}

/// A bundle the journal records as sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BundleSummary {
    pub bundle_id: BundleId,
    pub sealed_at: String,
    /// The `bundle_sealed` entry.
    pub seq: u64,
    pub archive_sha256: Sha256Digest,
    pub archive_size: u64,
    pub key_id: KeyId,
}

/// A failure the journal records: a source not captured whole (with the bundle sealed without
/// it), or a collection that failed or was interrupted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailureSummary {
    pub seq: u64,
    /// `source_failed`, `collection_failed` or `collection_interrupted`.
    pub kind: EntryKind,
    pub bundle_id: Option<BundleId>,
    pub message: String,
}

/// One journal entry, in a line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub kind: EntryKind,
    pub summary: String,
}

/// What is wrong with the case's journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseProblem {
    pub subject: String,
    pub message: String,
}

impl CaseSummary {
    /// How many suspicious clients the last findings name; `None` when no findings are journaled.
    pub fn suspicious(&self) -> Option<usize> {
        self.findings.as_ref().map(|f| f.suspicious.len())
    }

    /// Whether the journal checks.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The summary of `case` in `store`; a journal that cannot be read or does not check is
/// summarised as far as it goes, with its problems.
pub fn summarize(store: &dyn Store, case: &CaseId) -> CaseSummary {
    let s3 = StoreUri::is_s3(&store.uri());
    match check_chain(store, case) {
        Ok(chain) => of_chain(case, &chain, s3),
        Err(e) => {
            let mut summary = of_chain(case, &CheckedChain::default(), s3);
            summary.problems.push(unreadable(case, &e));
            summary
        }
    }
}

fn unreadable(case: &CaseId, e: &StoreError) -> CaseProblem {
    CaseProblem {
        subject: format!("cases/{case}/journal"),
        message: format!("cannot read the journal: {e}"),
    }
}

/// The summary of a checked chain; `s3`: whether the case is in S3, where a case is stored once
/// its objects' versions are recorded.
pub fn of_chain(case: &CaseId, chain: &CheckedChain, s3: bool) -> CaseSummary {
    let state = CaseState::of(chain);
    let mut problems: Vec<CaseProblem> = chain
        .problems
        .iter()
        .map(|p| CaseProblem {
            subject: p.key.clone(),
            message: p.message.clone(),
        })
        .collect();
    if state.opened.is_none() {
        problems.push(CaseProblem {
            subject: format!("cases/{case}/journal"),
            message: "no entry 1 opening the case".into(),
        });
    }
    let trigger = state.opened.as_ref().map(|o| TriggerSummary {
        kind: o.trigger.kind.clone(),
        requested_by: o.trigger.requested_by.clone(),
        alert: o
            .trigger_details
            .as_ref()
            .and_then(|d| d.alert.as_ref())
            .and_then(alert_name),
    });
    let bundles = state
        .bundles()
        .map(|(seq, at, b)| BundleSummary {
            bundle_id: b.bundle_id.clone(),
            sealed_at: at.to_owned(),
            seq,
            archive_sha256: b.archive.sha256,
            archive_size: b.archive.size,
            key_id: b.key_id.clone(),
        })
        .collect();
    let timeline = chain
        .entries
        .iter()
        .map(|(e, _)| TimelineEntry {
            seq: e.seq,
            at: e.at.clone(),
            actor: e.actor.clone(),
            kind: e.kind(),
            summary: describe(&e.details),
        })
        .collect();
    CaseSummary {
        case_id: case.clone(),
        opened_at: state.opened.as_ref().map(|o| o.at.clone()),
        trigger,
        state: state_name(&state, s3),
        alert_resolved: state.alert_resolved,
        journal_entries: state.entries,
        bundles,
        findings: state.findings.clone(),
        failures: failures(&state),
        timeline,
        problems,
    }
}

/// The state's name, as the daemon's case API gives it (`Status::api_name`), with two
/// refinements that API makes or needs no: on S3 a sealed case is `storing` until its objects'
/// versions are recorded; a case the CLI collected, which journals no findings, is `sealed`
/// once its bundle is (and, on S3, stored).
pub fn state_name(state: &CaseState, s3: bool) -> &'static str {
    let cli = state
        .opened
        .as_ref()
        .is_some_and(|o| o.trigger.kind == "cli");
    let status = match state.status {
        Status::Sealed if s3 && !state.stored_recorded => Status::Storing,
        Status::Storing if cli && (!s3 || state.stored_recorded) => Status::Sealed,
        status => status,
    };
    status.api_name()
}

/// The alert's name (its `alertname` label), as Alertmanager sent it.
fn alert_name(alert: &serde_json::Value) -> Option<String> {
    alert
        .get("labels")
        .and_then(|l| l.get("alertname"))
        .and_then(|n| n.as_str())
        .map(str::to_owned)
}

fn failures(state: &CaseState) -> Vec<FailureSummary> {
    let mut out = Vec::new();
    for outcome in &state.outcomes {
        match outcome {
            Outcome::Sealed {
                bundle, failures, ..
            } => out.extend(failures.iter().map(|(seq, f)| FailureSummary {
                seq: *seq,
                kind: EntryKind::SourceFailed,
                bundle_id: Some(bundle.bundle_id.clone()),
                message: f.text(),
            })),
            Outcome::Failed { seq, details } => out.push(FailureSummary {
                seq: *seq,
                kind: EntryKind::CollectionFailed,
                bundle_id: None,
                message: details.error.clone(),
            }),
            Outcome::Interrupted { seq, details } => out.push(FailureSummary {
                seq: *seq,
                kind: EntryKind::CollectionInterrupted,
                bundle_id: details.bundle_id.clone(),
                message: match &details.signal {
                    Some(signal) => format!("stopped by {signal}: {}", details.error),
                    None => details.error.clone(),
                },
            }),
        }
    }
    out
}

/// For a release: the addresses it lifted and kept, and of which plan.
fn released_text(d: &super::entry::StepDone) -> String {
    if d.kind != crate::policy::containment::StepKind::ReleaseIps {
        return String::new();
    }
    let list = |key: &str| {
        d.result[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    format!(
        ": plan {}'s block lifted; released [{}], kept [{}]",
        d.result["plan"].as_str().unwrap_or("?"),
        list("released"),
        list("kept")
    )
}

/// One line saying what an entry recorded.
pub fn describe(details: &Details) -> String {
    match details {
        Details::CaseOpened(d) => {
            let alert = d
                .trigger_details
                .as_ref()
                .and_then(|t| t.alert.as_ref())
                .and_then(alert_name)
                .map_or(String::new(), |a| format!(", alert {a}"));
            format!(
                "opened by {} ({}){alert}",
                d.trigger.requested_by, d.trigger.kind
            )
        }
        Details::SourceCaptured(d) => {
            format!(
                "captured {} as {} ({} bytes)",
                d.source, d.bag_path, d.bytes
            )
        }
        Details::SourceFailed(f) => format!("source failed: {}", f.text()),
        Details::BundleSealed(b) => format!(
            "sealed bundle {} (archive {} bytes, SHA-256 {}, key {})",
            b.bundle_id, b.archive.size, b.archive.sha256, b.key_id
        ),
        Details::ObjectsStored(o) => format!("{} objects stored and locked", o.objects.len()),
        Details::Findings(f) => format!(
            "findings for bundle {}: {} suspicious clients in {} lines{}",
            f.bundle_id,
            f.suspicious.len(),
            f.lines,
            if f.complete { "" } else { " (incomplete)" }
        ),
        Details::CollectionFailed(d) => format!("collection failed: {}", d.error),
        Details::CollectionRestarted(d) => format!("collection restarted: {}", d.reason),
        Details::AlertResolved(_) => "the alert was resolved".into(),
        Details::CollectionInterrupted(d) => match &d.signal {
            Some(signal) => format!("collection interrupted by {signal}: {}", d.error),
            None => format!("collection interrupted: {}", d.error),
        },
        Details::PlanProposed(p) => {
            let by = match &p.proposer {
                super::entry::ProposedBy::Collector { key_id } => {
                    format!("the daemon (collector key {key_id})")
                }
                super::entry::ProposedBy::Person {
                    principal,
                    key_fingerprint,
                } => format!("{principal} (key {key_fingerprint})"),
            };
            match &p.lifts {
                Some(l) if l.kind == super::entry::LiftKind::Expiry => format!(
                    "expiry plan {} proposed by custody{} (SHA-256 {}): lifts the blocks of plan {} whose expiry passed, pre-approved by it; to run by {}",
                    p.plan,
                    match &p.proposer {
                        super::entry::ProposedBy::Collector { key_id } => format!(" with collector key {key_id}"),
                        super::entry::ProposedBy::Person { .. } => format!(" — NOT: {by}"),
                    },
                    p.plan_sha256,
                    l.plan,
                    p.not_after
                ),
                Some(l) => format!(
                    "{} plan {} of plan {} proposed by {by} (SHA-256 {}), needs {} approvals by {}",
                    l.kind.as_str(), p.plan, l.plan, p.plan_sha256, p.required, p.not_after
                ),
                None => format!(
                    "plan {} proposed by {by} (SHA-256 {}), needs {} approvals by {}",
                    p.plan, p.plan_sha256, p.required, p.not_after
                ),
            }
        }
        Details::PlanStale(p) => format!(
            "plan {} not executed, stale (SHA-256 {}): {}",
            p.plan,
            p.plan_sha256,
            p.steps
                .iter()
                .map(|s| format!("step {} ({}): {}", s.number, s.target, s.changes.join("; ")))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Details::PlanExpired(p) => format!(
            "plan {} expired at {} unexecuted (SHA-256 {}), {} of {} approvals counted{}",
            p.plan,
            p.not_after,
            p.plan_sha256,
            p.counted,
            p.required,
            if p.quorum_reached {
                ", quorum reached"
            } else {
                ""
            }
        ),
        Details::ApprovalRecorded(a) => format!(
            "plan {}: {} by {} (key {}), approval {}",
            a.plan, a.decision, a.principal, a.key_fingerprint, a.approval
        ),
        Details::ExecutionStarted(e) => format!(
            "plan {} execution started (SHA-256 {}), {}{}",
            e.plan,
            e.plan_sha256,
            if e.required == 0 && e.approvals.is_empty() {
                "needing no approvals (an expiry)".to_owned()
            } else {
                format!(
                    "approved by {}",
                    e.approvals
                        .iter()
                        .map(|a| a.principal.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            if e.done_before.is_empty() {
                String::new()
            } else {
                format!(", resumed after steps {:?}", e.done_before)
            }
        ),
        Details::StepStarted(s) => format!(
            "plan {} step {} ({}, {}) started",
            s.plan,
            s.number,
            s.kind.as_str(),
            s.target
        ),
        Details::StepWrite(w) => format!(
            "plan {} step {}: {} {} {}",
            w.plan,
            w.number,
            w.op,
            w.object,
            match (w.phase, &w.outcome) {
                (super::entry::WritePhase::Sending, _) => "sending".to_owned(),
                (_, Some(o)) => match w.status {
                    Some(code) => format!("{o} ({code})"),
                    None => o.clone(),
                },
                (_, None) => "answered".to_owned(),
            }
        ),
        Details::StepDone(d) => format!(
            "plan {} step {} ({}) done{}{}",
            d.plan,
            d.number,
            d.kind.as_str(),
            released_text(d),
            if d.warnings.is_empty() {
                String::new()
            } else {
                format!(", warnings: {}", d.warnings.join("; "))
            }
        ),
        Details::StepFailed(f) => format!(
            "plan {} step {} ({}) FAILED: {}",
            f.plan,
            f.number,
            f.kind.as_str(),
            f.error
        ),
        Details::ActionsSealed(a) => format!(
            "plan {} execution {}; actions bundle {} sealed (archive SHA-256 {})",
            a.plan,
            match a.outcome {
                super::entry::ExecutionOutcome::Done => "done",
                super::entry::ExecutionOutcome::Failed => "failed",
            },
            a.bundle_id,
            a.archive.sha256
        ),
    }
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
