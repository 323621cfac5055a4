//! A claim held over one collection: taken before the collection starts, renewed on a thread of
//! its own every third of its lifetime, renewed once more right before the archive is stored
//! (from there on the seal and its `bundle_sealed` entry must follow), and given up at the end.
//!
//! The collection writes through `Held`, a store that refuses the case's writes once the claim
//! is lost before that point: the replica that took the case over collects it, and this one
//! journals nothing more that could come between that replica's journal head and its seal.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{now, Claim, LeaseError, TTL};
use crate::case::{self as journal, EntryKind};
use crate::id::{BundleId, CaseId};
use crate::store::{Receipt, StagedFile, Store, StoreError, StoreKey, StorePrefix};

use super::super::{Daemon, Job};

/// The claims of one daemon: its replica name, and the cases its workers are collecting (so
/// that two of its own workers never take one case, though a claim of its name is its own).
pub struct Leases {
    holder: String,
    ttl: Duration,
    active: Mutex<BTreeSet<CaseId>>,
}

/// A collection to queue again after a while: another replica held its case, or the claim
/// could not be taken or was lost.
pub struct Retry {
    pub job: Job,
    pub after: Duration,
}

/// What the journal shows since the collection was decided on (`Job::journal_seen`).
#[derive(Debug, PartialEq, Eq)]
pub(in crate::daemon) enum Since {
    /// Nothing: this collection is the case's next.
    Nothing,
    /// Another collection ended (sealed, failed or interrupted): the work is done.
    Ended,
    /// Another collection began and stopped unfinished: this one is a restart.
    Unfinished,
}

pub(in crate::daemon) fn since(
    store: &dyn Store,
    case: &CaseId,
    seen: u64,
) -> Result<Since, StoreError> {
    let chain = journal::check_chain(store, case)?;
    let after = || chain.entries.iter().filter(|(e, _)| e.seq > seen);
    if after().any(|(e, _)| {
        matches!(
            e.kind(),
            EntryKind::BundleSealed
                | EntryKind::CollectionFailed
                | EntryKind::CollectionInterrupted
        )
    }) {
        return Ok(Since::Ended);
    }
    // Resolves, stored objects, plans and approvals are about the case, not a collection's
    // steps.
    let step = |kind: EntryKind| {
        !matches!(
            kind,
            EntryKind::AlertResolved
                | EntryKind::ObjectsStored
                | EntryKind::ApprovalRecorded
                | EntryKind::PlanProposed
                | EntryKind::PlanExpired
                | EntryKind::PlanStale
                | EntryKind::ExecutionStarted
                | EntryKind::StepStarted
                | EntryKind::StepWrite
                | EntryKind::StepDone
                | EntryKind::StepFailed
                | EntryKind::ActionsSealed
        )
    };
    Ok(match after().find(|(e, _)| step(e.kind())) {
        Some(_) => Since::Unfinished,
        None => Since::Nothing,
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes a case off the daemon's active set when its collection ends, however it ends.
struct Active<'a> {
    set: &'a Mutex<BTreeSet<CaseId>>,
    case: CaseId,
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        lock(self.set).remove(&self.case);
    }
}

impl Leases {
    pub fn new(holder: String) -> Self {
        Self::with_ttl(holder, TTL)
    }

    /// The replica these claims are taken for.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub(super) fn with_ttl(holder: String, ttl: Duration) -> Self {
        Self {
            holder,
            ttl,
            active: Mutex::new(BTreeSet::new()),
        }
    }

    /// Runs `work` (one collection of `job`'s case, writing through the store it is given) under
    /// the case's claim; what to retry later, if anything. A case whose collection ended since
    /// the job was decided on is left alone; one that another replica began and left unfinished
    /// is collected as a restart.
    pub fn collect(
        &self,
        store: &dyn Store,
        mut job: Job,
        work: impl FnOnce(&Held<'_>, Job) -> Option<Job>,
    ) -> Option<Retry> {
        let case = job.case.clone();
        let retry = |job: Job, after: Duration| Some(Retry { job, after });
        let held = self.hold(store, &case, |held| {
            match since(held, &case, job.journal_seen) {
                Ok(Since::Ended) => {
                    tracing::info!(case = %case, "the case's collection was done by another replica");
                    return Ok((false, None));
                }
                Ok(Since::Unfinished) if job.restarted.is_none() => {
                    job.restarted = Some(
                        "another replica's collection of this case stopped unfinished; collecting again"
                            .into(),
                    );
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
            let again = work(held, job.clone());
            Ok((held.lost(), again))
        });
        match held {
            Ok(Ok((false, None))) => None,
            Ok(Ok((false, Some(again)))) => retry(again, self.ttl / 3),
            Ok(Ok((true, _))) => {
                tracing::warn!(case = %case, "the claim on the case was lost during its collection; nothing more was journaled");
                job.restarted = Some("the claim on the case was lost; collecting again".into());
                retry(job, self.ttl / 3)
            }
            Ok(Err(e)) => {
                tracing::error!(case = %case, error = %e, "cannot read the case's journal; trying again later");
                retry(job, self.ttl / 3)
            }
            Err(LeaseError::Busy {
                holder, expires_at, ..
            }) => {
                let wait = expires_at
                    .saturating_sub(now())
                    .clamp(1, self.ttl.as_secs())
                    + 1;
                tracing::info!(case = %case, holder, wait_seconds = wait, "another replica is collecting the case; looking again when its claim expires");
                retry(job, Duration::from_secs(wait))
            }
            Err(e) => {
                tracing::error!(case = %case, error = %e, "cannot claim the case; trying again later");
                retry(job, self.ttl / 3)
            }
        }
    }

    /// Whether a worker (or request) of this daemon holds `case` now.
    pub fn is_active(&self, case: &CaseId) -> bool {
        lock(&self.active).contains(case)
    }

    /// Takes the claim on `case` (`Busy` if another replica, or another worker of this daemon,
    /// holds it), runs `work` while a thread renews it, and gives it up (unless it was lost).
    pub fn hold<T>(
        &self,
        store: &dyn Store,
        case: &CaseId,
        work: impl FnOnce(&Held<'_>) -> T,
    ) -> Result<T, LeaseError> {
        if !lock(&self.active).insert(case.clone()) {
            return Err(LeaseError::Busy {
                case: case.clone(),
                holder: format!("{} (another worker)", self.holder),
                expires_at: now() + self.ttl.as_secs(),
            });
        }
        let _active = Active {
            set: &self.active,
            case: case.clone(),
        };
        let claim = Claim::take(store, case, &self.holder, self.ttl)?;
        let held = Held {
            store,
            case: case.clone(),
            ttl: self.ttl,
            claim: Mutex::new(claim),
            lost: AtomicBool::new(false),
            committed: AtomicBool::new(false),
        };
        let out = std::thread::scope(|s| {
            let (stop, stopped) = mpsc::channel::<()>();
            s.spawn(|| held.keep(stopped));
            let out = work(&held);
            drop(stop);
            out
        });
        if !held.lost() {
            let claim = held.claim.into_inner().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = claim.release(store) {
                tracing::warn!(case = %case, error = %e, "cannot give up the claim on the case; it lapses when it expires");
            }
        }
        Ok(out)
    }
}

/// A claim with less than this left (or a sixth of its lifetime, if shorter) is not written
/// under: clocks of replicas differ a little.
const EXPIRY_MARGIN_SECONDS: u64 = 5;

/// The store as a collection under a claim sees it.
pub struct Held<'a> {
    store: &'a dyn Store,
    case: CaseId,
    ttl: Duration,
    claim: Mutex<Claim>,
    lost: AtomicBool,
    /// The archive is being stored: its seal and `bundle_sealed` entry must follow whatever
    /// becomes of the claim.
    committed: AtomicBool,
}

/// An upload under way under the claim (`Held::commit`).
pub struct Committed<'h, 'a> {
    held: Option<&'h Held<'a>>,
}

impl Drop for Committed<'_, '_> {
    fn drop(&mut self) {
        if let Some(held) = self.held {
            held.committed.store(false, Ordering::SeqCst);
        }
    }
}

impl<'a> Held<'a> {
    /// Whether the claim was lost before the archive was stored.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst) && !self.committed.load(Ordering::SeqCst)
    }

    /// Renews the claim before an upload of the case from the spool, which writes to the
    /// store directly: from here on the upload must follow whatever becomes of the claim, as
    /// the seal follows a stored archive. Refused if the claim is lost or cannot be renewed now.
    /// Ended when the guard is dropped: after the upload the claim's checks apply again.
    pub fn commit(&self) -> Result<Committed<'_, 'a>, LeaseError> {
        let mut claim = lock(&self.claim);
        claim.renew(self.store, self.ttl)?;
        if self.committed.swap(true, Ordering::SeqCst) {
            // Already committed for good (an archive stored through this store): stays so.
            return Ok(Committed { held: None });
        }
        Ok(Committed { held: Some(self) })
    }

    fn lose(&self, e: &LeaseError) {
        tracing::error!(case = %self.case, error = %e, "the claim on the case is lost");
        self.lost.store(true, Ordering::SeqCst);
    }

    /// Renews the claim every third of its lifetime until `stop` is dropped, or the claim is
    /// lost: to another replica, or by not being renewed before it expired.
    fn keep(&self, stop: mpsc::Receiver<()>) {
        loop {
            if !matches!(
                stop.recv_timeout(self.ttl / 3),
                Err(mpsc::RecvTimeoutError::Timeout)
            ) {
                return;
            }
            let mut claim = lock(&self.claim);
            match claim.renew(self.store, self.ttl) {
                Ok(()) => {}
                Err(e @ LeaseError::Lost { .. }) => return self.lose(&e),
                // Expired unrenewed: writes are refused from now on (`may_write`), but renewing
                // goes on, since a sealing under way must keep the case as long as it can.
                Err(e) if now() >= claim.expires_at => self.lose(&e),
                Err(e) => {
                    tracing::warn!(case = %self.case, error = %e, "cannot renew the claim on the case; trying again")
                }
            }
        }
    }

    /// Whether the collection may write `key`: anything but the case's own objects; those
    /// while the claim holds. Storing the archive renews the claim first, so that a full
    /// lifetime is left for the archive, the seal and the `bundle_sealed` entry.
    fn may_write(&self, key: &StoreKey) -> Result<(), StoreError> {
        if key_case(key) != Some(&self.case) || self.committed.load(Ordering::SeqCst) {
            return Ok(());
        }
        if let StoreKey::Archive(..) = key {
            let mut claim = lock(&self.claim);
            if !self.lost.load(Ordering::SeqCst) {
                match claim.renew(self.store, self.ttl) {
                    Ok(()) => {
                        self.committed.store(true, Ordering::SeqCst);
                        return Ok(());
                    }
                    Err(e) => self.lose(&e),
                }
            }
        }
        // A claim about to expire is as good as lost: another replica may take it any moment.
        let margin = EXPIRY_MARGIN_SECONDS.min(self.ttl.as_secs() / 6);
        let expiring = lock(&self.claim).expires_at <= now() + margin;
        if self.lost.load(Ordering::SeqCst) || expiring {
            return Err(StoreError::Remote {
                uri: self.store.object_uri(key),
                message: format!(
                    "not written: the claim on case {} was lost, and the replica that holds it now collects the case",
                    self.case
                ),
            });
        }
        Ok(())
    }
}

/// The case an evidence object belongs to.
fn key_case(key: &StoreKey) -> Option<&CaseId> {
    match key {
        StoreKey::CaseHeader(c)
        | StoreKey::JournalEntry(c, _)
        | StoreKey::JournalSignature(c, _)
        | StoreKey::Archive(c, _)
        | StoreKey::ArchiveSidecar(c, _)
        | StoreKey::Seal(c, _)
        | StoreKey::SealSignature(c, _) => Some(c),
        _ => None,
    }
}

/// Every call goes to the daemon's store; writes of the case's objects are checked first.
impl Store for Held<'_> {
    fn uri(&self) -> String {
        self.store.uri()
    }
    fn object_uri(&self, key: &StoreKey) -> String {
        self.store.object_uri(key)
    }
    fn staging_dir(&self) -> &Path {
        self.store.staging_dir()
    }
    fn put_new(&self, key: &StoreKey, bytes: &[u8]) -> Result<Receipt, StoreError> {
        self.may_write(key)?;
        self.store.put_new(key, bytes)
    }
    fn put_new_file(&self, key: &StoreKey, staged: StagedFile) -> Result<Receipt, StoreError> {
        if let Err(e) = self.may_write(key) {
            let _ = std::fs::remove_file(&staged.path);
            return Err(e);
        }
        self.store.put_new_file(key, staged)
    }
    fn get(&self, key: &StoreKey) -> Result<Vec<u8>, StoreError> {
        self.store.get(key)
    }
    fn open(&self, key: &StoreKey) -> Result<Box<dyn Read + Send>, StoreError> {
        self.store.open(key)
    }
    fn exists(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.store.exists(key)
    }
    fn list(&self, prefix: &StorePrefix) -> Result<Vec<String>, StoreError> {
        self.store.list(prefix)
    }
    fn list_journal(&self, case: &CaseId) -> Result<(Vec<u64>, Vec<String>), StoreError> {
        self.store.list_journal(case)
    }
    fn list_bundles(&self, case: &CaseId) -> Result<(Vec<BundleId>, Vec<String>), StoreError> {
        self.store.list_bundles(case)
    }
    fn list_cases(&self) -> Result<Vec<CaseId>, StoreError> {
        self.store.list_cases()
    }
    fn receipt_of(&self, key: &StoreKey) -> Result<Option<Receipt>, StoreError> {
        self.store.receipt_of(key)
    }
}

/// Queues `retry.job` again after `retry.after`, on the daemon's runtime, so that no worker
/// waits meanwhile. The job is durable in the store either way: a restart finds it too.
pub fn retry_later(daemon: Arc<Daemon>, retry: Retry) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(case = %retry.job.case, "no runtime to retry the collection on; the next start resumes it");
        return;
    };
    runtime.spawn(async move {
        tokio::time::sleep(retry.after).await;
        daemon.queued.fetch_add(1, Ordering::SeqCst);
        if daemon.queue.send(retry.job).await.is_err() {
            daemon.queued.fetch_sub(1, Ordering::SeqCst);
        }
    });
}

impl crate::execute::expire::CaseClaims for Leases {
    fn with_claim(
        &self,
        store: &dyn Store,
        case: &CaseId,
        work: &mut dyn FnMut(&dyn Store),
    ) -> Result<(), crate::execute::expire::NotHeld> {
        let lost = self
            .hold(store, case, |held| {
                work(held);
                held.lost()
            })
            .map_err(|e| crate::execute::expire::NotHeld {
                busy: matches!(e, super::LeaseError::Busy { .. }),
                message: e.to_string(),
            })?;
        if lost {
            // Another holder took the case meanwhile: what was done is in the journal, and
            // the next round looks again.
            return Err(crate::execute::expire::NotHeld {
                busy: true,
                message: "the claim on the case was lost during the work".into(),
            });
        }
        Ok(())
    }
}
