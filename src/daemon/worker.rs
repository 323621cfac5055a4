//! A worker's collection: collect, seal and store one case, and journal how it ended.

use std::time::Instant;

use serde_json::json;
use time::OffsetDateTime;

use crate::case::{self as journal, EntryKind, Journal};
use crate::collect::{self, Request};
use crate::id::{BundleId, CaseId};
use crate::source::k8s::K8sSource;
use crate::source::Source;
use crate::store::{Store, StoreError, StoreKey};

use super::episodes::journal_resolve;
use super::lease::Retry;
use super::{Daemon, Job};

/// Appends to a case's journal, re-reading the head when another writer got there first.
pub(super) fn append(
    store: &dyn Store,
    case: &CaseId,
    kind: EntryKind,
    details: serde_json::Value,
) -> Result<(), String> {
    for _ in 0..8 {
        let chain = journal::check_chain(store, case).map_err(|e| e.to_string())?;
        let Some(head) = chain.head() else {
            return Err(format!("case {case} has no journal"));
        };
        let mut journal = Journal::resume(store, case.clone(), head);
        match journal.append_json("custody", kind, details.clone()) {
            Ok(_) => return Ok(()),
            Err(journal::JournalError::Append {
                source: StoreError::AlreadyExists { .. },
                ..
            }) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("the journal of case {case} kept changing"))
}

impl Daemon {
    /// Runs one collection under the case's claim (`lease`), so that one replica at a time
    /// collects a case; what to queue again later if another replica holds the case.
    pub(super) fn run(&self, job: Job) -> Option<Retry> {
        self.leases.collect(self.store.as_ref(), job, |store, job| {
            self.collect(store, job)
        })
    }

    /// Runs one collection to its end, journaling how it ended, writing through `store` (the
    /// daemon's store under the case's claim).
    fn collect(&self, store: &dyn Store, job: Job) {
        let started = Instant::now();
        if let Some(why) = &job.restarted {
            if let Err(e) = append(
                store,
                &job.case,
                EntryKind::CollectionRestarted,
                json!({"reason": why}),
            ) {
                tracing::error!(case = %job.case, error = %e, "cannot journal the restart");
                self.metrics.collection("error");
                return;
            }
        }
        let now = OffsetDateTime::now_utc();
        let request = Request {
            case_id: job.case.clone(),
            bundle_id: BundleId::generate(now),
            at: now,
            trigger: job.trigger.clone(),
            top: 20,
            format: crate::analysis::format::FormatChoice::Auto,
            progress: false,
            trigger_payload: job.payload.clone(),
            staging: None,
        };
        let work = self.staging.join(format!("k8s-{}", request.bundle_id));
        let mut source = K8sSource::new(
            job.target.clone(),
            self.policies.collection.kubernetes,
            work,
        );
        let outcome =
            collect::open_sources(&self.policies, &mut source, &request).and_then(|opened| {
                let chain = journal::check_chain(store, &job.case)
                    .map_err(collect::CollectError::OpenCase)?;
                let head = chain.head().ok_or_else(|| {
                    collect::CollectError::OpenCase(StoreError::NotFound {
                        uri: store.object_uri(&StoreKey::JournalEntry(job.case.clone(), 1)),
                    })
                })?;
                let journal = Journal::resume(store, job.case.clone(), head);
                collect::seal_case(
                    store,
                    &self.key,
                    &self.policies,
                    &mut source,
                    &request,
                    journal,
                    opened,
                )
            });
        self.metrics.sealed_in(started.elapsed());
        match outcome {
            Ok(o) => {
                source.finished();
                self.sealed(&job.case, &o);
            }
            Err(e) => {
                self.metrics.collection("failed");
                tracing::error!(case = %job.case, error = %e, "collection failed");
                // A failure once the collection began is journaled by the collection itself.
                if !e.journaled() {
                    if let Err(j) = append(
                        store,
                        &job.case,
                        EntryKind::CollectionFailed,
                        json!({"error": e.to_string()}),
                    ) {
                        tracing::error!(case = %job.case, error = %j, "cannot journal the failure");
                    }
                }
            }
        }
        // A resolve that arrived while this ran was kept aside; it goes into the journal now.
        if let Some(episode) = &job.episode {
            if let Err(e) = journal_resolve(store, &job.case, episode) {
                tracing::warn!(case = %job.case, error = %e, "cannot journal the resolve");
            }
        }
    }

    /// Journals what a sealed collection stored and found.
    fn sealed(&self, case: &CaseId, o: &collect::Outcome) {
        let store = self.store.as_ref();
        let bytes: u64 = o.sources.iter().map(|s| s.bytes).sum();
        self.metrics.bytes(bytes);
        self.metrics.collection("sealed");
        let findings = json!({
            "bundle_id": o.bundle.bundle_id,
            "lines": o.summary.lines,
            "auth_failures": o.summary.auth_failures,
            "complete": o.complete(),
            "failures": o.failures,
            "suspicious": o.summary.suspicious.iter().map(|s| json!({"ip": s.ip, "rule": s.rule,
                "auth_failures": s.auth_failures, "pods": s.pods})).collect::<Vec<_>>(),
        });
        // On S3: the version of every object, as `verify s3://…` expects; the store
        // records the receipts of its own uploads, so large multipart archives too.
        match store.stored_objects(case) {
            Ok(Some(objects)) => {
                if let Err(e) = append(store, case, EntryKind::ObjectsStored, objects) {
                    tracing::warn!(case = %case, error = %e, "cannot journal the stored objects");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(case = %case, error = %e, "cannot record the stored objects: verify s3:// will report the case as unrecorded")
            }
        }
        if let Err(e) = append(store, case, EntryKind::Findings, findings) {
            tracing::warn!(case = %case, error = %e, "cannot journal the findings");
        }
        tracing::info!(case = %case, bundle = %o.bundle.bundle_id, bytes, "collection sealed");
    }
}
