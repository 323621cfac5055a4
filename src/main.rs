//! The `custody` command: parses the command line, sets up logging, calls the library and maps
//! the outcome to an exit code: 0 success; 1 verification failed; 2 usage or I/O error, nothing
//! sealed; 3 sealed (or verified intact) but incomplete, with what is missing listed; 130 or 143
//! when SIGINT or SIGTERM stopped a collection.

mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use custody::analysis::format::FormatChoice;
use custody::analysis::parallel::{self, Job};
use custody::collect::{self, Request, Trigger};
use custody::keys::{self, PublicKey, SigningKey};
use custody::policy;
use custody::source::k8s::{self, K8sRequest, K8sSource, Since, Target};
use custody::source::{FileSource, Source};
use custody::store::{
    self, s3::S3Location, s3::S3Options, s3::S3Store, spool, spool::SpoolStore, Store,
};
use custody::verify;

#[derive(Parser)]
#[command(
    name = "custody",
    version,
    about = "Preserve, analyse, seal and verify breach evidence."
)]
struct Cli {
    /// The evidence store: a directory, file://PATH, or s3://BUCKET/PREFIX.
    #[arg(
        long,
        global = true,
        default_value = "./evidence",
        env = "CUSTODY_STORE"
    )]
    store: String,
    /// The policy directory [default: ./policies if present, else the built-in policies].
    #[arg(long, global = true, env = "CUSTODY_POLICIES")]
    policies: Option<PathBuf>,
    /// The collector's Ed25519 private key (PKCS#8 PEM) [default: a per-user key, created on first use].
    #[arg(long, global = true, env = "CUSTODY_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    /// An S3-compatible endpoint URL for s3:// stores [default: AWS, or $AWS_ENDPOINT_URL].
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    s3_endpoint: Option<String>,
    /// Address S3 buckets by path (endpoint/bucket), as most S3-compatible stores need.
    #[arg(long, global = true, env = "CUSTODY_S3_PATH_STYLE")]
    s3_path_style: bool,
    /// Print the result as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Preserve, analyse and seal log files, or a Kubernetes workload's logs, into a new case.
    Collect {
        /// Log files to preserve; `-` reads standard input.
        #[arg(long, num_args = 1.., required_unless_present = "namespace", conflicts_with = "namespace")]
        logs: Vec<PathBuf>,
        /// Kubernetes: the namespace of the workload (the cluster from KUBECONFIG, or in-cluster).
        #[arg(long, requires = "workload")]
        namespace: Option<String>,
        /// Kubernetes: every pod of this Deployment (its selector, so both ReplicaSets mid-rollout).
        #[arg(long, group = "workload")]
        deployment: Option<String>,
        /// Kubernetes: every pod matching this label selector (`app=api,tier in (web)`).
        #[arg(long, group = "workload")]
        selector: Option<String>,
        /// Kubernetes: only log lines newer than this (90s, 15m, 2h, 7d).
        #[arg(long, conflicts_with = "since_time")]
        since: Option<String>,
        /// Kubernetes: only log lines from this time on (RFC 3339).
        #[arg(long)]
        since_time: Option<String>,
        /// Kubernetes: only this container of each pod.
        #[arg(long)]
        container: Option<String>,
        /// Kubernetes: the kubeconfig context [default: the current one].
        #[arg(long)]
        context: Option<String>,
        /// Who asked for the collection [default: $USER].
        #[arg(long)]
        requested_by: Option<String>,
        /// How many of the busiest clients to list.
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// The log format: auto (detected per file), combined, json, json-fields, nginx-json,
        /// envoy, traefik, or custom:NAME from the formats policy.
        #[arg(long, default_value = "auto")]
        format: FormatChoice,
    },
    /// Analyse log files without sealing anything.
    Analyze {
        /// Log files; `-` reads standard input.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How many of the busiest clients to list.
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// The log format: auto (detected per file), combined, json, json-fields, nginx-json,
        /// envoy, traefik, or custom:NAME from the formats policy.
        #[arg(long, default_value = "auto")]
        format: FormatChoice,
    },
    /// Verify a store, a case or one bundle, on disk or in S3.
    Verify {
        /// A store directory, cases/<case>, or cases/<case>/bundles/<bundle>.tar.zst; or the
        /// same under s3://BUCKET/PREFIX.
        target: String,
        /// The collector's public key (SPKI PEM) from a trusted source.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Generate an Ed25519 key pair: PREFIX.key (PKCS#8 PEM, 0600) and PREFIX.pub (SPKI PEM).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the daemon: Alertmanager webhook, case API, metrics, collection workers.
    Serve {
        /// The daemon's configuration (YAML; see docs/DAEMON.md).
        #[arg(long)]
        config: PathBuf,
    },
    /// The evidence store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Check that an S3 store can hold evidence: reachable, versioning and Object Lock on, and
    /// custody's calls allowed (proven by making them on a probe object kept for one day).
    Check {
        /// The store [default: --store].
        uri: Option<String>,
    },
    /// Upload the cases waiting in the local spool for an S3 store.
    Flush {
        /// The store [default: --store].
        uri: Option<String>,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate every policy file in DIR [default: --policies, or ./policies].
    Lint { dir: Option<PathBuf> },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let daemon = matches!(cli.command, Command::Serve { .. });
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUSTODY_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if daemon {
            "info,aws_config=error,aws_smithy_runtime=error,aws_sdk_s3=error,kube=warn"
        } else {
            // The AWS SDK warns about every credential source it tries; its failures reach the
            // user as errors instead.
            "warn,aws_config=error,aws_smithy_runtime=error,aws_sdk_s3=error"
        })
    });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if daemon {
        // The daemon logs one JSON object per line, for log pipelines.
        logs.json().init();
    } else {
        logs.init();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let message = error_message(&e);
            // Errors name paths and remote answers, which may hold terminal escapes.
            eprintln!("error: {}", custody::terminal::escape(&message));
            if json {
                // Machines reading --json get the failure as JSON too.
                println!("{}", serde_json::json!({ "ok": false, "error": message }));
            }
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each cause once: most messages already name their cause.
fn error_message(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message.push_str(": ");
            message.push_str(&cause);
        }
    }
    message
}

fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Collect {
            logs,
            namespace,
            deployment,
            selector,
            since,
            since_time,
            container,
            context,
            requested_by,
            top,
            format,
        } => {
            let policies = policy::load(policy_dir(&cli).as_deref())?;
            let (key, created) = collect::signing_key(cli.signing_key.as_ref())?;
            if let Some(path) = created {
                eprintln!(
                    "created a new collector key at {} (key id {}); its public key is copied to the store's keys/",
                    custody::terminal::escape_path(&path),
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
            let mut request = Request::new(trigger, *top, format.clone(), !cli.json);
            custody::interrupt::install().context("cannot watch for SIGINT and SIGTERM")?;
            let kubernetes = match namespace {
                None => None,
                Some(namespace) => Some(K8sRequest {
                    namespace: namespace.clone(),
                    target: match (deployment, selector) {
                        (Some(d), _) => Target::Deployment(d.clone()),
                        (None, Some(s)) => Target::Selector(s.clone()),
                        (None, None) => anyhow::bail!("give --deployment or --selector"),
                    },
                    since: match (since, since_time) {
                        (Some(d), _) => {
                            Since::Seconds(k8s::parse_duration(d).map_err(anyhow::Error::msg)?)
                        }
                        (None, Some(t)) => {
                            // As the API server reads it: RFC 3339 with an upper-case T and Z.
                            let strict = t.as_bytes().get(10) == Some(&b'T') && !t.contains('z');
                            custody::analysis::parse::parse_rfc3339(t.as_bytes())
                                .filter(|_| strict)
                                .context(
                                    "--since-time is not an RFC 3339 time (2026-11-26T14:00:00Z)",
                                )?;
                            Since::Time(t.clone())
                        }
                        (None, None) => Since::All,
                    },
                    container: container.clone(),
                    context: context.clone(),
                    kubeconfig: None,
                }),
            };
            let source_for = |staging: &Path| -> Box<dyn Source> {
                match &kubernetes {
                    Some(k) => Box::new(K8sSource::new(
                        k.clone(),
                        policies.collection.kubernetes,
                        staging.join(collect::run::DOWNLOADS),
                    )),
                    None => Box::new(FileSource::new(
                        logs.clone(),
                        policies.collection.files.limit_bytes,
                    )),
                }
            };
            if !cli.store.starts_with("s3://") {
                let store = store::open_store(&cli.store, true)?;
                let mut run = begin_run(store.as_ref(), &mut request)?;
                let mut source = source_for(run.dir());
                let result =
                    collect::collect(store.as_ref(), &key, &policies, source.as_mut(), &request);
                let outcome = match finish_source(result, source.as_mut(), &mut run) {
                    Ok(outcome) => outcome,
                    Err(code) => return code,
                };
                output::collected(&outcome, None, cli.json)?;
                return Ok(collected_code(&outcome));
            }
            // S3: everything is sealed into the durable local spool first, then uploaded.
            let location = S3Location::parse(&cli.store)?;
            let spool =
                SpoolStore::open(&spool::default_root(), location.clone(), &s3_options(&cli))?;
            // Held until the upload is done, so that a flush elsewhere leaves this case alone.
            let _case_lock = spool.lock_case(&request.case_id)?;
            let mut run = begin_run(&spool, &mut request)?;
            let mut source = source_for(run.dir());
            let result = collect::collect(&spool, &key, &policies, source.as_mut(), &request);
            let outcome = match finish_source(result, source.as_mut(), &mut run) {
                Ok(outcome) => outcome,
                Err(code) => return code,
            };
            let uploaded = s3_store(&cli, location, &policies, &spool).and_then(|s3| {
                s3.check()?;
                Ok(spool::upload_case(&spool, &s3, &outcome.case_id)?)
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
                        custody::terminal::escape_path(spool.dir()),
                        custody::terminal::escape(&message),
                        custody::terminal::escape(&cli.store)
                    );
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Analyze { files, top, format } => {
            let policies = policy::load(policy_dir(&cli).as_deref())?;
            let mut analyzer = parallel::analyze_paths(&Job {
                paths: files,
                format: format.clone(),
                formats: std::sync::Arc::new(policies.formats.clone()),
                threads: parallel::threads(),
                progress: !cli.json,
                memory_budget: policies.collection.analysis.memory_budget_bytes,
            })?;
            let summary = analyzer.summary(&policies.detection, *top);
            output::analysis(&summary, cli.json)?;
            // Past its memory budget the analysis did not count every client: not a success.
            Ok(if summary.limit.is_some() {
                ExitCode::from(INCOMPLETE)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Verify { target, public_key } => {
            let public_key = public_key.as_deref().map(PublicKey::load).transpose()?;
            let options = verify::Options {
                public_key,
                ..verify::Options::default()
            };
            let report = if target.starts_with("s3://") {
                verify::verify_s3(target, &s3_options(&cli), &options)?
            } else {
                verify::verify_path(Path::new(target), &options)?
            };
            output::verification(&report, cli.json)?;
            Ok(if !report.ok {
                ExitCode::from(1)
            } else if !report.complete {
                ExitCode::from(INCOMPLETE)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Keygen { out } => {
            let key = SigningKey::generate();
            let (private, public) = keys::write_key_pair(&key, out)?;
            output::keygen(&private, &public, key.public().id().as_str(), cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { config } => {
            let loaded = custody::daemon::config::load(config)?;
            let store: Box<dyn Store> = if loaded.config.store.starts_with("s3://") {
                let location = S3Location::parse(&loaded.config.store)?;
                let policies = policy::load(loaded.config.policies.as_deref())?;
                let staging = spool::default_root().join("serve-staging");
                Box::new(S3Store::connect(
                    location,
                    &S3Options {
                        endpoint: loaded.config.s3.endpoint.clone(),
                        path_style: loaded.config.s3.path_style,
                        ..S3Options::default()
                    },
                    policies.storage.object_lock,
                    staging,
                )?)
            } else {
                store::open_store(&loaded.config.store, true)?
            };
            custody::server::serve(store, loaded)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Store {
            command: StoreCommand::Check { uri },
        } => {
            let uri = uri.as_deref().unwrap_or(&cli.store);
            let location = S3Location::parse(uri)
                .context("store check is for S3 stores (s3://BUCKET/PREFIX)")?;
            let policies = policy::load(policy_dir(&cli).as_deref())?;
            let spool =
                SpoolStore::open(&spool::default_root(), location.clone(), &s3_options(&cli))?;
            let s3 = s3_store(&cli, location, &policies, &spool)?;
            let done = s3.check()?;
            output::store_check(uri, &done, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Store {
            command: StoreCommand::Flush { uri },
        } => {
            let uri = uri.as_deref().unwrap_or(&cli.store);
            let location = S3Location::parse(uri)
                .context("store flush is for S3 stores (s3://BUCKET/PREFIX)")?;
            let policies = policy::load(policy_dir(&cli).as_deref())?;
            let root = spool::default_root();
            let elsewhere = spool::other_spools_with_cases(&root, &location, &s3_options(&cli));
            for (dir, endpoint) in &elsewhere {
                eprintln!(
                    "warning: {} holds cases for {} spooled for {}; this flush does not upload them (give that endpoint to flush them)",
                    custody::terminal::escape_path(dir),
                    custody::terminal::escape(uri),
                    match endpoint {
                        Some(e) => format!("endpoint {}", custody::terminal::escape(e)),
                        None => "the default endpoint, or by an earlier version that did not record one".into(),
                    }
                );
            }
            let spool = SpoolStore::open(&root, location.clone(), &s3_options(&cli))?;
            // A collection that died in the spool is journaled as such before it is uploaded.
            report_swept(&collect::run::sweep_dead_runs(&spool));
            let waiting = spool.cases()?;
            let s3 = s3_store(&cli, location, &policies, &spool)?;
            if !waiting.is_empty() {
                s3.check()?;
            }
            let report = spool::flush(&spool, &s3)?;
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
                        custody::terminal::escape(error)
                    );
                }
                Ok(ExitCode::from(2))
            }
        }
        Command::Policy {
            command: PolicyCommand::Lint { dir },
        } => {
            let dir = dir.clone().or_else(|| policy_dir(&cli)).context(
                "no policy directory: give DIR, --policies, or run where ./policies exists",
            )?;
            let files = policy::lint(&dir)?;
            output::lint(&dir, &files, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The exit code for evidence that is sealed (or verified intact) but known to be incomplete.
const INCOMPLETE: u8 = 3;

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
                eprintln!("error: {}", custody::terminal::escape(&e.to_string()));
                Err(Ok(ExitCode::from(signal.exit_code())))
            }
            None => {
                if run.keep_downloads() {
                    eprintln!(
                        "note: the downloaded logs are kept in {}",
                        custody::terminal::escape_path(&run.dir().join(collect::run::DOWNLOADS))
                    );
                }
                Err(Err(e.into()))
            }
        },
    }
}

/// Starts the collection's staging directory, after cleaning what earlier runs that died
/// left behind (and journaling their cases as interrupted).
fn begin_run(store: &dyn Store, request: &mut Request) -> Result<collect::run::Run> {
    let (run, swept) = collect::run::Run::begin(store, &request.case_id, &request.bundle_id)
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

fn report_swept(swept: &collect::run::Swept) {
    for case in &swept.interrupted {
        eprintln!("note: case {case} was left unfinished by a collection that died; it is now journaled as interrupted");
    }
    for dir in &swept.kept {
        eprintln!(
            "note: an earlier collection that did not finish left downloaded logs in {}",
            custody::terminal::escape_path(dir)
        );
    }
}

fn s3_options(cli: &Cli) -> S3Options {
    S3Options {
        endpoint: cli.s3_endpoint.clone().filter(|e| !e.is_empty()),
        path_style: cli.s3_path_style,
        ..S3Options::default()
    }
}

/// The S3 store named by `location`, locking objects as the storage policy says.
fn s3_store(
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

/// `--policies`, or `./policies` when it exists.
fn policy_dir(cli: &Cli) -> Option<PathBuf> {
    cli.policies.clone().or_else(|| {
        let default = Path::new("policies");
        default.is_dir().then(|| default.to_owned())
    })
}
