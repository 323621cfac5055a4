//! The `custody` commands: the command line (parsed by `main`), and what each command does,
//! over the library: `collect` (into a local store, or sealed into the spool and uploaded to
//! S3), `analyze`, `verify`, `keygen`, `serve`, `store check|flush`, `policy lint`,
//! `cases [show|report]`, `plan propose|show|status|list`, `approve`. Each command returns its exit code: 0
//! success; 1 verification failed; 2 usage or I/O error, nothing sealed; 3 sealed (or verified
//! intact) but incomplete; 4 (`plan status`) a plan without quorum; 130 or 143 when SIGINT or
//! SIGTERM stopped a collection. This is the application's outer layer, so it reports errors
//! with `anyhow`, as `main` does.

mod cases;
mod collect;
mod output;
mod plan;
mod store;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::analysis::format::FormatChoice;
use crate::analysis::parallel::{self, Job};
use crate::keys::{self, PublicKey, SigningKey};
use crate::policy;
use crate::store::s3::S3Options;
use crate::store::{OpenOptions, StoreUri};
use crate::verify;

#[derive(Parser)]
#[command(
    name = "custody",
    version,
    about = "Preserve, analyse, seal and verify breach evidence."
)]
pub struct Cli {
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
    /// The collector's Ed25519 private key (PKCS#8 PEM) [default: a per-user key; `collect`
    /// creates it on first use, `store flush` only uses one that exists].
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
        /// The approvers' roster in force (allowed_signers): the plans' quorum is evaluated
        /// against it [default: each plan's pinned roster].
        #[arg(long)]
        approvers: Option<PathBuf>,
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
    /// The cases in the store: opened, trigger, state, bundles, suspicious clients, plans.
    Cases {
        /// The collector's public key (SPKI PEM) from a trusted source, to check the journal's
        /// and the seals' signatures with [default: the store's published keys].
        #[arg(long, global = true)]
        public_key: Option<PathBuf>,
        #[command(subcommand)]
        command: Option<CasesCommand>,
    },
    /// Containment plans.
    Plan {
        /// The collector's public key (SPKI PEM) from a trusted source, to check the daemon's
        /// proposals with [default: the store's published key, which proves nothing alone].
        #[arg(long, global = true)]
        public_key: Option<PathBuf>,
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// Sign an approval (or a reject) of a plan with an SSH key (ssh-keygen -Y sign) and record
    /// it in the store.
    Approve {
        case: String,
        plan: String,
        /// The SSH key: a private key file, or the .pub of a key in ssh-agent or a FIDO key.
        #[arg(long)]
        key: PathBuf,
        /// Reject the plan (a veto) instead of approving it.
        #[arg(long)]
        reject: bool,
        /// Why, in the approver's words (recorded in the signed statement).
        #[arg(long)]
        reason: Option<String>,
        /// The principal to sign as [default: the one the plan's roster gives the key].
        #[arg(long)]
        principal: Option<String>,
        /// The collector's public key (SPKI PEM) from a trusted source, to check a daemon's
        /// proposal with [default: the store's published key].
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// The SHA-256 of the plan you read (`plan show` prints it): the statement is signed
        /// only if it is the plan's. Without it, approve asks on the terminal, and refuses when
        /// there is none.
        #[arg(long)]
        sha256: Option<String>,
        /// Send the approval to the daemon at this URL (`http(s)://host:port`) instead of
        /// recording it in the store.
        #[arg(long, requires = "token_file")]
        server: Option<String>,
        /// The file holding the daemon's analyst token (with --server).
        #[arg(long, requires = "server")]
        token_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CasesCommand {
    /// One case: its trigger, journal timeline, bundles, findings, failures and plans.
    Show { case: String },
    /// The incident timeline, from the case's journal alone: the alert, collection, sealing,
    /// plans and approvals, with times and actors (text, --json, or --markdown for a
    /// post-mortem). Exit 1 when the journal does not check.
    Timeline {
        case: String,
        /// Markdown, to paste into a post-incident review.
        #[arg(long)]
        markdown: bool,
    },
    /// Write the sealed report.html of a bundle, once the bundle verifies.
    Report {
        case: String,
        /// The bundle [default: the case's last sealed bundle].
        #[arg(long)]
        bundle: Option<String>,
        /// Where to write it (created new) [default: standard output, if not a terminal].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overwrite --out if it exists.
        #[arg(long, requires = "out")]
        force: bool,
    },
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Propose a containment plan for a case: from its sealed, verified evidence, the
    /// containment policy and the live cluster (read whole; every change dry-run on the API
    /// server), signed with your SSH key (--key). With --server the daemon builds the plan and
    /// this signs the exact bytes it shows. Exit 2 when the case has no sealed bundle, 1 when
    /// its evidence does not verify (or the daemon refuses).
    Propose {
        case: String,
        /// The proposer's SSH key, which the approvers' roster names (SSHSIG, namespace
        /// custody-proposal). A person always proposes as themselves: the proposer's principal
        /// and key never count towards the plan's quorum. (Only the daemon proposes with the
        /// collector key, on its own.)
        #[arg(long)]
        key: PathBuf,
        /// The principal you speak for [default: the one the roster gives the key].
        #[arg(long)]
        principal: Option<String>,
        /// The kubeconfig context [default: the current one, or in-cluster].
        #[arg(long, conflicts_with = "server")]
        context: Option<String>,
        /// Propose through the daemon at this URL (https, or http to localhost).
        #[arg(long, requires = "token_file")]
        server: Option<String>,
        /// The file holding the daemon's analyst token (with --server).
        #[arg(long, requires = "server")]
        token_file: Option<PathBuf>,
    },
    /// Propose the rollback of an executed plan: a plan of its own (quorum `rollback`) that
    /// lifts exactly the blocks that plan owns on the cluster as it is now — addresses another
    /// case's or plan's block holds stay refused, the custody block policy is deleted when no
    /// owner is left, each policy the plan rewrote gets back what it took. Secrets and sessions
    /// are never rolled back. Signed with your SSH key (--key); approved and executed like any
    /// plan.
    Rollback {
        case: String,
        /// The executed plan to roll back.
        plan: String,
        /// The proposer's SSH key, which the approvers' roster names.
        #[arg(long)]
        key: PathBuf,
        /// The principal you speak for [default: the one the roster gives the key].
        #[arg(long)]
        principal: Option<String>,
        /// The kubeconfig context [default: the current one, or in-cluster].
        #[arg(long)]
        context: Option<String>,
    },
    /// Lift every block whose expiry, by the plan that made it, has passed (for a CronJob where
    /// no daemon runs): for each executed plan holding expired addresses, an expiry plan (kind
    /// `expiry`, signed with the collector key, --signing-key) lifts them by the rule a rollback
    /// follows — an address another case's or plan's block holds stays refused — and is
    /// executed at once: it needs no approvals, being pre-approved by the plan that set the
    /// expiry. Journaled and sealed like any execution. Exit 0 when every expired block was
    /// lifted (or none was due), 1 when one was not (each is said).
    Expire {
        /// The kubeconfig context [default: the current one, or in-cluster].
        #[arg(long)]
        context: Option<String>,
    },
    /// What an approver reads before signing: warnings first, the addresses, each step as a
    /// diff of the objects with its dry-run, the quorum collected, and the approve command.
    Show {
        case: String,
        /// The plan [default: the case's newest plan].
        plan: Option<String>,
        /// The approvers' roster in force [default: approvers.allowed_signers in --policies, else
        /// the plan's own].
        #[arg(long)]
        approvers: Option<PathBuf>,
    },
    /// Whether a plan has quorum: every approval and what it counted for, or every reason it
    /// is not approved. Exit 0 when quorum is reached (for every plan shown), 4 when not, 1
    /// when a plan does not verify.
    Status {
        case: String,
        /// The plan [default: every plan of the case].
        plan: Option<String>,
        /// The approvers' roster in force [default: approvers.allowed_signers in --policies].
        #[arg(long)]
        approvers: Option<PathBuf>,
    },
    /// The case's plans.
    List { case: String },
    /// Carry out an approved plan: quorum, clock, policy and evidence checked, the plan made
    /// again on the cluster as it is and compared (a stale plan is refused and journaled), every
    /// change dry-run, then each step applied in order, journaled before and after, and the
    /// actions bundle sealed. Running it again resumes from the first unfinished step. Exit 0
    /// executed, 1 a step failed, 4 no quorum, 5 stale.
    Execute {
        case: String,
        plan: String,
        /// The values the plan marks as provided: a JSON object of key → value (`-`: standard
        /// input). Every such key is required, no other is accepted.
        #[arg(long)]
        secret_values: Option<PathBuf>,
        /// How long each Deployment's rollout may take, in seconds.
        #[arg(long, default_value_t = 300)]
        rollout_timeout: u64,
        /// The kubeconfig context [default: the current one, or in-cluster].
        #[arg(long)]
        context: Option<String>,
        /// The approvers' roster in force [default: approvers.allowed_signers in --policies].
        #[arg(long)]
        approvers: Option<PathBuf>,
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

/// The exit code for evidence that is sealed (or verified intact) but known to be incomplete.
const INCOMPLETE: u8 = 3;

/// Runs the command `cli` names and returns its exit code; an error is exit code 2, which
/// `main` reports.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Collect { .. } => collect::run(&cli),
        Command::Analyze { files, top, format } => analyze(&cli, files, *top, format),
        Command::Verify {
            target,
            public_key,
            approvers,
        } => verify(&cli, target, public_key.as_deref(), approvers.as_deref()),
        Command::Keygen { out } => {
            let key = SigningKey::generate();
            let (private, public) = keys::write_key_pair(&key, out)?;
            output::keygen(&private, &public, key.public().id().as_str(), cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { config } => serve(config),
        Command::Store {
            command: StoreCommand::Check { uri },
        } => store::check(&cli, uri.as_deref().unwrap_or(&cli.store)),
        Command::Store {
            command: StoreCommand::Flush { uri },
        } => store::flush(&cli, uri.as_deref().unwrap_or(&cli.store)),
        Command::Policy {
            command: PolicyCommand::Lint { dir },
        } => {
            use anyhow::Context;
            let dir = dir.clone().or_else(|| policy_dir(&cli)).context(
                "no policy directory: give DIR, --policies, or run where ./policies exists",
            )?;
            let files = policy::lint(&dir)?;
            output::lint(&dir, &files, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cases {
            command: None,
            public_key,
        } => cases::list(&cli, public_key.as_deref()),
        Command::Cases {
            command: Some(CasesCommand::Show { case }),
            public_key,
        } => cases::show(&cli, case, public_key.as_deref()),
        Command::Cases {
            command: Some(CasesCommand::Timeline { case, markdown }),
            public_key,
        } => cases::timeline(&cli, case, *markdown, public_key.as_deref()),
        Command::Cases {
            command:
                Some(CasesCommand::Report {
                    case,
                    bundle,
                    out,
                    force,
                }),
            public_key,
        } => cases::report(
            &cli,
            &cases::ReportArgs {
                case,
                bundle: bundle.as_deref(),
                out: out.as_deref(),
                force: *force,
            },
            public_key.as_deref(),
        ),
        Command::Plan {
            command:
                PlanCommand::Status {
                    case,
                    plan,
                    approvers,
                },
            public_key,
        } => plan::status(
            &cli,
            public_key.as_deref(),
            case,
            plan.as_deref(),
            approvers.as_deref(),
        ),
        Command::Plan {
            command: PlanCommand::List { case },
            public_key,
        } => plan::list(&cli, public_key.as_deref(), case),
        Command::Plan {
            command:
                PlanCommand::Execute {
                    case,
                    plan: id,
                    secret_values,
                    rollout_timeout,
                    context,
                    approvers,
                },
            public_key,
        } => plan::execute(
            &cli,
            &plan::ExecuteArgs {
                case,
                plan: id,
                secret_values: secret_values.as_deref(),
                rollout_timeout: std::time::Duration::from_secs(*rollout_timeout),
                context: context.as_deref(),
                approvers: approvers.as_deref(),
                public_key: public_key.as_deref(),
            },
        ),
        Command::Plan {
            command:
                PlanCommand::Propose {
                    case,
                    key,
                    principal,
                    context,
                    server,
                    token_file,
                },
            ..
        } => match (server, token_file) {
            (Some(url), Some(token)) => {
                plan::propose_on_server(&cli, case, key, principal.as_deref(), url, token)
            }
            _ => plan::propose(
                &cli,
                case,
                (key, principal.as_deref()),
                context.as_deref(),
                None,
            ),
        },
        Command::Plan {
            command:
                PlanCommand::Rollback {
                    case,
                    plan: lifted,
                    key,
                    principal,
                    context,
                },
            ..
        } => plan::propose(
            &cli,
            case,
            (key, principal.as_deref()),
            context.as_deref(),
            Some(lifted),
        ),
        Command::Plan {
            command: PlanCommand::Expire { context },
            public_key,
        } => plan::expire(&cli, context.as_deref(), public_key.as_deref()),
        Command::Plan {
            command:
                PlanCommand::Show {
                    case,
                    plan,
                    approvers,
                },
            public_key,
        } => plan::show(
            &cli,
            public_key.as_deref(),
            case,
            plan.as_deref(),
            approvers.as_deref(),
        ),
        Command::Approve {
            case,
            plan: id,
            key,
            reject,
            reason,
            principal,
            sha256,
            public_key,
            server,
            token_file,
        } => {
            let args = plan::ApproveArgs {
                sha256: sha256.as_deref(),
                public_key: public_key.as_deref(),
                case,
                plan: id,
                key,
                reject: *reject,
                reason: reason.as_deref(),
                principal: principal.as_deref(),
            };
            match (server, token_file) {
                (Some(url), Some(token)) => plan::approve_on_server(&cli, &args, url, token),
                _ => plan::approve(&cli, &args),
            }
        }
    }
}

/// Whether the command is the daemon (which logs JSON lines).
pub fn is_daemon(cli: &Cli) -> bool {
    matches!(cli.command, Command::Serve { .. })
}

/// Whether the command prints its result as JSON (and so its failure too).
pub fn wants_json(cli: &Cli) -> bool {
    cli.json
}

/// The error and its causes, each cause once: most messages already name their cause.
pub fn error_message(e: &anyhow::Error) -> String {
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

fn analyze(cli: &Cli, files: &[PathBuf], top: usize, format: &FormatChoice) -> Result<ExitCode> {
    let policies = policy::load(policy_dir(cli).as_deref())?;
    let mut analyzer = parallel::analyze_paths(&Job {
        paths: files,
        format: format.clone(),
        formats: std::sync::Arc::new(policies.formats.clone()),
        threads: parallel::threads(),
        progress: !cli.json,
        memory_budget: policies.collection.analysis.memory_budget_bytes,
    })?;
    let summary = analyzer.summary(&policies.detection, top);
    output::analysis(&summary, cli.json)?;
    // Past its memory budget the analysis did not count every client: not a success.
    Ok(if summary.limit.is_some() {
        ExitCode::from(INCOMPLETE)
    } else {
        ExitCode::SUCCESS
    })
}

fn verify(
    cli: &Cli,
    target: &str,
    public_key: Option<&Path>,
    approvers: Option<&Path>,
) -> Result<ExitCode> {
    let public_key = public_key.map(PublicKey::load).transpose()?;
    let approvers = approvers.map(crate::approval::Roster::read).transpose()?;
    // The containment policy in force (the embedded default without a policy directory), as
    // `plan status` judges with it: each plan needs at least its quorum.
    let containment = Some(crate::policy::load(policy_dir(cli).as_deref())?.containment);
    let options = verify::Options {
        public_key,
        approvers,
        containment,
        ..verify::Options::default()
    };
    // Anything but an S3 URI is a path: `verify` says what it cannot make out.
    let report = if StoreUri::is_s3(target) {
        verify::verify_s3(target, &s3_options(cli), &options)?
    } else {
        verify::verify_path(Path::new(target), &options)?
    };
    output::verification(&report, cli.json)?;
    if !cli.json {
        plan::verified_plans(&report.plans);
    }
    Ok(if !report.ok {
        ExitCode::from(1)
    } else if !report.complete {
        ExitCode::from(INCOMPLETE)
    } else {
        ExitCode::SUCCESS
    })
}

/// The daemon, on the store its configuration names.
fn serve(config: &Path) -> Result<ExitCode> {
    let loaded = crate::daemon::config::load(config)?;
    let mut options = OpenOptions {
        create: true,
        s3: S3Options {
            endpoint: loaded.config.s3.endpoint.clone(),
            path_style: loaded.config.s3.path_style,
            ..S3Options::default()
        },
        staging: Some(
            loaded
                .config
                .spool
                .clone()
                .unwrap_or_else(crate::spool::default_root)
                .join("serve-staging"),
        ),
        ..OpenOptions::default()
    };
    // The policies, loaded once: the daemon's, and the storage policy's Object Lock for S3 (a
    // local store locks nothing).
    let policies = policy::load(loaded.config.policies.as_deref())?;
    if let StoreUri::S3(_) = StoreUri::parse(&loaded.config.store)? {
        options.lock = policies.storage.object_lock;
    }
    // With S3, collections are sealed into the local spool first and uploaded from there.
    let (store, spooling): (Box<dyn crate::store::Store>, _) =
        match crate::store::open(&loaded.config.store, &options)? {
            crate::store::Opened::S3(s3) => {
                let s3 = std::sync::Arc::new(s3);
                let StoreUri::S3(location) = StoreUri::parse(&loaded.config.store)? else {
                    anyhow::bail!("{} is not an S3 store", loaded.config.store);
                };
                let root = loaded
                    .config
                    .spool
                    .clone()
                    .unwrap_or_else(crate::spool::default_root);
                let spool = crate::spool::SpoolStore::open(&root, location, &options.s3)?;
                let spooling = crate::daemon::Spooling {
                    spool,
                    s3: s3.clone(),
                };
                (Box::new(s3), Some(spooling))
            }
            local => (local.into_store(), None),
        };
    crate::server::serve(store, spooling, loaded, policies)?;
    Ok(ExitCode::SUCCESS)
}

fn s3_options(cli: &Cli) -> S3Options {
    S3Options {
        endpoint: cli.s3_endpoint.clone().filter(|e| !e.is_empty()),
        path_style: cli.s3_path_style,
        ..S3Options::default()
    }
}

/// `--policies`, or `./policies` when it exists.
fn policy_dir(cli: &Cli) -> Option<PathBuf> {
    cli.policies.clone().or_else(|| {
        let default = Path::new("policies");
        default.is_dir().then(|| default.to_owned())
    })
}
