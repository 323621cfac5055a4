//! The collection queue: workers take jobs a few at a time, and at start-up the collections a
//! previous run did not finish are queued again.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Daemon, Job};

/// The receiving end of the daemon's queue, for `run_workers`.
pub struct Jobs(pub(super) tokio::sync::mpsc::Receiver<Job>);

/// Runs `workers` collections at a time until `stopping` turns true; then lets the running
/// collections finish. Queued ones are durable and resume at the next start.
pub async fn run_workers(
    daemon: Arc<Daemon>,
    jobs: Jobs,
    workers: usize,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let Jobs(mut jobs) = jobs;
    let permits = Arc::new(tokio::sync::Semaphore::new(workers));
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
        daemon.queued.fetch_sub(1, Ordering::SeqCst);
        let d = daemon.clone();
        running.spawn_blocking(move || {
            if let Some(retry) = d.run(job) {
                super::lease::retry_later(d, retry);
            }
            drop(permit);
        });
        // Reap what has finished, so the set stays small.
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

/// Queues the collections a previous run did not finish, in the background so that the server
/// answers (and /healthz passes) however many there are; the daemon is ready once all are in.
pub async fn requeue_unfinished(daemon: Arc<Daemon>) {
    let scan = {
        let d = daemon.clone();
        tokio::task::spawn_blocking(move || d.unfinished_jobs()).await
    };
    match scan {
        Ok(Ok(pending)) => {
            for job in pending {
                tracing::info!(case = %job.case, "resuming an unfinished collection");
                daemon.queued.fetch_add(1, Ordering::SeqCst);
                if daemon.queue.send(job).await.is_err() {
                    daemon.queued.fetch_sub(1, Ordering::SeqCst);
                    break;
                }
            }
        }
        Ok(Err(e)) => tracing::error!(error = %e, "cannot list unfinished cases"),
        Err(e) => tracing::error!(error = %e, "cannot list unfinished cases"),
    }
    daemon.ready.store(true, Ordering::SeqCst);
}

/// Offers the cases waiting in the spool to S3 at start-up and every `every` until `stopping`
/// turns true. Without a spool (a local store) it returns at once.
pub async fn flush_spool_every(
    daemon: Arc<Daemon>,
    every: std::time::Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    if daemon.spooling.is_none() {
        return;
    }
    loop {
        let d = daemon.clone();
        let _ = tokio::task::spawn_blocking(move || d.flush_spool()).await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopping.changed() => return,
        }
    }
}
