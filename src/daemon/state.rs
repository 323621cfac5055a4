//! A case's state as the daemon reads it (`case::CaseState`, folded from the journal): the
//! collections to do again, and the view the case API shows.

use serde_json::json;

use crate::case::state::{CaseState, Opened, Status};
use crate::case::{self as journal};
use crate::id::CaseId;
use crate::store::StoreError;

use super::{request_of, Daemon, Job};

/// Why a restart collects a case again.
const RESTARTED: &str = "the daemon stopped before this collection was sealed; collecting again";

/// The opening of a daemon case whose collection did not end: never ended, or collected again
/// (after a failure) and not ended since.
pub(super) fn unfinished(state: &CaseState) -> Option<&Opened> {
    if let Some(opened) = state.unfinished() {
        return Some(opened);
    }
    let opened = state.opened.as_ref()?;
    let daemon = matches!(opened.trigger.kind.as_str(), "alert" | "api");
    (daemon && state.status == Status::Collecting).then_some(opened)
}

impl Daemon {
    /// The cases among `cases` (every case, if `None`) whose collection a previous run did not
    /// finish, and the cases whose journal could not be read (to look at again). A case whose
    /// collection ended but whose alert's resolve is not journaled keeps the resolve for later;
    /// the open plans of every case read are watched for expiry.
    /// The collections to resume, the cases whose journal could not be read, and the plan
    /// executions left unfinished.
    pub(super) fn unfinished_jobs(
        &self,
        cases: Option<Vec<CaseId>>,
    ) -> Result<Unfinished, StoreError> {
        let cases = match cases {
            Some(cases) => cases,
            None => self.store.list_cases()?,
        };
        let mut jobs = Vec::new();
        let mut unread = Vec::new();
        let mut executions = Vec::new();
        for case in cases {
            let chain = match journal::check_chain(self.store.as_ref(), &case) {
                Ok(chain) => chain,
                Err(e) => {
                    tracing::warn!(case = %case, error = %e, "cannot read the case's journal at start-up; looking again later");
                    unread.push(case);
                    continue;
                }
            };
            self.expiries.watch_chain(&case, &chain);
            for plan in Daemon::unfinished_executions(&chain) {
                executions.push((case.clone(), plan));
            }
            let state = CaseState::of(&chain);
            if state.collection_over() && !state.alert_resolved {
                let episode = state
                    .opened
                    .as_ref()
                    .and_then(|o| o.trigger_details.as_ref())
                    .and_then(|d| d.episode.clone());
                if let Some(episode) = episode {
                    self.resolve_later(case.clone(), episode);
                }
            }
            let Some(opened) = unfinished(&state) else {
                continue;
            };
            let seen = chain.head().map_or(0, |h| h.seq);
            match self.job_of(&case, opened, Some(RESTARTED.into()), seen) {
                Some(job) => jobs.push(job),
                None => {
                    tracing::warn!(case = %case, "an unfinished case without a recorded target is left alone")
                }
            }
        }
        self.metrics.open_plans(self.expiries.len());
        Ok(Unfinished {
            jobs,
            unread,
            executions,
        })
    }

    /// The collection a case's opening records; `None` without a target to collect.
    pub(super) fn job_of(
        &self,
        case: &CaseId,
        opened: &Opened,
        restarted: Option<String>,
        journal_seen: u64,
    ) -> Option<Job> {
        let details = opened.trigger_details.clone()?;
        let target = request_of(
            details.target?,
            self.kubeconfig.clone(),
            self.context.clone(),
        )?;
        Some(Job {
            case: case.clone(),
            target,
            trigger: opened.trigger.clone(),
            payload: details
                .alert
                .as_ref()
                .and_then(|a| serde_json::to_vec_pretty(a).ok()),
            episode: details.episode,
            restarted,
            journal_seen,
        })
    }

    pub(super) fn case_view(&self, case: &CaseId) -> Result<serde_json::Value, StoreError> {
        let chain = journal::check_chain(self.store.as_ref(), case)?;
        let state = CaseState::of(&chain);
        let (trigger, opened_at) = match &state.opened {
            Some(o) => (json!(o.trigger), json!(o.at)),
            None => (serde_json::Value::Null, serde_json::Value::Null),
        };
        let bundles: Vec<_> = state
            .bundles()
            .map(|(_, at, b)| {
                json!({"bundle_id": b.bundle_id, "archive": b.archive, "seal": b.seal, "sealed_at": at})
            })
            .collect();
        // On S3 a sealed case is stored once its objects' versions are recorded; sealed into
        // the spool, its entries reach S3 before that record does.
        let s3 = crate::store::StoreUri::is_s3(&self.store.uri());
        let status = match state.status {
            Status::Sealed if s3 && !state.stored_recorded => Status::Storing,
            status => status,
        };
        Ok(
            json!({"case_id": case, "state": status.api_name(), "opened_at": opened_at,
                  "trigger": trigger, "alert_resolved": state.alert_resolved,
                  "journal_entries": state.entries, "bundles": bundles, "findings": state.findings}),
        )
    }
}

/// What the start-up scan found unfinished.
pub(super) struct Unfinished {
    pub jobs: Vec<Job>,
    pub unread: Vec<CaseId>,
    /// Plans whose execution started and was not sealed: a daemon stopped in the middle.
    pub executions: Vec<(CaseId, crate::id::PlanId)>,
}
