//! The daemon lifting blocks whose expiry passed (CONTAINMENT.md, "Rollback and expiry"):
//! every `limits.block_expiry_seconds` it reads the owners of blocked addresses from every
//! case's journal and, when a claim's expiry (from its plan, never from annotations) has
//! passed, runs the expiry `custody plan expire` runs (`execute::expire`) under each case's
//! claim — so replicas and a CronJob never lift one block twice. A failure is logged and
//! counted, and tried again at the next round.

use std::sync::Arc;
use std::time::Duration;

use super::Daemon;
use crate::execute::expire::{self, Context};

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
        let now = time::OffsetDateTime::now_utc();
        match expire::due(self.store.as_ref(), &self.key, now) {
            Ok(due) if due.is_empty() => return,
            Ok(_) => {}
            Err(e) => {
                self.metrics.block_expiry("error");
                tracing::warn!(error = %e, "cannot read the owners of blocked addresses; expiring at the next round");
                return;
            }
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
            leases: &self.leases,
            cluster: &cluster,
            handle,
        };
        match expire::expire_due(&ctx) {
            Ok(expiries) => {
                for e in &expiries {
                    let outcome = serde_json::to_value(e.status).ok();
                    self.metrics
                        .block_expiry(outcome.as_ref().and_then(|v| v.as_str()).unwrap_or("error"));
                }
            }
            Err(e) => {
                self.metrics.block_expiry("error");
                tracing::warn!(error = %e, "cannot read the owners of blocked addresses; expiring at the next round");
            }
        }
    }
}
