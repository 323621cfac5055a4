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
use crate::digest::Sha256Digest;
use crate::id::{BundleId, CaseId};
use crate::journal::{EntryKind, Journal, JournalError};
use crate::keys::SigningKey;
use crate::policy::Policies;
use crate::progress::Progress;
use crate::seal::{
    self, BagBuilder, BagError, BagInfo, BagPath, SealError, StoredBundle, ToolRecord,
};
use crate::source::{Failure, Source, SourceError};
use crate::store::{Store, StoreError, StoreKey};
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

/// Who asked, and how; recorded in the case header and `collection.json`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Trigger {
    /// `cli` for a command line; later `alert` and `api`.
    pub kind: String,
    pub requested_by: String,
}

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
    let journal = open_case(store, request, serde_json::Value::Null)?;
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
/// entry. `trigger_details` (the alert, for an alert) goes into that entry.
pub fn open_case<'a>(
    store: &'a dyn Store,
    request: &Request,
    trigger_details: serde_json::Value,
) -> Result<Journal<'a>, CollectError> {
    let created_at = timefmt::rfc3339(request.at);
    let case = request.case_id.clone();
    let header = serde_json::json!({
        "id": case,
        "opened_at": created_at,
        "trigger": request.trigger,
        "requested_by": request.trigger.requested_by,
    });
    let header_bytes = pretty(&header, "the case header")?;
    store
        .put_new(&StoreKey::CaseHeader(case.clone()), &header_bytes)
        .map_err(CollectError::OpenCase)?;
    let mut journal = Journal::new_case(store, case.clone());
    let mut details = serde_json::json!({
        "trigger": request.trigger,
        "case_header_sha256": Sha256Digest::of(&header_bytes),
    });
    if !trigger_details.is_null() {
        details["trigger_details"] = trigger_details;
    }
    journal.append(
        &request.trigger.requested_by,
        EntryKind::CaseOpened,
        details,
    )?;
    Ok(journal)
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
            let (kind, details) = match e.interrupted() {
                Some(signal) => (
                    EntryKind::CollectionInterrupted,
                    serde_json::json!({"signal": signal.name(), "error": e.to_string()}),
                ),
                None => (
                    EntryKind::CollectionFailed,
                    serde_json::json!({"error": e.to_string()}),
                ),
            };
            // If even this cannot be written, the error says why the case is unfinished.
            match journal.append("custody", kind, details) {
                Ok(_) => Err(CollectError::Journaled(Box::new(e))),
                Err(_) => Err(e),
            }
        }
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
    let mut failures = source.failures();
    let snapshots = source.snapshots();
    let created_at = timefmt::rfc3339(request.at);
    let case = request.case_id.clone();
    let (streams, stream_formats): (Vec<_>, Vec<_>) = opened.streams.into_iter().unzip();
    for failure in &failures {
        journal.append("custody", EntryKind::SourceFailed, failure.clone())?;
    }

    let mut bag = BagBuilder::new(
        request
            .staging
            .clone()
            .unwrap_or_else(|| store.staging_dir().to_owned()),
        request.bundle_id.clone(),
        request.at.unix_timestamp().max(0) as u64,
    )?;
    let mut progress = Progress::new("collect", request.progress);
    let mut captured = Vec::new();
    let mut provenance = Vec::new();
    // The analysis runs on its own thread, fed the same chunks that are hashed and compressed.
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
    for (mut stream, format) in streams.into_iter().zip(stream_formats) {
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
                // Only fails if the analysis thread panicked, which the join below reports.
                let _ = to_analysis.send(AnalysisInput::Chunk(chunk.clone()));
            },
        );
        let c = match result {
            Ok(c) => c,
            Err(BagError::Interrupted { signal, .. }) => {
                return Err(CollectError::Interrupted(signal))
            }
            Err(e) => {
                journal.append(
                    "custody",
                    EntryKind::SourceFailed,
                    serde_json::json!({"source": stream.name, "bag_path": path.as_str(), "error": e.to_string()}),
                )?;
                return Err(e.into());
            }
        };
        journal.append(
            "custody",
            EntryKind::SourceCaptured,
            serde_json::json!({
                "source": stream.name, "bag_path": c.path.as_str(), "bytes": c.size,
                "sha256": c.sha256, "sha512": c.sha512,
            }),
        )?;
        let mut p = stream.provenance;
        // The source's own word on the capture: whole, or what is missing or wrong in it.
        let found = stream.check.map(|check| check(c.size, &c.sha256));
        for mut f in found.into_iter().flatten() {
            f["bag_path"] = c.path.as_str().into();
            journal.append("custody", EntryKind::SourceFailed, f.clone())?;
            failures.push(f);
        }
        if let Some(obj) = p.as_object_mut() {
            obj.insert("bag_path".into(), c.path.as_str().into());
            obj.insert("bytes".into(), c.size.into());
            obj.insert("sha256".into(), c.sha256.to_hex().into());
        }
        provenance.push(p);
        captured.push(CapturedSource {
            name: stream.name,
            bag_path: c.path.as_str().to_owned(),
            bytes: c.size,
            sha256: c.sha256,
        });
    }
    drop(to_analysis);
    // A staged copy changed since its capture is left out, and said so, before the bag's own
    // records are written.
    for (changed, error) in bag.check_spool()? {
        let f = serde_json::json!({"kind": "staging_changed", "source": changed.path.as_str(),
            "bag_path": changed.path.as_str(), "error": error, "sealed": false});
        journal.append("custody", EntryKind::SourceFailed, f.clone())?;
        failures.push(f);
        captured.retain(|s: &CapturedSource| s.bag_path != changed.path.as_str());
        for p in &mut provenance {
            if p.get("bag_path").and_then(|v| v.as_str()) == Some(changed.path.as_str()) {
                p["sealed"] = false.into();
            }
        }
    }
    let joined = analysis.join();
    progress.finish();
    let mut summary = match joined {
        Ok(mut analyzer) => analyzer.summary(&policies.detection, request.top),
        Err(_) => {
            // The logs are sealed all the same; the summary says it has nothing to say.
            let f = serde_json::json!({"kind": "analysis_failed", "source": "analysis",
                "error": "the analysis failed unexpectedly; the logs are sealed, but the summary counts nothing"});
            journal.append("custody", EntryKind::SourceFailed, f.clone())?;
            failures.push(f);
            let mut empty = Analyzer::new(Arc::new(policies.formats.clone()));
            let mut s = empty.summary(&policies.detection, request.top);
            s.analysis_failed = true;
            s
        }
    };
    if let Some(limit) = &summary.limit {
        let f = serde_json::json!({"kind": "analysis_limited", "source": "analysis",
            "error": format!("{}; the logs are sealed whole", limit.describe())});
        journal.append("custody", EntryKind::SourceFailed, f.clone())?;
        failures.push(f);
    }
    // Suspicious clients are attributed to the pods whose logs saw them fail.
    let pod_of: std::collections::HashMap<&str, &str> = provenance
        .iter()
        .filter_map(|p| Some((p.get("bag_path")?.as_str()?, p.get("pod")?.as_str()?)))
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
    let sources: Vec<String> = captured.iter().map(|c| c.bag_path.clone()).collect();
    let html = report::render(
        &summary,
        &ReportContext {
            case_id: case.as_str(),
            bundle_id: request.bundle_id.as_str(),
            created_at: &created_at,
            sources: &sources,
        },
    );
    let collection = serde_json::json!({
        "format": "custody-collection/1",
        "case_id": case,
        "bundle_id": request.bundle_id,
        "collected_at": created_at,
        "trigger": request.trigger,
        "requested_by": request.trigger.requested_by,
        "host": hostname(),
        "tool": ToolRecord::current(),
        "request": source.request(),
        "sources": provenance,
        "failures": failures,
    });
    for (name, bytes) in snapshots {
        bag.add_bytes(BagPath::new(format!("data/k8s/{name}"))?, bytes)?;
    }
    if let Some(alert) = &request.trigger_payload {
        bag.add_bytes(BagPath::new("data/trigger/alert.json")?, alert.clone())?;
    }
    bag.add_bytes(
        BagPath::new("data/analysis/summary.json")?,
        pretty(&summary, "the summary")?,
    )?;
    bag.add_bytes(
        BagPath::new("data/analysis/report.html")?,
        html.into_bytes(),
    )?;
    bag.add_bytes(
        BagPath::new("data/collection.json")?,
        pretty(&collection, "collection.json")?,
    )?;
    let sealed = bag.finish(&BagInfo {
        bagging_date: timefmt::date(request.at),
        external_identifier: case.to_string(),
        custody_labels: vec![
            ("Bundle-Id".into(), request.bundle_id.to_string()),
            ("Created-At".into(), created_at.clone()),
            ("Key-Id".into(), key.public().id().to_string()),
            (
                "Tool".into(),
                format!("custody {}", env!("CARGO_PKG_VERSION")),
            ),
        ],
    })?;
    let bundle = seal::store_bundle(store, key, journal, &request.bundle_id, &created_at, sealed)?;
    Ok(Outcome {
        case_id: case,
        bundle,
        summary,
        sources: captured,
        failures,
    })
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
