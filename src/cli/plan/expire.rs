//! `custody plan expire`: lifts every block whose expiry, by the plan that made it, has passed
//! (`execute::expire`), for a CronJob where no daemon runs. It signs with the collector key
//! that writes the cases' journals (`--signing-key`). Exit 0 when every expired block was lifted
//! (or none was due); 1 when one was refused, failed, was stale three times or its case was
//! held (each is said, and tried again by the next run), or the owners of blocked addresses
//! cannot be read; 2 usage, a key or policy that cannot be read, an unreachable cluster (read
//! only when something is due).
//!
//! `plan execute` of an expiry plan (to resume one that stopped part-way) comes here too.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use super::{open, trusted_key};
use crate::cli::{policy_dir, Cli};
use crate::execute::expire::{self, Context, Status};
use crate::keys::{self, SigningKey};
use crate::terminal::escape as esc;

/// The collector key, which must be the key `--public-key` names when it is given.
fn collector(cli: &Cli, public_key: Option<&Path>) -> Result<SigningKey> {
    let key = match &cli.signing_key {
        Some(path) => SigningKey::load(path)?,
        None => keys::load_default().context(
            "an expiry's plan and journal entries are signed with the collector key: give --signing-key",
        )?,
    };
    if let Some(trusted) = trusted_key(public_key)? {
        if trusted.id() != key.public().id() {
            anyhow::bail!("--public-key is not the key this expiry signs with (--signing-key): expire with the collector key that writes the cases' journals");
        }
    }
    Ok(key)
}

/// A runtime whose handle can drive the cluster's client from this thread.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the client runtime")
}

pub(in crate::cli) fn expire(
    cli: &Cli,
    context: Option<&str>,
    public_key: Option<&Path>,
) -> Result<ExitCode> {
    let key = collector(cli, public_key)?;
    let store = open(cli)?;
    let policies = crate::policy::load(policy_dir(cli).as_deref())?;
    let work = match expire::work(store.as_ref(), &key) {
        Ok(work) if work.is_empty() => return print_expiries(cli, &[]),
        Ok(work) => work,
        Err(e) => {
            eprintln!(
                "error: nothing was expired: the owners of blocked addresses cannot be read: {}",
                esc(&e)
            );
            return Ok(ExitCode::from(1));
        }
    };
    let runtime = runtime()?;
    let cluster = runtime
        .block_on(crate::kube::connect(None, context))
        .map_err(|e| anyhow::anyhow!("cannot reach the cluster: {e}"))?;
    let actor = super::execute::actor();
    let leases = crate::daemon::lease::Leases::new(super::claim_holder(&actor, "plan expire"));
    let ctx = Context {
        store: store.as_ref(),
        key: &key,
        actor: &actor,
        policies: &policies,
        claims: &leases,
        cluster: &cluster,
        handle: runtime.handle(),
    };
    print_expiries(cli, &expire::expire(&ctx, work))
}

fn print_expiries(cli: &Cli, expiries: &[expire::Expiry]) -> Result<ExitCode> {
    let all_done = expiries.iter().all(|e| e.status == Status::Expired);
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "expiries": expiries }))?
        );
    } else if expiries.is_empty() {
        println!("no block's expiry has passed: nothing to lift");
    } else {
        for e in expiries {
            let status = serde_json::to_value(e.status)?;
            println!(
                "case {} plan {}: {} (expiry plans: {})",
                e.case,
                e.plan,
                status.as_str().unwrap_or("?"),
                e.expiry_plans
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if !e.released.is_empty() {
                println!("  released: {}", esc(&e.released.join(", ")));
            }
            if !e.kept.is_empty() {
                println!(
                    "  kept (another case or plan still blocks them): {}",
                    esc(&e.kept.join(", "))
                );
            }
            if let Some(err) = &e.error {
                println!("  error: {}", esc(err));
            }
        }
    }
    Ok(if all_done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `plan execute` of an expiry plan: run (or resumed) on its own authority, under the case's
/// claim.
pub(super) fn execute_expiry(
    cli: &Cli,
    args: &super::ExecuteArgs<'_>,
    store: &dyn crate::store::Store,
    key: &SigningKey,
    loaded: &crate::plan::Plan<crate::plan::Proposed>,
) -> Result<ExitCode> {
    let policies = crate::policy::load(policy_dir(cli).as_deref())?;
    let runtime = runtime()?;
    let cluster = runtime
        .block_on(crate::kube::connect(None, args.context))
        .map_err(|e| anyhow::anyhow!("cannot reach the cluster: {e}"))?;
    let actor = super::execute::actor();
    let leases = crate::daemon::lease::Leases::new(super::claim_holder(&actor, "plan execute"));
    let ctx = Context {
        store,
        key,
        actor: &actor,
        policies: &policies,
        claims: &leases,
        cluster: &cluster,
        handle: runtime.handle(),
    };
    let (case, id) = (loaded.case(), loaded.id());
    let ended = leases.hold(store, case, |held| {
        super::refuse_while_collecting(held, case)?;
        expire::execute(&ctx, held, loaded).map_err(|e| anyhow::anyhow!(e))
    });
    match ended {
        Ok(Ok(ended)) => super::execute::report(cli, case, id, &ended),
        Ok(Err(e)) => {
            eprintln!("error: nothing was applied: {}", esc(&e.to_string()));
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("error: nothing was sent: cannot hold case {case} ({}): another execution or a collection of the case is under way; try again once it is over", esc(&e.to_string()));
            Ok(ExitCode::from(2))
        }
    }
}
