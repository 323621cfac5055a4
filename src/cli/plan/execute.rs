//! `custody plan execute CASE PLAN`: carries out an approved plan (CONTAINMENT.md,
//! "Execution"). Exit codes: 0 executed (now, or by an earlier run); 1 a step failed (what was
//! applied and what was not is printed) or the evidence does not verify; 4 the plan does not
//! have quorum (every reason printed; nothing sent); 5 the plan is stale (what changed is
//! printed and journaled; nothing applied); 2 usage, I/O, an unreachable cluster.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use time::OffsetDateTime;

use super::{current_roster, open, refuse_while_collecting, trusted_key, NO_QUORUM};
use crate::case::entry::ExecutionOutcome;
use crate::cli::{policy_dir, Cli};
use crate::execute::run::{self, Ended, ExecuteError, StepOutcome};
use crate::id::{CaseId, PlanId};
use crate::keys::{self, SigningKey};
use crate::plan;
use crate::terminal::escape as esc;

/// The plan is stale: the cluster changed since it was made.
pub(in crate::cli) const STALE: u8 = 5;

/// What `plan execute` is asked to do.
pub(in crate::cli) struct ExecuteArgs<'a> {
    pub case: &'a str,
    pub plan: &'a str,
    pub secret_values: Option<&'a Path>,
    pub rollout_timeout: Duration,
    pub context: Option<&'a str>,
    pub approvers: Option<&'a Path>,
    pub public_key: Option<&'a Path>,
}

pub(in crate::cli) fn execute(cli: &Cli, args: &ExecuteArgs<'_>) -> Result<ExitCode> {
    let case = CaseId::new(args.case)?;
    let id = PlanId::new(args.plan)?;
    let key = match &cli.signing_key {
        Some(path) => SigningKey::load(path)?,
        None => keys::load_default().context(
            "the execution's journal entries are signed with a collector key: give --signing-key",
        )?,
    };
    // The journal, its seals and a daemon's proposal must be signed by the key given, or by
    // the key this execution signs with: a key the store publishes proves nothing.
    let trusted = trusted_key(args.public_key)?.unwrap_or_else(|| key.public().clone());
    if trusted.id() != key.public().id() {
        anyhow::bail!("--public-key is not the key this execution signs its journal entries with (--signing-key): entries by another key would make the case's journal unsound for it. Execute with the collector key that writes the case's journal, or through the daemon");
    }
    let store = open(cli)?;
    let policies = crate::policy::load(policy_dir(cli).as_deref())?;
    let loaded = plan::load(store.as_ref(), &case, &id, Some(&trusted))?;
    if loaded.doc().kind == plan::document::PlanKind::Expiry {
        // Pre-approved by the plan whose blocks it lifts: no roster or approvals are read.
        return super::expire::execute_expiry(cli, args, store.as_ref(), &key, &loaded);
    }
    let roster = current_roster(cli, args.approvers)?;
    let actor = actor();
    let leases = crate::daemon::lease::Leases::new(super::claim_holder(&actor, "plan execute"));
    let held = leases.hold(store.as_ref(), &case, |held| {
        run_held(
            cli,
            args,
            held,
            (&key, &trusted, &actor),
            (&policies, &roster),
            &loaded,
        )
    });
    match held {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: nothing was sent: cannot hold case {case} ({}): another execution or a collection of the case is under way; try again once it is over", esc(&e.to_string()));
            Ok(ExitCode::from(2))
        }
    }
}

/// The execution, under the case's claim.
fn run_held(
    cli: &Cli,
    args: &ExecuteArgs<'_>,
    store: &dyn crate::store::Store,
    (key, trusted, actor): (&SigningKey, &crate::keys::PublicKey, &str),
    (policies, roster): (&crate::policy::Policies, &crate::approval::Roster),
    loaded: &plan::Plan<plan::Proposed>,
) -> Result<ExitCode> {
    let (case, id) = (loaded.case().clone(), loaded.id().clone());
    // What earlier runs left needs no quorum, clock or cluster: an executed plan is reported,
    // and a run whose steps were all done and whose bundle was not sealed is sealed now.
    refuse_while_collecting(store, &case)?;
    if let Some(ended) = run::settled(store, key, actor, loaded)? {
        return report(cli, &case, &id, &ended);
    }
    let options = crate::verify::Options {
        public_key: Some(trusted.clone()),
        ..Default::default()
    };
    let evidence = match crate::propose::evidence(store, &case, &options) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {}", esc(&e.to_string()));
            return Ok(ExitCode::from(e.exit_code()));
        }
    };
    let chain = plan::store::trusted_chain(store, &case, Some(trusted))?;
    let pinned = plan::store::check_evidence(loaded.doc(), &chain)
        .map_err(crate::execute::preflight::PreflightError::Evidence)
        .and_then(|()| {
            crate::execute::preflight::pinned_evidence(&loaded.doc().evidence, &evidence)
        });
    let pinned = match pinned {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: nothing was sent: {}", esc(&e.to_string()));
            return Ok(ExitCode::from(1));
        }
    };
    let block_owners = match crate::execute::owners::block_owners(
        store,
        Some(trusted),
        &policies.containment,
        loaded.doc().kind,
    ) {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "error: nothing was sent: the owners of blocked addresses cannot be read: {}",
                esc(&e)
            );
            return Ok(ExitCode::from(1));
        }
    };
    let rollback = match crate::execute::owners::rollback_of(store, loaded.doc(), Some(trusted)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: nothing was sent: the plan this rollback lifts: {}",
                esc(&e)
            );
            return Ok(ExitCode::from(1));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the client runtime")?;
    // The store is reached from the async code below only through this.
    let off = crate::store::OffRuntime(store);
    let store: &dyn crate::store::Store = &off;
    runtime.block_on(async {
        let cluster = crate::kube::connect(None, args.context)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the cluster: {e}"))?;
        let (_, api_server_date) = crate::containment::cluster::identity(&cluster)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the cluster's identity: {e}"))?;
        let now = OffsetDateTime::now_utc();
        let (stored, _) = plan::store::stored_approvals(store, &case, &id)?;
        let journaled: Vec<_> = plan::store::journaled_approvals(&chain)
            .into_iter()
            .map(|(_, _, r)| r)
            .collect();
        let approved = match loaded.approve_check(
            roster,
            &policies.containment,
            &stored,
            &journaled,
            now,
            api_server_date,
        ) {
            Ok(a) => a,
            Err(refusal) => {
                // An execution left unfinished whose not_after passed can never resume: it is
                // closed, its actions bundle sealed as failed.
                // Both clocks must say so: a clock of custody's that runs ahead is refused as
                // skewed, not taken for an expiry.
                if now > loaded.not_after() && api_server_date > loaded.not_after() {
                    let why = "the execution could not resume: the plan's not_after passed";
                    if let Some(closed) = run::close_unfinished(store, key, actor, loaded, why)? {
                        eprintln!("plan {id}'s not_after passed: its unfinished execution is closed");
                        return report(cli, &case, &id, &Ended::Ran(closed));
                    }
                }
                if cli.json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "case": case, "plan": id, "status": "not_approved",
                            "reasons": refusal.reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                        }))?
                    );
                } else {
                    eprintln!("plan {id} cannot be executed now (no quorum, or its checks refuse it), so nothing was sent:");
                    for r in &refusal.reasons {
                        eprintln!("  - {}", esc(&r.to_string()));
                    }
                }
                return Ok(ExitCode::from(NO_QUORUM));
            }
        };
        let input = run::Input {
            store,
            key,
            actor,
            plan: &approved,
            build: crate::propose::BuildInput {
                case: &case,
                policies,
                evidence: &pinned,
                proposer: approved.doc().proposer.clone(),
                roster_sha256: approved.doc().roster_sha256,
                now,
                block_owners,
                rollback,
            },
            secret_values: args.secret_values,
            rollout_timeout: args.rollout_timeout,
            api_server_date,
        };
        let ended = match run::execute(&cluster, &input).await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: nothing was applied: {}", esc(&e.to_string()));
                let code = match e {
                    ExecuteError::Preflight(crate::execute::preflight::PreflightError::Evidence(_)) => 1,
                    _ => 2,
                };
                return Ok(ExitCode::from(code));
            }
        };
        report(cli, &case, &id, &ended)
    })
}

/// Who runs the execution, for the journal: the login name.
pub(super) fn actor() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "custody".to_owned())
}

pub(super) fn report(cli: &Cli, case: &CaseId, id: &PlanId, ended: &Ended) -> Result<ExitCode> {
    let code = match ended {
        Ended::AlreadyDone { .. } => ExitCode::SUCCESS,
        Ended::Stale(_) => ExitCode::from(STALE),
        Ended::Ran(r) if r.outcome == ExecutionOutcome::Done && r.actions_error.is_none() => {
            ExitCode::SUCCESS
        }
        Ended::Ran(_) => ExitCode::from(1),
    };
    if cli.json {
        let (_, value) = run::ended_json(case, id, ended);
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(code);
    }
    match ended {
        Ended::AlreadyDone { bundle } => {
            println!("plan {id} of case {case} was already executed (actions bundle {bundle}); nothing was sent");
        }
        Ended::Stale(steps) => {
            eprintln!("plan {id} is STALE: the cluster changed since it was made, so nothing was applied (journaled). Propose again, and approve again:");
            for s in steps {
                for c in &s.changes {
                    eprintln!(
                        "  step {} ({}, {}): {}",
                        s.number,
                        s.kind.as_str(),
                        esc(&s.target),
                        esc(c)
                    );
                }
            }
        }
        Ended::Ran(r) => {
            let head = match r.outcome {
                ExecutionOutcome::Done => format!("plan {id} of case {case}: executed"),
                ExecutionOutcome::Failed => {
                    format!("plan {id} of case {case}: FAILED — later steps were not applied")
                }
            };
            println!("{head}");
            for s in &r.steps {
                let outcome = match s.outcome {
                    StepOutcome::Done => "done",
                    StepOutcome::DoneBefore => "done by an earlier run",
                    StepOutcome::Failed => "FAILED",
                    StepOutcome::NotRun => "not applied",
                    StepOutcome::NotPlanned => "not planned",
                };
                println!(
                    "  step {} {} ({}): {outcome}",
                    s.number,
                    s.kind.as_str(),
                    esc(&s.target)
                );
                for a in &s.applied {
                    println!("    applied: {}", esc(a));
                }
                for w in &s.warnings {
                    println!("    warning: {}", esc(w));
                }
                if let Some(e) = &s.error {
                    println!("    error: {}", esc(e));
                }
            }
            match (&r.actions_bundle, &r.actions_error) {
                (Some(b), _) => println!("actions bundle {b} sealed"),
                (None, Some(e)) => {
                    eprintln!("error: the actions bundle could not be sealed: {}; run execute again to seal it", esc(e))
                }
                (None, None) => {}
            }
        }
    }
    Ok(code)
}
