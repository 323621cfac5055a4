//! `custody collect`: preserve, analyse and seal log files or a Kubernetes workload's logs into
//! a new case. Into a local store directly; for an S3 store, sealed whole into the durable local
//! spool first (under the case's lock, so a flush elsewhere leaves it alone), then uploaded.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::{error_message, output, policy_dir, s3_options, Cli, Command, INCOMPLETE};
use crate::collect::{self, Request, Trigger};
use crate::keys::SigningKey;
use crate::policy;
use crate::source::k8s::{K8sRequest, K8sSource, Since, Target};
use crate::source::{FileSource, Source};
use crate::spool::{self, SpoolStore};
use crate::store::{self, OpenOptions, Store, StoreUri};

/// What a collection needs before it starts: the policies, the key, the request and where the
/// logs come from.
struct Prepared {
    policies: policy::Policies,
    key: SigningKey,
    request: Request,
    kubernetes: Option<K8sRequest>,
    logs: Vec<PathBuf>,
}

impl Prepared {
    /// The source of the logs, downloading (for Kubernetes) into `staging`.
    fn source_for(&self, staging: &Path) -> Box<dyn Source> {
        match &self.kubernetes {
            Some(k) => Box::new(K8sSource::new(
                k.clone(),
                self.policies.collection.kubernetes,
                staging.join(collect::run::DOWNLOADS),
            )),
            None => Box::new(FileSource::new(
                self.logs.clone(),
                self.policies.collection.files.limit_bytes,
            )),
        }
    }

    /// Collects into `store`; the outcome, or the exit code of a collection that stopped.
    fn collect(&mut self, store: &dyn Store) -> Result<collect::Outcome, Result<ExitCode>> {
        let mut run = begin_run(store, &self.key, &mut self.request).map_err(Err)?;
        let mut source = self.source_for(run.dir());
        let result = collect::collect(
            store,
            &self.key,
            &self.policies,
            source.as_mut(),
            &self.request,
        );
        finish_source(result, source.as_mut(), &mut run)
    }
}

pub(super) fn run(cli: &Cli) -> Result<ExitCode> {
    let mut prepared = prepare(cli)?;
    let location = match StoreUri::parse(&cli.store)? {
        StoreUri::S3(location) => location,
        StoreUri::Local(_) => {
            let options = OpenOptions {
                create: true,
                ..OpenOptions::default()
            };
            let store = store::open(&cli.store, &options)?.into_store();
            let outcome = match prepared.collect(store.as_ref()) {
                Ok(outcome) => outcome,
                Err(code) => return code,
            };
            output::collected(&outcome, None, cli.json)?;
            return Ok(collected_code(&outcome));
        }
    };
    // S3: everything is sealed into the durable local spool first, then uploaded.
    let spool = SpoolStore::open(&spool::default_root(), location.clone(), &s3_options(cli))?;
    // Held until the upload is done, so that a flush elsewhere leaves this case alone.
    let _case_lock = spool.lock_case(&prepared.request.case_id)?;
    let outcome = match prepared.collect(&spool) {
        Ok(outcome) => outcome,
        Err(code) => return code,
    };
    let uploaded =
        super::store::s3_store(cli, location, &prepared.policies, &spool).and_then(|s3| {
            s3.check()?;
            Ok(spool::upload_case(
                &spool,
                &s3,
                &outcome.case_id,
                &prepared.key,
            )?)
        });
    match uploaded {
        Ok(uploaded) => {
            output::collected(&outcome, Some(Ok(&uploaded)), cli.json)?;
            Ok(collected_code(&outcome))
        }
        Err(e) => {
            let message = error_message(&e);
            output::collected(&outcome, Some(Err((&message, spool.dir()))), cli.json)?;
            eprintln!(
                "error: the case is sealed and kept in the local spool {}, but is not in S3: {}\n`custody store flush {}` uploads it once S3 is reachable",
                crate::terminal::escape_path(spool.dir()),
                crate::terminal::escape(&message),
                crate::terminal::escape(&cli.store)
            );
            Ok(ExitCode::from(2))
        }
    }
}

/// Loads the policies and the key and makes the request, in the order the command always did.
fn prepare(cli: &Cli) -> Result<Prepared> {
    let Command::Collect {
        logs,
        requested_by,
        top,
        format,
        ..
    } = &cli.command
    else {
        anyhow::bail!("not a collect command");
    };
    let policies = policy::load(policy_dir(cli).as_deref())?;
    let (key, created) = collect::signing_key(cli.signing_key.as_ref())?;
    if let Some(path) = created {
        eprintln!(
            "created a new collector key at {} (key id {}); its public key is copied to the store's keys/",
            crate::terminal::escape_path(&path),
            key.public().id()
        );
    }
    let requested_by = requested_by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let trigger = Trigger {
        kind: "cli".into(),
        requested_by,
    };
    let request = Request::new(trigger, *top, format.clone(), !cli.json);
    crate::interrupt::install().context("cannot watch for SIGINT and SIGTERM")?;
    let kubernetes = kubernetes_request(&cli.command)?;
    Ok(Prepared {
        policies,
        key,
        request,
        kubernetes,
        logs: logs.clone(),
    })
}

/// The Kubernetes workload the command line names, if it names one.
fn kubernetes_request(command: &Command) -> Result<Option<K8sRequest>> {
    let Command::Collect {
        namespace,
        deployment,
        selector,
        since,
        since_time,
        container,
        context,
        ..
    } = command
    else {
        return Ok(None);
    };
    let Some(namespace) = namespace else {
        return Ok(None);
    };
    Ok(Some(K8sRequest {
        namespace: namespace.clone(),
        target: match (deployment, selector) {
            (Some(d), _) => Target::Deployment(d.clone()),
            (None, Some(s)) => Target::Selector(s.clone()),
            (None, None) => anyhow::bail!("give --deployment or --selector"),
        },
        since: match (since, since_time) {
            (Some(d), _) => {
                Since::Seconds(crate::duration::seconds(d).map_err(anyhow::Error::msg)?)
            }
            (None, Some(t)) => {
                // As the API server reads it: RFC 3339 with an upper-case T and Z.
                let strict = t.as_bytes().get(10) == Some(&b'T') && !t.contains('z');
                crate::analysis::parse::parse_rfc3339(t.as_bytes())
                    .filter(|_| strict)
                    .context("--since-time is not an RFC 3339 time (2026-11-26T14:00:00Z)")?;
                Since::Time(t.clone())
            }
            (None, None) => Since::All,
        },
        container: container.clone(),
        context: context.clone(),
        kubeconfig: None,
    }))
}

/// 0 when the collection is whole, `INCOMPLETE` when something is known to be missing.
fn collected_code(outcome: &collect::Outcome) -> ExitCode {
    if outcome.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INCOMPLETE)
    }
}

/// Downloaded logs are removed once they are sealed, or when the operator stopped the
/// collection; after any other failure they are kept for a second attempt. An interrupted
/// collection ends here with the signal's status.
fn finish_source(
    result: Result<collect::Outcome, collect::CollectError>,
    source: &mut dyn Source,
    run: &mut collect::run::Run,
) -> Result<collect::Outcome, Result<ExitCode>> {
    match result {
        Ok(outcome) => {
            source.finished();
            Ok(outcome)
        }
        Err(e) => match e.interrupted() {
            Some(signal) => {
                source.finished();
                eprintln!("error: {}", crate::terminal::escape(&e.to_string()));
                Err(Ok(ExitCode::from(signal.exit_code())))
            }
            None => {
                if run.keep_downloads() {
                    eprintln!(
                        "note: the downloaded logs are kept in {}",
                        crate::terminal::escape_path(&run.dir().join(collect::run::DOWNLOADS))
                    );
                }
                Err(Err(e.into()))
            }
        },
    }
}

/// Starts the collection's staging directory, after cleaning what earlier runs that died
/// left behind (and journaling their cases as interrupted).
fn begin_run(
    store: &dyn Store,
    key: &SigningKey,
    request: &mut Request,
) -> Result<collect::run::Run> {
    let (run, swept) = collect::run::Run::begin(store, key, &request.case_id, &request.bundle_id)
        .with_context(|| {
        format!(
            "cannot create a staging directory in {}",
            store.staging_dir().display()
        )
    })?;
    report_swept(&swept);
    request.staging = Some(run.dir().to_owned());
    Ok(run)
}

/// Tells the user what was cleaned up after collections that died.
pub(super) fn report_swept(swept: &collect::run::Swept) {
    for case in &swept.interrupted {
        eprintln!("note: case {case} was left unfinished by a collection that died; it is now journaled as interrupted");
    }
    for dir in &swept.kept {
        eprintln!(
            "note: an earlier collection that did not finish left downloaded logs in {}",
            crate::terminal::escape_path(dir)
        );
    }
}
