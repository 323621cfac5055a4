//! A worker's collection: collect, seal and store one case, and journal how it ended. A
//! collection that fails on a transient store fault is tried again a few times, with backoff,
//! before its failure stands; what it staged is removed when it ends, either way.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::case::entry::{
    CollectionFailed, CollectionRestarted, Findings, ObjectReceipt, ObjectsStored, SuspiciousClient,
};
use crate::case::{self as journal, CaseState, Details, Journal, JournalError};
use crate::collect::{self, CollectError, Request};
use crate::id::{BundleId, CaseId};
use crate::keys::SigningKey;
use crate::seal::SealError;
use crate::source::k8s::K8sSource;
use crate::source::Source;
use crate::store::{Recording, Store, StoreError, StoreKey};

use super::episodes::journal_resolve;
use super::lease::Retry;
use super::{Daemon, Job};

/// How many times in all a collection is tried when it fails on a transient store fault.
const ATTEMPTS: u32 = 3;
/// The wait before the second attempt; doubled before each later one.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// Why a collection is tried again after a transient store fault.
const RETRIED: &str = "the store failed transiently during the collection; collecting again";

/// Appends to a case's journal, re-reading the head when another writer got there first.
pub(super) fn append(
    store: &dyn Store,
    key: &SigningKey,
    case: &CaseId,
    details: Details,
) -> Result<(), String> {
    append_unless(store, key, case, details, |_| false).map(|_| ())
}

/// Appends to a case's journal unless `done` says the case's state already holds what the entry
/// would record; the state is folded again before every attempt, so an entry another writer
/// appended while this one retried is seen. True if this call appended.
pub(super) fn append_unless(
    store: &dyn Store,
    key: &SigningKey,
    case: &CaseId,
    details: Details,
    done: impl Fn(&CaseState) -> bool,
) -> Result<bool, String> {
    for _ in 0..8 {
        let chain = journal::check_chain(store, case).map_err(|e| e.to_string())?;
        if done(&CaseState::of(&chain)) {
            return Ok(false);
        }
        let Some(head) = chain.head() else {
            return Err(format!("case {case} has no journal"));
        };
        let mut journal = Journal::resume(store, case.clone(), head, key);
        match journal.append("custody", details.clone()) {
            Ok(_) => return Ok(true),
            Err(JournalError::Append {
                source: StoreError::AlreadyExists { .. },
                ..
            }) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("the journal of case {case} kept changing"))
}

/// Whether a collection failed on a store fault that may pass.
fn transient(e: &CollectError) -> bool {
    let store = match e {
        CollectError::Journaled(inner) => return transient(inner),
        CollectError::OpenCase(s) | CollectError::Seal(SealError::StoreBundle(s)) => s,
        CollectError::Journal(JournalError::Append { source, .. })
        | CollectError::Seal(SealError::Journal(JournalError::Append { source, .. })) => source,
        _ => return false,
    };
    store.is_transient()
}

/// The wait before attempt `attempt` (2, 3, …).
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF * 2u32.saturating_pow(attempt.saturating_sub(2))
}

impl Daemon {
    /// Runs one collection under the case's claim (`lease`), so that one replica at a time
    /// collects a case; what to queue again later if another replica holds the case.
    pub(super) fn run(&self, job: Job) -> Option<Retry> {
        let (case, episode) = (job.case.clone(), job.episode.clone());
        let retry =
            self.leases
                .collect(self.store.as_ref(), job, |held, job| match &self.spooling {
                    Some(spooling) => self.collect_spooled(held, spooling, job),
                    None => {
                        self.collect(held, job);
                        None
                    }
                });
        // A resolve that came while the claim was held, after the collection looked for one,
        // was kept for later by its request: it is journaled now that the claim is given up.
        if episode.is_some() {
            self.resolve_kept(&case);
        }
        retry
    }

    /// Runs one collection to its end, journaling how it ended, writing through `store` (the
    /// daemon's store under the case's claim).
    pub(super) fn collect(&self, store: &dyn Store, job: Job) {
        let started = Instant::now();
        if let Some(why) = &job.restarted {
            let restarted = Details::CollectionRestarted(CollectionRestarted {
                reason: why.clone(),
            });
            if let Err(e) = append(store, &self.key, &job.case, restarted) {
                tracing::error!(case = %job.case, error = %e, "cannot journal the restart");
                self.metrics.collection("error");
                return;
            }
        }
        let mut attempt = 1;
        loop {
            let recording = Recording::new(store);
            let bundle = BundleId::generate(OffsetDateTime::now_utc());
            let outcome = self.collect_once(&job, &bundle, &recording);
            self.metrics.sealed_in(started.elapsed());
            match outcome {
                Ok(o) => {
                    self.sealed(store, &job.case, &o, &recording);
                    self.announce_later(&job.case, &o.bundle.bundle_id);
                    break;
                }
                Err(e) if attempt < ATTEMPTS && transient(&e) => {
                    attempt += 1;
                    tracing::warn!(case = %job.case, error = %e, attempt, "collection failed on a transient store fault; trying again");
                    std::thread::sleep(backoff(attempt));
                    // An archive that reached the store is locked there: it keeps its own seal
                    // and entry (or the lack of them, for `verify` to report), never a second
                    // bundle beside it. Only an attempt whose archive is known absent is redone.
                    let archive = StoreKey::Archive(job.case.clone(), bundle.clone());
                    if !matches!(store.exists(&archive), Ok(false)) {
                        self.failed(store, &job.case, &e);
                        break;
                    }
                    let again = Details::CollectionRestarted(CollectionRestarted {
                        reason: RETRIED.into(),
                    });
                    // The retry's sources must follow its own marker in the journal; without
                    // it they would read as the failed attempt's.
                    if let Err(j) = append(store, &self.key, &job.case, again) {
                        tracing::error!(case = %job.case, error = %j, "cannot journal the retry; the collection stops here");
                        self.metrics.collection("error");
                        break;
                    }
                }
                Err(e) => {
                    self.failed(store, &job.case, &e);
                    break;
                }
            }
        }
        // A resolve that arrived while this ran was kept aside; it goes into the journal now.
        if let Some(episode) = &job.episode {
            if let Err(e) = journal_resolve(store, &self.key, &job.case, episode) {
                tracing::warn!(case = %job.case, error = %e, "cannot journal the resolve");
            }
        }
    }

    /// One attempt at the collection, through `store` (which records the receipts); what the
    /// source staged is removed when it ends, sealed or not.
    pub(super) fn collect_once(
        &self,
        job: &Job,
        bundle: &BundleId,
        store: &dyn Store,
    ) -> Result<collect::Outcome, CollectError> {
        let now = OffsetDateTime::now_utc();
        let request = Request {
            case_id: job.case.clone(),
            bundle_id: bundle.clone(),
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
                let journal = Journal::resume(store, job.case.clone(), head, &self.key);
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
        source.finished();
        outcome
    }

    /// Journals a collection's failure, unless the collection did so itself.
    pub(super) fn failed(&self, store: &dyn Store, case: &CaseId, e: &CollectError) {
        self.metrics.collection("failed");
        tracing::error!(case = %case, error = %e, "collection failed");
        // A failure once the collection began is journaled by the collection itself.
        if !e.journaled() {
            let failed = Details::CollectionFailed(CollectionFailed {
                error: e.to_string(),
            });
            if let Err(j) = append(store, &self.key, case, failed) {
                tracing::error!(case = %case, error = %j, "cannot journal the failure");
            }
        }
    }

    /// Journals what a sealed collection stored and found.
    fn sealed(
        &self,
        store: &dyn Store,
        case: &CaseId,
        o: &collect::Outcome,
        recording: &Recording<'_>,
    ) {
        let bytes: u64 = o.sources.iter().map(|s| s.bytes).sum();
        self.metrics.bytes(bytes);
        self.metrics.collection("sealed");
        // On S3: the version of every object, as `verify s3://…` expects, from the receipts of
        // the collection's own PUTs (so large multipart archives too).
        match self.stored_objects(case, recording) {
            Ok(Some(objects)) => {
                if let Err(e) = append(store, &self.key, case, Details::ObjectsStored(objects)) {
                    tracing::warn!(case = %case, error = %e, "cannot journal the stored objects");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(case = %case, error = %e, "cannot record the stored objects: verify s3:// will report the case as unrecorded")
            }
        }
        if let Err(e) = append(store, &self.key, case, Details::Findings(findings(o))) {
            tracing::warn!(case = %case, error = %e, "cannot journal the findings");
        }
        tracing::info!(case = %case, bundle = %o.bundle.bundle_id, bytes, "collection sealed");
    }

    /// The `objects_stored` entry for a collection that stored through `recording`: its own
    /// receipts, and those of the case's objects written before it (the header, the earlier
    /// journal entries) and of the public key if an earlier case published it, as the CLI
    /// records them. `None` for a store that keeps no versions or locks.
    fn stored_objects(
        &self,
        case: &CaseId,
        recording: &Recording<'_>,
    ) -> Result<Option<ObjectsStored>, StoreError> {
        let receipts = recording.receipts();
        if receipts.iter().all(|(_, r)| r.record().is_none()) {
            return Ok(None);
        }
        let mine: HashSet<&StoreKey> = receipts.iter().map(|(k, _)| k).collect();
        let first_entry = receipts
            .iter()
            .filter_map(|(k, _)| match k {
                StoreKey::JournalEntry(_, seq) => Some(*seq),
                _ => None,
            })
            .min()
            .unwrap_or(1);
        let mut before = vec![StoreKey::CaseHeader(case.clone())];
        for seq in 1..first_entry {
            before.push(StoreKey::JournalEntry(case.clone(), seq));
            before.push(StoreKey::JournalSignature(case.clone(), seq));
        }
        let mut objects = Vec::new();
        for key in before {
            if let Some(r) = self.store.receipt_of(&key)?.and_then(|r| r.record()) {
                objects.push(r);
            }
        }
        objects.extend(recording.records());
        let public = StoreKey::PublicKey(self.key.public().id().clone());
        if !mine.contains(&public) {
            if let Some(r) = self.store.receipt_of(&public)?.and_then(|r| r.record()) {
                objects.push(r);
            }
        }
        Ok(Some(ObjectsStored {
            objects: objects.iter().map(ObjectReceipt::from).collect(),
        }))
    }
}

/// The `findings` entry of a sealed collection.
pub(super) fn findings(o: &collect::Outcome) -> Findings {
    Findings {
        auth_failures: o.summary.auth_failures.clone(),
        bundle_id: o.bundle.bundle_id.clone(),
        complete: o.complete(),
        failures: o.failures.clone(),
        lines: o.summary.lines,
        suspicious: o
            .summary
            .suspicious
            .iter()
            .map(|s| SuspiciousClient {
                auth_failures: s.auth_failures,
                ip: s.ip.clone(),
                pods: s.pods.clone(),
                rule: s.rule.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient_store() -> StoreError {
        StoreError::Transient {
            uri: "s3://b/k".into(),
            message: "slow down".into(),
        }
    }

    #[test]
    fn only_transient_store_faults_are_tried_again() {
        assert!(transient(&CollectError::OpenCase(transient_store())));
        assert!(transient(&CollectError::Journaled(Box::new(
            CollectError::Seal(SealError::StoreBundle(transient_store()))
        ))));
        assert!(transient(&CollectError::Journal(JournalError::Append {
            case: CaseId::new("20261126-145448-00000001").unwrap(),
            source: transient_store(),
        })));
        let denied = StoreError::AccessDenied {
            uri: "s3://b/k".into(),
            message: "no".into(),
        };
        assert!(!transient(&CollectError::OpenCase(denied)));
        assert_eq!(backoff(2), FIRST_BACKOFF);
        assert_eq!(backoff(3), FIRST_BACKOFF * 2);
    }
}
