//! Alert episodes: one case per firing episode, however often and to however many replicas
//! Alertmanager sends it, by a conditional create of `episodes/<sha256>.json`; a resolve kept in
//! `episodes/<sha256>.resolved.json` and journaled on its case once.

use serde_json::json;
use time::OffsetDateTime;

use crate::case::entry::{AlertResolved, TriggerDetails};
use crate::case::{self as journal, CaseState, Details, Status};
use crate::collect::Trigger;
use crate::id::CaseId;
use crate::keys::SigningKey;
use crate::store::{Store, StoreError, StoreKey};

use super::alerts::{self, Alert};
use super::lease::LeaseError;
use super::worker::append_unless;
use super::{Daemon, DaemonError};

/// Why a resend of a failed episode collects its case again.
const RESENT: &str = "the alert was sent again after its collection failed; collecting again";

/// Journals the resolve of `episode` on `case` once, from its record: whether it is journaled
/// already is checked again after every append that lost a race, so the collection's end and a
/// resolve arriving just then cannot both journal it.
/// True when the resolve is journaled now or was already, or there is no resolve to journal;
/// false while the case's collection has not ended.
pub(super) fn journal_resolve(
    store: &dyn Store,
    key: &SigningKey,
    case: &CaseId,
    episode: &str,
) -> Result<bool, String> {
    let record = match store.get(&StoreKey::Episode(format!("{episode}.resolved.json"))) {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => return Ok(true),
        Err(e) => return Err(e.to_string()),
    };
    let details: AlertResolved = serde_json::from_slice(&record).unwrap_or_default();
    // Never in the middle of a collection (its seal pins the journal's head): the worker
    // journals the resolve when the collection ends.
    let over = std::cell::Cell::new(true);
    append_unless(store, key, case, Details::AlertResolved(details), |s| {
        over.set(s.collection_over());
        s.alert_resolved || !s.collection_over()
    })?;
    Ok(over.get())
}

/// The case an episode record names.
fn case_of(record: &[u8]) -> Option<CaseId> {
    let v: serde_json::Value = serde_json::from_slice(record).ok()?;
    CaseId::new(v.get("case_id")?.as_str()?).ok()
}

impl Daemon {
    /// One alert of a notification; returns what became of it.
    pub fn handle_alert(&self, alert: &Alert) -> Result<serde_json::Value, DaemonError> {
        if alert.status == "resolved" {
            return self.handle_resolve(alert);
        }
        let episode = alert.episode();
        let marker_key = StoreKey::Episode(format!("{episode}.json"));
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
                Err(e) => return Err(e.into()),
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
                    Err(e) => return Err(e.into()),
                }
                tracing::warn!(alertname = alert.name(), reason = %why, "alert not collected");
                return Ok(
                    json!({"fingerprint": alert.fingerprint(), "outcome": "error", "error": why}),
                );
            }
        };
        self.open_episode(alert, &episode, &marker_key, target)
    }

    /// A firing alert with a target: its episode's case, opened and queued by the first
    /// notification of the episode only.
    fn open_episode(
        &self,
        alert: &Alert,
        episode: &str,
        marker_key: &StoreKey,
        target: crate::source::k8s::K8sRequest,
    ) -> Result<serde_json::Value, DaemonError> {
        // A resend of an episode whose case is open is answered without a queue slot, unless
        // the case's collection failed: then it is collected again.
        if let Ok(existing) = self.store.get(marker_key) {
            if let Some(case) = case_of(&existing) {
                if self.case_open(&case)? {
                    return self.resend(alert, &case);
                }
            }
        }
        let Ok(permit) = self.queue.try_reserve() else {
            self.metrics.overloaded();
            return Err(DaemonError::QueueFull);
        };
        let now = OffsetDateTime::now_utc();
        let fresh = CaseId::generate(now);
        let record = json!({"case_id": fresh, "alertname": alert.name(), "fingerprint": alert.fingerprint(),
                            "starts_at": alert.starts_at, "received_at": crate::timefmt::rfc3339(now)});
        let case = match self.store.put_new(
            marker_key,
            &serde_json::to_vec_pretty(&record).unwrap_or_default(),
        ) {
            Ok(_) => fresh,
            Err(StoreError::AlreadyExists { .. }) => {
                // A resend (or another replica got it first): the same case, never a second.
                let existing = self.store.get(marker_key)?;
                let Some(case) = case_of(&existing) else {
                    return Ok(json!({"fingerprint": alert.fingerprint(), "outcome": "ignored"}));
                };
                // The case is open once its first journal entry is stored; if its opener died
                // before that, it is opened (and collected) now.
                if self.case_open(&case)? {
                    return self.resend(alert, &case);
                }
                case
            }
            Err(e) => return Err(e.into()),
        };
        let payload = serde_json::to_vec_pretty(alert).unwrap_or_default();
        let trigger = Trigger {
            kind: "alert".into(),
            requested_by: "alertmanager".into(),
        };
        let details = TriggerDetails {
            alert: serde_json::to_value(alert).ok(),
            episode: Some(episode.to_owned()),
            fingerprint: Some(alert.fingerprint()),
            ..TriggerDetails::default()
        };
        let queued = self.open_and_queue(
            permit,
            case.clone(),
            target,
            trigger,
            details,
            Some(payload),
        )?;
        // "opened" by the one request that queued the collection; every other one is a duplicate.
        let outcome = if queued { "opened" } else { "duplicate" };
        Ok(json!({"fingerprint": alert.fingerprint(), "outcome": outcome, "case_id": case}))
    }

    /// A resend of an episode whose case is open: a duplicate, unless the case's collection
    /// failed (or was interrupted). Then the case is queued to be collected again.
    fn resend(&self, alert: &Alert, case: &CaseId) -> Result<serde_json::Value, DaemonError> {
        let answer = |outcome: &str| {
            Ok(json!({"fingerprint": alert.fingerprint(), "outcome": outcome, "case_id": case}))
        };
        let failed = |s: &CaseState| matches!(s.status, Status::Failed | Status::Interrupted);
        let chain = journal::check_chain(self.store.as_ref(), case)?;
        let state = CaseState::of(&chain);
        if !failed(&state) {
            return answer("duplicate");
        }
        let Some(mut job) = state
            .opened
            .as_ref()
            .and_then(|o| self.job_of(case, o, None, 0))
        else {
            return answer("duplicate");
        };
        let Ok(permit) = self.queue.try_reserve() else {
            self.metrics.overloaded();
            return Err(DaemonError::QueueFull);
        };
        // `collection_restarted` is journaled by the worker, under the case's claim, so that it
        // never lands inside another replica's collection; of several resends queued at once,
        // the first collects and the others find the collection done since they were decided
        // on (`journal_seen`) and leave the case alone.
        job.restarted = Some(RESENT.into());
        job.journal_seen = chain.head().map_or(0, |h| h.seq);
        tracing::info!(case = %case, "a failed case's alert was sent again: collecting again");
        self.queue_job(permit, job);
        answer("restarted")
    }

    /// A resolved alert: kept first, so the resolve is never lost; journaled on the case once it
    /// is no longer being collected (the collection journals it at its end otherwise).
    fn handle_resolve(&self, alert: &Alert) -> Result<serde_json::Value, DaemonError> {
        let episode = alert.episode();
        let marker = match self
            .store
            .get(&StoreKey::Episode(format!("{episode}.json")))
        {
            Ok(m) => m,
            Err(StoreError::NotFound { .. }) => {
                return Ok(
                    json!({"fingerprint": alert.fingerprint(), "outcome": "resolved-unknown"}),
                )
            }
            Err(e) => return Err(e.into()),
        };
        let Some(case) = case_of(&marker) else {
            return Ok(json!({"fingerprint": alert.fingerprint(), "outcome": "ignored"}));
        };
        let once = StoreKey::Episode(format!("{episode}.resolved.json"));
        let record =
            serde_json::to_vec_pretty(&json!({"alert": alert, "fingerprint": alert.fingerprint()}))
                .unwrap_or_default();
        match self.store.put_new(&once, &record) {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if !self.resolve_now(&case, &episode) {
            // Kept first, then tried once more: a collection that gave up its claim in between
            // has looked for kept resolves already, and one still holding it will find this.
            self.resolve_later(case.clone(), episode);
            self.resolve_kept(&case);
        }
        Ok(json!({"fingerprint": alert.fingerprint(), "outcome": "resolved", "case_id": case}))
    }

    /// Journals the kept resolve of `episode` on `case` under the case's claim, so that it never
    /// lands inside a collection (whose seal pins the journal's head, and whose spooled copy of
    /// the journal must still continue the one in the store when it is uploaded). True when it
    /// is journaled, or there is nothing to journal; false while the case is being collected, or
    /// the store cannot be written (the resolve is tried again later: `resolve_pending`).
    pub(super) fn resolve_now(&self, case: &CaseId, episode: &str) -> bool {
        // Most cases' alerts have no kept resolve, or it is journaled: no claim is taken then.
        let record = StoreKey::Episode(format!("{episode}.resolved.json"));
        match self.store.exists(&record) {
            Ok(false) => return true,
            Ok(true) => {}
            Err(e) => {
                tracing::warn!(case = %case, error = %e, "cannot read the kept resolve; trying again later");
                return false;
            }
        }
        match journal::check_chain(self.store.as_ref(), case) {
            Ok(chain) if CaseState::of(&chain).alert_resolved => return true,
            _ => {}
        }
        let done = self.leases.hold(self.store.as_ref(), case, |held| {
            journal_resolve(held, &self.key, case, episode)
        });
        match done {
            Ok(Ok(journaled)) => journaled,
            Ok(Err(e)) => {
                tracing::warn!(case = %case, error = %e, "cannot journal the resolve; trying again later");
                false
            }
            Err(LeaseError::Busy { .. }) => false,
            Err(e) => {
                tracing::warn!(case = %case, error = %e, "cannot claim the case to journal the resolve; trying again later");
                false
            }
        }
    }

    /// Keeps a resolve to journal once the case's collection has ended.
    pub(super) fn resolve_later(&self, case: CaseId, episode: String) {
        self.pending_resolves
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(case, episode);
    }

    /// Journals the resolve kept for later on `case`, if one is kept.
    pub(super) fn resolve_kept(&self, case: &CaseId) {
        let episode = self
            .pending_resolves
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(case)
            .cloned();
        if let Some(episode) = episode {
            if self.resolve_now(case, &episode) {
                self.pending_resolves
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(case);
            }
        }
    }

    /// Journals the resolves kept for later whose cases are no longer being collected.
    pub fn resolve_pending(&self) {
        let pending: Vec<(CaseId, String)> = self
            .pending_resolves
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(c, e)| (c.clone(), e.clone()))
            .collect();
        for (case, _) in pending {
            self.resolve_kept(&case);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{CaseHeader, EntryKind};
    use crate::store::LocalStore;

    #[test]
    fn a_resolve_racing_the_end_of_a_collection_is_journaled_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path(), true).unwrap();
        let case = CaseId::new("20261126-145448-00000001").unwrap();
        let trigger = Trigger {
            kind: "alert".into(),
            requested_by: "alertmanager".into(),
        };
        let header = CaseHeader::new(case.clone(), OffsetDateTime::now_utc(), trigger);
        let key = crate::keys::SigningKey::generate();
        crate::case::open(&store, &header, None, &key).unwrap();
        let record = br#"{"fingerprint": "f"}"#;
        store
            .put_new(&StoreKey::Episode("e.resolved.json".into()), record)
            .unwrap();
        // The collection's end and several resolves, all at once, each losing races to the
        // others; a collection step is journaled in between to move the head.
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| journal_resolve(&store, &key, &case, "e").unwrap());
            }
            s.spawn(|| {
                let step = Details::CollectionFailed(crate::case::entry::CollectionFailed {
                    error: "x".into(),
                });
                super::super::worker::append(&store, &key, &case, step).unwrap();
            });
        });
        // … and the worker's own, once the collection has ended.
        journal_resolve(&store, &key, &case, "e").unwrap();
        let chain = journal::check_chain(&store, &case).unwrap();
        assert!(chain.problems.is_empty(), "{:?}", chain.problems);
        let resolved = chain
            .entries
            .iter()
            .filter(|(e, _)| e.kind() == EntryKind::AlertResolved)
            .count();
        assert_eq!(resolved, 1);
        // Never before the collection's end: its seal would pin a head that then moved.
        let kinds: Vec<EntryKind> = chain.entries.iter().map(|(e, _)| e.kind()).collect();
        assert_eq!(
            kinds[1..],
            [EntryKind::CollectionFailed, EntryKind::AlertResolved]
        );
        let state = CaseState::of(&chain);
        assert!(state.alert_resolved);
    }
}
