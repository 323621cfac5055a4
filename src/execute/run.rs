//! One execution of an approved plan (CONTAINMENT.md, "Execution"): what the journal says an
//! earlier run of the plan did, the check that the plan is not stale, a server-side dry-run of
//! every change that has one, then the steps in runbook order (`apply`), each journaled before
//! and after, and, when the execution ends, its `actions` bundle (`actions`).
//!
//! Resuming: a step with a `step_done` entry is done and is not run again. A step that was
//! started and not finished is run again from its intended state: each write whose object is
//! already as intended is not sent again, every other write is guarded (`resourceVersion`, the
//! patch's `test` ops) so that a change by anyone else since is a conflict. Such a step is not
//! compared again with the plan made anew — its own writes changed what that reads — nor
//! dry-run; the steps not started are both.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::preflight::{self, PreflightError, StaleStep};
use super::secret_values::SecretValuesError;
use crate::case::entry::{
    CountedApproval, Details, ExecutionOutcome, ExecutionStarted, StepDone, StepFailed,
    StepStarted, StepWrite, WritePhase,
};
use crate::case::journal::{self, Head, Journal, JournalError};
use crate::case::CheckedChain;
use crate::digest::Sha256Digest;
use crate::id::{BundleId, CaseId, PlanId};
use crate::keys::SigningKey;
use crate::kube::Cluster;
use crate::plan::document::{ChangeOp, ObjectChange, ObjectRef, Step, StepDetail, StepStatus};
use crate::plan::{Approved, Plan};
use crate::policy::containment::StepKind;
use crate::propose::BuildInput;
use crate::store::{Store, StoreError};
use crate::terminal::escape as esc;

/// How many times a journal append is tried when another writer appends first.
const APPEND_ATTEMPTS: u32 = 20;

/// What an execution is given.
pub struct Input<'a> {
    pub store: &'a dyn Store,
    pub key: &'a SigningKey,
    /// Who asked (a user name, or `custody` for the daemon).
    pub actor: &'a str,
    pub plan: &'a Plan<Approved>,
    /// The plan's own evidence and policies, to make the plan again (`preflight::check`).
    pub build: BuildInput<'a>,
    /// `--secret-values`: the values the plan marks as provided.
    pub secret_values: Option<&'a Path>,
    /// How long each Deployment's rollout may take.
    pub rollout_timeout: Duration,
    /// The API server's `Date` when quorum was checked.
    pub api_server_date: OffsetDateTime,
}

/// Why an execution did not start: nothing was applied.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Values(#[from] SecretValuesError),
    #[error("the journal of case {case}: {message}")]
    Journal { case: CaseId, message: String },
    #[error("plan {plan}: {message}")]
    Plan { plan: PlanId, message: String },
}

/// How an execution ended.
#[derive(Debug)]
pub enum Ended {
    /// An earlier run executed the plan to the end; nothing was sent.
    AlreadyDone { bundle: BundleId },
    /// The cluster changed since the plan was made: refused, journaled, nothing applied.
    Stale(Vec<StaleStep>),
    /// The steps ran (all, or up to one that failed).
    Ran(Report),
}

/// What an execution did, step by step.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub outcome: ExecutionOutcome,
    pub steps: Vec<StepReport>,
    /// The `actions` bundle sealed when the execution ended.
    pub actions_bundle: Option<BundleId>,
    /// Why the `actions` bundle could not be sealed (the execution is then resumed to seal it).
    pub actions_error: Option<String>,
}

/// What became of one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// Applied by this run.
    Done,
    /// Applied by an earlier run.
    DoneBefore,
    /// Failed: see `error`; what it applied before failing is in `applied`.
    Failed,
    /// Not run: an earlier step failed.
    NotRun,
    /// Not planned (refused, or nothing to do, when the plan was made): never runs.
    NotPlanned,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub number: u32,
    pub kind: StepKind,
    pub target: String,
    pub outcome: StepOutcome,
    /// Each write applied, `<op> <Kind> <namespace>/<name>`.
    pub applied: Vec<String>,
    pub error: Option<String>,
    pub warnings: Vec<String>,
    /// What the step did, as journaled (`step_done`).
    pub result: serde_json::Value,
    /// Each object written, as the plan read it and as the API server answered the write.
    #[serde(skip)]
    pub objects: Vec<Written>,
}

/// One object as read before a write and as stored after it (for the `actions` bundle).
#[derive(Clone, Debug)]
pub struct Written {
    pub object: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// `<Kind> <namespace>/<name>`: how the journal names an object.
pub fn label(o: &ObjectRef) -> String {
    match &o.namespace {
        Some(ns) => format!("{} {ns}/{}", o.kind, o.name),
        None => format!("{} {}", o.kind, o.name),
    }
}

/// What the journal says earlier runs of one plan did.
#[derive(Debug, Default)]
pub struct History {
    /// The `actions` bundle of a run that ended with every step done.
    pub done_bundle: Option<BundleId>,
    /// Steps done, by number.
    pub done: BTreeSet<u32>,
    /// Each step's `step_started` entries, oldest first.
    pub started: BTreeMap<u32, Vec<StepStarted>>,
    /// Each step's `step_write` entries, oldest first.
    pub writes: BTreeMap<u32, Vec<StepWrite>>,
    /// Whether an execution was started (and not sealed since).
    pub open: bool,
}

impl History {
    pub fn of(chain: &CheckedChain, plan: &PlanId, digest: Sha256Digest) -> Self {
        let mut h = History::default();
        for (e, _) in &chain.entries {
            match &e.details {
                Details::ExecutionStarted(s) if &s.plan == plan && s.plan_sha256 == digest => {
                    h.open = true;
                }
                Details::StepStarted(s) if &s.plan == plan && s.plan_sha256 == digest => {
                    h.started.entry(s.number).or_default().push(s.clone());
                }
                Details::StepWrite(w) if &w.plan == plan && w.plan_sha256 == digest => {
                    h.writes.entry(w.number).or_default().push(w.clone());
                }
                Details::StepDone(d) if &d.plan == plan && d.plan_sha256 == digest => {
                    h.done.insert(d.number);
                }
                Details::ActionsSealed(a) if &a.plan == plan && a.plan_sha256 == digest => {
                    h.open = false;
                    if a.outcome == ExecutionOutcome::Done {
                        h.done_bundle = Some(a.bundle_id.clone());
                    }
                }
                _ => {}
            }
        }
        h
    }
}

/// Appends to the case's journal, reading its head again when another writer appended first.
pub struct Recorder<'a> {
    store: &'a dyn Store,
    key: &'a SigningKey,
    case: CaseId,
    actor: String,
    journal: Journal<'a>,
}

impl<'a> Recorder<'a> {
    pub fn new(
        store: &'a dyn Store,
        key: &'a SigningKey,
        case: &CaseId,
        actor: &str,
        head: Head,
    ) -> Self {
        Self {
            store,
            key,
            case: case.clone(),
            actor: actor.to_owned(),
            journal: Journal::resume(store, case.clone(), head, key),
        }
    }

    pub fn append(&mut self, details: Details) -> Result<Head, ExecuteError> {
        let fail = |message: String| ExecuteError::Journal {
            case: self.case.clone(),
            message,
        };
        for _ in 0..APPEND_ATTEMPTS {
            match self.journal.append(&self.actor, details.clone()) {
                Ok(head) => return Ok(head),
                Err(JournalError::Append {
                    source: StoreError::AlreadyExists { .. },
                    ..
                }) => {
                    let chain = journal::check_chain(self.store, &self.case)
                        .map_err(|e| fail(e.to_string()))?;
                    if let Some(p) = chain.problems.first() {
                        return Err(fail(format!("{}: {}", p.key, p.message)));
                    }
                    let head = chain.head().ok_or_else(|| fail("it is empty".into()))?;
                    self.journal = Journal::resume(self.store, self.case.clone(), head, self.key);
                }
                Err(e) => return Err(fail(e.to_string())),
            }
        }
        Err(fail("other writers kept appending first".into()))
    }

    pub fn journal(&mut self) -> &mut Journal<'a> {
        &mut self.journal
    }

    pub fn head(&self) -> Option<Head> {
        self.journal.head()
    }
}

/// The case's journal, trusted as the plan is, and what it says earlier runs of `plan` did.
fn read_history<S>(
    store: &dyn Store,
    plan: &Plan<S>,
) -> Result<(CheckedChain, History), ExecuteError> {
    let chain =
        crate::plan::store::trusted_chain(store, plan.case(), plan.trusted()).map_err(|e| {
            ExecuteError::Journal {
                case: plan.case().clone(),
                message: e.to_string(),
            }
        })?;
    let history = History::of(&chain, plan.id(), plan.digest());
    Ok((chain, history))
}

/// Seals `report`'s `actions` bundle and records in it how that went.
fn seal_into<S>(
    store: &dyn Store,
    key: &SigningKey,
    plan: &Plan<S>,
    rec: &mut Recorder<'_>,
    report: &mut Report,
) {
    match super::actions::seal(store, key, plan, rec, report) {
        Ok(sealed) => {
            report.actions_bundle = Some(sealed.bundle);
            report.actions_error = sealed.warning;
        }
        Err(e) => report.actions_error = Some(e),
    }
}

/// Seals the `actions` bundle of an execution that sends nothing more: the steps earlier runs
/// did as done before, the others not run (with `why`).
fn seal_as_is<S>(
    (store, key, actor): (&dyn Store, &SigningKey, &str),
    plan: &Plan<S>,
    (chain, history): (&CheckedChain, &History),
    outcome: ExecutionOutcome,
    why: &str,
) -> Result<Report, ExecuteError> {
    let head = chain.head().ok_or_else(|| ExecuteError::Journal {
        case: plan.case().clone(),
        message: "it is empty".into(),
    })?;
    let mut rec = Recorder::new(store, key, plan.case(), actor, head);
    let steps = plan
        .doc()
        .steps
        .iter()
        .map(|s| {
            if s.status != StepStatus::Planned {
                not(s, StepOutcome::NotPlanned)
            } else if history.done.contains(&s.number) {
                not(s, StepOutcome::DoneBefore)
            } else if history.started.contains_key(&s.number) {
                // Started and never finished: what its writes did is in the journal.
                let mut r = not(s, StepOutcome::Failed);
                r.error = Some(why.to_owned());
                r.applied = history
                    .writes
                    .get(&s.number)
                    .into_iter()
                    .flatten()
                    .filter(|w| {
                        w.phase == WritePhase::Answered && w.outcome.as_deref() == Some("applied")
                    })
                    .map(|w| format!("{} {}", w.op, w.object))
                    .collect();
                r
            } else {
                let mut r = not(s, StepOutcome::NotRun);
                r.error = Some(why.to_owned());
                r
            }
        })
        .collect();
    let mut report = Report {
        outcome,
        steps,
        actions_bundle: None,
        actions_error: None,
    };
    seal_into(store, key, plan, &mut rec, &mut report);
    Ok(report)
}

/// What earlier runs of `plan` left, read before anything else (no quorum, clock or cluster is
/// needed for it): the plan executed to the end (`AlreadyDone`), or every planned step done and
/// only the `actions` bundle left to seal — sealed now. `None`: there are steps to run.
pub fn settled<S>(
    store: &dyn Store,
    key: &SigningKey,
    actor: &str,
    plan: &Plan<S>,
) -> Result<Option<Ended>, ExecuteError> {
    let (chain, history) = read_history(store, plan)?;
    if let Some(bundle) = history.done_bundle.clone() {
        return Ok(Some(Ended::AlreadyDone { bundle }));
    }
    let planned: Vec<&Step> = plan
        .doc()
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Planned)
        .collect();
    if planned.is_empty() || !planned.iter().all(|s| history.done.contains(&s.number)) {
        return Ok(None);
    }
    let report = seal_as_is(
        (store, key, actor),
        plan,
        (&chain, &history),
        ExecutionOutcome::Done,
        "",
    )?;
    Ok(Some(Ended::Ran(report)))
}

/// Closes an execution of `plan` that started and was never sealed and can no longer resume
/// (its `not_after` passed, or it is stale): its `actions` bundle is sealed as failed, the steps
/// not done reported with `why`. `None` when no execution of the plan is open.
pub fn close_unfinished<S>(
    store: &dyn Store,
    key: &SigningKey,
    actor: &str,
    plan: &Plan<S>,
    why: &str,
) -> Result<Option<Report>, ExecuteError> {
    let (chain, history) = read_history(store, plan)?;
    if !history.open {
        return Ok(None);
    }
    seal_as_is(
        (store, key, actor),
        plan,
        (&chain, &history),
        ExecutionOutcome::Failed,
        why,
    )
    .map(Some)
}

/// Whether the last execution of `plan` the journal shows started stopped unfinished: started,
/// not sealed, and no step failed after it (a process that stopped or died mid-run), rather than
/// ended by a failure whose bundle was not sealed.
pub fn interrupted(chain: &CheckedChain, plan: &PlanId) -> bool {
    let mut open = None;
    for (e, _) in &chain.entries {
        match &e.details {
            Details::ExecutionStarted(s) if &s.plan == plan => open = Some(s.plan_sha256),
            Details::StepFailed(f) if &f.plan == plan && open == Some(f.plan_sha256) => open = None,
            Details::ActionsSealed(a) if &a.plan == plan && open == Some(a.plan_sha256) => {
                open = None
            }
            _ => {}
        }
    }
    open.is_some()
}

/// Runs `input.plan` on `cluster`: resumes where an earlier run stopped, refuses a stale plan
/// (journaled), dry-runs, applies, and seals the `actions` bundle when it ends. The caller holds
/// the case's claim for the whole run, so that no other execution or collection of the case
/// writes in between.
pub async fn execute(cluster: &Cluster, input: &Input<'_>) -> Result<Ended, ExecuteError> {
    let plan = input.plan;
    if let Some(ended) = settled(input.store, input.key, input.actor, plan)? {
        return Ok(ended);
    }
    let case = plan.case();
    let digest = plan.digest();
    let journal_error = |message: String| ExecuteError::Journal {
        case: case.clone(),
        message,
    };
    let (chain, history) = read_history(input.store, plan)?;
    let steps = &plan.doc().steps;
    let mut written = BTreeMap::new();
    for (number, writes) in &history.writes {
        if history.done.contains(number) || history.started.contains_key(number) {
            for w in writes.iter().filter(|w| {
                w.phase == WritePhase::Answered && w.outcome.as_deref() == Some("applied")
            }) {
                written.insert(w.object.clone(), w.resource_version.clone());
            }
        }
    }
    let resume = preflight::Resume {
        done: history.done.clone(),
        started: history.started.keys().copied().collect(),
        written,
    };
    let untouched: BTreeSet<u32> = steps
        .iter()
        .filter(|s| s.status == StepStatus::Planned)
        .filter(|s| !resume.done.contains(&s.number) && !resume.started.contains(&s.number))
        .map(|s| s.number)
        .collect();
    let stale = preflight::check_resumed(cluster, plan.doc(), &input.build, &resume).await?;
    if !stale.is_empty() {
        preflight::record_stale(
            input.store,
            input.key,
            input.actor,
            (case, plan.id()),
            digest,
            &stale,
        )
        .map_err(journal_error)?;
        // An execution that stopped part-way and is now stale can never resume as approved:
        // it is closed, its actions bundle sealed as failed.
        if history.open {
            let why =
                "the execution could not resume: the plan is stale (see the plan_stale entry)";
            match close_unfinished(input.store, input.key, input.actor, plan, why) {
                Ok(Some(r)) => {
                    tracing::warn!(case = %case, plan = %plan.id(), actions_bundle = ?r.actions_bundle, actions_error = ?r.actions_error, "the unfinished execution of a stale plan was closed")
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(case = %case, plan = %plan.id(), error = %e, "the unfinished execution of a stale plan could not be closed")
                }
            }
        }
        return Ok(Ended::Stale(stale));
    }
    let mut prepared = BTreeMap::new();
    for step in steps.iter().filter(|s| s.status == StepStatus::Planned) {
        if !history.done.contains(&step.number) {
            prepared.insert(
                step.number,
                super::apply::prepare(step, plan.id(), &history, input.secret_values)?,
            );
        }
    }
    let refused = dry_run(cluster, steps, (&untouched, &history.done), &prepared).await;
    // The checks took time: a plan whose not_after passed meanwhile does not start.
    if time::OffsetDateTime::now_utc() > plan.not_after() {
        if history.open {
            let why = "the execution could not resume: the plan's not_after passed";
            if let Err(e) = close_unfinished(input.store, input.key, input.actor, plan, why) {
                tracing::error!(case = %case, plan = %plan.id(), error = %e, "the unfinished execution could not be closed");
            }
        }
        return Err(ExecuteError::Plan {
            plan: plan.id().clone(),
            message:
                "its not_after passed while it was being checked: it can no longer be executed"
                    .into(),
        });
    }
    let head = chain
        .head()
        .ok_or_else(|| journal_error("it is empty".into()))?;
    let mut rec = Recorder::new(input.store, input.key, case, input.actor, head);
    let approvals = plan
        .approval()
        .tally()
        .approvals
        .iter()
        .filter(|t| t.outcome == crate::approval::quorum::Outcome::Counted)
        .filter_map(|t| {
            Some(CountedApproval {
                approval: t.number,
                key_fingerprint: t.fingerprint?,
                principal: t.principal.clone()?,
            })
        })
        .collect();
    rec.append(Details::ExecutionStarted(ExecutionStarted {
        approvals,
        api_server_date: crate::timefmt::rfc3339(input.api_server_date),
        done_before: history.done.iter().copied().collect(),
        plan: plan.id().clone(),
        plan_sha256: digest,
        required: plan.required(),
    }))?;
    let mut reports = Vec::new();
    // A refusal stops the execution before its first change: the refused steps fail, no step
    // runs.
    let mut failed = !refused.is_empty();
    for step in steps {
        let report = if step.status != StepStatus::Planned {
            not(step, StepOutcome::NotPlanned)
        } else if history.done.contains(&step.number) {
            not(step, StepOutcome::DoneBefore)
        } else if let Some((number, why)) = refused.iter().find(|(n, _)| *n == step.number) {
            let error =
                format!("the server-side dry-run refused a change, so nothing was applied: {why}");
            rec.append(Details::StepFailed(StepFailed {
                applied: Vec::new(),
                error: error.clone(),
                kind: step.kind,
                number: *number,
                plan: plan.id().clone(),
                plan_sha256: digest,
            }))?;
            let mut r = not(step, StepOutcome::Failed);
            r.error = Some(error);
            r
        } else if failed {
            not(step, StepOutcome::NotRun)
        } else {
            let prepared = prepared.remove(&step.number);
            let mut cx = super::apply::Cx {
                cluster,
                rec: &mut rec,
                plan: plan.doc(),
                digest,
                history: &history,
                policy: &input.build.policies.containment,
                rollout_timeout: input.rollout_timeout,
            };
            match super::apply::apply(&mut cx, step, prepared).await {
                Ok(r) => r,
                // The journal cannot be written: nothing more is sent. What the step sent is in
                // its `step_write` entries up to here; a later run resumes from them.
                Err(e) => {
                    let mut r = not(step, StepOutcome::Failed);
                    r.error = Some(format!("stopped: {e}; the journal records each write before it is sent, so some of this step's writes may have been applied: run execute again to resume"));
                    r
                }
            }
        };
        if report.outcome == StepOutcome::Failed {
            failed = true;
        }
        reports.push(report);
    }
    let outcome = if failed {
        ExecutionOutcome::Failed
    } else {
        ExecutionOutcome::Done
    };
    let mut report = Report {
        outcome,
        steps: reports,
        actions_bundle: None,
        actions_error: None,
    };
    seal_into(input.store, input.key, plan, &mut rec, &mut report);
    Ok(Ended::Ran(report))
}

fn not(step: &Step, outcome: StepOutcome) -> StepReport {
    StepReport {
        number: step.number,
        kind: step.kind,
        target: step.target.clone(),
        outcome,
        applied: Vec::new(),
        error: None,
        warnings: Vec::new(),
        result: serde_json::Value::Null,
        objects: Vec::new(),
    }
}

/// Dry-runs every change of the steps no run has touched, as it will be sent: the first
/// refusal of each step, `(number, why)`. A change with no dry-run (a Secret, a call) is not
/// asked. A Deployment a rotation not yet done would repoint is read too: a paused one would
/// never roll out, so it refuses the step before anything is changed.
async fn dry_run(
    cluster: &Cluster,
    steps: &[Step],
    (untouched, done): (&BTreeSet<u32>, &BTreeSet<u32>),
    prepared: &BTreeMap<u32, super::apply::Prepared>,
) -> Vec<(u32, String)> {
    use crate::plan::document::DryRun;
    let mut refused = Vec::new();
    for step in steps
        .iter()
        .filter(|s| s.status == StepStatus::Planned && !done.contains(&s.number))
    {
        let name = prepared
            .get(&step.number)
            .and_then(|p| p.new_secret())
            .unwrap_or_default();
        for change in &step.changes {
            if change.op == ChangeOp::Call || change.object.kind == "Secret" {
                continue;
            }
            let Some(request) = crate::propose::request_naming(change, name) else {
                refused.push((
                    step.number,
                    format!("{} cannot be sent", esc(&label(&change.object))),
                ));
                break;
            };
            if change.object.kind == "Deployment" {
                if let Some(why) = super::rollout::paused(cluster, request.target()).await {
                    refused.push((step.number, why));
                    break;
                }
            }
            if !untouched.contains(&step.number) {
                continue;
            }
            match crate::containment::cluster::dry_run(cluster, &request).await {
                DryRun::Accepted { .. } => {}
                DryRun::Refused {
                    code,
                    reason,
                    message,
                } => {
                    refused.push((
                        step.number,
                        format!(
                            "{} {}: {code} {reason}: {message}",
                            change.op.as_str(),
                            esc(&label(&change.object))
                        ),
                    ));
                    break;
                }
                DryRun::NotRun { why } | DryRun::NotSupported { why } => {
                    refused.push((
                        step.number,
                        format!(
                            "{} {}: no judgement: {why}",
                            change.op.as_str(),
                            esc(&label(&change.object))
                        ),
                    ));
                    break;
                }
            }
        }
    }
    refused
}

/// The SHA-256 of an object's `spec` in canonical JSON: how a step's intended state names a
/// policy, and how a resumed run recognises it.
pub fn spec_sha256(object: &serde_json::Value) -> Option<Sha256Digest> {
    let spec = object.get("spec")?;
    crate::canonical::encode(spec)
        .ok()
        .map(|b| Sha256Digest::of(&b))
}

/// What a change's object is, for `step_write`.
pub fn write_entry(
    (plan, digest): (&PlanId, Sha256Digest),
    number: u32,
    change: &ObjectChange,
    phase: WritePhase,
) -> StepWrite {
    StepWrite {
        plan_sha256: digest,
        answer_sha256: None,
        message: None,
        number,
        object: label(&change.object),
        op: change.op.as_str().to_owned(),
        outcome: None,
        phase,
        plan: plan.clone(),
        resource_version: None,
        status: None,
        values_sha256: None,
    }
}

/// The step's `step_done`.
pub fn done_entry(
    plan: &PlanId,
    digest: Sha256Digest,
    step: &Step,
    result: serde_json::Value,
    warnings: Vec<String>,
) -> Details {
    Details::StepDone(StepDone {
        kind: step.kind,
        number: step.number,
        plan: plan.clone(),
        plan_sha256: digest,
        result,
        warnings,
    })
}

/// Whether a step's detail is of its kind (a plan whose step says otherwise is not run).
pub fn detail_matches(step: &Step) -> bool {
    matches!(
        (&step.kind, &step.detail),
        (StepKind::BlockIps, StepDetail::BlockIps { .. })
            | (StepKind::ReleaseIps, StepDetail::ReleaseIps { .. })
            | (StepKind::RotateSecrets, StepDetail::RotateSecrets { .. })
            | (
                StepKind::InvalidateSessions,
                StepDetail::InvalidateSessions { .. }
            )
    )
}

/// The step's `step_started`.
pub fn started_entry(
    plan: &PlanId,
    digest: Sha256Digest,
    step: &Step,
    intended: Vec<crate::case::entry::Intended>,
) -> Details {
    Details::StepStarted(StepStarted {
        intended,
        kind: step.kind,
        number: step.number,
        plan: plan.clone(),
        plan_sha256: digest,
        target: step.target.clone(),
    })
}

/// The report of an execution as the API and `plan execute --json` give it.
pub fn ended_json(case: &CaseId, id: &PlanId, ended: &Ended) -> (u16, serde_json::Value) {
    match ended {
        Ended::AlreadyDone { bundle } => (
            200,
            serde_json::json!({"case": case, "plan": id, "status": "already_executed", "actions_bundle": bundle}),
        ),
        Ended::Stale(steps) => (
            409,
            serde_json::json!({"case": case, "plan": id, "status": "stale", "stale_steps": steps}),
        ),
        Ended::Ran(r) => {
            let done = r.outcome == ExecutionOutcome::Done && r.actions_error.is_none();
            (
                if done { 200 } else { 500 },
                serde_json::json!({
                    "case": case, "plan": id,
                    "status": if r.outcome == ExecutionOutcome::Done { "executed" } else { "failed" },
                    "steps": r.steps, "actions_bundle": r.actions_bundle, "actions_error": r.actions_error,
                }),
            )
        }
    }
}
