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
            let case = job.case.clone();
            let retry = d.run(job);
            // Announced, and a plan proposed, off the worker: the permit is given back first,
            // and the case's claim was given up by `run`.
            drop(permit);
            if let Some(retry) = retry {
                super::lease::retry_later(d.clone(), retry);
            }
            d.announce_pending(&case);
        });
        // Reap what has finished, so the set stays small.
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

/// Queues the collections a previous run did not finish, in the background so that the server
/// answers (and /healthz passes) however many there are; the daemon is ready once the store is
/// listed and every case read is queued. The open plans of every case read are watched for
/// expiry (`expiry`). A store that cannot be listed, or a case whose journal cannot be read, is looked at again
/// with backoff (1 s doubling to 30 s) until it can: an outage at start-up loses no case.
pub async fn requeue_unfinished(daemon: Arc<Daemon>) {
    let mut wait = std::time::Duration::from_secs(1);
    let mut cases: Option<Vec<crate::id::CaseId>> = None;
    loop {
        let scan = {
            let d = daemon.clone();
            let cases = cases.clone();
            tokio::task::spawn_blocking(move || d.unfinished_jobs(cases)).await
        };
        match scan {
            Ok(Ok(found)) => {
                let (pending, unread) = (found.jobs, found.unread);
                for (case, plan) in found.executions {
                    tracing::info!(case = %case, plan = %plan, "resuming an unfinished plan execution");
                    let d = daemon.clone();
                    tokio::spawn(async move {
                        let _ = d.execute_plan(case, plan, "resume").await;
                    });
                }
                for job in pending {
                    tracing::info!(case = %job.case, "resuming an unfinished collection");
                    daemon.queued.fetch_add(1, Ordering::SeqCst);
                    if daemon.queue.send(job).await.is_err() {
                        daemon.queued.fetch_sub(1, Ordering::SeqCst);
                        return;
                    }
                }
                // Every case listed is queued or being looked at again: ready.
                daemon.ready.store(true, Ordering::SeqCst);
                if unread.is_empty() {
                    return;
                }
                cases = Some(unread);
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot list the cases; looking again");
            }
            Err(e) => tracing::error!(error = %e, "cannot list unfinished cases"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(30));
    }
}

/// The daemon's housekeeping, at start-up and every `every` until `stopping` turns true: the
/// cases waiting in the spool are offered to S3 (with an S3 store), the resolves kept for
/// later are journaled on the cases no longer being collected, and the sealed cases stored and
/// not yet announced (uploaded by the flush, or whose journal could not be read) are announced.
pub async fn housekeeping_every(
    daemon: Arc<Daemon>,
    every: std::time::Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let d = daemon.clone();
        let _ = tokio::task::spawn_blocking(move || {
            d.flush_spool();
            d.resolve_pending();
            d.announce_all_pending();
        })
        .await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopping.changed() => return,
        }
    }
}
