//! `custody store check` (can this S3 bucket hold evidence?) and `custody store flush` (upload
//! the cases waiting in the local spool).

use std::process::ExitCode;

use anyhow::{Context, Result};

use super::collect::report_swept;
use super::{output, policy_dir, s3_options, Cli};
use crate::keys::{self, SigningKey};
use crate::policy;
use crate::spool::{self, SpoolStore};
use crate::store::s3::{S3Location, S3Store};

pub(super) fn check(cli: &Cli, uri: &str) -> Result<ExitCode> {
    let location =
        S3Location::parse(uri).context("store check is for S3 stores (s3://BUCKET/PREFIX)")?;
    let policies = policy::load(policy_dir(cli).as_deref())?;
    let spool = SpoolStore::open(&spool::default_root(), location.clone(), &s3_options(cli))?;
    let s3 = s3_store(cli, location, &policies, &spool)?;
    let done = s3.check()?;
    output::store_check(uri, &done, cli.json)?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn flush(cli: &Cli, uri: &str) -> Result<ExitCode> {
    let location =
        S3Location::parse(uri).context("store flush is for S3 stores (s3://BUCKET/PREFIX)")?;
    let policies = policy::load(policy_dir(cli).as_deref())?;
    let root = spool::default_root();
    let elsewhere = spool::other_spools_with_cases(&root, &location, &s3_options(cli));
    for (dir, endpoint) in &elsewhere {
        eprintln!(
            "warning: {} holds cases for {} spooled for {}; this flush does not upload them (give that endpoint to flush them)",
            crate::terminal::escape_path(dir),
            crate::terminal::escape(uri),
            match endpoint {
                Some(e) => format!("endpoint {}", crate::terminal::escape(e)),
                None => "the default endpoint, or by an earlier version that did not record one".into(),
            }
        );
    }
    let spool = SpoolStore::open(&root, location.clone(), &s3_options(cli))?;
    // The entries a flush appends are signed like every other: by the given key, else the
    // per-user collector key; never by a key made up for the occasion. An empty spool has no
    // journal to append to, and needs none (its sweep only cleans staging directories).
    let key = match (&cli.signing_key, spool.cases()?.is_empty()) {
        (Some(path), _) => SigningKey::load(path)?,
        (None, false) => keys::load_default()?,
        (None, true) => SigningKey::generate(),
    };
    // A collection that died in the spool is journaled as such before it is uploaded.
    report_swept(&crate::collect::run::sweep_dead_runs(&spool, &key));
    let waiting = spool.cases()?;
    let s3 = s3_store(cli, location, &policies, &spool)?;
    if !waiting.is_empty() {
        s3.check()?;
    }
    let report = spool::flush(&spool, &s3, &key)?;
    output::flushed(uri, &report, &elsewhere, cli.json)?;
    if report.failed.is_empty() && elsewhere.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else if report.failed.is_empty() {
        // Cases for this store still wait: the flush is not done.
        Ok(ExitCode::from(2))
    } else {
        for (case, error) in &report.failed {
            eprintln!(
                "error: case {case} stays in the spool: {}",
                crate::terminal::escape(error)
            );
        }
        Ok(ExitCode::from(2))
    }
}

/// The S3 store named by `location`, locking objects as the storage policy says, staging
/// through the spool.
pub(super) fn s3_store(
    cli: &Cli,
    location: S3Location,
    policies: &policy::Policies,
    spool: &SpoolStore,
) -> Result<S3Store> {
    Ok(S3Store::connect(
        location,
        &s3_options(cli),
        policies.storage.object_lock,
        spool.dir().join(".staging"),
    )?)
}
