//! One collection's staging directory, `.staging/run-<bundle>/`, held with a file lock for as
//! long as the collection runs. It holds the bag's spool and archive while they are built, and
//! downloaded logs (`k8s/`). A run ends by removing it (sealed, or stopped by the operator), or
//! leaves it when a failure keeps downloaded logs for a second attempt.
//!
//! A run whose process died (killed, out of memory, power lost) leaves its directory unlocked.
//! The next collection in the same store finds it: if the case's journal shows the collection
//! unfinished, it journals `collection_interrupted` (so the case reads as interrupted, not as
//! tampered), then removes the run's temporary files. Downloaded logs are kept, and said so.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::case::entry::CollectionInterrupted;
use crate::case::{self, CaseState, Details, Journal};
use crate::id::{BundleId, CaseId};
use crate::keys::SigningKey;
use crate::store::Store;

const LOCK: &str = "lock";
const RECORD: &str = "run.json";
/// Where downloaded logs are kept within a run.
pub const DOWNLOADS: &str = "k8s";

/// What a run directory says of itself, for the sweep after a crash.
#[derive(Serialize, Deserialize)]
struct RunRecord {
    case_id: CaseId,
    bundle_id: BundleId,
    pid: u32,
}

/// A collection's staging directory, locked while this value lives.
pub struct Run {
    dir: PathBuf,
    _lock: fs::File,
    keep: bool,
}

/// What the sweep found of earlier runs.
#[derive(Debug, Default)]
pub struct Swept {
    /// Cases whose collection died unfinished, now journaled as interrupted.
    pub interrupted: Vec<CaseId>,
    /// Run directories kept because they hold downloaded logs.
    pub kept: Vec<PathBuf>,
}

impl Run {
    /// Sweeps what dead runs left in `store`'s staging directory, then starts a run for
    /// `case`'s bundle `bundle`.
    pub fn begin(
        store: &dyn Store,
        key: &SigningKey,
        case: &CaseId,
        bundle: &BundleId,
    ) -> io::Result<(Run, Swept)> {
        let staging = store.staging_dir().to_owned();
        let swept = sweep_dead_runs(store, key);
        let dir = staging.join(format!("run-{bundle}"));
        fs::create_dir_all(&staging)?;
        fs::create_dir(&dir)?;
        let lock = fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(dir.join(LOCK))?;
        lock.lock()?;
        let record = RunRecord {
            case_id: case.clone(),
            bundle_id: bundle.clone(),
            pid: std::process::id(),
        };
        let bytes = serde_json::to_vec(&record).map_err(io::Error::other)?;
        fs::write(dir.join(RECORD), bytes)?;
        Ok((
            Run {
                dir,
                _lock: lock,
                keep: false,
            },
            swept,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keeps the downloaded logs, if there are any, when the run ends (for another attempt):
    /// the rest of the run's files are removed now. True if there were downloads to keep.
    pub fn keep_downloads(&mut self) -> bool {
        self.keep = dir_has_files(&self.dir.join(DOWNLOADS));
        if self.keep {
            remove_all_but(&self.dir, &[DOWNLOADS, LOCK, RECORD]);
        }
        self.keep
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Journals and cleans what runs whose process died left in `store`'s staging directory; a run
/// still locked is alive and left alone. Problems here never stop the caller: they are logged.
/// `key` signs the entries it journals.
pub fn sweep_dead_runs(store: &dyn Store, key: &SigningKey) -> Swept {
    let mut swept = Swept::default();
    let Ok(entries) = fs::read_dir(store.staging_dir()) else {
        return swept;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir || !name.starts_with("run-") {
            continue;
        }
        let Ok(lock) = fs::OpenOptions::new().write(true).open(path.join(LOCK)) else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue;
        }
        // A run writes its record only once it holds its lock: without one, the run may be
        // starting this very moment, and is left alone.
        let Some(record) = fs::read(path.join(RECORD))
            .ok()
            .and_then(|b| serde_json::from_slice::<RunRecord>(&b).ok())
        else {
            continue;
        };
        match journal_died(store, key, &record) {
            Ok(true) => swept.interrupted.push(record.case_id),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(run = %path.display(), error = %e, "cannot journal an earlier collection that died")
            }
        }
        if dir_has_files(&path.join(DOWNLOADS)) {
            remove_all_but(&path, &[DOWNLOADS, LOCK, RECORD]);
            swept.kept.push(path);
        } else {
            let _ = fs::remove_dir_all(&path);
        }
    }
    swept
}

/// What a store's staging directory shows of a case's collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// No run directory names the case.
    None,
    /// A run directory names it, and its lock is held: the collection is running.
    Running,
    /// A run directory names it, and its lock is free: its process died.
    Died,
}

/// What `staging` shows of `case`'s collection. Reads only.
pub fn state_of(staging: &Path, case: &CaseId) -> RunState {
    let Ok(entries) = fs::read_dir(staging) else {
        return RunState::None;
    };
    let mut state = RunState::None;
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("run-") {
            continue;
        }
        let named = fs::read(entry.path().join(RECORD))
            .ok()
            .and_then(|b| serde_json::from_slice::<RunRecord>(&b).ok())
            .is_some_and(|r| r.case_id == *case);
        if !named {
            continue;
        }
        match fs::File::open(entry.path().join(LOCK)).map(|lock| lock.try_lock().is_ok()) {
            Ok(true) => state = RunState::Died,
            Ok(false) => return RunState::Running,
            Err(_) => {}
        }
    }
    state
}

/// Journals `collection_interrupted` for the run's case if its collection is unfinished.
fn journal_died(store: &dyn Store, key: &SigningKey, record: &RunRecord) -> Result<bool, String> {
    let chain = case::check_chain(store, &record.case_id).map_err(|e| e.to_string())?;
    let Some(head) = chain.head() else {
        return Ok(false);
    };
    let unfinished = CaseState::of(&chain).collection_unfinished();
    if !unfinished || !chain.problems.is_empty() {
        return Ok(false);
    }
    let mut journal = Journal::resume(store, record.case_id.clone(), head, key);
    journal
        .append(
            "custody",
            Details::CollectionInterrupted(CollectionInterrupted {
                bundle_id: Some(record.bundle_id.clone()),
                error: "the collecting process ended without finishing (killed, or it crashed); found by the next collection in this store, which removed its temporary files".into(),
                pid: Some(record.pid),
                signal: None,
            }),
        )
        .map_err(|e| e.to_string())?;
    Ok(true)
}

fn dir_has_files(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

fn remove_all_but(dir: &Path, keep: &[&str]) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if keep.iter().any(|k| name == *k) {
            continue;
        }
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_dir_all(&path);
        } else {
            let _ = fs::remove_file(&path);
        }
    }
}
