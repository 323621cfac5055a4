//! The durable local spool in front of an S3 store. A collection for S3 is written whole to the
//! spool first (a local store with the same layout, create-new and fsynced), then uploaded object
//! by object. When S3 is unreachable or refuses, the case stays in the spool, complete and
//! sealed, and `custody store flush` (or the daemon) uploads it later.
//!
//! Before the first object of a case is sent, the whole spooled case is checked against what was
//! sealed (`check`): the spool is only a directory, and S3 locks what it is given for years.
//!
//! Uploads are idempotent: each object of a case stored leaves a receipt (version id, lock,
//! SHA-256) in the spool, beside the case, and an object that S3 already holds with the same
//! SHA-256 (stored just before an interruption) is adopted, not written twice. Public keys are
//! shared by the store's cases: they are looked up in the bucket on every upload, never taken
//! from an earlier receipt. When every object of a case is in S3, an `objects_stored` journal
//! entry recording each version id is appended in S3 and the case leaves the spool. Nothing is
//! reported as stored before S3 has it.
//!
//! One spool directory serves one bucket at one endpoint, and one lock file per case keeps two
//! processes off the same case.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::case::entry::{ObjectReceipt, ObjectsStored};
use crate::case::{self as journal, Details, Journal, JournalError};
use crate::digest::Sha256Digest;
use crate::id::CaseId;
use crate::keys::SigningKey;
use crate::store::s3::{self, ObjectState, PutReceipt, S3Location, S3Options, S3Store};
use crate::store::{
    LocalStore, Receipt, Recording, StagedFile, Store, StoreError, StoreKey, StorePrefix, Stored,
};

mod check;

use check::{CheckError, CheckedObject};

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

/// The spool directory of one S3 store: named by the SHA-256 of its URI and of the endpoint it
/// is reached at, with both written beside the evidence (`store-uri`, `store-endpoint`). Two
/// buckets of the same name at two endpoints are two stores, and never share receipts. Without
/// an endpoint (AWS itself, where bucket names are global) the name is that of the URI alone,
/// as it always was.
pub fn dir_for(root: &Path, location: &S3Location, options: &S3Options) -> PathBuf {
    let mut identity = location.uri();
    if let Some(endpoint) = options.endpoint_identity() {
        identity = format!("{identity}\n{endpoint}");
    }
    root.join(&Sha256Digest::of(identity.as_bytes()).to_hex()[..16])
}

/// The other spool directories under `root` that hold cases for the same store URI, reached at
/// another endpoint (or by an earlier version that did not record one), with the endpoint each
/// names: cases a flush through this endpoint does not upload, and must not pass over in silence.
pub fn other_spools_with_cases(
    root: &Path,
    location: &S3Location,
    options: &S3Options,
) -> Vec<(PathBuf, Option<String>)> {
    let mine = dir_for(root, location, options);
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let marker = |dir: &Path, name: &str| {
        fs::read_to_string(dir.join(name))
            .ok()
            .map(|t| t.trim_end().to_owned())
    };
    let mut out: Vec<(PathBuf, Option<String>)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|dir| *dir != mine && dir.is_dir())
        .filter(|dir| marker(dir, "store-uri").as_deref() == Some(location.uri().as_str()))
        .filter(|dir| fs::read_dir(dir.join("cases")).is_ok_and(|mut cases| cases.next().is_some()))
        .map(|dir| {
            let endpoint = marker(&dir, "store-endpoint");
            (dir, endpoint)
        })
        .collect();
    out.sort();
    out
}

/// A local store that stands in for an S3 store until upload: objects are written locally, and
/// URIs are the S3 ones they will have.
pub struct SpoolStore {
    local: LocalStore,
    location: S3Location,
}

impl SpoolStore {
    /// The spool of the store at `location`, reached as `options` say.
    pub fn open(
        root: &Path,
        location: S3Location,
        options: &S3Options,
    ) -> Result<Self, StoreError> {
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
        let dir = dir_for(root, &location, options);
        let local = LocalStore::open(&dir, true)?;
        let endpoint = options.endpoint_identity();
        for (name, text) in [
            ("store-uri", Some(location.uri())),
            ("store-endpoint", endpoint),
        ] {
            let marker = dir.join(name);
            let Some(text) = text else { continue };
            if !marker.exists() {
                fs::write(&marker, format!("{text}\n")).map_err(|source| StoreError::Write {
                    uri: marker.display().to_string(),
                    source,
                })?;
            }
        }
        // Receipts of public keys kept by earlier versions for every case at once; keys are
        // looked up in the bucket now, and these could name versions of another bucket.
        let _ = fs::remove_dir_all(dir.join(RECEIPTS).join("keys"));
        Ok(Self { local, location })
    }

    pub fn dir(&self) -> &Path {
        self.local.root()
    }

    /// The receipt of a spooled object, as the S3 object it will be: the URI it will have,
    /// no version and no lock yet.
    fn remote(&self, local: Receipt, key: &StoreKey) -> Receipt {
        Receipt {
            uri: self.object_uri(key),
            version_id: None,
            lock: None,
            ..local
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

    fn lock_path(&self, case: &CaseId) -> PathBuf {
        self.dir().join(LOCKS).join(format!("{case}.lock"))
    }

    /// The lock file of an uploaded case is removed by its holder (`remove_case`), so a locker
    /// may have locked a file that no longer has a name, while another locks the new file at
    /// the same path. A lock counts only once the path still names the file locked; otherwise
    /// it is dropped and taken again.
    fn case_lock(&self, case: &CaseId, wait: bool) -> Result<Option<CaseLock>, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let path = self.lock_path(case);
        let err = |source| StoreError::Write {
            uri: path.display().to_string(),
            source,
        };
        fs::create_dir_all(self.dir().join(LOCKS)).map_err(err)?;
        loop {
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
            let held = file.metadata().map_err(err)?;
            let named = match fs::metadata(&path) {
                Ok(m) => Some(m),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(err(e)),
            };
            if named.is_some_and(|m| m.dev() == held.dev() && m.ino() == held.ino()) {
                return Ok(Some(CaseLock { _file: file }));
            }
        }
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

    fn put_new(&self, key: &StoreKey, bytes: &[u8]) -> Result<Receipt, StoreError> {
        let stored = self.local.put_new(key, bytes)?;
        Ok(self.remote(stored, key))
    }

    fn put_new_file(&self, key: &StoreKey, staged: StagedFile) -> Result<Receipt, StoreError> {
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

    fn list(&self, prefix: &StorePrefix) -> Result<Vec<String>, StoreError> {
        self.local.list(prefix)
    }
}

/// What an upload needs of the store a spool stands in for, beyond `Store`: S3 (`S3Store`), or
/// in the spool's tests a local stand-in. The names are the S3 store's own calls.
pub trait Remote: Store {
    /// Stores a copy of the file at `path` (of `size` bytes whose SHA-256 is `sha256`) under
    /// `key`, create-new and locked.
    fn put_path(
        &self,
        key: &StoreKey,
        path: &Path,
        size: u64,
        sha256: Sha256Digest,
    ) -> Result<PutReceipt, StoreError>;

    /// What the store holds for `key` (the given version, else the current one).
    fn head(&self, key: &StoreKey, version: Option<&str>) -> Result<ObjectState, StoreError>;

    /// Whether `state` carries the lock this store puts on what it writes.
    fn is_locked(&self, state: &ObjectState) -> bool;

    /// Puts the store's lock on `version` of `key`.
    fn lock_version(&self, key: &StoreKey, version: Option<&str>) -> Result<(), StoreError>;

    /// The checksum the store keeps for the file at `path` when it stores it in parts.
    fn composite_checksum(&self, path: &Path) -> io::Result<String>;
}

impl Remote for S3Store {
    fn put_path(
        &self,
        key: &StoreKey,
        path: &Path,
        size: u64,
        sha256: Sha256Digest,
    ) -> Result<PutReceipt, StoreError> {
        S3Store::put_path(self, key, path, size, sha256)
    }

    fn head(&self, key: &StoreKey, version: Option<&str>) -> Result<ObjectState, StoreError> {
        S3Store::head(self, key, version)
    }

    fn is_locked(&self, state: &ObjectState) -> bool {
        S3Store::is_locked(self, state)
    }

    fn lock_version(&self, key: &StoreKey, version: Option<&str>) -> Result<(), StoreError> {
        S3Store::lock_version(self, key, version)
    }

    fn composite_checksum(&self, path: &Path) -> io::Result<String> {
        S3Store::composite_checksum(self, path)
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
    #[error("case {case} in the spool is not what was sealed: {object}: {why}; nothing of it was uploaded and the spooled case is kept as it is")]
    NotAsSealed {
        case: CaseId,
        object: String,
        why: String,
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
/// not stop the others. `key` signs the `objects_stored` entries.
pub fn flush<R: Remote>(
    spool: &SpoolStore,
    s3: &R,
    key: &SigningKey,
) -> Result<FlushReport, StoreError> {
    let mut report = FlushReport::default();
    for case in spool.cases()? {
        let Some(_lock) = spool.try_lock_case(&case)? else {
            report.busy.push(case);
            continue;
        };
        match upload_case(spool, s3, &case, key) {
            Ok(done) => report.uploaded.push(done),
            Err(e) => report.failed.push((case, e.to_string())),
        }
    }
    Ok(report)
}

/// Uploads one spooled case, records the versions in its journal in S3, and removes it from the
/// spool. The caller holds the case's lock. Nothing is sent unless the whole case is what was
/// sealed. `key` signs the `objects_stored` entry.
pub fn upload_case<R: Remote>(
    spool: &SpoolStore,
    s3: &R,
    case: &CaseId,
    key: &SigningKey,
) -> Result<UploadedCase, FlushError> {
    let checked = match check::spooled_case(spool, case) {
        Ok(c) => c,
        Err(CheckError::Store(e)) => return Err(e.into()),
        Err(CheckError::Mismatch(m)) => {
            return Err(FlushError::NotAsSealed {
                case: case.clone(),
                object: m.object,
                why: m.why,
            })
        }
    };
    let mut objects = Vec::new();
    for object in &checked.objects {
        objects.push(upload_object(spool, s3, object)?);
    }
    // Public keys are shared by the store's cases: each is stored once, one already there with
    // the same bytes is fine, and only the keys this case's seals name are recorded for it.
    for object in &checked.keys {
        objects.push(store_shared(s3, object)?);
    }
    // The journal last: its entries record the evidence above, which is in S3 by now.
    for object in &checked.journal {
        objects.push(upload_object(spool, s3, object)?);
    }

    let local_head =
        journal::check_chain(spool, case)?
            .head()
            .ok_or_else(|| StoreError::NotFound {
                uri: spool.object_uri(&StoreKey::JournalEntry(case.clone(), 1)),
            })?;
    let (remote_seqs, _) = s3.list_journal(case)?;
    let remote_last = remote_seqs.last().copied().unwrap_or(0);
    let details = Details::ObjectsStored(ObjectsStored {
        objects: objects.iter().map(ObjectReceipt::from).collect(),
    });
    let journal_entry = if remote_last == local_head.seq {
        // The entry's own receipt, from its PUT, says where it is.
        let recording = Recording::new(s3);
        let mut journal = Journal::resume(&recording, case.clone(), local_head, key);
        journal.append("custody", details)?;
        let entry_key = StoreKey::JournalEntry(case.clone(), local_head.seq + 1);
        let receipt = recording
            .receipts()
            .into_iter()
            .find(|(k, _)| *k == entry_key);
        match receipt {
            Some((_, receipt)) => receipt.stored(),
            None => {
                return Err(FlushError::Store(StoreError::NotFound {
                    uri: s3.object_uri(&StoreKey::JournalEntry(case.clone(), local_head.seq + 1)),
                }))
            }
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
fn recorded_already<R: Remote>(s3: &R, case: &CaseId, seq: u64, details: &Details) -> bool {
    let Ok(bytes) = s3.get(&StoreKey::JournalEntry(case.clone(), seq)) else {
        return false;
    };
    serde_json::from_slice::<journal::Entry>(&bytes).is_ok_and(|e| &e.details == details)
}

fn receipt_path(spool: &SpoolStore, key: &StoreKey) -> PathBuf {
    spool
        .dir()
        .join(RECEIPTS)
        .join(format!("{}.json", key.path()))
}

/// Stores one spooled object of the case in S3 unless its receipt says it is there already.
fn upload_object<R: Remote>(
    spool: &SpoolStore,
    s3: &R,
    object: &CheckedObject,
) -> Result<PutReceipt, FlushError> {
    let receipt_file = receipt_path(spool, &object.key);
    if let Ok(bytes) = fs::read(&receipt_file) {
        if let Ok(receipt) = serde_json::from_slice::<PutReceipt>(&bytes) {
            if receipt.sha256 == object.sha256 && receipt.size == object.size {
                return Ok(receipt);
            }
        }
    }
    let receipt = store_object(s3, object)?;
    write_receipt(&receipt_file, &receipt)?;
    Ok(receipt)
}

/// Stores one checked object in S3 with the digest taken when it was checked, or adopts the
/// object S3 already holds under its key if that has the same bytes.
fn store_object<R: Remote>(s3: &R, object: &CheckedObject) -> Result<PutReceipt, FlushError> {
    match s3.put_path(&object.key, &object.path, object.size, object.sha256) {
        Ok(receipt) => Ok(receipt),
        Err(StoreError::AlreadyExists { uri }) => adopt(s3, object, uri),
        Err(e) => Err(e.into()),
    }
}

/// Stores an object the store's cases share (a public key), or adopts the one the bucket
/// holds: looked up in the bucket each time, since a receipt could be of another bucket.
fn store_shared<R: Remote>(s3: &R, object: &CheckedObject) -> Result<PutReceipt, FlushError> {
    match s3.head(&object.key, None) {
        Ok(_) => adopt(s3, object, s3.object_uri(&object.key)),
        Err(StoreError::NotFound { .. }) => store_object(s3, object),
        Err(e) => Err(e.into()),
    }
}

/// The receipt of the object S3 already holds under `object`'s key: stored by an earlier
/// attempt whose answer was lost, or by someone else. Only the same bytes are adopted.
fn adopt<R: Remote>(s3: &R, object: &CheckedObject, uri: String) -> Result<PutReceipt, FlushError> {
    let (key, path, sha256, size) = (&object.key, &object.path, object.sha256, object.size);
    let mut state = s3.head(key, None)?;
    let same = state.sha256.as_deref() == Some(sha256.to_hex().as_str())
        || (state.sha256.is_none() && same_file_multipart(s3, path, &state));
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
            spooled: path.clone(),
        });
    }
    Ok(PutReceipt {
        uri,
        version_id: state.version_id,
        sha256,
        s3_checksum: state.s3_checksum.unwrap_or_default(),
        size,
        lock_mode: state.lock_mode.unwrap_or_default(),
        retain_until: state.retain_until.unwrap_or_default(),
        legal_hold: state.legal_hold,
    })
}

/// Whether an object S3 holds as a multipart upload has the checksum this file would have.
fn same_file_multipart<R: Remote>(s3: &R, path: &Path, state: &ObjectState) -> bool {
    s3.composite_checksum(path)
        .is_ok_and(|c| s3::same_checksum(state.s3_checksum.as_deref(), &c))
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

/// A spooled case that cannot be uploaded as it is (its journal no longer continues the one in
/// S3, or it is not what was sealed) is moved here whole, out of the uploads' way, for a person
/// to look at; nothing under it is ever deleted by custody.
pub const REFUSED: &str = ".refused";

/// Moves a spooled case that cannot be uploaded into `REFUSED`, with its receipts; the caller
/// holds the case's lock. Returns where it now is.
pub fn set_aside(spool: &SpoolStore, case: &CaseId) -> Result<PathBuf, String> {
    let refused = spool.dir().join(REFUSED);
    fs::create_dir_all(&refused).map_err(|e| format!("{}: {e}", refused.display()))?;
    let suffix = crate::id::BundleId::generate(time::OffsetDateTime::now_utc());
    let to = refused.join(format!("{case}-{suffix}"));
    let from = spool.dir().join(format!("cases/{case}"));
    fs::rename(&from, &to).map_err(|e| format!("{}: {e}", from.display()))?;
    let receipts = spool.dir().join(RECEIPTS).join(format!("cases/{case}"));
    match fs::rename(&receipts, to.with_extension("receipts")) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", receipts.display())),
    }
    let _ = fs::remove_file(spool.lock_path(case));
    Ok(to)
}

/// Removes an uploaded case from the spool: first moved aside in one rename each (so a crash
/// never leaves a half-deleted case to upload again), then deleted.
pub(crate) fn remove_case(spool: &SpoolStore, case: &CaseId) -> Result<(), StoreError> {
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
    // The caller still holds the lock: a locker waiting on this file finds it unnamed once it
    // gets it, and takes the lock again (`case_lock`).
    let _ = fs::remove_file(spool.lock_path(case));
    Ok(())
}

#[cfg(test)]
mod tests;
