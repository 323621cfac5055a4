//! The durable local spool in front of an S3 store. A collection for S3 is written whole to the
//! spool first (a local store with the same layout, create-new and fsynced), then uploaded object
//! by object. When S3 is unreachable or refuses, the case stays in the spool, complete and
//! sealed, and `custody store flush` (or the daemon) uploads it later.
//!
//! Uploads are idempotent: each object stored leaves a receipt (version id, lock, SHA-256) in the
//! spool, and an object that S3 already holds with the same SHA-256 (stored just before an
//! interruption) is adopted, not written twice. When every object of a case is in S3, an
//! `objects_stored` journal entry recording each version id is appended in S3 and the case
//! leaves the spool. Nothing is reported as stored before S3 has it.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::s3::{PutReceipt, S3Location, S3Store};
use super::{LocalStore, StagedFile, Store, StoreError, StoreKey, Stored};
use crate::digest::Sha256Digest;
use crate::id::{BundleId, CaseId, KeyId};
use crate::journal::{self, EntryKind, Journal, JournalError};

/// Receipts of uploaded objects, by store path, inside a spool directory.
const RECEIPTS: &str = ".receipts";
/// One lock file per case, held while the case is written or uploaded.
const LOCKS: &str = ".locks";
/// Uploaded cases are moved here (one rename) before they are deleted.
const DONE: &str = ".uploaded";

/// A held case lock.
pub struct CaseLock {
    _file: fs::File,
}

/// The spool root: `$CUSTODY_SPOOL`, else `$XDG_STATE_HOME/custody/spool`, else
/// `~/.local/state/custody/spool`.
pub fn default_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("CUSTODY_SPOOL").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    state.join("custody/spool")
}

/// The spool directory of one S3 store: named by the SHA-256 of its URI, with the URI written
/// beside the evidence in `store-uri`.
pub fn dir_for(root: &Path, location: &S3Location) -> PathBuf {
    let uri = location.uri();
    root.join(&Sha256Digest::of(uri.as_bytes()).to_hex()[..16])
}

/// A local store that stands in for an S3 store until upload: objects are written locally, and
/// URIs are the S3 ones they will have.
pub struct SpoolStore {
    local: LocalStore,
    location: S3Location,
}

impl SpoolStore {
    pub fn open(root: &Path, location: S3Location) -> Result<Self, StoreError> {
        // The spool holds raw logs: only its owner may enter it.
        if !root.exists() {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .map_err(|source| StoreError::Open {
                    path: root.to_owned(),
                    source,
                })?;
        }
        let dir = dir_for(root, &location);
        let local = LocalStore::open(&dir, true)?;
        let marker = dir.join("store-uri");
        if !marker.exists() {
            fs::write(&marker, format!("{}\n", location.uri())).map_err(|source| {
                StoreError::Write {
                    uri: marker.display().to_string(),
                    source,
                }
            })?;
        }
        Ok(Self { local, location })
    }

    pub fn dir(&self) -> &Path {
        self.local.root()
    }

    fn remote(&self, stored: Stored, key: &StoreKey) -> Stored {
        let _ = stored;
        Stored {
            uri: self.object_uri(key),
            version_id: None,
        }
    }

    /// Holds the case for this process: a collection takes it before it writes the case, and
    /// an upload before it reads it, so a flush never takes a case that is still being written
    /// or uploaded elsewhere. Released when the guard is dropped (or the process ends).
    pub fn lock_case(&self, case: &CaseId) -> Result<CaseLock, StoreError> {
        self.case_lock(case, true)?
            .ok_or_else(|| StoreError::Write {
                uri: self.dir().display().to_string(),
                source: io::Error::other("the case lock is held"),
            })
    }

    /// Like `lock_case`, but `None` at once when another process holds it.
    pub fn try_lock_case(&self, case: &CaseId) -> Result<Option<CaseLock>, StoreError> {
        self.case_lock(case, false)
    }

    fn case_lock(&self, case: &CaseId, wait: bool) -> Result<Option<CaseLock>, StoreError> {
        let dir = self.dir().join(LOCKS);
        let path = dir.join(format!("{case}.lock"));
        let err = |source| StoreError::Write {
            uri: path.display().to_string(),
            source,
        };
        fs::create_dir_all(&dir).map_err(err)?;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(err)?;
        if wait {
            file.lock().map_err(err)?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => return Ok(None),
                Err(fs::TryLockError::Error(e)) => return Err(err(e)),
            }
        }
        Ok(Some(CaseLock { _file: file }))
    }

    /// The cases waiting in the spool, oldest first.
    pub fn cases(&self) -> Result<Vec<CaseId>, StoreError> {
        let dir = self.dir().join("cases");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Open { path: dir, source }),
        };
        let mut cases: Vec<CaseId> = entries
            .flatten()
            .filter_map(|e| CaseId::new(e.file_name().to_string_lossy().into_owned()).ok())
            .collect();
        cases.sort();
        Ok(cases)
    }
}

impl Store for SpoolStore {
    fn uri(&self) -> String {
        self.location.uri()
    }

    fn object_uri(&self, key: &StoreKey) -> String {
        format!(
            "s3://{}/{}",
            self.location.bucket,
            self.location.key(&key.path())
        )
    }

    fn staging_dir(&self) -> &Path {
        self.local.staging_dir()
    }

    fn put_new(&self, key: &StoreKey, bytes: &[u8]) -> Result<Stored, StoreError> {
        let stored = self.local.put_new(key, bytes)?;
        Ok(self.remote(stored, key))
    }

    fn put_new_file(&self, key: &StoreKey, staged: StagedFile) -> Result<Stored, StoreError> {
        let stored = self.local.put_new_file(key, staged)?;
        Ok(self.remote(stored, key))
    }

    fn get(&self, key: &StoreKey) -> Result<Vec<u8>, StoreError> {
        self.local.get(key)
    }

    fn open(&self, key: &StoreKey) -> Result<Box<dyn Read + Send>, StoreError> {
        self.local.open(key)
    }

    fn exists(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.local.exists(key)
    }

    fn list_journal(&self, case: &CaseId) -> Result<(Vec<u64>, Vec<String>), StoreError> {
        self.local.list_journal(case)
    }

    fn list_bundles(&self, case: &CaseId) -> Result<(Vec<BundleId>, Vec<String>), StoreError> {
        self.local.list_bundles(case)
    }

    fn list_cases(&self) -> Result<Vec<CaseId>, StoreError> {
        self.local.list_cases()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{uri} already holds a different object (SHA-256 {theirs}, ours {ours}); the spooled copy is kept at {spooled}")]
    Conflict {
        uri: String,
        ours: Sha256Digest,
        theirs: String,
        spooled: PathBuf,
    },
    #[error("the journal of case {case} in S3 has entries the spool does not (S3 has {remote}, the spool {local}); the spooled case is kept")]
    JournalDiverged {
        case: CaseId,
        remote: u64,
        local: u64,
    },
}

/// One case moved from the spool to S3.
#[derive(Clone, Debug, Serialize)]
pub struct UploadedCase {
    pub case_id: CaseId,
    /// Every object of the case in S3, with its version, lock and SHA-256.
    pub objects: Vec<PutReceipt>,
    /// The `objects_stored` journal entry that records them.
    pub journal_entry: Stored,
}

/// What a flush did: the cases uploaded, the cases skipped because another process holds them
/// (a collection still writing, or another upload), and the cases that failed (still spooled).
#[derive(Debug, Default, Serialize)]
pub struct FlushReport {
    pub uploaded: Vec<UploadedCase>,
    pub busy: Vec<CaseId>,
    pub failed: Vec<(CaseId, String)>,
}

/// Uploads every case in the spool, oldest first. A case that fails stays in the spool and does
/// not stop the others.
pub fn flush(spool: &SpoolStore, s3: &S3Store) -> Result<FlushReport, StoreError> {
    let mut report = FlushReport::default();
    for case in spool.cases()? {
        let Some(_lock) = spool.try_lock_case(&case)? else {
            report.busy.push(case);
            continue;
        };
        match upload_case(spool, s3, &case) {
            Ok(done) => report.uploaded.push(done),
            Err(e) => report.failed.push((case, e.to_string())),
        }
    }
    Ok(report)
}

/// Uploads one spooled case, records the versions in its journal in S3, and removes it from the
/// spool. The caller holds the case's lock.
pub fn upload_case(
    spool: &SpoolStore,
    s3: &S3Store,
    case: &CaseId,
) -> Result<UploadedCase, FlushError> {
    let mut keys = vec![StoreKey::CaseHeader(case.clone())];
    let (seqs, _) = spool.list_journal(case)?;
    keys.extend(
        seqs.iter()
            .map(|s| StoreKey::JournalEntry(case.clone(), *s)),
    );
    let (bundles, _) = spool.list_bundles(case)?;
    for b in &bundles {
        keys.extend([
            StoreKey::Archive(case.clone(), b.clone()),
            StoreKey::ArchiveSidecar(case.clone(), b.clone()),
            StoreKey::Seal(case.clone(), b.clone()),
            StoreKey::SealSignature(case.clone(), b.clone()),
        ]);
    }
    let mut objects = Vec::new();
    for key in &keys {
        objects.push(upload_object(spool, s3, key)?);
    }
    // Public keys are shared by the store's cases: each is stored once, and one already there
    // with the same bytes is fine.
    for id in spooled_keys(spool)? {
        let key = StoreKey::PublicKey(id);
        let receipt = upload_object(spool, s3, &key)?;
        objects.push(receipt);
    }

    let local_head =
        journal::check_chain(spool, case)?
            .head()
            .ok_or_else(|| StoreError::NotFound {
                uri: spool.object_uri(&StoreKey::JournalEntry(case.clone(), 1)),
            })?;
    let (remote_seqs, _) = s3.list_journal(case)?;
    let remote_last = remote_seqs.last().copied().unwrap_or(0);
    let details = serde_json::json!({ "objects": objects });
    let journal_entry = if remote_last == local_head.seq {
        let mut journal = Journal::resume(s3, case.clone(), local_head);
        journal.append("custody", EntryKind::ObjectsStored, details)?;
        Stored {
            uri: s3.object_uri(&StoreKey::JournalEntry(case.clone(), local_head.seq + 1)),
            version_id: s3
                .head(
                    &StoreKey::JournalEntry(case.clone(), local_head.seq + 1),
                    None,
                )?
                .version_id,
        }
    } else if remote_last == local_head.seq + 1 && recorded_already(s3, case, remote_last, &details)
    {
        // An earlier flush stored the entry and was interrupted before cleaning up.
        let key = StoreKey::JournalEntry(case.clone(), remote_last);
        Stored {
            uri: s3.object_uri(&key),
            version_id: s3.head(&key, None)?.version_id,
        }
    } else {
        return Err(FlushError::JournalDiverged {
            case: case.clone(),
            remote: remote_last,
            local: local_head.seq,
        });
    };
    remove_case(spool, case)?;
    Ok(UploadedCase {
        case_id: case.clone(),
        objects,
        journal_entry,
    })
}

/// Whether entry `seq` in S3 records exactly `details` as an `objects_stored` entry.
fn recorded_already(s3: &S3Store, case: &CaseId, seq: u64, details: &serde_json::Value) -> bool {
    let Ok(bytes) = s3.get(&StoreKey::JournalEntry(case.clone(), seq)) else {
        return false;
    };
    serde_json::from_slice::<journal::Entry>(&bytes)
        .is_ok_and(|e| e.kind == EntryKind::ObjectsStored && &e.details == details)
}

fn spooled_keys(spool: &SpoolStore) -> Result<Vec<KeyId>, StoreError> {
    let dir = spool.dir().join("keys");
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(StoreError::Open { path: dir, source }),
    };
    let mut ids: Vec<KeyId> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            KeyId::new(name.strip_suffix(".pub")?).ok()
        })
        .collect();
    ids.sort();
    Ok(ids)
}

fn receipt_path(spool: &SpoolStore, key: &StoreKey) -> PathBuf {
    spool
        .dir()
        .join(RECEIPTS)
        .join(format!("{}.json", key.path()))
}

/// Stores one spooled object in S3 unless its receipt says it is there already.
fn upload_object(
    spool: &SpoolStore,
    s3: &S3Store,
    key: &StoreKey,
) -> Result<PutReceipt, FlushError> {
    let receipt_file = receipt_path(spool, key);
    if let Ok(bytes) = fs::read(&receipt_file) {
        if let Ok(receipt) = serde_json::from_slice::<PutReceipt>(&bytes) {
            return Ok(receipt);
        }
    }
    let path = spool.dir().join(key.path());
    let (sha256, size) = hash_file(&path)?;
    let receipt = match s3.put_path(key, &path, size, sha256) {
        Ok(receipt) => receipt,
        Err(StoreError::AlreadyExists { uri }) => {
            // Stored by an earlier attempt whose answer was lost, or by someone else: only the
            // same bytes are adopted.
            let mut state = s3.head(key, None)?;
            let same = state.sha256.as_deref() == Some(sha256.to_hex().as_str())
                || (state.sha256.is_none() && same_file_multipart(s3, &path, &state));
            if same && !s3.is_locked(&state) {
                // Ours, but its lock did not take (an upload cut off between the write and the
                // retention): lock it now, and read the lock back.
                s3.lock_version(key, state.version_id.as_deref())?;
                state = s3.head(key, state.version_id.as_deref())?;
                if !s3.is_locked(&state) {
                    return Err(FlushError::Store(StoreError::BucketNotReady {
                        uri,
                        why: format!(
                            "the object cannot be locked (HeadObject reports {:?} until {:?})",
                            state.lock_mode, state.retain_until
                        ),
                    }));
                }
            }
            if !same {
                return Err(FlushError::Conflict {
                    uri,
                    ours: sha256,
                    theirs: state.sha256.unwrap_or_else(|| "unknown".into()),
                    spooled: path,
                });
            }
            PutReceipt {
                uri,
                version_id: state.version_id,
                sha256,
                s3_checksum: state.s3_checksum.unwrap_or_default(),
                size,
                lock_mode: state.lock_mode.unwrap_or_default(),
                retain_until: state.retain_until.unwrap_or_default(),
                legal_hold: state.legal_hold,
            }
        }
        Err(e) => return Err(e.into()),
    };
    write_receipt(&receipt_file, &receipt)?;
    Ok(receipt)
}

/// Whether an object S3 holds as a multipart upload has the checksum this file would have.
fn same_file_multipart(s3: &S3Store, path: &Path, state: &super::s3::ObjectState) -> bool {
    s3.composite_checksum(path)
        .is_ok_and(|c| super::s3::same_checksum(state.s3_checksum.as_deref(), &c))
}

fn write_receipt(path: &Path, receipt: &PutReceipt) -> Result<(), StoreError> {
    let err = |source| StoreError::Write {
        uri: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(err)?;
    }
    let bytes = serde_json::to_vec_pretty(receipt).map_err(|e| err(io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, bytes).map_err(err)?;
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

fn hash_file(path: &Path) -> Result<(Sha256Digest, u64), StoreError> {
    let err = |source| StoreError::Read {
        uri: path.display().to_string(),
        source,
    };
    let file = fs::File::open(path).map_err(err)?;
    crate::digest::HashingReader::new(file)
        .finish()
        .map_err(err)
}

/// Removes an uploaded case from the spool: first moved aside in one rename each (so a crash
/// never leaves a half-deleted case to upload again), then deleted.
fn remove_case(spool: &SpoolStore, case: &CaseId) -> Result<(), StoreError> {
    let done = spool.dir().join(DONE);
    let err = |path: &Path, source| StoreError::Write {
        uri: path.display().to_string(),
        source,
    };
    fs::create_dir_all(&done).map_err(|e| err(&done, e))?;
    let suffix = crate::id::BundleId::generate(time::OffsetDateTime::now_utc());
    for (from, name) in [
        (
            spool.dir().join(format!("cases/{case}")),
            format!("{case}-{suffix}"),
        ),
        (
            spool.dir().join(RECEIPTS).join(format!("cases/{case}")),
            format!("{case}-{suffix}.receipts"),
        ),
    ] {
        match fs::rename(&from, done.join(&name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(&from, e)),
        }
        let _ = fs::remove_dir_all(done.join(&name));
    }
    let _ = fs::remove_file(spool.dir().join(LOCKS).join(format!("{case}.lock")));
    Ok(())
}
