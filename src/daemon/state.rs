//! A case's state as the daemon reads it from the journal: whether its collection is unfinished
//! or over, and the view the case API shows.

use serde_json::json;

use crate::case::{self as journal, EntryKind};
use crate::collect::Trigger;
use crate::id::CaseId;
use crate::store::StoreError;

use super::{Daemon, Job, RecordedTarget};

/// Whether `journal`'s case still needs its collection: opened by an alert or the API, and no
/// bundle sealed nor failure recorded since its last (re)start.
fn unfinished(chain: &journal::CheckedChain) -> Option<serde_json::Value> {
    let first = &chain.entries.first()?.0;
    let details = first.details_json();
    let kind = details.get("trigger")?.get("kind")?.as_str()?;
    if first.kind() != EntryKind::CaseOpened || !matches!(kind, "alert" | "api") {
        return None;
    }
    let done = chain.entries.iter().any(|(e, _)| {
        matches!(
            e.kind(),
            EntryKind::BundleSealed
                | EntryKind::CollectionFailed
                | EntryKind::CollectionInterrupted
        )
    });
    (!done).then(|| first.details_json())
}

/// Whether the case's collection has ended (sealed with its findings, or failed): entries can
/// then be added without getting in the way of a seal that pins the journal's head.
pub(super) fn collection_over(chain: &journal::CheckedChain) -> bool {
    chain
        .entries
        .iter()
        .rev()
        .find(|(e, _)| {
            matches!(
                e.kind(),
                EntryKind::Findings
                    | EntryKind::CollectionFailed
                    | EntryKind::CollectionInterrupted
                    | EntryKind::CollectionRestarted
            )
        })
        .is_some_and(|(e, _)| e.kind() != EntryKind::CollectionRestarted)
}

impl Daemon {
    /// The cases whose collection a previous run did not finish.
    pub(super) fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let mut jobs = Vec::new();
        for case in self.store.list_cases()? {
            let chain = journal::check_chain(self.store.as_ref(), &case)?;
            let Some(opened) = unfinished(&chain) else {
                continue;
            };
            let Some(target) = opened
                .get("trigger_details")
                .and_then(|d| d.get("target"))
                .and_then(|t| serde_json::from_value::<RecordedTarget>(t.clone()).ok())
                .and_then(|t| t.into_request(self.kubeconfig.clone(), self.context.clone()))
            else {
                tracing::warn!(case = %case, "an unfinished case without a recorded target is left alone");
                continue;
            };
            let trigger: Trigger =
                serde_json::from_value(opened["trigger"].clone()).unwrap_or(Trigger {
                    kind: "alert".into(),
                    requested_by: "custody".into(),
                });
            let payload = opened
                .get("trigger_details")
                .and_then(|d| d.get("alert"))
                .and_then(|a| serde_json::to_vec_pretty(a).ok());
            let episode = opened
                .get("trigger_details")
                .and_then(|d| d.get("episode"))
                .and_then(|e| e.as_str())
                .map(str::to_owned);
            let journal_seen = chain.head().map_or(0, |h| h.seq);
            jobs.push(Job {
                case,
                journal_seen,
                target,
                trigger,
                payload,
                episode,
                restarted: Some(
                    "the daemon stopped before this collection was sealed; collecting again".into(),
                ),
            });
        }
        Ok(jobs)
    }

    pub(super) fn case_view(&self, case: &CaseId) -> Result<serde_json::Value, StoreError> {
        let chain = journal::check_chain(self.store.as_ref(), case)?;
        let mut state = "collecting";
        let mut bundles = Vec::new();
        let mut findings = serde_json::Value::Null;
        let mut resolved = false;
        let (mut trigger, mut opened_at) = (serde_json::Value::Null, serde_json::Value::Null);
        for (e, _) in &chain.entries {
            match e.kind() {
                EntryKind::CaseOpened => {
                    trigger = e.details_json().get("trigger").cloned().unwrap_or_default();
                    opened_at = json!(e.at);
                }
                EntryKind::BundleSealed => {
                    state = "storing";
                    bundles.push(
                        json!({"bundle_id": e.details_json()["bundle_id"], "archive": e.details_json()["archive"],
                                        "seal": e.details_json()["seal"], "sealed_at": e.at}),
                    );
                }
                EntryKind::CollectionFailed | EntryKind::CollectionInterrupted => state = "failed",
                EntryKind::CollectionRestarted if state != "sealed" => state = "collecting",
                // The last step of a collection.
                EntryKind::Findings => {
                    findings = e.details_json();
                    state = "sealed";
                }
                EntryKind::AlertResolved => resolved = true,
                _ => {}
            }
        }
        Ok(
            json!({"case_id": case, "state": state, "opened_at": opened_at, "trigger": trigger,
                  "alert_resolved": resolved, "journal_entries": chain.entries.len(),
                  "bundles": bundles, "findings": findings}),
        )
    }
}
