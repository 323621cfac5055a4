//! Verification for auditors: a store, a case or one bundle, checked end to end without
//! extracting anything to disk. Every problem found is reported, not only the first.

mod archive;
mod bag;
mod bundle;
mod executions;
mod expiries;
pub mod extract;
#[cfg(test)]
mod fixtures;
mod layout;
mod plans;
mod s3;
mod signed;
mod stales;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::case::state::Outcome;
use crate::case::{self as journal, CaseState, CheckedChain, Details, EntryKind};
use crate::id::{BundleId, CaseId};
use crate::keys::PublicKey;
use crate::store::{LocalStore, Store, StoreError, StoreKey};

pub use bundle::BundleReport;
pub use extract::{read_member, ExtractError};
pub use plans::PlanReport;
pub use s3::verify_s3;

/// Options for verification.
pub struct Options {
    /// The key that must have signed every seal; without it, the store's copy is used and the
    /// report says the key was not independently trusted.
    pub public_key: Option<PublicKey>,
    /// The most an archive may decompress to when its seal cannot be read.
    pub max_unpacked: u64,
    /// The roster in force (`--approvers`), against which the plans' quorum is evaluated;
    /// without it, each plan's pinned roster stands in for it.
    pub approvers: Option<crate::approval::Roster>,
    /// The containment policy in force (`containment.yaml` of `--policies`), whose quorum each
    /// plan needs at least and whose `plan.not_after` bounds its lifetime; without it, each plan
    /// is judged by its own quorum.
    pub containment: Option<crate::policy::containment::ContainmentPolicy>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            public_key: None,
            max_unpacked: 1 << 40,
            approvers: None,
            containment: None,
        }
    }
}

/// One problem: what kind (a stable code for machines), where, and what is wrong.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, Hash)]
pub struct Problem {
    pub code: &'static str,
    pub subject: String,
    pub message: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub target: String,
    /// True when no problem was found: nothing was altered or removed.
    pub ok: bool,
    /// True when nothing is known to be missing either: no case holds a collection recorded
    /// as incomplete, failed, interrupted or unfinished (see `incomplete`).
    pub complete: bool,
    /// True when every signature was checked against a key the auditor gave (`--public-key`);
    /// false when the store's own copy of a key was used, which proves nothing by itself.
    pub key_trusted: bool,
    pub cases: Vec<CaseReport>,
    pub problems: Vec<Problem>,
    /// Evidence that is intact but, by its own record, not whole: sources captured in part,
    /// an analysis cut short by its budget, collections that failed, were interrupted or never
    /// finished. Not tampering: what the collector itself recorded (or, for an unfinished
    /// collection, what the journal shows).
    pub incomplete: Vec<Problem>,
    pub warnings: Vec<String>,
    /// The case's containment plans and their quorum, as evaluated (information: a plan that
    /// awaits approval is not a problem).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<PlanReport>,
}

#[derive(Debug, Serialize)]
pub struct CaseReport {
    pub case_id: CaseId,
    pub journal_entries: usize,
    pub journal_head: Option<journal::Head>,
    pub bundles: Vec<BundleReport>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0} is not a store, a case directory (cases/<case>) or a bundle (cases/<case>/bundles/<bundle>.tar.zst)")]
    UnknownTarget(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Problem {
    fn new(code: &'static str, subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            subject: subject.into(),
            message: message.into(),
        }
    }
}

impl Report {
    fn problem(
        &mut self,
        code: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem::new(code, subject, message));
    }

    fn incomplete(
        &mut self,
        code: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.incomplete.push(Problem::new(code, subject, message));
    }

    /// Sets `ok` and `complete` from what was found.
    fn conclude(&mut self, options: &Options) {
        // A problem found twice (a replaced key named by several seals) is reported once.
        let mut seen = std::collections::HashSet::new();
        self.problems.retain(|p| seen.insert(p.clone()));
        self.ok = self.problems.is_empty();
        self.complete = self.incomplete.is_empty();
        self.key_trusted = options.public_key.is_some();
    }
}

/// What a local path names.
enum Target {
    Store(PathBuf),
    Case(PathBuf, CaseId),
    Bundle(PathBuf, CaseId, BundleId),
}

fn resolve(path: &Path) -> Result<Target, VerifyError> {
    let unknown = || VerifyError::UnknownTarget(path.display().to_string());
    let path = path.canonicalize().map_err(|_| unknown())?;
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if path.is_dir() {
        if path.join("cases").is_dir() {
            return Ok(Target::Store(path));
        }
        let parent = path.parent().ok_or_else(unknown)?;
        if name(parent) == "cases" {
            let case = CaseId::new(name(&path)).map_err(|_| unknown())?;
            let root = parent.parent().ok_or_else(unknown)?;
            return Ok(Target::Case(root.to_owned(), case));
        }
        return Err(unknown());
    }
    let file = name(&path);
    let bundle = crate::store::layout::parse_bundle_file_name(&file).ok_or_else(unknown)?;
    let bundles_dir = path.parent().ok_or_else(unknown)?;
    let case_dir = bundles_dir.parent().ok_or_else(unknown)?;
    let cases_dir = case_dir.parent().ok_or_else(unknown)?;
    if name(bundles_dir) != "bundles" || name(cases_dir) != "cases" {
        return Err(unknown());
    }
    let case = CaseId::new(name(case_dir)).map_err(|_| unknown())?;
    let root = cases_dir.parent().ok_or_else(unknown)?;
    Ok(Target::Bundle(root.to_owned(), case, bundle))
}

/// Verifies the store, case or bundle at a local path.
pub fn verify_path(path: &Path, options: &Options) -> Result<Report, VerifyError> {
    let mut report = Report {
        target: path.display().to_string(),
        ..Report::default()
    };
    match resolve(path)? {
        Target::Store(root) => {
            let store = LocalStore::open(&root, false)?;
            let cases = list_cases(&root, &mut report)?;
            if cases.is_empty() {
                report.problem(
                    "empty_store",
                    root.display().to_string(),
                    "the store holds no cases",
                );
            }
            layout::symlinks(&root, "", &mut report);
            strays(&root, "keys", &mut report, |name| {
                layout::key_file_id(name).is_some()
            });
            layout::check_key_files(&store, &root, &mut report);
            for case in cases {
                verify_local_case(&store, &root, &case, None, options, &mut report)?;
                strays(&root, &format!("cases/{case}"), &mut report, is_case_entry);
            }
        }
        Target::Case(root, case) => {
            let store = LocalStore::open(&root, false)?;
            layout::case_symlinks(&root, &case, &mut report);
            verify_local_case(&store, &root, &case, None, options, &mut report)?;
            strays(&root, &format!("cases/{case}"), &mut report, is_case_entry);
        }
        Target::Bundle(root, case, bundle) => {
            let store = LocalStore::open(&root, false)?;
            layout::case_symlinks(&root, &case, &mut report);
            verify_local_case(&store, &root, &case, Some(&bundle), options, &mut report)?;
        }
    }
    report.conclude(options);
    Ok(report)
}

/// `verify_case` for a local store at `root`, whose staging directory shows the collections
/// that are running or whose process died.
fn verify_local_case(
    store: &LocalStore,
    root: &Path,
    case: &CaseId,
    only: Option<&BundleId>,
    options: &Options,
    report: &mut Report,
) -> Result<(), VerifyError> {
    let staging = root.join(crate::store::local::STAGING);
    verify_case(store, Some(&staging), case, only, options, report)
}

fn is_case_entry(name: &str) -> bool {
    matches!(name, "case.json" | "journal" | "bundles" | "plans")
}

/// Reports every name in `root/dir` that `expected` does not accept: nothing but evidence belongs
/// in a store.
fn strays(root: &Path, dir: &str, report: &mut Report, expected: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !expected(n))
        .collect();
    names.sort();
    for name in names {
        report.problem(
            "unexpected_file",
            format!("{dir}/{name}"),
            "not part of the evidence layout",
        );
    }
}

fn list_cases(root: &Path, report: &mut Report) -> Result<Vec<CaseId>, VerifyError> {
    let dir = root.join("cases");
    let entries = std::fs::read_dir(&dir).map_err(|source| StoreError::Read {
        uri: format!("file://{}", dir.display()),
        source,
    })?;
    let mut cases = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        match CaseId::new(name.as_str()) {
            Ok(c) => cases.push(c),
            Err(_) => report.problem("unexpected_file", format!("cases/{name}"), "not a case"),
        }
    }
    cases.sort();
    Ok(cases)
}

/// Verifies a case's header, journal and bundles (or only `only`, with the journal). For a
/// local store, its staging directory tells a collection still running or whose process died
/// (see `collect::run`); an S3 store has none.
pub fn verify_case(
    store: &dyn Store,
    staging: Option<&Path>,
    case: &CaseId,
    only: Option<&BundleId>,
    options: &Options,
    report: &mut Report,
) -> Result<(), VerifyError> {
    check_case_header(store, case, report);
    let chain = match journal::check_chain(store, case) {
        // A linked journal directory is reported, and the case read as having no journal.
        Err(StoreError::Symlink(path)) => {
            report.problem(
                "symlink",
                format!("cases/{case}/journal"),
                format!("{} is a symbolic link: not read", path.display()),
            );
            CheckedChain::default()
        }
        chain => chain?,
    };
    for p in &chain.problems {
        report.problem("journal", p.key.clone(), p.message.clone());
    }
    signed::check_entry_signatures(store, case, &chain, options, report)?;
    check_case_opened(store, case, &chain, report);
    let bundles = bundles_to_verify(store, case, only, &chain, report)?;
    let run = match staging {
        Some(dir) => crate::collect::run::state_of(dir, case),
        None => crate::collect::run::RunState::None,
    };
    check_completeness(&chain, case, only, run, report);
    let mut case_report = CaseReport {
        case_id: case.clone(),
        journal_entries: chain.entries.len(),
        journal_head: chain.head(),
        bundles: Vec::new(),
    };
    for b in &bundles {
        let (br, problems, warnings) = bundle::verify_bundle(store, case, b, &chain, options);
        report.problems.extend(problems);
        for w in warnings {
            if !report.warnings.contains(&w) {
                report.warnings.push(w);
            }
        }
        case_report.bundles.push(br);
    }
    if only.is_none() {
        plans::check_plans(store, case, &chain, options, report)?;
        expiries::check_expiries(case, &chain, report);
        stales::check_stales(case, &chain, report);
        executions::check_executions(case, &chain, report);
    }
    report.cases.push(case_report);
    Ok(())
}

/// The problems of a case's journal entries' signatures (`journal_signature_invalid`,
/// `journal_entry_unsigned`), checked as `verify` checks them, for a view of a case's journal
/// (`custody cases`) that does not verify its bundles.
pub fn entry_signature_problems(
    store: &dyn Store,
    case: &CaseId,
    chain: &CheckedChain,
    options: &Options,
) -> Result<Vec<Problem>, StoreError> {
    let mut report = Report::default();
    signed::check_entry_signatures(store, case, chain, options, &mut report)?;
    Ok(report.problems)
}

/// `case.json` must be JSON naming this case.
fn check_case_header(store: &dyn Store, case: &CaseId, report: &mut Report) {
    let header_key = StoreKey::CaseHeader(case.clone());
    match store.get(&header_key) {
        Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) if v.get("id").and_then(|i| i.as_str()) == Some(case.as_str()) => {}
            Ok(_) => report.problem(
                "case_header",
                header_key.path(),
                "the case header names another case",
            ),
            Err(e) => report.problem("case_header", header_key.path(), format!("not JSON: {e}")),
        },
        Err(e) => report.problem("case_header", header_key.path(), e.to_string()),
    }
}

/// The case's bundles to verify (all of them, or only `only`), with what the listing shows amiss:
/// stray files, a bundle asked for that is not there, a sealed bundle the store does not hold.
fn bundles_to_verify(
    store: &dyn Store,
    case: &CaseId,
    only: Option<&BundleId>,
    chain: &CheckedChain,
    report: &mut Report,
) -> Result<Vec<BundleId>, VerifyError> {
    let (mut bundles, strays) = match store.list_bundles(case) {
        Err(StoreError::Symlink(path)) => {
            report.problem(
                "symlink",
                format!("cases/{case}/bundles"),
                format!("{} is a symbolic link: not read", path.display()),
            );
            (Vec::new(), Vec::new())
        }
        listed => listed?,
    };
    for name in strays {
        report.problem(
            "unexpected_file",
            format!("cases/{case}/bundles/{name}"),
            "not part of any bundle",
        );
    }
    if let Some(b) = only {
        if !bundles.contains(b) {
            report.problem(
                "missing_file",
                StoreKey::Archive(case.clone(), b.clone()).path(),
                "no such bundle",
            );
        }
        bundles = vec![b.clone()];
    } else {
        check_sealed_entries(chain, case, &bundles, report);
    }
    Ok(bundles)
}

/// Journal entry 1 opens the case and records the SHA-256 of `case.json` as it was written.
fn check_case_opened(store: &dyn Store, case: &CaseId, chain: &CheckedChain, report: &mut Report) {
    let header_key = StoreKey::CaseHeader(case.clone());
    let Some((first, _)) = chain.entries.first().filter(|(e, _)| e.seq == 1) else {
        return;
    };
    let Details::CaseOpened(opened) = &first.details else {
        report.problem(
            "journal",
            StoreKey::JournalEntry(case.clone(), 1).path(),
            "the first entry does not open the case",
        );
        return;
    };
    let recorded = opened.case_header_sha256;
    if let Ok(bytes) = store.get(&header_key) {
        let actual = crate::digest::Sha256Digest::of(&bytes);
        if recorded != actual {
            report.problem(
                "case_header",
                header_key.path(),
                format!(
                    "the case header's SHA-256 is {actual}, but journal entry 1 recorded {recorded}: it was changed"
                ),
            );
        }
    }
}

/// What the journal says is missing. A collection runs from the case's opening (or a restart)
/// to a sealed bundle, a recorded failure or a recorded interruption; the sources it could not
/// capture whole are journaled on the way. Entries after the end (uploads, findings, resolves)
/// change nothing: a case uploaded after an interrupted collection is still interrupted. A failed
/// or interrupted collection followed by one that sealed a bundle is superseded by it. For
/// one bundle (`only`), only what its own collection recorded is reported. `run`: what a local
/// store's staging directory shows of the case's collecting process.
fn check_completeness(
    chain: &CheckedChain,
    case: &CaseId,
    only: Option<&BundleId>,
    run: crate::collect::run::RunState,
    report: &mut Report,
) {
    let whole_case = only.is_none();
    let state = CaseState::of(chain);
    // A collection that failed or was interrupted and sealed nothing is superseded by a later
    // collection of the case that sealed a bundle (the daemon collects a failed case again).
    let last_sealed = state
        .outcomes
        .iter()
        .rposition(|o| matches!(o, Outcome::Sealed { .. }));
    for (i, outcome) in state.outcomes.iter().enumerate() {
        let superseded = last_sealed.is_some_and(|last| i < last);
        match outcome {
            Outcome::Sealed {
                bundle, failures, ..
            } => {
                if only.is_some_and(|b| b != &bundle.bundle_id) {
                    continue;
                }
                for (seq, failure) in failures {
                    report.incomplete(
                        "capture_incomplete",
                        StoreKey::JournalEntry(case.clone(), *seq).path(),
                        format!("bundle {}: {}", bundle.bundle_id, failure.text()),
                    );
                }
            }
            Outcome::Failed { seq, details } if whole_case && !superseded => report.incomplete(
                "collection_failed",
                StoreKey::JournalEntry(case.clone(), *seq).path(),
                format!(
                    "the collection failed and sealed nothing: {}",
                    details.error
                ),
            ),
            Outcome::Interrupted { seq, details } if whole_case && !superseded => {
                let message = match &details.signal {
                    Some(signal) => format!(
                        "the operator stopped the collection ({signal}); nothing was sealed by it"
                    ),
                    None => format!(
                        "the collection did not finish and sealed nothing: {}",
                        details.error
                    ),
                };
                report.incomplete(
                    "collection_interrupted",
                    StoreKey::JournalEntry(case.clone(), *seq).path(),
                    message,
                );
            }
            Outcome::Failed { .. } | Outcome::Interrupted { .. } => {}
        }
    }
    if whole_case {
        check_unfinished(state.open_step, case, run, report);
    }
}

/// A collection with no recorded end (`open`: its last step): still running, its process dead
/// (as a local store's staging shows), or — with neither to tell — a problem.
fn check_unfinished(
    open: Option<(u64, EntryKind)>,
    case: &CaseId,
    run: crate::collect::run::RunState,
    report: &mut Report,
) {
    // Without a record of how it ended, an unfinished collection cannot be told from a bundle
    // removed together with its journal entries, so it is a problem, not a state. (A collection
    // whose process died is journaled as interrupted by the next collection in the store.)
    let Some((seq, kind)) = open else {
        return;
    };
    let subject = StoreKey::JournalEntry(case.clone(), seq).path();
    match run {
        crate::collect::run::RunState::Running => {
            report.incomplete(
                "collection_running",
                subject,
                format!("the collection is still running (its staging directory is held), last at entry {seq} ({kind:?}); verify again once it has ended"),
            );
            return;
        }
        crate::collect::run::RunState::Died => {
            report.incomplete(
                "collection_interrupted",
                subject,
                format!("the collection's process died after entry {seq} ({kind:?}), as its staging directory shows, and sealed nothing — unless a bundle and its journal entries were removed and the staging directory planted (the next collection in this store journals it as interrupted)"),
            );
            return;
        }
        crate::collect::run::RunState::None => {}
    }
    {
        report.problem(
            "journal",
            StoreKey::JournalEntry(case.clone(), seq).path(),
            format!(
                "the journal ends its collection at entry {seq} ({kind:?}) with no bundle sealed, failure or interruption recorded after it: the collection is still running or its process died, or a bundle and its journal entries were removed"
            ),
        );
    }
}

/// Every bundle the journal says was sealed must be in the store.
fn check_sealed_entries(
    chain: &CheckedChain,
    case: &CaseId,
    bundles: &[BundleId],
    report: &mut Report,
) {
    for (seq, sealed) in sealings(chain) {
        let id = sealed.bundle_id.as_str();
        if !bundles.contains(&sealed.bundle_id) {
            report.problem(
                "missing_file",
                format!("cases/{case}/bundles/{id}"),
                format!("journal entry {seq} records bundle {id:?} as sealed, but the store does not have it"),
            );
        }
    }
}

/// Every sealing the journal records, with its entry: each `bundle_sealed` (evidence) and each
/// `actions_sealed` (an execution's actions bundle).
pub fn sealings(chain: &CheckedChain) -> Vec<(u64, crate::case::entry::BundleSealed)> {
    chain
        .entries
        .iter()
        .filter_map(|(e, _)| match &e.details {
            Details::BundleSealed(b) => Some((e.seq, b.clone())),
            Details::ActionsSealed(a) => Some((e.seq, a.sealed())),
            _ => None,
        })
        .collect()
}
