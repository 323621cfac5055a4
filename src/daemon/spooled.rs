//! With an S3 store, the daemon seals into its local spool, as `custody collect` does, and uploads
//! from there: an S3 outage during a collection keeps the sealed case on local disk, complete,
//! and the upload is tried again (by the worker a few times, then every
//! `limits.spool_flush_seconds` and at start-up) without going back to the cluster, whose logs
//! may be gone by then.
//!
//! A case is collected into the spool as a continuation of the case in S3: its header and
//! journal are copied into the spool first (the seal pins the journal's head), the collection
//! appends there (its restart marker, sources, seal, findings, or its failure), and the upload
//! (`spool::upload_case`) sends each object create-new, adopting those S3 holds already with the
//! same bytes, then journals `objects_stored` in S3. Everything happens under the case's claim,
//! renewed right before the upload (`Held::commit`), so no other replica journals in between;
//! and under the spool's case lock, so no flush uploads a case still being written.
//!
//! A case found in the spool when its collection comes up again (the daemon stopped, or S3
//! failed for longer than the retries) is uploaded before anything else; if the spooled attempt
//! ended, that was the collection, and if it stopped unfinished, the case is collected again
//! after it, as a restart, like any collection that stopped.
//!
//! Whichever upload stores a sealed bundle (the worker's, the periodic flush's, the one at
//! start-up) has it announced, and an alert's case planned, as a collection straight into the
//! store has: once, by this daemon, after the case's claim is given up.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::case::entry::CollectionRestarted;
use crate::case::{self as journal, CaseState, Details};
use crate::id::{BundleId, CaseId};
use crate::spool::{self, FlushError, SpoolStore};
use crate::store::s3::S3Store;
use crate::store::{Store, StoreError, StoreKey};

use super::episodes::journal_resolve;
use super::lease::{since, Held, Since};
use super::worker::{append, findings};
use super::{Daemon, Job};

/// How many times in all a worker tries an upload that fails on a transient fault, before the
/// case is left to the periodic flush.
const UPLOAD_ATTEMPTS: u32 = 3;
/// The wait before the second upload attempt; doubled before each later one.
const UPLOAD_BACKOFF: Duration = Duration::from_secs(2);
/// Why a case is collected again after the spooled attempt that stopped unfinished.
const SPOOLED_UNFINISHED: &str =
    "the collection sealed into the local spool stopped before it ended; collecting again";

/// Why a case is collected again after its spooled copy was refused.
const SPOOLED_REFUSED: &str =
    "the collection sealed into the local spool could not be uploaded as it was; collecting again";

/// The daemon's spool in front of its S3 store, and that store, for the uploads.
pub struct Spooling {
    pub spool: SpoolStore,
    pub s3: Arc<S3Store>,
}

/// What an upload found the case's collection to be once it was in S3.
#[derive(Debug, PartialEq, Eq)]
enum Uploaded {
    /// The spooled collection ended (sealed, failed or interrupted).
    Ended,
    /// It stopped unfinished: the case is to be collected again.
    Unfinished,
    /// Stored, but S3 could not be read back after: the case's state is decided later.
    Unknown,
}

/// Why a spooled case is not in S3 yet: it stays in the spool either way.
#[derive(Debug, thiserror::Error)]
enum UploadError {
    #[error("the claim on the case cannot be renewed before the upload: {0}")]
    Claim(#[from] super::lease::LeaseError),
    #[error(transparent)]
    Flush(#[from] FlushError),
    #[error("cannot read the case's journal in S3 after the upload: {0}")]
    Read(#[from] StoreError),
}

impl UploadError {
    /// Whether trying again soon may succeed.
    fn transient(&self) -> bool {
        match self {
            Self::Flush(FlushError::Store(e)) | Self::Read(e) => e.is_transient(),
            Self::Flush(FlushError::Journal(journal::JournalError::Append { source, .. })) => {
                source.is_transient()
            }
            Self::Claim(super::lease::LeaseError::Store(e)) => e.is_transient(),
            _ => false,
        }
    }
}

/// Why a spooled case is still in the spool after a worker's upload.
enum Kept {
    /// S3 failed transiently: the periodic flush uploads it.
    ForNow,
    /// It cannot go to S3 as it is (its journal no longer continues the one in S3, or it is not
    /// what was sealed): moved aside in the spool, and reported.
    Refused,
}

/// What seeding the spool found.
enum Seeded {
    /// The case's header and journal are in the spool.
    Ready,
    /// The case has sealed bundles already, which a spooled continuation would need in the
    /// spool too: it is collected straight into S3.
    HasBundles,
}

impl Daemon {
    /// A collection sealed into the spool and uploaded, under the case's claim (`held`); a job
    /// to queue again if S3 could not be read before anything was collected.
    pub(super) fn collect_spooled(
        &self,
        held: &Held<'_>,
        spooling: &Spooling,
        mut job: Job,
    ) -> Option<Job> {
        let case = job.case.clone();
        let spool = &spooling.spool;
        let lock = || match spool.lock_case(&case) {
            Ok(lock) => Some(lock),
            Err(e) => {
                tracing::error!(case = %case, error = %e, "cannot lock the case in the spool; trying again later");
                None
            }
        };
        let Some(mut _lock) = lock() else {
            return Some(job);
        };
        // An earlier attempt's case waiting in the spool goes to S3 first.
        match spooled(held, spool, &case) {
            Ok(true) => {
                match self.upload_retrying(held, spooling, &case) {
                    Ok(Uploaded::Ended) => return None,
                    Ok(Uploaded::Unfinished) => {
                        job.restarted
                            .get_or_insert_with(|| SPOOLED_UNFINISHED.into());
                    }
                    // Stored, but what S3 then holds could not be read: decided again later.
                    Ok(Uploaded::Unknown) => return Some(job),
                    // S3 is down: the spooled case is the collection, and the flush uploads it.
                    Err(Kept::ForNow) => return None,
                    // The spooled copy cannot go to S3 as it is: it is kept aside, reported, and
                    // the case is collected again unless another collection ended meanwhile.
                    Err(Kept::Refused) => match since(held, &case, job.journal_seen) {
                        Ok(Since::Ended) => return None,
                        Ok(_) => {
                            job.restarted.get_or_insert_with(|| SPOOLED_REFUSED.into());
                        }
                        Err(e) => {
                            tracing::warn!(case = %case, error = %e, "cannot read the case's journal; trying again later");
                            return Some(job);
                        }
                    },
                }
                // The upload or the refusal took the case out of the spool, and its lock file
                // with it: the lock is taken again on the file a new copy will use.
                drop(_lock);
                let Some(again) = lock() else {
                    return Some(job);
                };
                _lock = again;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(case = %case, error = %e, "cannot read the case in the spool; trying again later");
                return Some(job);
            }
        }
        match seed(held, spool, &case) {
            Ok(Seeded::Ready) => {}
            Ok(Seeded::HasBundles) => {
                tracing::info!(case = %case, "the case has sealed bundles in S3; collecting into S3 directly");
                self.collect(held, job);
                return None;
            }
            Err(e) => {
                discard(spool, &case);
                if e.is_transient() {
                    tracing::warn!(case = %case, error = %e, "cannot copy the case from S3 into the spool; trying again later");
                    return Some(job);
                }
                self.metrics.collection("error");
                tracing::error!(case = %case, error = %e, "cannot copy the case from S3 into the spool; the case is not collected");
                return None;
            }
        }
        if !self.collect_into_spool(spool, &job) {
            discard(spool, &case);
            // Nothing was collected; the failure goes into the case's journal in S3, under the
            // claim, so the case does not read as being collected.
            let failed = crate::case::entry::CollectionFailed {
                error: "the collection could not be written into the local spool".into(),
            };
            if let Err(e) = append(held, &self.key, &case, Details::CollectionFailed(failed)) {
                tracing::error!(case = %case, error = %e, "cannot journal the failure");
            }
            return None;
        }
        match self.upload_retrying(held, spooling, &case) {
            // The spooled collection did not journal its end: collected again later.
            Ok(Uploaded::Unfinished | Uploaded::Unknown) => Some(job),
            Ok(Uploaded::Ended) | Err(_) => None,
        }
    }

    /// Collects `job` into the spool, its end journaled there (the findings of a seal, or the
    /// failure); false if not even the restart marker could be written.
    fn collect_into_spool(&self, spool: &SpoolStore, job: &Job) -> bool {
        let case = &job.case;
        let started = std::time::Instant::now();
        if let Some(why) = &job.restarted {
            let restarted = Details::CollectionRestarted(CollectionRestarted {
                reason: why.clone(),
            });
            if let Err(e) = append(spool, &self.key, case, restarted) {
                tracing::error!(case = %case, error = %e, "cannot journal the restart in the spool");
                self.metrics.collection("error");
                return false;
            }
        }
        let bundle = BundleId::generate(OffsetDateTime::now_utc());
        let outcome = self.collect_once(job, &bundle, spool);
        self.metrics.sealed_in(started.elapsed());
        match outcome {
            Ok(o) => {
                let bytes: u64 = o.sources.iter().map(|s| s.bytes).sum();
                self.metrics.bytes(bytes);
                self.metrics.collection("sealed");
                // Journaled before the upload, so that the spool holds the whole collection and
                // `objects_stored` (appended by the upload) records the findings entry too.
                if let Err(e) = append(spool, &self.key, case, Details::Findings(findings(&o))) {
                    tracing::warn!(case = %case, error = %e, "cannot journal the findings");
                }
                tracing::info!(case = %case, bundle = %o.bundle.bundle_id, bytes, "collection sealed into the spool");
            }
            Err(e) => self.failed(spool, case, &e),
        }
        true
    }

    /// Uploads the spooled `case`, trying again a few times with backoff on transient faults;
    /// `Err` when it is left in the spool (for the periodic flush, or refused and kept aside).
    fn upload_retrying(
        &self,
        held: &Held<'_>,
        spooling: &Spooling,
        case: &CaseId,
    ) -> Result<Uploaded, Kept> {
        let mut attempt = 1;
        loop {
            match self.upload(held, spooling, case) {
                Ok(done) => return Ok(done),
                Err(e) if e.transient() && attempt < UPLOAD_ATTEMPTS => {
                    tracing::warn!(case = %case, error = %e, attempt, "the upload of the sealed case failed on a transient fault; trying again");
                    std::thread::sleep(UPLOAD_BACKOFF * 2u32.pow(attempt - 1));
                    attempt += 1;
                }
                Err(e) => return Err(self.kept(spooling, case, &e)),
            }
        }
    }

    /// Reports a spooled case the upload left in the spool; a refused one is moved aside.
    fn kept(&self, spooling: &Spooling, case: &CaseId, e: &UploadError) -> Kept {
        let spool = spooling.spool.dir().display().to_string();
        if e.transient() {
            self.metrics.spool_upload("kept");
            tracing::error!(case = %case, error = %e, spool, "the sealed case is kept in the local spool and uploaded when S3 answers");
            return Kept::ForNow;
        }
        self.metrics.spool_upload("refused");
        match spool::set_aside(&spooling.spool, case) {
            Ok(aside) => {
                tracing::error!(case = %case, error = %e, kept_in = %aside.display(), "the spooled case cannot be uploaded as it is; it is kept aside in the spool for a person to look at")
            }
            Err(m) => {
                tracing::error!(case = %case, error = %e, spool, "the spooled case cannot be uploaded as it is, nor set aside: {m}")
            }
        }
        Kept::Refused
    }

    /// One upload of the spooled `case` under its claim; then what the case's journal in S3
    /// says of its collection, and the alert's resolve journaled if it came meanwhile. Once the
    /// case is stored it has left the spool: a failure to read S3 after that is `Unknown`,
    /// never a second upload.
    fn upload(
        &self,
        held: &Held<'_>,
        spooling: &Spooling,
        case: &CaseId,
    ) -> Result<Uploaded, UploadError> {
        // The spool holds only the bundles its collection sealed (a case with bundles in S3 is
        // collected straight into S3): those the upload stores, and this daemon announces.
        let bundles = match spooling.spool.list_bundles(case) {
            Ok((bundles, _)) => bundles,
            Err(e) => {
                tracing::warn!(case = %case, error = %e, "cannot list the spooled case's bundles; it is not announced once uploaded");
                Vec::new()
            }
        };
        let uploaded = {
            let _committed = held.commit()?;
            spool::upload_case(&spooling.spool, spooling.s3.as_ref(), case, &self.key)?
        };
        if let Some(bundle) = bundles.last() {
            self.announce_later(case, bundle);
        }
        self.metrics.spool_upload("stored");
        tracing::info!(case = %case, objects = uploaded.objects.len(), "the sealed case is stored in S3");
        let chain = match journal::check_chain(held, case) {
            Ok(chain) if chain.problems.is_empty() => chain,
            Ok(chain) => {
                tracing::warn!(case = %case, problem = ?chain.problems.first(), "cannot read the case's journal back after the upload");
                return Ok(Uploaded::Unknown);
            }
            Err(e) => {
                tracing::warn!(case = %case, error = %e, "cannot read the case's journal back after the upload");
                return Ok(Uploaded::Unknown);
            }
        };
        let state = CaseState::of(&chain);
        if let Some(episode) = episode_in(&state) {
            if let Err(e) = journal_resolve(held, &self.key, case, &episode) {
                tracing::warn!(case = %case, error = %e, "cannot journal the resolve");
            }
        }
        Ok(if state.collection_unfinished() || !state.ended() {
            Uploaded::Unfinished
        } else {
            Uploaded::Ended
        })
    }

    /// Offers every case waiting in the spool to S3 once, each under its claim; a case a
    /// worker (or another process) holds is left to it.
    pub fn flush_spool(&self) {
        let Some(spooling) = &self.spooling else {
            return;
        };
        let spool = &spooling.spool;
        let cases = match spool.cases() {
            Ok(cases) => cases,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the cases in the spool");
                return;
            }
        };
        for case in &cases {
            let Ok(Some(_lock)) = spool.try_lock_case(case) else {
                continue;
            };
            match spooled(self.store.as_ref(), spool, case) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::error!(case = %case, error = %e, "cannot read the case in the spool");
                    continue;
                }
            }
            let held = self.leases.hold(self.store.as_ref(), case, |held| {
                self.upload(held, spooling, case)
            });
            self.resolve_kept(case);
            match held {
                Ok(Ok(Uploaded::Ended | Uploaded::Unknown)) => {}
                Ok(Ok(Uploaded::Unfinished)) => self.queue_restart(case, SPOOLED_UNFINISHED),
                Ok(Err(e)) => {
                    if let Kept::Refused = self.kept(spooling, case, &e) {
                        self.queue_restart(case, SPOOLED_REFUSED);
                    }
                }
                Err(e) => {
                    tracing::info!(case = %case, error = %e, "the spooled case is not uploaded now")
                }
            }
        }
        self.metrics
            .spooled_cases(spool.cases().map_or(0, |c| c.len()));
    }
}

impl Daemon {
    /// Queues the collection of a case whose spooled attempt did not reach S3 whole (it stopped
    /// unfinished, or was refused), if the case's journal in S3 shows no collection that ended
    /// since; a restart of the daemon finds it too if the queue is full.
    fn queue_restart(&self, case: &CaseId, why: &str) {
        let chain = match journal::check_chain(self.store.as_ref(), case) {
            Ok(chain) => chain,
            Err(e) => {
                tracing::warn!(case = %case, error = %e, "cannot read the case's journal; the next start resumes it");
                return;
            }
        };
        let seen = chain.head().map_or(0, |h| h.seq);
        let state = CaseState::of(&chain);
        let Some(opened) = super::state::unfinished(&state) else {
            return;
        };
        let Some(job) = self.job_of(case, opened, Some(why.into()), seen) else {
            tracing::warn!(case = %case, "the case's unfinished collection cannot be queued again; the next start resumes it");
            return;
        };
        self.queued
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.queue.try_send(job).is_err() {
            self.queued
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            tracing::warn!(case = %case, "the queue is full; the case's unfinished collection resumes at the next start");
        }
    }
}

/// The alert episode a case was opened for, if an alert opened it.
fn episode_in(state: &CaseState) -> Option<String> {
    state
        .opened
        .as_ref()
        .and_then(|o| o.trigger_details.as_ref())
        .and_then(|d| d.episode.clone())
}

/// Whether the spool holds something of `case` that S3 does not: a collection to upload. A
/// case in the spool that is only a copy of what S3 holds (a copy cut short, or one nothing
/// was appended to) is removed; one whose entries differ from S3's is kept, for the upload to
/// report.
fn spooled(s3: &dyn Store, spool: &SpoolStore, case: &CaseId) -> Result<bool, StoreError> {
    let (mine, _) = spool.list_journal(case)?;
    let header = StoreKey::CaseHeader(case.clone());
    if mine.is_empty() && !spool.exists(&header)? && !spool.cases()?.contains(case) {
        return Ok(false);
    }
    if !spool.list_bundles(case)?.0.is_empty() {
        return Ok(true);
    }
    let local = journal::check_chain(spool, case)?;
    let remote = journal::check_chain(s3, case)?;
    let only_a_copy = local
        .entries
        .iter()
        .all(|(e, digest)| remote.digest_of(e.seq) == Some(*digest));
    // A copy cut short has fewer entries than S3 (or none): still only a copy.
    if !only_a_copy {
        return Ok(true);
    }
    discard(spool, case);
    Ok(false)
}

/// Copies the case's header and journal from S3 into the spool, byte for byte, after checking
/// the chain; a case with sealed bundles is not copied.
fn seed(s3: &dyn Store, spool: &SpoolStore, case: &CaseId) -> Result<Seeded, StoreError> {
    let header_key = StoreKey::CaseHeader(case.clone());
    let header = s3.get(&header_key)?;
    let mut entries = Vec::new();
    let (seqs, strays) = s3.list_journal(case)?;
    let chain = journal::check_entries(case, seqs, strays, |key| {
        let bytes = s3.get(key)?;
        entries.push((key.clone(), bytes.clone()));
        Ok(bytes)
    });
    if let Some(problem) = chain.problems.first() {
        return Err(StoreError::Remote {
            uri: s3.object_uri(&header_key),
            message: format!("the case's journal in S3 is broken: {}", problem.message),
        });
    }
    if CaseState::of(&chain).bundles().next().is_some() {
        return Ok(Seeded::HasBundles);
    }
    spool.put_new(&header_key, &header)?;
    for (key, bytes) in entries {
        spool.put_new(&key, &bytes)?;
    }
    seed_signatures(s3, spool, case)?;
    Ok(Seeded::Ready)
}

/// Copies the signatures of the case's journal entries from S3 into the spool, byte for byte,
/// with the public keys in S3 that made them: the upload checks every entry's signature against
/// the spool's keys. A signature no key in S3 verifies is copied as it is, for the upload's check
/// to refuse.
fn seed_signatures(s3: &dyn Store, spool: &SpoolStore, case: &CaseId) -> Result<(), StoreError> {
    let names = s3.list(&crate::store::StorePrefix::Journal(case.clone()))?;
    let signed = crate::store::layout::journal_signatures(&names);
    if signed.is_empty() {
        return Ok(());
    }
    let published = crate::store::published::published(s3)?;
    for seq in signed {
        let sig_key = StoreKey::JournalSignature(case.clone(), seq);
        let signature = s3.get(&sig_key)?;
        let entry = match spool.get(&StoreKey::JournalEntry(case.clone(), seq)) {
            Ok(entry) => entry,
            // A signature of no entry stays behind: the upload has no entry for it.
            Err(StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        if let Some(signer) = crate::keys::signer(&published, &entry, &signature) {
            crate::store::published::publish(spool, signer)?;
        }
        spool.put_new(&sig_key, &signature)?;
    }
    Ok(())
}

/// Removes what a collection left of `case` in the spool when nothing of it is to be uploaded.
fn discard(spool: &SpoolStore, case: &CaseId) {
    if let Err(e) = spool::remove_case(spool, case) {
        tracing::warn!(case = %case, error = %e, "cannot remove the case's copy from the spool");
    }
}
