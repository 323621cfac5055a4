//! `custody cases` (every case in the store, a line each), `cases show CASE` (one case: its
//! trigger, timeline, bundles, findings, failures and plans) and `cases report CASE` (the sealed
//! `report.html` of a verified bundle, written out). Everything shown comes from the journal
//! (`case::summary`) except the report, which is read out of the bundle only once it verifies
//! (`verify::read_member`). Text from the journal and the logs (addresses, paths, names) is
//! escaped for the terminal; `--json` is exact. Exit codes: 0; 1 when a journal does not check or
//! the bundle does not verify; 2 for usage and I/O errors and a case with no sealed bundle.

mod timeline;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::json;

use super::{s3_options, Cli};
use crate::case::summary::{self, CaseProblem, CaseSummary};
use crate::id::{BundleId, CaseId};
use crate::keys::PublicKey;
use crate::store::{self, OpenOptions, Store, StoreUri};
use crate::terminal::escape as esc;
use crate::verify::{self, ExtractError};

pub(super) use timeline::timeline;

/// The bag member `cases report` writes out.
pub(super) const REPORT_MEMBER: &str = "data/analysis/report.html";
/// The largest report read out of a bundle.
const MAX_REPORT: u64 = 256 * 1024 * 1024;

/// What `cases` shows of one containment plan of a case.
#[derive(Clone, Debug, Serialize)]
pub(super) struct PlanBrief {
    pub plan_id: String,
    /// The plan's state (`proposed`, `approved`, `rejected`, `expired`, …).
    pub state: String,
    /// Approvals collected, and the quorum the plan needs.
    pub approvals: usize,
    pub quorum: Option<usize>,
}

/// The roster in force, `approvers.allowed_signers` in the policy directory, if there is one.
fn roster_in_force(cli: &Cli) -> Option<crate::approval::Roster> {
    let path = super::policy_dir(cli)?.join(crate::store::layout::ROSTER_FILE);
    crate::approval::Roster::read(&path).ok()
}

/// The containment policy in force, if the policy directory reads (a plan needs at least its
/// quorum); without it, each plan is judged by its own.
fn containment_in_force(cli: &Cli) -> Result<crate::policy::containment::ContainmentPolicy> {
    Ok(crate::policy::load(super::policy_dir(cli).as_deref())?.containment)
}

/// Every plan of `case`, in id order, with its state and quorum, judged with the roster in
/// force (`roster`); without one, with the roster each plan pins, and the state says so. A plan
/// that does not load is listed as `invalid` with the reason's code. This is the one place
/// `cases` and `cases show` learn of plans.
fn plans_of(
    store: &dyn Store,
    case: &CaseId,
    roster: Option<&crate::approval::Roster>,
    policy: &crate::policy::containment::ContainmentPolicy,
    trusted: Option<&PublicKey>,
) -> Vec<PlanBrief> {
    let Ok((ids, _)) = crate::plan::store::list(store, case) else {
        return Vec::new();
    };
    let now = time::OffsetDateTime::now_utc();
    ids.iter()
        .map(|id| {
            let brief = |state: String, approvals: usize, quorum: Option<usize>| PlanBrief {
                plan_id: id.to_string(),
                state,
                approvals,
                quorum,
            };
            let plan = match crate::plan::store::load(store, case, id, trusted) {
                Ok(plan) => plan,
                Err(e) => return brief(format!("invalid ({})", e.code()), 0, None),
            };
            let judged = roster.unwrap_or(plan.pinned_roster());
            match crate::plan::status::status_in(store, &plan, judged, Some(policy), now) {
                Ok(st) => {
                    let state = if st.rejected {
                        "rejected"
                    } else if st.expired {
                        "expired"
                    } else if st.quorum_reached {
                        "approved"
                    } else {
                        "awaiting approval"
                    };
                    let quorum = usize::try_from(st.required).ok();
                    let state = match roster {
                        Some(_) => state.to_owned(),
                        None => format!("{state} (by its own roster: no roster in force)"),
                    };
                    brief(state, st.counted as usize, quorum)
                }
                Err(e) => brief(format!("invalid ({})", e.code()), 0, None),
            }
        })
        .collect()
}

fn open_store(cli: &Cli) -> Result<Box<dyn Store>> {
    let options = OpenOptions {
        s3: s3_options(cli),
        ..OpenOptions::default()
    };
    let opened = store::open(&cli.store, &options)
        .with_context(|| format!("cannot open the store {}", cli.store))?;
    Ok(opened.into_store())
}

/// The case's summary from its journal, with the journal's signature problems (as `verify`
/// reports them) among its problems.
fn summarize(store: &dyn Store, case: &CaseId, options: &verify::Options) -> CaseSummary {
    let Ok(chain) = crate::case::check_chain(store, case) else {
        return summary::summarize(store, case);
    };
    let mut s = summary::of_chain(case, &chain, StoreUri::is_s3(&store.uri()));
    let problems = match verify::entry_signature_problems(store, case, &chain, options) {
        Ok(problems) => problems
            .into_iter()
            .map(|p| CaseProblem {
                subject: p.subject,
                message: format!("{}: {}", p.code, p.message),
            })
            .collect(),
        Err(e) => vec![CaseProblem {
            subject: format!("cases/{case}/journal"),
            message: format!("cannot check the entries' signatures: {e}"),
        }],
    };
    s.problems.extend(problems);
    s
}

fn verify_options(public_key: Option<&Path>) -> Result<verify::Options> {
    Ok(verify::Options {
        public_key: public_key.map(PublicKey::load).transpose()?,
        ..verify::Options::default()
    })
}

fn parse_case(case: &str) -> Result<CaseId> {
    CaseId::new(case).map_err(|e| anyhow::anyhow!("{e}"))
}

/// `custody cases`: one line (or JSON object) per case; exit 1 if any journal does not check.
pub(super) fn list(cli: &Cli, public_key: Option<&Path>) -> Result<ExitCode> {
    let options = verify_options(public_key)?;
    let store = open_store(cli)?;
    let cases = store.list_cases()?;
    let roster = roster_in_force(cli);
    let policy = containment_in_force(cli)?;
    let rows: Vec<(CaseSummary, Vec<PlanBrief>)> = cases
        .iter()
        .map(|c| {
            (
                summarize(store.as_ref(), c, &options),
                plans_of(
                    store.as_ref(),
                    c,
                    roster.as_ref(),
                    &policy,
                    options.public_key.as_ref(),
                ),
            )
        })
        .collect();
    let all_ok = rows.iter().all(|(s, _)| s.ok());
    if cli.json {
        let array: Vec<serde_json::Value> = rows.iter().map(|(s, p)| list_json(s, p)).collect();
        print_json(&serde_json::Value::Array(array))?;
    } else {
        print_table(&store.uri(), &rows)?;
    }
    Ok(exit(all_ok))
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_json(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// The `cases --json` object of one case (README, "Browsing cases").
fn list_json(s: &CaseSummary, plans: &[PlanBrief]) -> serde_json::Value {
    json!({
        "case_id": s.case_id,
        "opened_at": s.opened_at,
        "trigger": s.trigger,
        "state": s.state,
        "alert_resolved": s.alert_resolved,
        "journal_entries": s.journal_entries,
        "bundles": s.bundles.len(),
        "suspicious": s.suspicious(),
        "plans": plans.len(),
        "ok": s.ok(),
        "problems": s.problems,
    })
}

fn trigger_text(s: &CaseSummary) -> String {
    match &s.trigger {
        None => "?".into(),
        Some(t) => match &t.alert {
            Some(alert) => format!("alert {} ({})", esc(alert), esc(&t.requested_by)),
            None => format!("{} by {}", esc(&t.kind), esc(&t.requested_by)),
        },
    }
}

fn state_text(s: &CaseSummary) -> String {
    if s.alert_resolved {
        format!("{} (resolved)", s.state)
    } else {
        s.state.to_owned()
    }
}

fn print_table(uri: &str, rows: &[(CaseSummary, Vec<PlanBrief>)]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if rows.is_empty() {
        writeln!(out, "no cases in {}", esc(uri))?;
        return Ok(());
    }
    let lines: Vec<[String; 7]> = rows
        .iter()
        .map(|(s, plans)| {
            [
                s.case_id.to_string(),
                s.opened_at
                    .as_deref()
                    .map_or("?".into(), |t| esc(t).into_owned()),
                state_text(s),
                trigger_text(s),
                s.bundles.len().to_string(),
                s.suspicious().map_or("-".into(), |n| n.to_string()),
                plans.len().to_string(),
            ]
        })
        .collect();
    let header = [
        "CASE",
        "OPENED",
        "STATE",
        "TRIGGER",
        "BUNDLES",
        "SUSPICIOUS",
        "PLANS",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let row = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    writeln!(out, "{}", row(header.to_vec()))?;
    for (line, (s, _)) in lines.iter().zip(rows) {
        writeln!(out, "{}", row(line.iter().map(String::as_str).collect()))?;
        for p in &s.problems {
            writeln!(out, "  PROBLEM {}: {}", esc(&p.subject), esc(&p.message))?;
        }
    }
    Ok(())
}

/// One case of the store, summarized from its journal: the store, the case, the options its
/// signatures were checked with, and the summary. A case the store does not hold is an error.
fn one_case(
    cli: &Cli,
    case: &str,
    public_key: Option<&Path>,
) -> Result<(Box<dyn Store>, CaseId, verify::Options, CaseSummary)> {
    let case = parse_case(case)?;
    let options = verify_options(public_key)?;
    let store = open_store(cli)?;
    if !store.list_cases()?.contains(&case) {
        bail!("the store {} holds no case {case}", store.uri());
    }
    let s = summarize(store.as_ref(), &case, &options);
    Ok((store, case, options, s))
}

/// `custody cases show CASE`.
pub(super) fn show(cli: &Cli, case: &str, public_key: Option<&Path>) -> Result<ExitCode> {
    let (store, case, options, s) = one_case(cli, case, public_key)?;
    let policy = containment_in_force(cli)?;
    let plans = plans_of(
        store.as_ref(),
        &case,
        roster_in_force(cli).as_ref(),
        &policy,
        options.public_key.as_ref(),
    );
    if cli.json {
        let mut value = serde_json::to_value(&s)?;
        value["ok"] = json!(s.ok());
        value["suspicious"] = json!(s.suspicious());
        value["plans"] = serde_json::to_value(&plans)?;
        print_json(&value)?;
    } else {
        print_show(&s, &plans)?;
    }
    Ok(exit(s.ok()))
}

/// The human view of one case: header, trigger, problems, timeline, bundles, findings,
/// failures and plans.
fn print_show(s: &CaseSummary, plans: &[PlanBrief]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "case      {}", s.case_id)?;
    let opened = s.opened_at.as_deref().map_or("?".into(), esc);
    writeln!(out, "opened    {opened}")?;
    writeln!(out, "trigger   {}", trigger_text(s))?;
    writeln!(out, "state     {}", state_text(s))?;
    for p in &s.problems {
        writeln!(out, "PROBLEM   {}: {}", esc(&p.subject), esc(&p.message))?;
    }
    writeln!(out, "\ntimeline ({} entries)", s.journal_entries)?;
    for t in &s.timeline {
        let kind = serde_json::to_value(t.kind)?;
        writeln!(
            out,
            "  {:>4}  {}  {:<22}  {}  [{}]",
            t.seq,
            esc(&t.at),
            kind.as_str().unwrap_or("?"),
            esc(&t.summary),
            esc(&t.actor)
        )?;
    }
    writeln!(out, "\nbundles ({})", s.bundles.len())?;
    for b in &s.bundles {
        writeln!(
            out,
            "  {}  sealed {}  archive SHA-256 {}  {} bytes  key {}",
            b.bundle_id,
            esc(&b.sealed_at),
            b.archive_sha256,
            b.archive_size,
            b.key_id
        )?;
    }
    print_findings(&mut out, s)?;
    writeln!(out, "\nfailures ({})", s.failures.len())?;
    for f in &s.failures {
        let bundle = f
            .bundle_id
            .as_ref()
            .map_or(String::new(), |b| format!(" (bundle {b})"));
        writeln!(out, "  entry {}{bundle}: {}", f.seq, esc(&f.message))?;
    }
    writeln!(out, "\nplans ({})", plans.len())?;
    for p in plans {
        let quorum = p.quorum.map_or("?".into(), |q| q.to_string());
        writeln!(
            out,
            "  {}  {}  approvals {}/{quorum}",
            esc(&p.plan_id),
            esc(&p.state),
            p.approvals
        )?;
    }
    Ok(())
}

fn print_findings(out: &mut dyn Write, s: &CaseSummary) -> Result<()> {
    let Some(f) = &s.findings else {
        writeln!(out, "\nfindings: none journaled (a case collected by the CLI has them in its report: cases report)")?;
        return Ok(());
    };
    writeln!(
        out,
        "\nfindings of bundle {} ({} lines{}): {} suspicious clients",
        f.bundle_id,
        f.lines,
        if f.complete { "" } else { ", incomplete" },
        f.suspicious.len()
    )?;
    for c in &f.suspicious {
        writeln!(
            out,
            "  {:<39}  {:<24}  {} auth failures",
            esc(&c.ip),
            esc(&c.rule),
            c.auth_failures
        )?;
    }
    Ok(())
}

/// What `cases report` is asked for.
pub(super) struct ReportArgs<'a> {
    pub case: &'a str,
    pub bundle: Option<&'a str>,
    pub out: Option<&'a Path>,
    pub force: bool,
}

/// `custody cases report CASE [--bundle ID] [--out FILE] [--force]`.
pub(super) fn report(
    cli: &Cli,
    args: &ReportArgs<'_>,
    public_key: Option<&Path>,
) -> Result<ExitCode> {
    let case = parse_case(args.case)?;
    let to_stdout = args.out.is_none_or(|p| p == Path::new("-"));
    if to_stdout && cli.json {
        bail!("--json prints the result on standard output: give --out FILE for the report");
    }
    if to_stdout && std::io::stdout().is_terminal() {
        bail!("the report is HTML with text from the logs in it: give --out FILE, or redirect standard output");
    }
    let options = verify_options(public_key)?;
    let store = open_store(cli)?;
    let s = summary::summarize(store.as_ref(), &case);
    let Some(bundle) = pick_bundle(&s, args.bundle)? else {
        eprintln!(
            "error: case {case} has no sealed bundle{}",
            args.bundle
                .map_or(String::new(), |b| format!(" {}", esc(b)))
        );
        return Ok(ExitCode::from(2));
    };
    let bytes = match verify::read_member(
        store.as_ref(),
        &case,
        &bundle,
        REPORT_MEMBER,
        MAX_REPORT,
        &options,
    ) {
        Ok(bytes) => bytes,
        Err(e) => return refused(&e),
    };
    let written = write_out(args, &bytes)?;
    if cli.json {
        print_json(&json!({
            "case_id": case,
            "bundle_id": bundle,
            "member": REPORT_MEMBER,
            "out": written.as_ref().map(|p| p.display().to_string()),
            "bytes": bytes.len(),
            "sha256": crate::digest::Sha256Digest::of(&bytes),
        }))?;
    } else if let Some(path) = written {
        eprintln!(
            "wrote {} of bundle {bundle} ({} bytes, verified) to {}",
            REPORT_MEMBER,
            bytes.len(),
            crate::terminal::escape_path(&path)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The bundle asked for (which the journal must record as sealed), else the last sealed one.
fn pick_bundle(s: &CaseSummary, asked: Option<&str>) -> Result<Option<BundleId>> {
    match asked {
        Some(b) => {
            let b = BundleId::new(b).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(s.bundles.iter().any(|x| x.bundle_id == b).then_some(b))
        }
        None => Ok(s.bundles.last().map(|b| b.bundle_id.clone())),
    }
}

/// A refusal to hand out the report: exit 1 when the evidence does not verify, else 2.
fn refused(e: &ExtractError) -> Result<ExitCode> {
    eprintln!("error: {}", esc(&e.to_string()));
    if let ExtractError::NotVerified { problems, .. } = e {
        for p in problems {
            eprintln!("  {} {}: {}", p.code, esc(&p.subject), esc(&p.message));
        }
    }
    let verification_failed = matches!(
        e,
        ExtractError::NotVerified { .. }
            | ExtractError::MemberMismatch { .. }
            | ExtractError::ArchiveChanged { .. }
            | ExtractError::NotInManifest { .. }
    );
    Ok(ExitCode::from(if verification_failed { 1 } else { 2 }))
}

/// Writes the report to `--out` (created new unless `--force`) or standard output; the path
/// written, if a file.
fn write_out(args: &ReportArgs<'_>, bytes: &[u8]) -> Result<Option<PathBuf>> {
    match args.out.filter(|p| *p != Path::new("-")) {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()?;
            Ok(None)
        }
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true);
            if args.force {
                options.create(true).truncate(true);
            } else {
                options.create_new(true);
            }
            let mut file = options.open(path).with_context(|| {
                format!(
                    "cannot create {}{}",
                    path.display(),
                    if args.force {
                        ""
                    } else {
                        " (it is not overwritten without --force)"
                    }
                )
            })?;
            file.write_all(bytes)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(Some(path.to_owned()))
        }
    }
}
