//! `custody serve`'s work, apart from HTTP: alert episodes, the collection queue, its workers, and
//! the restart of collections a previous run left unfinished. The HTTP side (`server`) calls in
//! here; nothing here knows about HTTP.
//!
//! The store is the only state. Each alert episode (fingerprint and `startsAt`) is recorded once
//! with a conditional create (`episodes/<sha256>.json`: create-new on disk, `If-None-Match: *` on
//! S3), so resends, retries and several replicas sharing one store open exactly one case per
//! episode without a leader or a database. A notification is answered 2xx only once its cases
//! are durably opened; collection is asynchronous. At start-up, every case whose journal shows an
//! unfinished collection is collected again, the interruption journaled. A resend of an alert
//! whose case's collection failed collects it again; a collection that fails on a transient
//! store fault is retried by its worker. Cases are read through `case::CaseState` and journaled
//! with typed `case::Details`. A sealed case is announced (and, for an alert, planned) by the
//! daemon that stored it, once; plans that pass their `not_after` are journaled and announced
//! as expired (`expiry`).

pub mod alerts;
mod block_expiry;
pub mod config;
pub mod drafts;
mod episodes;
pub mod execution;
pub mod expiry;
mod job;
pub(crate) mod lease;
pub mod metrics;
pub mod notify;
pub mod plans;
mod queue;
mod spooled;
mod state;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use time::OffsetDateTime;

use crate::case::entry::TriggerDetails;
use crate::case::{self as journal, CaseError, CaseHeader, Journal};
use crate::collect::Trigger;
use crate::id::CaseId;
use crate::keys::SigningKey;
use crate::policy::Policies;
use crate::source::k8s::{K8sRequest, Since, Target};
use crate::store::{Store, StoreError, StoreKey};

pub use block_expiry::expire_blocks_every;
pub use expiry::watch_expiries;
pub use job::{recorded_target, request_of, Job};
pub use queue::{housekeeping_every, requeue_unfinished, run_workers, Jobs};
pub use spooled::Spooling;

use metrics::Metrics;

/// Why the daemon could not take a request: both are worth a retry (HTTP 503).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store could not record or answer.
    #[error("{0}")]
    Unavailable(String),
    #[error("the collection queue is full")]
    QueueFull,
}

impl From<StoreError> for DaemonError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

pub struct Daemon {
    store: Box<dyn Store>,
    policies: Policies,
    key: SigningKey,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    queue: tokio::sync::mpsc::Sender<Job>,
    queued: AtomicUsize,
    metrics: Metrics,
    ready: AtomicBool,
    staging: PathBuf,
    leases: lease::Leases,
    /// With an S3 store, the local spool collections are sealed into before they are uploaded.
    spooling: Option<Spooling>,
    /// Resolves kept to journal once their case is no longer being collected, by case.
    pending_resolves: std::sync::Mutex<std::collections::BTreeMap<CaseId, String>>,
    /// The approvers' roster in force, if the policies directory has one (`plans`).
    roster: Option<std::sync::Arc<plans::RosterInForce>>,
    /// Where notifications go, if `notify:` is configured.
    notifier: Option<notify::Notifier>,
    /// The URL approvers reach the daemon at, for the approve commands it shows.
    server_url: String,
    /// The open plans, watched for expiry (`expiry`).
    expiries: expiry::OpenPlans,
    /// The executed plans whose expiry did not succeed, and when each is looked at again.
    block_expiry_backoff: block_expiry::Backoff,
    /// Drafts being built now (`drafts`): each reads the whole cluster and dry-runs, so only
    /// `drafts::MAX_DRAFTS_IN_FLIGHT` at once.
    drafting: tokio::sync::Semaphore,
    /// Sealed bundles stored by this daemon and not yet announced, by case (`plans`).
    announcements: std::sync::Mutex<std::collections::BTreeMap<CaseId, crate::id::BundleId>>,
    /// Cases this daemon is opening now: a second request for one (an episode's notification
    /// sent twice at once) leaves it to the first, as another replica's request would.
    opening: std::sync::Mutex<std::collections::BTreeSet<CaseId>>,
}

/// A case being opened by this daemon, until dropped.
struct Opening<'a> {
    set: &'a std::sync::Mutex<std::collections::BTreeSet<CaseId>>,
    case: CaseId,
}

impl<'a> Opening<'a> {
    /// None if the case is being opened already.
    fn start(
        set: &'a std::sync::Mutex<std::collections::BTreeSet<CaseId>>,
        case: &CaseId,
    ) -> Option<Self> {
        let fresh = set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(case.clone());
        fresh.then(|| Self {
            set,
            case: case.clone(),
        })
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.case);
    }
}

impl Daemon {
    /// A daemon over `store` with a queue of `queue` collections; the jobs go to `run_workers`.
    pub fn new(
        store: Box<dyn Store>,
        policies: Policies,
        key: SigningKey,
        kubernetes: &config::KubernetesSettings,
        queue: usize,
    ) -> (Self, Jobs) {
        let staging = store.staging_dir().to_owned();
        let (sender, jobs) = tokio::sync::mpsc::channel::<Job>(queue);
        let daemon = Self {
            store,
            policies,
            key,
            kubeconfig: kubernetes.kubeconfig.clone(),
            context: kubernetes.context.clone(),
            queue: sender,
            queued: AtomicUsize::new(0),
            metrics: Metrics::new(),
            ready: AtomicBool::new(false),
            staging,
            leases: lease::Leases::new(config::default_replica(None)),
            spooling: None,
            pending_resolves: Default::default(),
            roster: None,
            drafting: tokio::sync::Semaphore::new(drafts::MAX_DRAFTS_IN_FLIGHT),
            notifier: None,
            server_url: "http://127.0.0.1:8080".into(),
            expiries: Default::default(),
            block_expiry_backoff: Default::default(),
            announcements: Default::default(),
            opening: Default::default(),
        };
        (daemon, Jobs(jobs))
    }

    /// Names this replica in the claims it takes on cases (`replica:` in the configuration).
    pub fn set_replica(&mut self, replica: String) {
        self.leases = lease::Leases::new(replica);
    }

    /// Seals collections into `spooling`'s spool and uploads them to its S3 store (the
    /// daemon's store), as `custody collect` does.
    pub fn set_spool(&mut self, spooling: Spooling) {
        self.spooling = Some(spooling);
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics in Prometheus text, the queue depth brought up to date.
    pub fn render_metrics(&self) -> String {
        self.metrics.queue_depth(self.queued.load(Ordering::SeqCst));
        self.metrics.render()
    }

    /// Whether the unfinished collections of a previous run are all queued again.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// One cheap call that needs the store to answer (a HEAD on S3, a stat on disk).
    pub fn probe_store(&self) -> Result<(), StoreError> {
        self.store
            .exists(&StoreKey::Probe("readiness".into()))
            .map(|_| ())
    }

    /// What to collect in the cluster this daemon is configured for.
    pub fn k8s_request(
        &self,
        namespace: String,
        target: Target,
        since: Since,
        container: Option<String>,
    ) -> K8sRequest {
        K8sRequest {
            namespace,
            target,
            since,
            container,
            context: self.context.clone(),
            kubeconfig: self.kubeconfig.clone(),
        }
    }

    /// Opens a case an analyst asked for and queues its collection.
    pub fn open_requested(
        &self,
        target: K8sRequest,
        requested_by: String,
    ) -> Result<CaseId, DaemonError> {
        let Ok(permit) = self.queue.try_reserve() else {
            self.metrics.overloaded();
            return Err(DaemonError::QueueFull);
        };
        let case = CaseId::generate(OffsetDateTime::now_utc());
        let trigger = Trigger {
            kind: "api".into(),
            requested_by,
        };
        self.open_and_queue(
            permit,
            case.clone(),
            target,
            trigger,
            TriggerDetails::default(),
            None,
        )?;
        Ok(case)
    }

    /// Every case, as the case API shows it.
    pub fn case_views(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut out = Vec::new();
        for case in self.store.list_cases()? {
            out.push(self.case_view(&case)?);
        }
        Ok(out)
    }

    /// One case, as the case API shows it; `None` if there is no such case.
    pub fn case(&self, case: &CaseId) -> Result<Option<serde_json::Value>, StoreError> {
        if !self.store.exists(&StoreKey::CaseHeader(case.clone()))? {
            return Ok(None);
        }
        self.case_view(case).map(Some)
    }

    /// Opens a case durably and queues its collection; the queue slot is taken first, so that a
    /// full queue refuses the work before anything is written.
    fn open_and_queue(
        &self,
        permit: tokio::sync::mpsc::Permit<'_, Job>,
        case: CaseId,
        target: K8sRequest,
        trigger: Trigger,
        details: TriggerDetails,
        payload: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let Some(_opening) = Opening::start(&self.opening, &case) else {
            return Ok(false);
        };
        let details = TriggerDetails {
            target: Some(recorded_target(&target)),
            replica: Some(self.leases.holder().to_owned()),
            ..details
        };
        let header = CaseHeader::new(case.clone(), OffsetDateTime::now_utc(), trigger.clone());
        match journal::open(
            self.store.as_ref(),
            &header,
            Some(details.clone()),
            &self.key,
        ) {
            Ok(_) => {}
            Err(CaseError::WriteHeader(StoreError::AlreadyExists { .. })) => {
                if !self.finish_opening(&case, &trigger, &details)? {
                    return Ok(false);
                }
            }
            // Another replica finished opening it between this one's two writes.
            Err(CaseError::Journal(journal::JournalError::Append {
                source: StoreError::AlreadyExists { .. },
                ..
            })) => return Ok(false),
            Err(CaseError::WriteHeader(e)) => return Err(e),
            Err(e) => {
                return Err(StoreError::Remote {
                    uri: self.store.uri(),
                    message: e.to_string(),
                })
            }
        }
        self.metrics.case_opened(&trigger.kind);
        self.queue_job(
            permit,
            Job {
                case,
                target,
                trigger,
                payload,
                restarted: None,
                episode: details.episode,
                // The case was just opened: `case_opened` is its first entry.
                journal_seen: 1,
            },
        );
        Ok(true)
    }

    /// Sends a job into the slot taken for it, counting it queued.
    fn queue_job(&self, permit: tokio::sync::mpsc::Permit<'_, Job>, job: Job) {
        self.queued.fetch_add(1, Ordering::SeqCst);
        self.metrics.queue_depth(self.queued.load(Ordering::SeqCst));
        permit.send(job);
    }

    /// The header is there. If the first journal entry is too, the case is open and its
    /// collection is someone else's (or the restart's): false. If not, its opener died in
    /// between, and this finishes opening it: true.
    fn finish_opening(
        &self,
        case: &CaseId,
        trigger: &Trigger,
        details: &TriggerDetails,
    ) -> Result<bool, StoreError> {
        if self.case_open(case)? {
            return Ok(false);
        }
        let header = self.store.get(&StoreKey::CaseHeader(case.clone()))?;
        let first = journal::opened_entry(trigger, &header, Some(details.clone()));
        let mut journal = Journal::new_case(self.store.as_ref(), case.clone(), &self.key);
        match journal.append(&trigger.requested_by, first) {
            Ok(_) => Ok(true),
            Err(journal::JournalError::Append {
                source: StoreError::AlreadyExists { .. },
                ..
            }) => Ok(false),
            Err(e) => Err(StoreError::Remote {
                uri: self.store.uri(),
                message: e.to_string(),
            }),
        }
    }

    /// Whether a case is open: its first journal entry is stored (a header alone is a case
    /// whose opener died in between).
    fn case_open(&self, case: &CaseId) -> Result<bool, StoreError> {
        self.store.exists(&StoreKey::JournalEntry(case.clone(), 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_is_opened_by_one_request_at_a_time() {
        let set = Default::default();
        let case = CaseId::new("20261202-140000-00000001").expect("id");
        let first = Opening::start(&set, &case).expect("first");
        assert!(Opening::start(&set, &case).is_none());
        let other = CaseId::new("20261202-140000-00000002").expect("id");
        assert!(Opening::start(&set, &other).is_some());
        drop(first);
        assert!(Opening::start(&set, &case).is_some());
    }
}
