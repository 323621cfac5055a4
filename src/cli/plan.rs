//! `custody plan status|list` (where a case's plans stand) and `custody approve` (sign an
//! approval, or a reject, of a plan with an SSH key and record it in the store, or send it to
//! the daemon: `plan/server.rs`). Exit codes of `plan status`: 0 quorum reached (for every plan shown); 4 quorum not reached — awaiting
//! approvals, vetoed or expired, every reason printed; 1 a plan does not verify; 2 usage or I/O.

mod execute;
mod expire;
mod server;

pub(super) use execute::{execute, ExecuteArgs};
pub(super) use expire::expire;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use time::OffsetDateTime;

use super::{policy_dir, s3_options, Cli};
use crate::approval::statement::Statement;
use crate::approval::{sshsig, Decision, KeyFingerprint, Principal, Roster};
use crate::id::{CaseId, PlanId};
use crate::keys::{self, SigningKey};
use crate::plan::show::{self, ApproveHint, ShowStatus};
use crate::plan::{self, Plan, PlanStatus, Proposed};
use crate::store::{self, OpenOptions, Store};
use crate::terminal::escape as esc;

/// `plan status`: a plan that does not have quorum (yet, or ever: vetoed, expired).
pub(super) const NO_QUORUM: u8 = 4;

/// What `approve` is asked to do.
pub(super) struct ApproveArgs<'a> {
    pub case: &'a str,
    pub plan: &'a str,
    pub key: &'a Path,
    pub reject: bool,
    pub reason: Option<&'a str>,
    pub principal: Option<&'a str>,
    /// The plan digest the approver read (`--sha256`).
    pub sha256: Option<&'a str>,
    /// The collector key from a trusted source (`--public-key`).
    pub public_key: Option<&'a Path>,
}

fn open(cli: &Cli) -> Result<Box<dyn Store>> {
    let options = OpenOptions {
        s3: s3_options(cli),
        ..OpenOptions::default()
    };
    Ok(store::open(&cli.store, &options)?.into_store())
}

/// The roster in force: `--approvers`, else `approvers.allowed_signers` in the policy directory.
fn current_roster(cli: &Cli, approvers: Option<&Path>) -> Result<Roster> {
    let path = match approvers {
        Some(p) => p.to_owned(),
        None => policy_dir(cli)
            .map(|d| d.join("approvers.allowed_signers"))
            .filter(|p| p.is_file())
            .context("no roster in force: give --approvers FILE, or --policies with approvers.allowed_signers")?,
    };
    Ok(Roster::read(&path)?)
}

pub(super) fn status(
    cli: &Cli,
    trusted: Option<&Path>,
    case: &str,
    plan: Option<&str>,
    approvers: Option<&Path>,
) -> Result<ExitCode> {
    let case = CaseId::new(case)?;
    let trusted = trusted_key(trusted)?;
    let store = open(cli)?;
    let roster = current_roster(cli, approvers)?;
    let policy = containment_in_force(cli)?;
    let plans = match plan {
        Some(p) => vec![PlanId::new(p)?],
        None => plan::list(store.as_ref(), &case)?.0,
    };
    if plans.is_empty() {
        bail!("case {case} has no plans");
    }
    let now = OffsetDateTime::now_utc();
    let mut statuses = Vec::new();
    let mut failed = Vec::new();
    for id in &plans {
        match plan::load(store.as_ref(), &case, id, trusted.as_ref()) {
            Ok(p) => statuses.push(plan::status_in(
                store.as_ref(),
                &p,
                &roster,
                Some(&policy),
                now,
            )?),
            Err(e) => failed.push((id.clone(), e)),
        }
    }
    if cli.json {
        let failed: Vec<_> = failed
            .iter()
            .map(|(id, e)| serde_json::json!({"plan": id, "code": e.code(), "message": e.to_string()}))
            .collect();
        let value = serde_json::json!({"case": case, "plans": statuses, "invalid": failed});
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        for s in &statuses {
            print!("{}", status_text(s));
        }
        for (id, e) in &failed {
            println!(
                "plan {id}: DOES NOT VERIFY ({}): {}",
                e.code(),
                esc(&e.to_string())
            );
        }
    }
    Ok(if !failed.is_empty() {
        ExitCode::from(1)
    } else if statuses.iter().all(|s| s.quorum_reached) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NO_QUORUM)
    })
}

/// A plan's status for people; every outside string escaped.
pub fn status_text(s: &PlanStatus) -> String {
    let mut out = format!(
        "plan {} of case {}\n  digest    {}\n  proposer  {}\n  expires   {}{}\n  quorum    {} of {} {}\n",
        s.plan,
        s.case,
        s.plan_sha256,
        esc(&s.proposer),
        s.not_after,
        if s.expired { " (EXPIRED)" } else { "" },
        s.counted,
        s.required,
        if s.quorum_reached { "REACHED" } else if s.rejected { "REJECTED" } else { "not reached" },
    );
    for a in &s.approvals {
        out.push_str(&format!(
            "  #{:<3} {} {} {}: {}\n",
            a.number,
            a.decision.map_or("?".into(), |d| d.to_string()),
            a.principal
                .as_ref()
                .map_or("?".into(), |p| esc(p.as_str()).into_owned()),
            a.key_fingerprint.map_or("?".into(), |f| f.to_string()),
            esc(&a.why),
        ));
    }
    for r in &s.reasons {
        out.push_str(&format!("  - {}: {}\n", r.code(), esc(&r.to_string())));
    }
    out
}

pub(super) fn list(cli: &Cli, trusted: Option<&Path>, case: &str) -> Result<ExitCode> {
    let case = CaseId::new(case)?;
    let trusted = trusted_key(trusted)?;
    let store = open(cli)?;
    let (plans, strays) = plan::list(store.as_ref(), &case)?;
    let mut rows = Vec::new();
    for id in &plans {
        rows.push(match plan::load(store.as_ref(), &case, id, trusted.as_ref()) {
            Ok(p) => serde_json::json!({
                "plan": id, "plan_sha256": p.digest(), "created_at": p.doc().created_at,
                "not_after": p.doc().not_after, "required": p.required(), "valid": true,
            }),
            Err(e) => serde_json::json!({"plan": id, "valid": false, "code": e.code(), "message": e.to_string()}),
        });
    }
    if cli.json {
        let value = serde_json::json!({"case": case, "plans": rows, "strays": strays});
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        for r in &rows {
            match r["valid"].as_bool() {
                Some(true) => println!(
                    "{}  {}  needs {}  expires {}",
                    r["plan"].as_str().unwrap_or_default(),
                    r["plan_sha256"].as_str().unwrap_or_default(),
                    r["required"],
                    r["not_after"].as_str().unwrap_or_default()
                ),
                _ => println!(
                    "{}  DOES NOT VERIFY: {}",
                    r["plan"].as_str().unwrap_or_default(),
                    esc(r["message"].as_str().unwrap_or_default())
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The containment policy in force: `containment.yaml` in the policy directory (the embedded
/// default without one), whose quorum every plan needs at least.
pub(super) fn containment_in_force(
    cli: &Cli,
) -> Result<crate::policy::containment::ContainmentPolicy> {
    Ok(crate::policy::load(policy_dir(cli).as_deref())?.containment)
}

/// What the approver is shown before signing: `plan show`'s view of exactly the stored plan,
/// whose digest the statement signs.
pub fn shown_text(
    cli: &Cli,
    store: &dyn Store,
    plan: &Plan<Proposed>,
    roster: &Roster,
) -> Result<String> {
    let now = OffsetDateTime::now_utc();
    let policy = containment_in_force(cli)?;
    let status = plan::status_in(store, plan, roster, Some(&policy), now)?;
    let (stored, _) = plan::store::stored_approvals(store, plan.case(), plan.id())?;
    Ok(show::render_text(
        plan.doc(),
        &plan.digest(),
        &ShowStatus::of(&status, &stored),
        &hint(cli),
    ))
}

/// The approve command as this reader would type it.
fn hint(cli: &Cli) -> ApproveHint {
    let mut hint = ApproveHint::default();
    if cli.store != "./evidence" {
        hint.store_args = vec!["--store".to_owned(), cli.store.clone()];
    }
    hint
}

/// The roster in force for showing: as `plan status`, else the plan's own.
fn roster_for_show(cli: &Cli, approvers: Option<&Path>, plan: &Plan<Proposed>) -> Result<Roster> {
    match current_roster(cli, approvers) {
        Ok(r) => Ok(r),
        Err(_) if approvers.is_none() => Ok(plan.pinned_roster().clone()),
        Err(e) => Err(e),
    }
}

pub(super) fn show(
    cli: &Cli,
    trusted: Option<&Path>,
    case: &str,
    plan_id: Option<&str>,
    approvers: Option<&Path>,
) -> Result<ExitCode> {
    let case = CaseId::new(case)?;
    let trusted = trusted_key(trusted)?;
    let store = open(cli)?;
    let id = match plan_id {
        Some(p) => PlanId::new(p)?,
        None => plan::list(store.as_ref(), &case)?
            .0
            .into_iter()
            .max()
            .with_context(|| format!("case {case} has no plans"))?,
    };
    let plan = match plan::load(store.as_ref(), &case, &id, trusted.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "plan {id} DOES NOT VERIFY ({}): {}",
                e.code(),
                esc(&e.to_string())
            );
            return Ok(ExitCode::from(1));
        }
    };
    let roster = roster_for_show(cli, approvers, &plan)?;
    if cli.json {
        let policy = containment_in_force(cli)?;
        let status = plan::status_in(
            store.as_ref(),
            &plan,
            &roster,
            Some(&policy),
            OffsetDateTime::now_utc(),
        )?;
        let (stored, _) = plan::store::stored_approvals(store.as_ref(), &case, &id)?;
        let value = show::render_json(
            plan.doc(),
            &plan.digest(),
            &ShowStatus::of(&status, &stored),
        );
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", shown_text(cli, store.as_ref(), &plan, &roster)?);
        warn_untrusted(&plan, trusted.as_ref());
    }
    Ok(ExitCode::SUCCESS)
}

/// `plan propose`, or with `rollback` (the executed plan lifted) `plan rollback`.
pub(super) fn propose(
    cli: &Cli,
    case: &str,
    (key, principal): (&Path, Option<&str>),
    context: Option<&str>,
    rollback: Option<&str>,
) -> Result<ExitCode> {
    let case = CaseId::new(case)?;
    let store = open(cli)?;
    let policies = crate::policy::load(policy_dir(cli).as_deref())?;
    let roster_path = policy_dir(cli)
        .map(|d| d.join(crate::store::layout::ROSTER_FILE))
        .filter(|p| p.is_file())
        .context("no approvers' roster: --policies must hold approvers.allowed_signers, the roster the plan pins")?;
    let roster_text = std::fs::read_to_string(&roster_path)
        .with_context(|| format!("cannot read {}", roster_path.display()))?;
    let roster = Roster::parse(&roster_path.display().to_string(), &roster_text)?;
    let collector = match &cli.signing_key {
        Some(path) => SigningKey::load(path)?,
        None => keys::load_default().context(
            "the plan's journal entry is signed with a collector key: give --signing-key",
        )?,
    };
    let fail = |e: crate::propose::ProposeError| {
        eprintln!("error: {}", esc(&e.to_string()));
        ExitCode::from(e.exit_code())
    };
    let evidence = match crate::propose::evidence(store.as_ref(), &case, &Default::default()) {
        Ok(e) => e,
        Err(e) => return Ok(fail(e)),
    };
    refuse_while_collecting(store.as_ref(), &case)?;
    // The plan's clock starts now, after the evidence was verified (which may take minutes):
    // its times, and the check against the API server's Date, are of the cluster read.
    let now = OffsetDateTime::now_utc();
    let proposer =
        match crate::propose::proposer_claim(&collector, Some(key), principal, &roster, now) {
            Ok(p) => p,
            Err(e) => return Ok(fail(e)),
        };
    let block_owners = match crate::execute::owners::block_owners(
        store.as_ref(),
        None,
        &policies.containment,
        match rollback {
            Some(_) => plan::document::PlanKind::Rollback,
            None => plan::document::PlanKind::Containment,
        },
    ) {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "error: the owners of blocked addresses cannot be read, so no plan is built: {}",
                esc(&e)
            );
            return Ok(ExitCode::from(1));
        }
    };
    let rollback = match rollback {
        None => None,
        Some(lifted) => {
            let lifted = crate::id::PlanId::new(lifted)?;
            match crate::execute::owners::lifted(store.as_ref(), &case, &lifted, None) {
                Ok(of) => Some(of),
                Err(e) => {
                    eprintln!("error: no rollback is proposed: {}", esc(&e));
                    return Ok(ExitCode::from(1));
                }
            }
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the client runtime")?;
    let built = runtime.block_on(async {
        let cluster = crate::kube::connect(None, context)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the cluster: {e}"))?;
        let input = crate::propose::BuildInput {
            case: &case,
            policies: &policies,
            evidence: &evidence,
            proposer,
            roster_sha256: roster.sha256(),
            now,
            block_owners,
            rollback,
        };
        anyhow::Ok(crate::propose::build(&cluster, &input).await)
    })?;
    let doc = match built {
        Ok(doc) => doc,
        Err(e) => return Ok(fail(e)),
    };
    let signer = plan::store::ProposalSigner::Person(key);
    let stored = under_claim(store.as_ref(), &case, "plan propose", |held| {
        Ok(plan::propose(held, &collector, &doc, &roster_text, signer)?)
    })?;
    let loaded = plan::load(store.as_ref(), &case, &stored.plan, None)?;
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "case": case, "plan": stored.plan, "plan_sha256": stored.plan_sha256,
                "journal_seq": stored.journal_seq, "required": loaded.required(),
            }))?
        );
    } else {
        print!("{}", shown_text(cli, store.as_ref(), &loaded, &roster)?);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) use server::{approve_on_server, propose_on_server};

/// The statement `args` ask for about plan `id` of `case` (digest `digest`), signed by the
/// principal `--principal` names, else the one `roster` gives the key now.
/// Runs `work` under the case's claim (the record the daemon's replicas and `plan execute`
/// share), so that its journal entry never comes between an execution's or a collection's
/// entries and the seal that pins them.
fn under_claim<T>(
    store: &dyn Store,
    case: &CaseId,
    what: &str,
    work: impl FnOnce(&dyn Store) -> Result<T>,
) -> Result<T> {
    let user = std::env::var("USER").unwrap_or_else(|_| "custody".into());
    let leases = crate::daemon::lease::Leases::new(claim_holder(&user, what));
    leases
        .hold(store, case, |held| work(held))
        .map_err(|e| anyhow::anyhow!("case {case} is held ({e}): an execution or a collection is under way; try again once it is over"))?
}

/// The holder a command's claim on a case is taken as: unique to this process, so that two
/// commands (even of one user, or of a container without `USER`) never share a claim. A claim
/// left by a killed command lapses when its record expires (`daemon::lease::TTL`, 60 s).
pub(super) fn claim_holder(user: &str, what: &str) -> String {
    use rand_core::RngCore;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut nonce = [0u8; 4];
    rand_core::OsRng.fill_bytes(&mut nonce);
    format!(
        "{user}@{} ({what}, pid {}, {})",
        host.trim(),
        std::process::id(),
        hex::encode(nonce)
    )
}

/// A collection of the case under way (the daemon's, say) appends to its journal: an approval
/// or a proposal appended now would break that collection's next append, so none is.
fn refuse_while_collecting(store: &dyn Store, case: &CaseId) -> Result<()> {
    let chain = crate::case::journal::check_chain(store, case)?;
    if crate::case::CaseState::of(&chain).collection_unfinished() {
        bail!("case {case} is being collected: record the approval or the plan once its collection is over");
    }
    Ok(())
}

/// Says so when a daemon's proposal was checked only against the key the store publishes.
fn warn_untrusted(plan: &Plan<Proposed>, trusted: Option<&crate::keys::PublicKey>) {
    if trusted.is_none() && plan.proposer().collector_key().is_some() {
        eprintln!("warning: the daemon's signature on this plan was checked with the collector key the store publishes, which proves nothing by itself: give --public-key FILE with the key from a trusted source");
    }
}

/// The collector key given from a trusted source (`--public-key`), if any.
fn trusted_key(path: Option<&Path>) -> Result<Option<crate::keys::PublicKey>> {
    path.map(|p| {
        crate::keys::PublicKey::load(p)
            .with_context(|| format!("cannot read --public-key {}", p.display()))
    })
    .transpose()
}

/// The approver confirms the plan they read: `--sha256` must be its digest; without it the
/// terminal asks for the digest's first 12 characters, and without a terminal nothing is signed.
fn confirm(given: Option<&str>, digest: &crate::digest::Sha256Digest) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    let hex = digest.to_string();
    if let Some(given) = given {
        let given = given
            .trim()
            .trim_start_matches("sha256:")
            .to_ascii_lowercase();
        if given != hex {
            bail!("--sha256 {} is not this plan's SHA-256 ({hex}): nothing signed; read the plan again (plan show)", esc(&given));
        }
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("give --sha256 {hex} (the plan's SHA-256, shown above) to sign it: without a terminal to confirm on, nothing is signed");
    }
    eprint!("To sign plan sha256 {hex}, type its first 12 characters: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let typed = line.trim().to_ascii_lowercase();
    if typed.len() < 12 || !hex.starts_with(&typed) {
        bail!("the characters typed are not the plan's SHA-256: nothing signed");
    }
    Ok(())
}

fn statement_for(
    args: &ApproveArgs<'_>,
    case: &CaseId,
    id: &PlanId,
    digest: crate::digest::Sha256Digest,
    roster: &Roster,
) -> Result<Statement> {
    confirm(args.sha256, &digest)?;
    let now = OffsetDateTime::now_utc();
    let public = sshsig::public_key_of(args.key)?;
    let fingerprint = KeyFingerprint::of(&public);
    let principal = match args.principal {
        Some(p) => Principal::new(p)?,
        None => roster
            .principal_for(&fingerprint, now)
            .cloned()
            .with_context(|| format!("the plan's roster names no principal for key {fingerprint} now: give --principal, or use a key of the roster"))?,
    };
    let decision = if args.reject {
        Decision::Reject
    } else {
        Decision::Approve
    };
    Ok(Statement::new(
        case.clone(),
        id.clone(),
        digest,
        decision,
        principal,
        fingerprint,
        args.reason.unwrap_or_default().to_owned(),
        now,
    ))
}

pub(super) fn approve(cli: &Cli, args: &ApproveArgs<'_>) -> Result<ExitCode> {
    let case = CaseId::new(args.case)?;
    let id = PlanId::new(args.plan)?;
    let store = open(cli)?;
    let trusted = trusted_key(args.public_key)?;
    let plan = plan::load(store.as_ref(), &case, &id, trusted.as_ref())?;
    refuse_while_collecting(store.as_ref(), &case)?;
    let in_force = roster_for_show(cli, None, &plan)?;
    eprint!("{}", shown_text(cli, store.as_ref(), &plan, &in_force)?);
    warn_untrusted(&plan, trusted.as_ref());
    let roster = plan.pinned_roster().clone();
    let statement = statement_for(args, &case, &id, plan.digest(), &roster)?;
    let (bytes, signature) = statement.sign(args.key)?;
    let journal_key = match &cli.signing_key {
        Some(path) => SigningKey::load(path)?,
        None => keys::load_default().context(
            "recording into the store journals the approval, signed by a collector key: give --signing-key",
        )?,
    };
    let now = OffsetDateTime::now_utc();
    let recorded = under_claim(store.as_ref(), &case, "approve", |held| {
        Ok(plan.record(held, &journal_key, &bytes, &signature, now)?)
    })?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&recorded)?);
    } else {
        println!(
            "recorded {} #{} of plan {} by {} ({})",
            recorded.decision,
            recorded.number,
            recorded.plan,
            esc(recorded.principal.as_str()),
            recorded.key_fingerprint
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `verify --approvers`: the plans' lines of the report, for people.
pub(super) fn verified_plans(plans: &[crate::verify::PlanReport]) {
    for p in plans {
        if p.required == 0 {
            // An expiry: pre-approved by the plan whose blocks it lifts.
            println!(
                "plan {} of case {}: an expiry, needing no approvals: {}",
                p.plan,
                p.case,
                if p.quorum_reached {
                    "lawful"
                } else {
                    "NOT lawful (see the problems)"
                }
            );
            continue;
        }
        println!(
            "plan {} of case {}: quorum {} of {} {}",
            p.plan,
            p.case,
            p.counted,
            p.required,
            if p.quorum_reached {
                "reached"
            } else {
                "not reached"
            }
        );
        for r in &p.reasons {
            println!("  - {}: {}", r.code(), esc(&r.to_string()));
        }
    }
}
