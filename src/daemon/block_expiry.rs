//! The daemon lifting blocks whose expiry passed (CONTAINMENT.md, "Rollback and expiry"):
//! every `limits.block_expiry_seconds` it reads the owners of blocked addresses from every
//! case's journal and, when a claim's expiry (from its plan, never from annotations) has
//! passed, runs the expiry `custody plan expire` runs (`execute::expire`) under each case's
//! claim — so replicas and a CronJob never lift one block twice. A failure is logged and
//! counted, and that plan's expiry is tried again after a wait (15 s, doubling up to 10 min),
//! so that a cluster that keeps changing does not get an expiry plan stored every round.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Daemon;
use crate::execute::expire::{self, Context, Status};
use crate::id::{CaseId, PlanId};

const FIRST_BACKOFF: Duration = Duration::from_secs(15);
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Per executed plan whose expiry failed: when it is tried again, and the failures so far.
#[derive(Default)]
pub struct Backoff(Mutex<BTreeMap<(CaseId, PlanId), (Instant, u32)>>);

impl Backoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(CaseId, PlanId), (Instant, u32)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ready(&self, key: &(CaseId, PlanId), now: Instant) -> bool {
        self.lock().get(key).is_none_or(|(at, _)| *at <= now)
    }

    fn record(&self, key: (CaseId, PlanId), ok: bool, now: Instant) {
        let mut map = self.lock();
        if ok {
            map.remove(&key);
            return;
        }
        let failures = map.get(&key).map_or(0, |(_, f)| *f).saturating_add(1);
        let wait = FIRST_BACKOFF
            .saturating_mul(1u32 << (failures - 1).min(6))
            .min(MAX_BACKOFF);
        map.insert(key, (now + wait, failures));
    }
}

/// Runs the expiry every `every` until `stopping` turns true.
pub async fn expire_blocks_every(
    daemon: Arc<Daemon>,
    every: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopping.changed() => return,
        }
        let d = daemon.clone();
        let handle = tokio::runtime::Handle::current();
        let _ = tokio::task::spawn_blocking(move || d.expire_blocks(&handle)).await;
    }
}

impl Daemon {
    /// One round: nothing is read from the cluster unless a claim is due.
    pub(super) fn expire_blocks(&self, handle: &tokio::runtime::Handle) {
        let backoff = &self.block_expiry_backoff;
        let mut work = match expire::work(self.store.as_ref(), &self.key) {
            Ok(work) => work,
            Err(e) => {
                self.metrics.block_expiry("error");
                tracing::warn!(error = %e, "cannot read the owners of blocked addresses; expiring at the next round");
                return;
            }
        };
        let now = Instant::now();
        work.retain(|key| backoff.ready(key, now));
        if work.is_empty() {
            return;
        }
        let cluster = match handle.block_on(crate::kube::connect(
            self.kubeconfig.as_deref(),
            self.context.as_deref(),
        )) {
            Ok(c) => c,
            Err(e) => {
                self.metrics.block_expiry("error");
                tracing::warn!(error = %e, "cannot reach the cluster to lift expired blocks; expiring at the next round");
                return;
            }
        };
        let ctx = Context {
            store: self.store.as_ref(),
            key: &self.key,
            actor: "custody",
            policies: &self.policies,
            claims: &self.leases,
            cluster: &cluster,
            handle,
        };
        for e in &expire::expire(&ctx, work) {
            backoff.record(
                (e.case.clone(), e.plan.clone()),
                e.status == Status::Expired,
                Instant::now(),
            );
            let outcome = serde_json::to_value(e.status).ok();
            self.metrics
                .block_expiry(outcome.as_ref().and_then(|v| v.as_str()).unwrap_or("error"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_expiry_waits_longer_each_time_and_a_lifted_one_not_at_all() {
        let b = Backoff::default();
        let key = (
            CaseId::new("c-20261203-000000-aaaa").unwrap(),
            PlanId::new("p-20261203-000000-aaaa").unwrap(),
        );
        let t0 = Instant::now();
        assert!(b.ready(&key, t0));
        b.record(key.clone(), false, t0);
        assert!(!b.ready(&key, t0 + Duration::from_secs(14)));
        assert!(b.ready(&key, t0 + Duration::from_secs(15)));
        b.record(key.clone(), false, t0);
        assert!(!b.ready(&key, t0 + Duration::from_secs(29)));
        assert!(b.ready(&key, t0 + Duration::from_secs(30)));
        for _ in 0..20 {
            b.record(key.clone(), false, t0);
        }
        assert!(
            b.ready(&key, t0 + MAX_BACKOFF),
            "never more than the longest wait"
        );
        b.record(key.clone(), true, t0);
        assert!(b.ready(&key, t0));
    }
}
