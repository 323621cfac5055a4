//! A collection, start to finish: open the sources (refusing bad input before anything is
//! written), open the case, stream every source into the bag once while hashing and analysing it,
//! write the analysis and `collection.json`, seal, store, and journal each step.
//!
//! Preservation comes first: what was read is sealed even when part of it is known to be
//! incomplete or wrong (a file that shrank while read, a staged copy that changed, an input cut
//! at its cap, an analysis that ran out of budget). Each such failure is journaled, listed in
//! `collection.json` and in the outcome, and the command exits non-zero for it: a collection is
//! whole only when nothing is known to be missing.

pub mod run;

use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;

use crate::analysis::report::{self, ReportContext};
use std::sync::Arc;

use crate::analysis::format::{self, Format, FormatChoice};
use crate::analysis::{Analyzer, Summary};
use crate::case::entry::{CollectionFailed, CollectionInterrupted, SourceCaptured};
use crate::case::{self, CaseError, CaseHeader, Details, Journal, JournalError};
use crate::digest::Sha256Digest;
use crate::id::{BundleId, CaseId};
use crate::keys::SigningKey;
use crate::policy::Policies;
use crate::progress::Progress;
use crate::seal::{
    self, BagBuilder, BagError, BagInfo, BagPath, SealError, StoredBundle, ToolRecord,
};
use crate::source::{Failure, Provenance, Source, SourceError};
use crate::store::{Store, StoreError};
use crate::timefmt;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    OpenSource(#[from] SourceError),
    #[error("cannot open the case: {0}")]
    OpenCase(StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Bag(#[from] BagError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("the collection was interrupted by {}; nothing was sealed and what was staged is removed", .0.name())]
    Interrupted(crate::interrupt::Signal),
    /// The error, already recorded in the case's journal as the collection's end.
    #[error(transparent)]
    Journaled(Box<CollectError>),
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// What the analysis thread is fed.
enum AnalysisInput {
    Begin(String, Format),
    Chunk(crate::seal::bag::Chunk),
}

pub use crate::case::Trigger;

/// The fixed facts of one collection; everything in the archive derives from these and the
/// sources, so the same sources with the same request seal to the same bytes.
pub struct Request {
    pub case_id: CaseId,
    pub bundle_id: BundleId,
    pub at: OffsetDateTime,
    pub trigger: Trigger,
    /// How many top clients the summary lists.
    pub top: usize,
    /// The log format (detected per source by default).
    pub format: FormatChoice,
    /// Show progress on a terminal.
    pub progress: bool,
    /// What triggered the case, kept in the bag as `data/trigger/alert.json` (an alert).
    pub trigger_payload: Option<Vec<u8>>,
    /// Where the bag is built [default: the store's staging directory].
    pub staging: Option<PathBuf>,
}

impl Request {
    /// A request with fresh ids, made now.
    pub fn new(trigger: Trigger, top: usize, format: FormatChoice, progress: bool) -> Self {
        let at = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        Self {
            case_id: CaseId::generate(at),
            bundle_id: BundleId::generate(at),
            at,
            trigger,
            top,
            format,
            progress,
            trigger_payload: None,
            staging: None,
        }
    }
}

impl CollectError {
    /// Whether the case's journal already records this error as the end of the collection.
    pub fn journaled(&self) -> bool {
        matches!(self, CollectError::Journaled(_))
    }

    /// The signal that interrupted the collection, if one did.
    pub fn interrupted(&self) -> Option<crate::interrupt::Signal> {
        match self {
            CollectError::Interrupted(s) => Some(*s),
            CollectError::Journaled(e) => e.interrupted(),
            _ => None,
        }
    }
}

/// What a collection produced.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub case_id: CaseId,
    pub bundle: StoredBundle,
    pub summary: Summary,
    pub sources: Vec<CapturedSource>,
    /// What is known to be missing or wrong in what was sealed, as in `collection.json`.
    pub failures: Vec<Failure>,
}

impl Outcome {
    /// True when nothing is known to be missing: every source captured whole and the analysis
    /// complete.
    pub fn complete(&self) -> bool {
        self.failures.is_empty()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CapturedSource {
    pub name: String,
    pub bag_path: String,
    pub bytes: u64,
    pub sha256: Sha256Digest,
}

/// Collects, analyses, seals and stores everything `source` yields as a new case.
pub fn collect(
    store: &dyn Store,
    key: &SigningKey,
    policies: &Policies,
    source: &mut dyn Source,
    request: &Request,
) -> Result<Outcome, CollectError> {
    // The sources are opened before the case: bad input is refused with nothing written.
    let opened = open_sources(policies, source, request)?;
    let journal = open_case(store, key, request, serde_json::Value::Null)?;
    seal_case(store, key, policies, source, request, journal, opened)
}

/// The streams of a source, opened, with each one's format.
pub struct OpenedSources {
    streams: Vec<(crate::source::Stream, Format)>,
}

/// Opens `source` and resolves each stream's format from its first bytes.
pub fn open_sources(
    policies: &Policies,
    source: &mut dyn Source,
    request: &Request,
) -> Result<OpenedSources, CollectError> {
    let streams = source.open();
    if let Some(signal) = crate::interrupt::requested() {
        return Err(CollectError::Interrupted(signal));
    }
    let streams = streams?;
    let mut out = Vec::new();
    for s in streams {
        let format =
            format::resolve(&request.format, &s.first, &policies.formats).map_err(|message| {
                SourceError::Format {
                    path: s.name.clone(),
                    message,
                }
            })?;
        out.push((s, format));
    }
    Ok(OpenedSources { streams: out })
}

/// Opens the case: its header (create-new, so a case id is taken once) and the journal's first
/// entry. `trigger_details` (the daemon's: the alert, its episode, the target) go into that
/// entry; `null` for none.
pub fn open_case<'a>(
    store: &'a dyn Store,
    key: &'a SigningKey,
    request: &Request,
    trigger_details: serde_json::Value,
) -> Result<Journal<'a>, CollectError> {
    let details = match trigger_details {
        serde_json::Value::Null => None,
        v => Some(
            serde_json::from_value(v).map_err(|source| CollectError::Encode {
                what: "the trigger details",
                source,
            })?,
        ),
    };
    let header = CaseHeader::new(request.case_id.clone(), request.at, request.trigger.clone());
    case::open(store, &header, details, key).map_err(|e| match e {
        CaseError::WriteHeader(e) => CollectError::OpenCase(e),
        CaseError::Journal(e) => CollectError::Journal(e),
        CaseError::Encode(source) => CollectError::Encode {
            what: "the case header",
            source,
        },
    })
}

/// Captures the opened streams into a bag, analyses them, seals and stores the bundle, and
/// journals each step, in the case `journal` belongs to. A collection that cannot finish is
/// journaled as failed (or interrupted) before the error is returned.
pub fn seal_case(
    store: &dyn Store,
    key: &SigningKey,
    policies: &Policies,
    source: &mut dyn Source,
    request: &Request,
    mut journal: Journal<'_>,
    opened: OpenedSources,
) -> Result<Outcome, CollectError> {
    match capture_and_seal(store, key, policies, source, request, &mut journal, opened) {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            let details = match e.interrupted() {
                Some(signal) => Details::CollectionInterrupted(CollectionInterrupted {
                    bundle_id: None,
                    error: e.to_string(),
                    pid: None,
                    signal: Some(signal.name().to_owned()),
                }),
                None => Details::CollectionFailed(CollectionFailed {
                    error: e.to_string(),
                }),
            };
            // If even this cannot be written, the error says why the case is unfinished.
            match journal.append("custody", details) {
                Ok(_) => Err(CollectError::Journaled(Box::new(e))),
                Err(_) => Err(e),
            }
        }
    }
}

/// What the capture found so far: the sources read, their provenance for `collection.json`,
/// and what is known to be missing or wrong.
struct Captures {
    captured: Vec<CapturedSource>,
    provenance: Vec<Provenance>,
    failures: Vec<Failure>,
}

impl Captures {
    /// Journals a failure and lists it for `collection.json` and the outcome.
    fn fail(&mut self, journal: &mut Journal<'_>, f: Failure) -> Result<(), CollectError> {
        journal.append("custody", Details::SourceFailed(f.clone()))?;
        self.failures.push(f);
        Ok(())
    }
}

fn capture_and_seal(
    store: &dyn Store,
    key: &SigningKey,
    policies: &Policies,
    source: &mut dyn Source,
    request: &Request,
    journal: &mut Journal<'_>,
    opened: OpenedSources,
) -> Result<Outcome, CollectError> {
    let failures = source.failures();
    let snapshots = source.snapshots();
    let created_at = timefmt::rfc3339(request.at);
    for failure in &failures {
        journal.append("custody", Details::SourceFailed(failure.clone()))?;
    }
    let mut bag = BagBuilder::new(
        request
            .staging
            .clone()
            .unwrap_or_else(|| store.staging_dir().to_owned()),
        request.bundle_id.clone(),
        request.at.unix_timestamp().max(0) as u64,
    )?;
    let mut found = Captures {
        captured: Vec::new(),
        provenance: Vec::new(),
        failures,
    };
    let (to_analysis, analysis) = spawn_analysis(policies);
    capture_streams(&mut bag, opened, request, journal, &to_analysis, &mut found)?;
    drop(to_analysis);
    leave_out_changed(&mut bag, journal, &mut found)?;
    let mut summary = finish_analysis(analysis, policies, request, journal, &mut found)?;
    attribute_pods(&found.provenance, &mut summary);
    let collection = serde_json::json!({
        "format": "custody-collection/1",
        "case_id": request.case_id,
        "bundle_id": request.bundle_id,
        "collected_at": created_at,
        "trigger": request.trigger,
        "requested_by": request.trigger.requested_by,
        "host": hostname(),
        "tool": ToolRecord::current(),
        "request": source.request(),
        "sources": found.provenance,
        "failures": found.failures,
    });
    add_records(&mut bag, request, &found, &summary, snapshots, &collection)?;
    let sealed = bag.finish(&bag_info(request, key, &created_at))?;
    let bundle = seal::store_bundle(store, key, journal, &request.bundle_id, &created_at, sealed)?;
    Ok(Outcome {
        case_id: request.case_id.clone(),
        bundle,
        summary,
        sources: found.captured,
        failures: found.failures,
    })
}

type AnalysisThread = std::thread::JoinHandle<Analyzer>;

/// Starts the analysis on its own thread, fed the same chunks that are hashed and compressed.
fn spawn_analysis(
    policies: &Policies,
) -> (std::sync::mpsc::SyncSender<AnalysisInput>, AnalysisThread) {
    let (to_analysis, analysis_input) = std::sync::mpsc::sync_channel::<AnalysisInput>(8);
    let formats = Arc::new(policies.formats.clone());
    let budget = policies.collection.analysis.memory_budget_bytes;
    let analysis = std::thread::spawn(move || {
        let mut analyzer = Analyzer::new(formats);
        analyzer.set_memory_budget(budget);
        for input in analysis_input {
            match input {
                AnalysisInput::Begin(name, format) => analyzer.begin_source(&name, format),
                AnalysisInput::Chunk(chunk) => analyzer.feed(&chunk),
            }
        }
        analyzer
    });
    (to_analysis, analysis)
}

/// Reads every stream into the bag once, feeding the analysis, and journals each capture and
/// what the source's own check found wrong with it.
fn capture_streams(
    bag: &mut BagBuilder,
    opened: OpenedSources,
    request: &Request,
    journal: &mut Journal<'_>,
    to_analysis: &std::sync::mpsc::SyncSender<AnalysisInput>,
    found: &mut Captures,
) -> Result<(), CollectError> {
    let mut progress = Progress::new("collect", request.progress);
    for (mut stream, format) in opened.streams {
        let path = BagPath::new(format!("data/logs/{}", stream.bag_name))?;
        let _ = to_analysis.send(AnalysisInput::Begin(path.as_str().to_owned(), format));
        progress.set_label(&format!("collect {}", stream.name));
        let result = bag.add_stream(
            path.clone(),
            &stream.name,
            &stream.first,
            &mut stream.reader,
            &mut |chunk| {
                progress.advance(chunk.len() as u64);
                // Only fails if the analysis thread panicked, which the join reports.
                let _ = to_analysis.send(AnalysisInput::Chunk(chunk.clone()));
            },
        );
        let c = match result {
            Ok(c) => c,
            Err(BagError::Interrupted { signal, .. }) => {
                return Err(CollectError::Interrupted(signal))
            }
            Err(e) => {
                let f = Failure {
                    source: Some(stream.name.clone()),
                    bag_path: Some(path.as_str().to_owned()),
                    error: Some(e.to_string()),
                    ..Failure::default()
                };
                journal.append("custody", Details::SourceFailed(f))?;
                return Err(e.into());
            }
        };
        record_capture(journal, found, stream, &c)?;
    }
    progress.finish();
    Ok(())
}

/// Journals one stream's capture and what the source's own check found wrong with it, and
/// keeps its provenance.
fn record_capture(
    journal: &mut Journal<'_>,
    found: &mut Captures,
    stream: crate::source::Stream,
    c: &crate::seal::Captured,
) -> Result<(), CollectError> {
    journal.append(
        "custody",
        Details::SourceCaptured(SourceCaptured {
            bag_path: c.path.as_str().to_owned(),
            bytes: c.size,
            sha256: c.sha256,
            sha512: c.sha512.clone(),
            source: stream.name.clone(),
        }),
    )?;
    // The source's own word on the capture: whole, or what is missing or wrong in it.
    let checked = stream.check.map(|check| check(c.size, &c.sha256));
    for mut f in checked.into_iter().flatten() {
        f.bag_path = Some(c.path.as_str().to_owned());
        found.fail(journal, f)?;
    }
    let mut p = stream.provenance;
    p.bag_path = Some(c.path.as_str().to_owned());
    p.bytes = Some(c.size);
    p.sha256 = Some(c.sha256.to_hex());
    found.provenance.push(p);
    found.captured.push(CapturedSource {
        name: stream.name,
        bag_path: c.path.as_str().to_owned(),
        bytes: c.size,
        sha256: c.sha256,
    });
    Ok(())
}

/// A staged copy changed since its capture is left out, and said so, before the bag's own
/// records are written.
fn leave_out_changed(
    bag: &mut BagBuilder,
    journal: &mut Journal<'_>,
    found: &mut Captures,
) -> Result<(), CollectError> {
    for (changed, error) in bag.check_spool()? {
        let path = changed.path.as_str();
        found.fail(
            journal,
            Failure {
                kind: Some("staging_changed".into()),
                source: Some(path.to_owned()),
                bag_path: Some(path.to_owned()),
                error: Some(error),
                sealed: Some(false),
                ..Failure::default()
            },
        )?;
        found.captured.retain(|s| s.bag_path != path);
        for p in &mut found.provenance {
            if p.bag_path.as_deref() == Some(path) {
                p.sealed = Some(false);
            }
        }
    }
    Ok(())
}

/// The analysis's summary, and its failure or limit journaled; the logs are sealed either way.
fn finish_analysis(
    analysis: AnalysisThread,
    policies: &Policies,
    request: &Request,
    journal: &mut Journal<'_>,
    found: &mut Captures,
) -> Result<Summary, CollectError> {
    let summary = match analysis.join() {
        Ok(mut analyzer) => analyzer.summary(&policies.detection, request.top),
        Err(_) => {
            // The logs are sealed all the same; the summary says it has nothing to say.
            found.fail(
                journal,
                crate::source::failure(
                    "analysis_failed",
                    "analysis",
                    "the analysis failed unexpectedly; the logs are sealed, but the summary counts nothing",
                ),
            )?;
            let mut empty = Analyzer::new(Arc::new(policies.formats.clone()));
            let mut s = empty.summary(&policies.detection, request.top);
            s.analysis_failed = true;
            s
        }
    };
    if let Some(limit) = &summary.limit {
        let error = format!("{}; the logs are sealed whole", limit.describe());
        found.fail(
            journal,
            crate::source::failure("analysis_limited", "analysis", error),
        )?;
    }
    Ok(summary)
}

/// Suspicious clients are attributed to the pods whose logs saw them fail.
fn attribute_pods(provenance: &[Provenance], summary: &mut Summary) {
    let pod_of: std::collections::HashMap<&str, &str> = provenance
        .iter()
        .filter_map(|p| Some((p.bag_path.as_deref()?, p.pod.as_deref()?)))
        .collect();
    for s in &mut summary.suspicious {
        let mut pods: Vec<String> = s
            .failed_in
            .iter()
            .filter_map(|source| pod_of.get(source.as_str()).map(|p| p.to_string()))
            .collect();
        pods.sort();
        pods.dedup();
        s.pods = pods;
    }
}

/// The bag's records beside the logs: Kubernetes snapshots, the alert, the analysis and
/// `collection.json`.
fn add_records(
    bag: &mut BagBuilder,
    request: &Request,
    found: &Captures,
    summary: &Summary,
    snapshots: Vec<(String, Vec<u8>)>,
    collection: &serde_json::Value,
) -> Result<(), CollectError> {
    let created_at = timefmt::rfc3339(request.at);
    let sources: Vec<String> = found.captured.iter().map(|c| c.bag_path.clone()).collect();
    let html = report::render(
        summary,
        &ReportContext {
            case_id: request.case_id.as_str(),
            bundle_id: request.bundle_id.as_str(),
            created_at: &created_at,
            sources: &sources,
        },
    );
    for (name, bytes) in snapshots {
        bag.add_bytes(BagPath::new(format!("data/k8s/{name}"))?, bytes)?;
    }
    if let Some(alert) = &request.trigger_payload {
        bag.add_bytes(BagPath::new("data/trigger/alert.json")?, alert.clone())?;
    }
    bag.add_bytes(
        BagPath::new("data/analysis/summary.json")?,
        pretty(summary, "the summary")?,
    )?;
    bag.add_bytes(
        BagPath::new("data/analysis/report.html")?,
        html.into_bytes(),
    )?;
    bag.add_bytes(
        BagPath::new("data/collection.json")?,
        pretty(collection, "collection.json")?,
    )?;
    Ok(())
}

fn bag_info(request: &Request, key: &SigningKey, created_at: &str) -> BagInfo {
    BagInfo {
        bagging_date: timefmt::date(request.at),
        external_identifier: request.case_id.to_string(),
        custody_labels: vec![
            ("Bundle-Id".into(), request.bundle_id.to_string()),
            ("Created-At".into(), created_at.to_owned()),
            ("Key-Id".into(), key.public().id().to_string()),
            (
                "Tool".into(),
                format!("custody {}", env!("CARGO_PKG_VERSION")),
            ),
        ],
    }
}

fn pretty<T: Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>, CollectError> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|source| CollectError::Encode { what, source })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// This machine's name, as the kernel reports it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The signing key: the given file, or the per-user key (created on first use).
pub fn signing_key(
    path: Option<&PathBuf>,
) -> Result<(SigningKey, Option<PathBuf>), crate::keys::KeyError> {
    match path {
        Some(p) => Ok((SigningKey::load(p)?, None)),
        None => crate::keys::load_or_create_default(),
    }
}
