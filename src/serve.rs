//! `custody serve`: the daemon. Alertmanager's webhook (and analysts, through the case API) open
//! cases; workers collect, seal and store them.
//!
//! The store is the only state. Each alert episode (fingerprint and `startsAt`) is recorded once
//! with a conditional create (`episodes/<sha256>.json`: create-new on disk, `If-None-Match: *` on
//! S3), so resends, retries and several replicas sharing one store open exactly one case per
//! episode without a leader or a database. A notification is answered 2xx only once its cases
//! are durably opened; collection is asynchronous. At start-up, every case whose journal shows an
//! unfinished collection is collected again, the interruption journaled.

pub mod alerts;
pub mod config;
mod metrics;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use time::OffsetDateTime;

use crate::case::{self as journal, EntryKind, Journal};
use crate::collect::{self, Request, Trigger};
use crate::id::{BundleId, CaseId};
use crate::keys::SigningKey;
use crate::policy::Policies;
use crate::source::k8s::{K8sRequest, K8sSource, Since, Target};
use crate::source::Source;
use crate::store::{Store, StoreError, StoreKey};

use alerts::{Alert, Notification};
use metrics::Metrics;

/// One collection for a worker.
#[derive(Clone, Debug)]
struct Job {
    case: CaseId,
    target: K8sRequest,
    trigger: Trigger,
    /// The alert, for `data/trigger/alert.json`.
    payload: Option<Vec<u8>>,
    /// Why this is a second attempt, if it is.
    restarted: Option<String>,
    /// The alert episode, whose resolve (if it came during the collection) is journaled at
    /// the end.
    episode: Option<String>,
}

pub struct Daemon {
    store: Box<dyn Store>,
    policies: Policies,
    key: SigningKey,
    webhook_token: Vec<u8>,
    analyst_token: Vec<u8>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    queue: tokio::sync::mpsc::Sender<Job>,
    queued: AtomicUsize,
    metrics: Metrics,
    ready: AtomicBool,
    staging: PathBuf,
}

/// Compares two secrets in time that depends on their lengths only.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.as_bytes();
    value
        .strip_prefix(b"Bearer ")
        .or_else(|| value.strip_prefix(b"bearer "))
}

fn answer(code: StatusCode, body: serde_json::Value) -> Response {
    (code, Json(body)).into_response()
}

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
fn collection_over(chain: &journal::CheckedChain) -> bool {
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

/// Journals the resolve of `episode` on `case` once, from its record.
fn journal_resolve(store: &dyn Store, case: &CaseId, episode: &str) -> Result<(), String> {
    let record = match store.get(&StoreKey::Episode(format!("{episode}.resolved.json"))) {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let chain = journal::check_chain(store, case).map_err(|e| e.to_string())?;
    if chain
        .entries
        .iter()
        .any(|(e, _)| e.kind() == EntryKind::AlertResolved)
    {
        return Ok(());
    }
    let details: serde_json::Value = serde_json::from_slice(&record).unwrap_or_default();
    append(store, case, EntryKind::AlertResolved, details)
}

/// The case an episode record names.
fn case_of(record: &[u8]) -> Option<CaseId> {
    let v: serde_json::Value = serde_json::from_slice(record).ok()?;
    CaseId::new(v.get("case_id")?.as_str()?).ok()
}

/// Appends to a case's journal, re-reading the head when another writer got there first.
fn append(
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

fn target_json(t: &K8sRequest) -> serde_json::Value {
    json!({
        "namespace": t.namespace,
        "deployment": match &t.target { Target::Deployment(d) => Some(d), _ => None },
        "selector": match &t.target { Target::Selector(s) => Some(s), _ => None },
        "since_seconds": match t.since { Since::Seconds(s) => Some(s), _ => None },
        "since_time": match &t.since { Since::Time(s) => Some(s), _ => None },
        "container": t.container,
    })
}

fn target_from_json(v: &serde_json::Value, d: &Daemon) -> Option<K8sRequest> {
    let namespace = v.get("namespace")?.as_str()?.to_owned();
    let target = match (
        v.get("deployment").and_then(|x| x.as_str()),
        v.get("selector").and_then(|x| x.as_str()),
    ) {
        (Some(dep), _) => Target::Deployment(dep.to_owned()),
        (None, Some(sel)) => Target::Selector(sel.to_owned()),
        _ => return None,
    };
    let since = match (
        v.get("since_seconds").and_then(|x| x.as_u64()),
        v.get("since_time").and_then(|x| x.as_str()),
    ) {
        (Some(s), _) => Since::Seconds(s),
        (None, Some(t)) => Since::Time(t.to_owned()),
        _ => Since::All,
    };
    Some(K8sRequest {
        namespace,
        target,
        since,
        container: v
            .get("container")
            .and_then(|x| x.as_str())
            .map(str::to_owned),
        context: d.context.clone(),
        kubeconfig: d.kubeconfig.clone(),
    })
}

impl Daemon {
    /// Opens a case durably and queues its collection; the queue slot is taken first, so that a
    /// full queue refuses the work before anything is written.
    fn open_and_queue(
        &self,
        permit: tokio::sync::mpsc::Permit<'_, Job>,
        case: CaseId,
        target: K8sRequest,
        trigger: Trigger,
        details: serde_json::Value,
        payload: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let now = OffsetDateTime::now_utc();
        let request = Request {
            case_id: case.clone(),
            bundle_id: BundleId::generate(now),
            at: now,
            trigger: trigger.clone(),
            top: 20,
            format: crate::analysis::format::FormatChoice::Auto,
            progress: false,
            trigger_payload: None,
            staging: None,
        };
        let mut details = details;
        details["target"] = target_json(&target);
        match collect::open_case(self.store.as_ref(), &request, details.clone()) {
            Ok(_) => {}
            Err(collect::CollectError::OpenCase(StoreError::AlreadyExists { .. })) => {
                // The header is there. If the first journal entry is too, the case is open and
                // its collection is someone else's (or the restart's); if not, its opener died
                // in between, and this finishes opening it.
                if self.case_open(&case)? {
                    return Ok(false);
                }
                let header = self.store.get(&StoreKey::CaseHeader(case.clone()))?;
                let mut first = json!({
                    "trigger": trigger,
                    "case_header_sha256": crate::digest::Sha256Digest::of(&header),
                });
                if !details.is_null() {
                    first["trigger_details"] = details.clone();
                }
                let mut journal = Journal::new_case(self.store.as_ref(), case.clone());
                match journal.append_json(&trigger.requested_by, EntryKind::CaseOpened, first) {
                    Ok(_) => {}
                    Err(journal::JournalError::Append {
                        source: StoreError::AlreadyExists { .. },
                        ..
                    }) => return Ok(false),
                    Err(e) => {
                        return Err(StoreError::Remote {
                            uri: self.store.uri(),
                            message: e.to_string(),
                        })
                    }
                }
            }
            // Another replica finished opening it between this one's two writes.
            Err(collect::CollectError::Journal(journal::JournalError::Append {
                source: StoreError::AlreadyExists { .. },
                ..
            })) => return Ok(false),
            Err(collect::CollectError::OpenCase(e)) => return Err(e),
            Err(e) => {
                return Err(StoreError::Remote {
                    uri: self.store.uri(),
                    message: e.to_string(),
                })
            }
        }
        self.metrics.case_opened(&trigger.kind);
        self.queued.fetch_add(1, Ordering::SeqCst);
        self.metrics.queue_depth(self.queued.load(Ordering::SeqCst));
        let episode = details
            .get("episode")
            .and_then(|e| e.as_str())
            .map(str::to_owned);
        permit.send(Job {
            case,
            target,
            trigger,
            payload,
            restarted: None,
            episode,
        });
        Ok(true)
    }

    /// Whether a case is open: its first journal entry is stored (a header alone is a case
    /// whose opener died in between).
    fn case_open(&self, case: &CaseId) -> Result<bool, StoreError> {
        self.store.exists(&StoreKey::JournalEntry(case.clone(), 1))
    }

    /// One alert of a notification; returns what became of it.
    fn handle_alert(&self, alert: &Alert) -> Result<serde_json::Value, (StatusCode, String)> {
        let episode = alert.episode();
        let unavailable = |e: StoreError| (StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        let marker_key = StoreKey::Episode(format!("{episode}.json"));
        if alert.status == "resolved" {
            let marker = match self.store.get(&marker_key) {
                Ok(m) => m,
                Err(StoreError::NotFound { .. }) => {
                    return Ok(
                        json!({"fingerprint": alert.fingerprint(), "outcome": "resolved-unknown"}),
                    )
                }
                Err(e) => return Err(unavailable(e)),
            };
            let marker: serde_json::Value = serde_json::from_slice(&marker).unwrap_or_default();
            let Some(case) = marker
                .get("case_id")
                .and_then(|c| c.as_str())
                .and_then(|c| CaseId::new(c).ok())
            else {
                return Ok(json!({"fingerprint": alert.fingerprint(), "outcome": "ignored"}));
            };
            // Kept first, so the resolve is never lost; journaled on the case once it is no
            // longer being collected (the collection journals it at its end otherwise).
            let once = StoreKey::Episode(format!("{episode}.resolved.json"));
            let record = serde_json::to_vec_pretty(
                &json!({"alert": alert, "fingerprint": alert.fingerprint()}),
            )
            .unwrap_or_default();
            match self.store.put_new(&once, &record) {
                Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(unavailable(e)),
            }
            let chain = journal::check_chain(self.store.as_ref(), &case).map_err(unavailable)?;
            if collection_over(&chain) {
                journal_resolve(self.store.as_ref(), &case, &episode)
                    .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e))?;
            }
            return Ok(
                json!({"fingerprint": alert.fingerprint(), "outcome": "resolved", "case_id": case}),
            );
        }
        let Some(route) = alerts::route(&self.policies.collection.alerts, alert) else {
            let record = json!({"ignored": true, "reason": "no alert route matches", "alertname": alert.name(),
                                "fingerprint": alert.fingerprint(), "starts_at": alert.starts_at,
                                "received_at": crate::timefmt::rfc3339(OffsetDateTime::now_utc())});
            match self.store.put_new(
                &marker_key,
                &serde_json::to_vec_pretty(&record).unwrap_or_default(),
            ) {
                Ok(_) => {
                    tracing::info!(alertname = alert.name(), "alert ignored: no route matches")
                }
                Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(unavailable(e)),
            }
            return Ok(json!({"fingerprint": alert.fingerprint(), "outcome": "ignored"}));
        };
        let target = match alerts::target(route, alert, (&self.kubeconfig, &self.context)) {
            Ok(t) => t,
            Err(why) => {
                // Recorded, and the other alerts of the notification still handled.
                let record = json!({"ignored": true, "reason": why, "alertname": alert.name(),
                                    "fingerprint": alert.fingerprint(), "starts_at": alert.starts_at});
                match self.store.put_new(
                    &marker_key,
                    &serde_json::to_vec_pretty(&record).unwrap_or_default(),
                ) {
                    Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(unavailable(e)),
                }
                tracing::warn!(alertname = alert.name(), reason = %why, "alert not collected");
                return Ok(
                    json!({"fingerprint": alert.fingerprint(), "outcome": "error", "error": why}),
                );
            }
        };
        // A resend of an episode whose case is open is answered without a queue slot.
        if let Ok(existing) = self.store.get(&marker_key) {
            if let Some(case) = case_of(&existing) {
                if self.case_open(&case).map_err(unavailable)? {
                    return Ok(
                        json!({"fingerprint": alert.fingerprint(), "outcome": "duplicate", "case_id": case}),
                    );
                }
            }
        }
        let Ok(permit) = self.queue.try_reserve() else {
            self.metrics.overloaded();
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "the collection queue is full".into(),
            ));
        };
        let now = OffsetDateTime::now_utc();
        let fresh = CaseId::generate(now);
        let record = json!({"case_id": fresh, "alertname": alert.name(), "fingerprint": alert.fingerprint(),
                            "starts_at": alert.starts_at, "received_at": crate::timefmt::rfc3339(now)});
        let case = match self.store.put_new(
            &marker_key,
            &serde_json::to_vec_pretty(&record).unwrap_or_default(),
        ) {
            Ok(_) => fresh,
            Err(StoreError::AlreadyExists { .. }) => {
                // A resend (or another replica got it first): the same case, never a second.
                let existing = self.store.get(&marker_key).map_err(unavailable)?;
                let Some(case) = case_of(&existing) else {
                    return Ok(json!({"fingerprint": alert.fingerprint(), "outcome": "ignored"}));
                };
                // The case is open once its first journal entry is stored; if its opener died
                // before that, it is opened (and collected) now.
                if self.case_open(&case).map_err(unavailable)? {
                    return Ok(
                        json!({"fingerprint": alert.fingerprint(), "outcome": "duplicate", "case_id": case}),
                    );
                }
                case
            }
            Err(e) => return Err(unavailable(e)),
        };
        let payload = serde_json::to_vec_pretty(alert).unwrap_or_default();
        let trigger = Trigger {
            kind: "alert".into(),
            requested_by: "alertmanager".into(),
        };
        let details =
            json!({"alert": alert, "fingerprint": alert.fingerprint(), "episode": episode});
        let queued = self
            .open_and_queue(
                permit,
                case.clone(),
                target,
                trigger,
                details,
                Some(payload),
            )
            .map_err(unavailable)?;
        // "opened" by the one request that queued the collection; every other one is a duplicate.
        let outcome = if queued { "opened" } else { "duplicate" };
        Ok(json!({"fingerprint": alert.fingerprint(), "outcome": outcome, "case_id": case}))
    }

    /// Runs one collection to its end, journaling how it ended.
    fn run(&self, job: Job) {
        let started = Instant::now();
        let store = self.store.as_ref();
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
                match store.stored_objects(&job.case) {
                    Ok(Some(objects)) => {
                        if let Err(e) = append(store, &job.case, EntryKind::ObjectsStored, objects)
                        {
                            tracing::warn!(case = %job.case, error = %e, "cannot journal the stored objects");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(case = %job.case, error = %e, "cannot record the stored objects: verify s3:// will report the case as unrecorded")
                    }
                }
                if let Err(e) = append(store, &job.case, EntryKind::Findings, findings) {
                    tracing::warn!(case = %job.case, error = %e, "cannot journal the findings");
                }
                tracing::info!(case = %job.case, bundle = %o.bundle.bundle_id, bytes, "collection sealed");
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

    /// The cases whose collection a previous run did not finish.
    fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let mut jobs = Vec::new();
        for case in self.store.list_cases()? {
            let chain = journal::check_chain(self.store.as_ref(), &case)?;
            let Some(opened) = unfinished(&chain) else {
                continue;
            };
            let Some(target) = opened
                .get("trigger_details")
                .and_then(|d| d.get("target"))
                .and_then(|t| target_from_json(t, self))
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
            jobs.push(Job {
                case,
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

    fn case_view(&self, case: &CaseId) -> Result<serde_json::Value, StoreError> {
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

type Shared = Arc<Daemon>;

async fn blocking<T: Send + 'static>(
    d: &Shared,
    f: impl FnOnce(&Daemon) -> T + Send + 'static,
) -> Result<T, Response> {
    let d = d.clone();
    tokio::task::spawn_blocking(move || f(&d))
        .await
        .map_err(|e| {
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": format!("internal failure: {e}")}),
            )
        })
}

async fn alerts_endpoint(State(d): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let respond = |d: &Daemon, code: StatusCode, body: serde_json::Value| {
        d.metrics.webhook(code.as_u16());
        answer(code, body)
    };
    if !bearer(&headers).is_some_and(|t| same_secret(t, &d.webhook_token)) {
        return respond(
            &d,
            StatusCode::UNAUTHORIZED,
            json!({"error": "a valid bearer token is required"}),
        );
    }
    let notification = match Notification::parse(&body) {
        Ok(n) => n,
        Err(e) => {
            return respond(
                &d,
                StatusCode::BAD_REQUEST,
                json!({"error": format!("not an Alertmanager webhook body: {e}")}),
            )
        }
    };
    let outcome = blocking(&d, move |d| {
        let mut results = Vec::new();
        for alert in &notification.alerts {
            results.push(d.handle_alert(alert)?);
        }
        Ok::<_, (StatusCode, String)>(results)
    })
    .await;
    match outcome {
        Ok(Ok(results)) => respond(&d, StatusCode::OK, json!({"ok": true, "alerts": results})),
        Ok(Err((code, error))) => respond(&d, code, json!({"error": error})),
        Err(r) => {
            d.metrics.webhook(500);
            r
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseRequest {
    namespace: String,
    deployment: Option<String>,
    selector: Option<String>,
    since: Option<String>,
    container: Option<String>,
    requested_by: Option<String>,
}

async fn open_case_endpoint(State(d): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !bearer(&headers).is_some_and(|t| same_secret(t, &d.analyst_token)) {
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "a valid bearer token is required"}),
        );
    }
    let req: CaseRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return answer(StatusCode::BAD_REQUEST, json!({"error": e.to_string()})),
    };
    let target = match (&req.deployment, &req.selector) {
        (Some(dep), None) => Target::Deployment(dep.clone()),
        (None, Some(sel)) if !sel.trim().is_empty() => Target::Selector(sel.clone()),
        _ => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": "give deployment or selector (not both)"}),
            )
        }
    };
    let since = match req.since.as_deref().map(crate::duration::seconds) {
        None => Since::All,
        Some(Ok(s)) => Since::Seconds(s),
        Some(Err(e)) => return answer(StatusCode::BAD_REQUEST, json!({"error": e})),
    };
    let target = K8sRequest {
        namespace: req.namespace,
        target,
        since,
        container: req.container,
        context: d.context.clone(),
        kubeconfig: d.kubeconfig.clone(),
    };
    let requested_by = req.requested_by.unwrap_or_else(|| "analyst".into());
    let result = blocking(&d, move |d| {
        let Ok(permit) = d.queue.try_reserve() else {
            d.metrics.overloaded();
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "the collection queue is full".to_owned(),
            ));
        };
        let case = CaseId::generate(OffsetDateTime::now_utc());
        let trigger = Trigger {
            kind: "api".into(),
            requested_by,
        };
        d.open_and_queue(
            permit,
            case.clone(),
            target,
            trigger,
            serde_json::Value::Null,
            None,
        )
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        Ok(case)
    })
    .await;
    match result {
        Ok(Ok(case)) => answer(
            StatusCode::ACCEPTED,
            json!({"case_id": case, "state": "collecting"}),
        ),
        Ok(Err((code, e))) => answer(code, json!({"error": e})),
        Err(r) => r,
    }
}

async fn list_cases_endpoint(State(d): State<Shared>, headers: HeaderMap) -> Response {
    if !bearer(&headers).is_some_and(|t| same_secret(t, &d.analyst_token)) {
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "a valid bearer token is required"}),
        );
    }
    match blocking(&d, |d| {
        let mut out = Vec::new();
        for case in d.store.list_cases()? {
            out.push(d.case_view(&case)?);
        }
        Ok::<_, StoreError>(out)
    })
    .await
    {
        Ok(Ok(cases)) => answer(StatusCode::OK, json!({"cases": cases})),
        Ok(Err(e)) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": e.to_string()}),
        ),
        Err(r) => r,
    }
}

async fn get_case_endpoint(
    State(d): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if !bearer(&headers).is_some_and(|t| same_secret(t, &d.analyst_token)) {
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "a valid bearer token is required"}),
        );
    }
    let Ok(case) = CaseId::new(id) else {
        return answer(StatusCode::BAD_REQUEST, json!({"error": "not a case id"}));
    };
    match blocking(&d, move |d| {
        if !d.store.exists(&StoreKey::CaseHeader(case.clone()))? {
            return Ok(None);
        }
        d.case_view(&case).map(Some)
    })
    .await
    {
        Ok(Ok(Some(view))) => answer(StatusCode::OK, view),
        Ok(Ok(None)) => answer(StatusCode::NOT_FOUND, json!({"error": "no such case"})),
        Ok(Err(e)) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": e.to_string()}),
        ),
        Err(r) => r,
    }
}

async fn metrics_endpoint(State(d): State<Shared>) -> Response {
    d.metrics.queue_depth(d.queued.load(Ordering::SeqCst));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        d.metrics.render(),
    )
        .into_response()
}

async fn readyz(State(d): State<Shared>) -> Response {
    if !d.ready.load(Ordering::SeqCst) {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "why": "starting"}),
        );
    }
    // One cheap call that needs the store to answer (a HEAD on S3, a stat on disk).
    match blocking(&d, |d| {
        d.store
            .exists(&StoreKey::Probe("readiness".into()))
            .map(|_| ())
    })
    .await
    {
        Ok(Ok(())) => answer(StatusCode::OK, json!({"ready": true})),
        Ok(Err(e)) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "why": e.to_string()}),
        ),
        Err(r) => r,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Runtime(std::io::Error),
    #[error("cannot use the TLS certificate and key: {0}")]
    Tls(String),
}

/// Runs the daemon until SIGTERM or SIGINT, then drains: the listener stops and the running
/// collections finish; queued ones are durable and resume at the next start.
pub fn serve(store: Box<dyn Store>, loaded: config::Loaded) -> Result<(), ServeError> {
    let config = &loaded.config;
    let policies = crate::policy::load(config.policies.as_deref())?;
    let key = SigningKey::load(&config.signing_key)?;
    let staging = store.staging_dir().to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let (queue, mut jobs) = tokio::sync::mpsc::channel::<Job>(config.limits.queue);
    let daemon = Arc::new(Daemon {
        store,
        policies,
        key,
        webhook_token: loaded.webhook_token.clone(),
        analyst_token: loaded.analyst_token.clone(),
        kubeconfig: config.kubernetes.kubeconfig.clone(),
        context: config.kubernetes.context.clone(),
        queue,
        queued: AtomicUsize::new(0),
        metrics: Metrics::new(),
        ready: AtomicBool::new(false),
        staging,
    });
    let workers = config.limits.workers;
    let tls = config.tls.as_ref().map(|t| config::TlsSettings {
        cert_file: t.cert_file.clone(),
        key_file: t.key_file.clone(),
    });
    let listen = loaded.listen;
    let max_body = config.limits.max_body_bytes;
    // The daemon is dropped after the runtime has stopped: an S3 store owns a runtime of its
    // own, which must not be dropped from async code.
    let keep = daemon.clone();
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Listen {
                addr: listen.to_string(),
                source,
            })?;
        // Workers: take jobs from the queue, a few at a time.
        let permits = Arc::new(tokio::sync::Semaphore::new(workers));
        let (stop, mut stopping) = tokio::sync::watch::channel(false);
        let d = daemon.clone();
        let dispatcher = tokio::spawn(async move {
            let mut running = tokio::task::JoinSet::new();
            loop {
                let permit = tokio::select! {
                    p = permits.clone().acquire_owned() => p,
                    _ = stopping.changed() => break,
                };
                let Ok(permit) = permit else { break };
                let job = tokio::select! {
                    j = jobs.recv() => j,
                    _ = stopping.changed() => break,
                };
                let Some(job) = job else { break };
                d.queued.fetch_sub(1, Ordering::SeqCst);
                let d = d.clone();
                running.spawn_blocking(move || {
                    d.run(job);
                    drop(permit);
                });
                // Reap what has finished, so the set stays small.
                while running.try_join_next().is_some() {}
            }
            // Running collections finish; queued ones are durable and resume at the next start.
            while running.join_next().await.is_some() {}
        });
        // Collections a previous run did not finish, queued in the background so that the
        // server answers (and /healthz passes) however many there are; ready once all are in.
        let d = daemon.clone();
        tokio::spawn(async move {
            let scan = {
                let d = d.clone();
                tokio::task::spawn_blocking(move || d.unfinished_jobs()).await
            };
            match scan {
                Ok(Ok(pending)) => {
                    for job in pending {
                        tracing::info!(case = %job.case, "resuming an unfinished collection");
                        d.queued.fetch_add(1, Ordering::SeqCst);
                        if d.queue.send(job).await.is_err() {
                            d.queued.fetch_sub(1, Ordering::SeqCst);
                            break;
                        }
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "cannot list unfinished cases"),
                Err(e) => tracing::error!(error = %e, "cannot list unfinished cases"),
            }
            d.ready.store(true, Ordering::SeqCst);
        });
        let app = Router::new()
            .route("/api/v1/alerts", post(alerts_endpoint))
            .route(
                "/api/v1/cases",
                post(open_case_endpoint).get(list_cases_endpoint),
            )
            .route("/api/v1/cases/{id}", get(get_case_endpoint))
            .route("/metrics", get(metrics_endpoint))
            .route("/healthz", get(|| async { Json(json!({"ok": true})) }))
            .route("/readyz", get(readyz))
            .layer(DefaultBodyLimit::max(max_body))
            .with_state(daemon.clone());
        match tls {
            None => {
                tracing::info!(%listen, "custody serve listening (HTTP)");
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown_signal())
                    .await
                    .map_err(ServeError::Runtime)?;
            }
            Some(tls) => {
                let rustls = axum_server::tls_rustls::RustlsConfig::from_pem_file(
                    &tls.cert_file,
                    &tls.key_file,
                )
                .await
                .map_err(|e| {
                    ServeError::Tls(format!(
                        "{} / {}: {e}",
                        tls.cert_file.display(),
                        tls.key_file.display()
                    ))
                })?;
                let handle = axum_server::Handle::new();
                let stopping = handle.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    stopping.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
                });
                let listener = listener.into_std().map_err(ServeError::Runtime)?;
                tracing::info!(%listen, "custody serve listening (HTTPS)");
                axum_server::from_tcp_rustls(listener, rustls)
                    .map_err(ServeError::Runtime)?
                    .handle(handle)
                    .serve(app.into_make_service())
                    .await
                    .map_err(ServeError::Runtime)?;
            }
        }
        tracing::info!("draining: finishing the running collections");
        let _ = stop.send(true);
        let _ = dispatcher.await;
        tracing::info!("stopped");
        Ok(())
    });
    drop(runtime);
    drop(keep);
    result
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!same_secret(b"", b"0123456789abcdef"));
    }
}
