//! The expiry of executed blocks (CONTAINMENT.md, "Rollback and expiry"): `custody plan
//! expire` (for a CronJob) and the daemon's periodic task. Every claim whose expiry, by the
//! plan that made it, has passed is lifted by the rule a rollback follows, and executed as any
//! plan is — journaled step by step, refused when stale, resumed, sealed into an `actions`
//! bundle.
//!
//! For each executed plan holding expired claims, custody proposes an expiry plan (kind
//! `expiry`, signed with the collector key) whose release steps lift only those claims, planned
//! on a fresh read of the cluster with the owners of every case; it needs no approvals, being
//! pre-approved by the plan that set the expiry (`plan::block_expiry` says what makes it
//! lawful, and `verify` checks the same). A stale expiry (the cluster changed between planning
//! and writing, or a write met a 409) is planned again from a fresh read, up to `ATTEMPTS`
//! times. An expiry execution that stopped part-way is resumed before anything new is planned.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::run::{self, Ended};
use crate::case::{CaseState, Details};
use crate::id::{CaseId, PlanId};
use crate::keys::SigningKey;
use crate::kube::Cluster;
use crate::plan::document::{PlanKind, ProposerClaim, StepDetail, StepStatus};
use crate::plan::{Approved, Plan, Proposed};
use crate::policy::Policies;
use crate::store::{Store, StoreKey};

/// How many expiry plans one expiry proposes at most when each is found stale.
const ATTEMPTS: u32 = 3;
/// How long each Deployment's rollout may take (an expiry writes none).
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(300);

/// What an expiry runs with.
pub struct Context<'a> {
    /// The store, reached from synchronous code (the execution reaches it off the runtime).
    pub store: &'a dyn Store,
    /// The collector key: it signs the expiry plans and the journal entries.
    pub key: &'a SigningKey,
    /// Who runs it, for the journal (`custody` for the daemon).
    pub actor: &'a str,
    pub policies: &'a Policies,
    /// Takes each case's claim for the work on it.
    pub claims: &'a dyn CaseClaims,
    pub cluster: &'a Cluster,
    /// The runtime the cluster's client runs on; the caller is not on one of its threads.
    pub handle: &'a tokio::runtime::Handle,
}

/// Why a case's claim was not taken.
pub struct NotHeld {
    /// Another holder has it (tried again later), rather than the store failing.
    pub busy: bool,
    pub message: String,
}

/// The claims on cases that writers of a case's journal share (the daemon's replicas and the
/// CLI take them the same way).
pub trait CaseClaims {
    /// Runs `work` under `case`'s claim, with the store as the claim sees it.
    fn with_claim(
        &self,
        store: &dyn Store,
        case: &CaseId,
        work: &mut dyn FnMut(&dyn Store),
    ) -> Result<(), NotHeld>;
}

/// How one plan's expiry ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The expired claims were lifted (now, or by an earlier run).
    Expired,
    /// Each expiry plan was stale when executed: tried again on the next run.
    Stale,
    /// The expiry plan refuses a step (it names why); nothing was applied.
    Refused,
    /// The execution failed part-way: see `execution`.
    Failed,
    /// The case is held or being collected: tried again on the next run.
    Busy,
    /// Nothing could be planned or executed (the store, the cluster): see `error`.
    Error,
}

/// One executed plan's expiry.
#[derive(Clone, Debug, Serialize)]
pub struct Expiry {
    pub case: CaseId,
    /// The plan whose blocks expired.
    pub plan: PlanId,
    pub status: Status,
    /// The expiry plans proposed or resumed, oldest first.
    pub expiry_plans: Vec<PlanId>,
    /// The addresses no longer refused, and those another owner keeps refused.
    pub released: Vec<String>,
    pub kept: Vec<String>,
    pub error: Option<String>,
    /// The last execution's report (as `plan execute --json` gives it).
    pub execution: Option<serde_json::Value>,
}

/// The executed plans holding claims whose expiry passed by `now`, with the block steps they
/// are held by: (case, plan) → steps.
pub fn due(
    store: &dyn Store,
    key: &SigningKey,
    now: OffsetDateTime,
) -> Result<BTreeMap<(CaseId, PlanId), BTreeSet<u32>>, String> {
    let mut out: BTreeMap<(CaseId, PlanId), BTreeSet<u32>> = BTreeMap::new();
    for claim in super::owners::claims(store, Some(key.public()))? {
        if claim.expires_at <= now {
            out.entry((claim.case, claim.plan))
                .or_default()
                .insert(claim.step);
        }
    }
    Ok(out)
}

/// What an expiry run has to do, read from the store alone (nothing from the cluster): each
/// executed plan with a claim due by custody's clock (the cut-off, the earlier of it and the
/// API server's, is taken once the cluster is read), and each whose expiry execution was left
/// open — carried on even when its claims were released already (the actions bundle to seal).
pub fn work(store: &dyn Store, key: &SigningKey) -> Result<BTreeSet<(CaseId, PlanId)>, String> {
    let now = whole_second(OffsetDateTime::now_utc());
    let mut work: BTreeSet<(CaseId, PlanId)> = due(store, key, now)?.into_keys().collect();
    work.extend(open_expiries(store)?);
    Ok(work)
}

/// Lifts the expired claims of each executed plan of `work` (`work`), one at a time, each
/// under its case's claim.
pub fn expire(ctx: &Context<'_>, work: BTreeSet<(CaseId, PlanId)>) -> Vec<Expiry> {
    let mut out = Vec::new();
    for (case, plan) in work {
        let mut expiry = Expiry {
            case: case.clone(),
            plan: plan.clone(),
            status: Status::Error,
            expiry_plans: Vec::new(),
            released: Vec::new(),
            kept: Vec::new(),
            error: None,
            execution: None,
        };
        let mut result = Ok(());
        let held = ctx.claims.with_claim(ctx.store, &case, &mut |held| {
            result = expire_held(ctx, held, (&case, &plan), &mut expiry);
        });
        match (held, result) {
            (Ok(()), Ok(())) => {}
            (Ok(()), Err(e)) => {
                // Whatever an earlier attempt of this run reached, the run did not finish.
                if expiry.status != Status::Busy {
                    expiry.status = Status::Error;
                }
                expiry.error = Some(e);
            }
            (Err(e), _) if e.busy => {
                expiry.status = Status::Busy;
                expiry.error = Some(format!(
                    "the case is held ({}): tried again later",
                    e.message
                ));
            }
            (Err(e), _) => {
                expiry.status = Status::Error;
                expiry.error = Some(format!("cannot take the case's claim: {}", e.message));
            }
        }
        log(&expiry);
        out.push(expiry);
    }
    out
}

fn log(e: &Expiry) {
    match e.status {
        Status::Expired => {
            tracing::info!(case = %e.case, plan = %e.plan, expiry_plans = ?e.expiry_plans, released = ?e.released, kept = ?e.kept, "expired blocks lifted")
        }
        _ => {
            tracing::warn!(case = %e.case, plan = %e.plan, status = ?e.status, expiry_plans = ?e.expiry_plans, error = ?e.error, "expired blocks not lifted")
        }
    }
}

/// The earlier of custody's clock and the API server's `Date`: blocks expire by it, so that a
/// clock running ahead lifts nothing early.
fn cut_off(ctx: &Context<'_>) -> Result<OffsetDateTime, String> {
    let (_, api_server_date) = ctx
        .handle
        .block_on(crate::containment::cluster::identity(ctx.cluster))
        .map_err(|e| format!("cannot read the cluster's identity: {e}"))?;
    Ok(OffsetDateTime::now_utc().min(api_server_date))
}

fn whole_second(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// The expiry of `plan`'s claims, under the case's claim.
fn expire_held(
    ctx: &Context<'_>,
    store: &dyn Store,
    (case, plan): (&CaseId, &PlanId),
    out: &mut Expiry,
) -> Result<(), String> {
    let trusted = Some(ctx.key.public());
    let chain = crate::plan::store::trusted_chain(store, case, trusted)
        .map_err(|e| format!("case {case}: {e}"))?;
    if CaseState::of(&chain).collection_unfinished() {
        out.status = Status::Busy;
        return Err("the case is being collected: tried again once its collection is over".into());
    }
    // An expiry of this plan that stopped part-way is carried on first: its writes may have
    // landed, and it is what the journal says is under way.
    for open in open_executions(&chain) {
        let loaded = crate::plan::load(store, case, &open, trusted).map_err(|e| e.to_string())?;
        let doc = loaded.doc();
        if doc.kind != PlanKind::Expiry || doc.rolls_back.as_ref().map(|r| &r.plan) != Some(plan) {
            continue;
        }
        out.expiry_plans.push(open.clone());
        if finish(ctx, store, &loaded, out)? && out.status != Status::Expired {
            return Ok(());
        }
    }
    // Until no claim of the plan is due: one that an expiry left (it had nothing to do for it)
    // is not taken for lifted.
    for _ in 0..ATTEMPTS {
        let now = whole_second(cut_off(ctx)?);
        let steps = due(store, ctx.key, now)?
            .remove(&(case.clone(), plan.clone()))
            .unwrap_or_default();
        if steps.is_empty() {
            // Lifted (by this run, a rollback, or another replica's expiry).
            out.status = Status::Expired;
            return Ok(());
        }
        let Some(id) = propose(ctx, store, (case, plan), steps, now, out)? else {
            out.status = Status::Refused;
            return Ok(());
        };
        out.expiry_plans.push(id.clone());
        let loaded = crate::plan::load(store, case, &id, trusted).map_err(|e| e.to_string())?;
        if finish(ctx, store, &loaded, out)? && out.status != Status::Expired {
            return Ok(());
        }
    }
    let now = whole_second(cut_off(ctx)?);
    let left = due(store, ctx.key, now)?.contains_key(&(case.clone(), plan.clone()));
    if out.status == Status::Expired && left {
        out.status = Status::Error;
        out.error = Some(format!(
            "claims of plan {plan} are still due after {ATTEMPTS} expiry plans"
        ));
    }
    Ok(())
}

/// The (case, plan) of every expiry plan whose execution the case's journal shows started and
/// not sealed. A case whose journal does not check is left to `claims`, which refuses it.
fn open_expiries(store: &dyn Store) -> Result<Vec<(CaseId, PlanId)>, String> {
    let mut out = Vec::new();
    for case in store.list_cases().map_err(|e| e.to_string())? {
        let chain = crate::case::journal::check_chain(store, &case).map_err(|e| e.to_string())?;
        let open = open_executions(&chain);
        for (e, _) in &chain.entries {
            if let Details::PlanProposed(p) = &e.details {
                match &p.lifts {
                    Some(l)
                        if l.kind == crate::case::entry::LiftKind::Expiry
                            && open.contains(&p.plan) =>
                    {
                        out.push((case.clone(), l.plan.clone()));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

/// The plans whose execution the journal shows started and not sealed.
fn open_executions(chain: &crate::case::CheckedChain) -> Vec<PlanId> {
    let mut open: Vec<PlanId> = Vec::new();
    for (e, _) in &chain.entries {
        match &e.details {
            Details::ExecutionStarted(s) if !open.contains(&s.plan) => open.push(s.plan.clone()),
            Details::ActionsSealed(a) => open.retain(|p| p != &a.plan),
            _ => {}
        }
    }
    open
}

/// Plans and stores an expiry plan lifting `plan`'s claims of `steps` that expired by `now`.
/// `None`: the plan refuses a step (its refusals go to `out.error`); it is not stored.
fn propose(
    ctx: &Context<'_>,
    store: &dyn Store,
    (case, plan): (&CaseId, &PlanId),
    steps: BTreeSet<u32>,
    now: OffsetDateTime,
    out: &mut Expiry,
) -> Result<Option<PlanId>, String> {
    let trusted = Some(ctx.key.public());
    let mut of = super::owners::lifted(store, case, plan, trusted)?;
    of.executed = steps;
    of.expired_by = Some(now);
    let options = crate::verify::Options {
        public_key: Some(ctx.key.public().clone()),
        ..Default::default()
    };
    let evidence = crate::propose::evidence(store, case, &options).map_err(|e| e.to_string())?;
    let roster = store
        .get(&StoreKey::PlanRoster(case.clone(), plan.clone()))
        .map_err(|e| format!("the roster plan {plan} pins: {e}"))?;
    let roster_text = String::from_utf8(roster)
        .map_err(|_| format!("the roster plan {plan} pins is not UTF-8"))?;
    let roster_sha256 = crate::digest::Sha256Digest::of(roster_text.as_bytes());
    let block_owners =
        super::owners::block_owners(store, trusted, &ctx.policies.containment, PlanKind::Expiry)?;
    let input = crate::propose::BuildInput {
        case,
        policies: ctx.policies,
        evidence: &evidence,
        proposer: ProposerClaim::Collector {
            key_id: ctx.key.public().id().clone(),
        },
        roster_sha256,
        now,
        block_owners,
        rollback: Some(of),
    };
    let doc = ctx
        .handle
        .block_on(crate::propose::build(ctx.cluster, &input))
        .map_err(|e| e.to_string())?;
    let refusals: Vec<String> = doc
        .steps
        .iter()
        .flat_map(|s| {
            s.refusals
                .iter()
                .map(move |r| format!("step {} ({}): {r}", s.number, s.target))
        })
        .collect();
    if !refusals.is_empty() {
        out.error = Some(format!(
            "the expiry is refused, so nothing was stored or applied: {}",
            refusals.join("; ")
        ));
        return Ok(None);
    }
    if !doc.steps.iter().any(|s| s.status == StepStatus::Planned) {
        return Err("the expiry plan has no step to run: the journals hold claims the cluster no longer shows".into());
    }
    let signer = crate::plan::store::ProposalSigner::Collector(ctx.key);
    let stored = crate::plan::propose(store, ctx.key, &doc, &roster_text, signer)
        .map_err(|e| e.to_string())?;
    Ok(Some(stored.plan))
}

/// Executes the expiry plan `loaded`, recording in `out` how it ended. `true` when nothing is
/// left to try (lifted, refused or failed); `false` when it was stale and a fresh expiry plan
/// may be proposed.
fn finish(
    ctx: &Context<'_>,
    store: &dyn Store,
    loaded: &Plan<Proposed>,
    out: &mut Expiry,
) -> Result<bool, String> {
    let ended = execute(ctx, store, loaded)?;
    let (_, body) = run::ended_json(loaded.case(), loaded.id(), &ended);
    out.execution = Some(body);
    let lifted = |out: &mut Expiry| {
        for step in &loaded.doc().steps {
            if let StepDetail::ReleaseIps { released, kept, .. } = &step.detail {
                out.released.extend(released.iter().cloned());
                out.kept.extend(kept.iter().cloned());
            }
        }
    };
    match ended {
        Ended::AlreadyDone { .. } => {
            out.status = Status::Expired;
            lifted(out);
            Ok(true)
        }
        Ended::Stale(_) => {
            out.status = Status::Stale;
            out.error =
                Some("the expiry plan was stale: the cluster changed since it was made".into());
            Ok(false)
        }
        Ended::Ran(r) => {
            if r.outcome == crate::case::entry::ExecutionOutcome::Done {
                lifted(out);
                if let Some(e) = &r.actions_error {
                    // Applied, but not sealed: the next run seals it (an open expiry).
                    out.status = Status::Failed;
                    out.error = Some(format!(
                        "the expiry was applied but its actions bundle was not sealed: {e}"
                    ));
                    return Ok(true);
                }
                out.status = Status::Expired;
                return Ok(true);
            }
            let errors: Vec<String> = r.steps.iter().filter_map(|s| s.error.clone()).collect();
            out.error = Some(errors.join("; "));
            // A write that met a conflict (journaled so) is planned again from a fresh read; any
            // other failure is reported.
            let conflict = conflicted(store, ctx, loaded)?;
            out.status = if conflict {
                Status::Stale
            } else {
                Status::Failed
            };
            Ok(!conflict)
        }
    }
}

/// Whether a write of `loaded`'s execution met a conflict (`step_write` with outcome
/// `conflict`): the object changed since the plan read it.
fn conflicted(
    store: &dyn Store,
    ctx: &Context<'_>,
    loaded: &Plan<Proposed>,
) -> Result<bool, String> {
    let chain = crate::plan::store::trusted_chain(store, loaded.case(), Some(ctx.key.public()))
        .map_err(|e| e.to_string())?;
    Ok(chain.entries.iter().any(|(e, _)| match &e.details {
        Details::StepWrite(w) => {
            &w.plan == loaded.id()
                && w.plan_sha256 == loaded.digest()
                && w.outcome.as_deref() == Some("conflict")
        }
        _ => false,
    }))
}

/// Executes the expiry plan `loaded` as `plan execute` does a containment plan, authorised by
/// `authorise` rather than by approvals.
pub fn execute(
    ctx: &Context<'_>,
    store: &dyn Store,
    loaded: &Plan<Proposed>,
) -> Result<Ended, String> {
    let trusted = Some(ctx.key.public());
    if let Some(ended) =
        run::settled(store, ctx.key, ctx.actor, loaded).map_err(|e| e.to_string())?
    {
        return Ok(ended);
    }
    let case = loaded.case();
    let options = crate::verify::Options {
        public_key: Some(ctx.key.public().clone()),
        ..Default::default()
    };
    let evidence = crate::propose::evidence(store, case, &options).map_err(|e| e.to_string())?;
    let chain =
        crate::plan::store::trusted_chain(store, case, trusted).map_err(|e| e.to_string())?;
    crate::plan::store::check_evidence(loaded.doc(), &chain)?;
    let pinned = super::preflight::pinned_evidence(&loaded.doc().evidence, &evidence)
        .map_err(|e| e.to_string())?;
    let block_owners =
        super::owners::block_owners(store, trusted, &ctx.policies.containment, PlanKind::Expiry)?;
    let rollback = super::owners::rollback_of(store, loaded.doc(), trusted)?;
    let (_, api_server_date) = ctx
        .handle
        .block_on(crate::containment::cluster::identity(ctx.cluster))
        .map_err(|e| format!("cannot read the cluster's identity: {e}"))?;
    let now = OffsetDateTime::now_utc();
    let approved = match authorise(store, loaded, trusted, (now, api_server_date)) {
        Ok(a) => a,
        Err(e) => {
            if now > loaded.not_after() && api_server_date > loaded.not_after() {
                let why = "the execution could not resume: the expiry plan's not_after passed";
                if let Some(report) = run::close_unfinished(store, ctx.key, ctx.actor, loaded, why)
                    .map_err(|e| e.to_string())?
                {
                    return Ok(Ended::Ran(report));
                }
            }
            return Err(e);
        }
    };
    let off = crate::store::OffRuntime(store);
    let input = run::Input {
        store: &off,
        key: ctx.key,
        actor: ctx.actor,
        plan: &approved,
        build: crate::propose::BuildInput {
            case,
            policies: ctx.policies,
            evidence: &pinned,
            proposer: approved.doc().proposer.clone(),
            roster_sha256: approved.doc().roster_sha256,
            now,
            block_owners,
            rollback,
        },
        secret_values: None,
        rollout_timeout: ROLLOUT_TIMEOUT,
        api_server_date,
    };
    ctx.handle
        .block_on(run::execute(ctx.cluster, &input))
        .map_err(|e| e.to_string())
}

/// An expiry plan made executable: custody's clock agrees with the API server's `Date`, and
/// the plan it lifts (loaded again, its digest checked, its executed block steps read from the
/// journal) set the expiry of everything it lifts (`Plan::expiry_check`).
pub fn authorise(
    store: &dyn Store,
    loaded: &Plan<Proposed>,
    trusted: Option<&crate::keys::PublicKey>,
    (now, api_server_date): (OffsetDateTime, OffsetDateTime),
) -> Result<Plan<Approved>, String> {
    let skew = (now - api_server_date).whole_seconds();
    if skew.abs() > crate::approval::quorum::MAX_CLOCK_SKEW_SECONDS {
        return Err(format!("custody's clock is {skew} s off the API server's: nothing is expired on a clock that may be wrong"));
    }
    let doc = loaded.doc();
    let Some(rb) = &doc.rolls_back else {
        return Err(format!(
            "plan {} names no plan whose blocks it expires",
            doc.plan
        ));
    };
    let of = super::owners::lifted(store, &doc.case, &rb.plan, trusted)?;
    // Expiry times are judged by the earlier clock: one running ahead lifts nothing early.
    loaded
        .expiry_check((&of.doc, of.sha256), &of.executed, now.min(api_server_date))
        .map_err(|reasons| {
            format!(
                "expiry plan {} may not be executed: {}",
                doc.plan,
                reasons.join("; ")
            )
        })
}
