//! Where evidence goes. `Store` is the seam between custody and its backends (`local`, a
//! directory; `s3`, a bucket with Object Lock); objects are addressed by typed `StoreKey`s built
//! from validated ids, never raw strings, and `layout` is the one place keys become paths.
//! Every write is create-new (evidence is never overwritten) and returns a `Receipt`, so every
//! writer records the same thing. `open` is the one place a store URI is told apart.

pub mod layout;
pub mod local;
pub mod off_runtime;
pub mod published;
pub mod recording;
pub mod s3;

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::digest::Sha256Digest;
use crate::id::{BundleId, CaseId};
use crate::policy::storage::ObjectLockPolicy;

pub use layout::{archive_name, StoreKey, StorePrefix};
pub use local::LocalStore;
pub use off_runtime::OffRuntime;
pub use recording::Recording;
use s3::{S3Location, S3Options, S3Store};

/// The largest small object (case header, journal entry, seal, key) a store will read back.
pub const MAX_SMALL_OBJECT: u64 = 16 * 1024 * 1024;

/// Where a stored object ended up.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Stored {
    /// The object's URI (`file:///…` or `s3://…`).
    pub uri: String,
    /// The backend's version id, where the backend keeps versions.
    pub version_id: Option<String>,
}

/// What a backend reports of an object it stored: where, which version, what bytes, and the
/// lock it holds them under. Every `put_new` returns one, so every writer records the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The object's URI (`file:///…` or `s3://…`).
    pub uri: String,
    /// The backend's version id, where the backend keeps versions.
    pub version_id: Option<String>,
    /// The object's SHA-256.
    pub sha256: Sha256Digest,
    pub size: u64,
    /// The lock and checksum a locking backend (S3 with Object Lock) keeps; `None` elsewhere.
    pub lock: Option<LockReceipt>,
}

/// What a locking backend keeps of an object beside its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockReceipt {
    /// The checksum the backend keeps, as it writes it: for S3 the SHA-256 in base64, or for a
    /// multipart upload the SHA-256 of the parts' SHA-256s and the part count (`<base64>-<n>`).
    pub checksum: String,
    /// The retention mode (`COMPLIANCE`, `GOVERNANCE`).
    pub mode: String,
    /// Unix seconds.
    pub retain_until: i64,
    pub legal_hold: bool,
}

impl Receipt {
    /// Where the object ended up, as a seal records it.
    pub fn stored(&self) -> Stored {
        Stored {
            uri: self.uri.clone(),
            version_id: self.version_id.clone(),
        }
    }

    /// The object as an `objects_stored` journal entry records it; `None` for a backend that
    /// keeps no versions or locks (the local store), whose cases have no such entry.
    pub fn record(&self) -> Option<ObjectRecord> {
        let lock = self.lock.as_ref()?;
        Some(ObjectRecord {
            uri: self.uri.clone(),
            version_id: self.version_id.clone(),
            sha256: self.sha256,
            s3_checksum: lock.checksum.clone(),
            size: self.size,
            lock_mode: lock.mode.clone(),
            retain_until: lock.retain_until,
            legal_hold: lock.legal_hold,
        })
    }
}

/// One object as an `objects_stored` journal entry records it (docs/EVIDENCE_FORMAT.md); the
/// field order is the entry's bytes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectRecord {
    pub uri: String,
    pub version_id: Option<String>,
    /// The object's SHA-256.
    pub sha256: Sha256Digest,
    /// The checksum S3 keeps for it, as S3 writes it: the SHA-256 in base64, or for a
    /// multipart upload the SHA-256 of the parts' SHA-256s and the part count (`<base64>-<n>`).
    pub s3_checksum: String,
    pub size: u64,
    pub lock_mode: String,
    /// Unix seconds.
    pub retain_until: i64,
    pub legal_hold: bool,
}

impl From<ObjectRecord> for Receipt {
    fn from(r: ObjectRecord) -> Self {
        Self {
            uri: r.uri,
            version_id: r.version_id,
            sha256: r.sha256,
            size: r.size,
            lock: Some(LockReceipt {
                checksum: r.s3_checksum,
                mode: r.lock_mode,
                retain_until: r.retain_until,
                legal_hold: r.legal_hold,
            }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store path {0} exists and is not a directory")]
    NotADirectory(PathBuf),
    #[error("{0} is a symbolic link: custody never writes or reads evidence through a link in a store (replace it with the real directory or file)")]
    Symlink(PathBuf),
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{uri} already exists; evidence is never overwritten")]
    AlreadyExists { uri: String },
    #[error("{uri} does not exist")]
    NotFound { uri: String },
    #[error("{uri} is larger than {limit} bytes")]
    TooLarge { uri: String, limit: u64 },
    #[error("cannot write {uri}: {source}")]
    Write { uri: String, source: std::io::Error },
    #[error("cannot read {uri}: {source}")]
    Read { uri: String, source: std::io::Error },
    #[error(
        "unsupported store URI {0:?}: use a directory path, file://PATH or s3://BUCKET/PREFIX"
    )]
    UnsupportedUri(String),
    #[error("bad S3 URI {uri:?}: {why}")]
    BadS3Uri { uri: String, why: String },
    #[error("{uri}: {message}")]
    Remote { uri: String, message: String },
    /// A fault that may pass (unreachable, timed out, throttled, 5xx): worth trying again later.
    #[error("{uri}: {message}")]
    Transient { uri: String, message: String },
    /// S3 refused custody's credentials or calls (HTTP 403).
    #[error("{uri}: {message}")]
    AccessDenied { uri: String, message: String },
    #[error("{uri} cannot hold evidence: {why}")]
    BucketNotReady { uri: String, why: String },
}

impl StoreError {
    /// Whether trying again later may succeed (the backend was unreachable or overloaded).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

/// A file staged for storing: written completely and fsynced, with its digest and size.
pub struct StagedFile {
    pub path: PathBuf,
    pub sha256: Sha256Digest,
    pub size: u64,
}

/// An evidence store. Writes never overwrite; reads of small objects are capped.
pub trait Store: Send + Sync {
    /// The store's own URI, as given to `--store`.
    fn uri(&self) -> String;

    /// The URI an object has (or would have) in this store.
    fn object_uri(&self, key: &StoreKey) -> String;

    /// A directory for staging large files before `put_new_file`.
    fn staging_dir(&self) -> &Path;

    /// Stores `bytes` under `key`, failing if `key` exists, and reports what was stored.
    fn put_new(&self, key: &StoreKey, bytes: &[u8]) -> Result<Receipt, StoreError>;

    /// Moves a staged file under `key`, failing if `key` exists, and reports what was stored.
    fn put_new_file(&self, key: &StoreKey, staged: StagedFile) -> Result<Receipt, StoreError>;

    /// Reads a small object whole (at most `MAX_SMALL_OBJECT` bytes).
    fn get(&self, key: &StoreKey) -> Result<Vec<u8>, StoreError>;

    /// Opens an object for streaming.
    fn open(&self, key: &StoreKey) -> Result<Box<dyn Read + Send>, StoreError>;

    fn exists(&self, key: &StoreKey) -> Result<bool, StoreError>;

    /// The names of the objects under `prefix`, relative to it, sorted: a backend with
    /// directories names each entry of the directory, one without (S3) the whole rest of every
    /// key that has a version. `layout` reads the listings below from these names.
    fn list(&self, prefix: &StorePrefix) -> Result<Vec<String>, StoreError>;

    /// The sequence numbers of a case's journal entries, sorted, and any names in the journal
    /// that are not entries.
    fn list_journal(&self, case: &CaseId) -> Result<(Vec<u64>, Vec<String>), StoreError> {
        Ok(layout::journal_entries(
            self.list(&StorePrefix::Journal(case.clone()))?,
        ))
    }

    /// The bundles of a case, sorted, and any names in `bundles/` that belong to no bundle.
    fn list_bundles(&self, case: &CaseId) -> Result<(Vec<BundleId>, Vec<String>), StoreError> {
        Ok(layout::bundles(
            self.list(&StorePrefix::Bundles(case.clone()))?,
        ))
    }

    /// Every case in the store, sorted (oldest first).
    fn list_cases(&self) -> Result<Vec<CaseId>, StoreError> {
        Ok(layout::cases(self.list(&StorePrefix::Cases)?).0)
    }

    /// The receipt of what the store holds under `key`, for an object this writer did not
    /// store itself (a public key an earlier case published): for stores that keep versions,
    /// the first version (custody writes each key once). `None` elsewhere.
    fn receipt_of(&self, _key: &StoreKey) -> Result<Option<Receipt>, StoreError> {
        Ok(None)
    }
}

/// Stores `bytes` under `key` create-new, where a key that already holds exactly these bytes
/// counts as stored: a try whose answer was lost and whose retry was refused (an S3 PUT that
/// landed, retried by the SDK and answered 412). Other bytes there are `AlreadyExists`.
pub fn put_new_or_same(store: &dyn Store, key: &StoreKey, bytes: &[u8]) -> Result<(), StoreError> {
    match store.put_new(key, bytes) {
        Ok(_) => Ok(()),
        Err(StoreError::AlreadyExists { uri }) => match store.get(key) {
            Ok(existing) if existing == bytes => Ok(()),
            Ok(_) => Err(StoreError::AlreadyExists { uri }),
            // Unknown whether the bytes there are these: say why, not that another wrote.
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// A shared store is the store it shares: the daemon holds its S3 store once, for its workers
/// and for the uploads of its spool.
impl<T: Store + ?Sized> Store for std::sync::Arc<T> {
    fn uri(&self) -> String {
        (**self).uri()
    }
    fn object_uri(&self, key: &StoreKey) -> String {
        (**self).object_uri(key)
    }
    fn staging_dir(&self) -> &Path {
        (**self).staging_dir()
    }
    fn put_new(&self, key: &StoreKey, bytes: &[u8]) -> Result<Receipt, StoreError> {
        (**self).put_new(key, bytes)
    }
    fn put_new_file(&self, key: &StoreKey, staged: StagedFile) -> Result<Receipt, StoreError> {
        (**self).put_new_file(key, staged)
    }
    fn get(&self, key: &StoreKey) -> Result<Vec<u8>, StoreError> {
        (**self).get(key)
    }
    fn open(&self, key: &StoreKey) -> Result<Box<dyn Read + Send>, StoreError> {
        (**self).open(key)
    }
    fn exists(&self, key: &StoreKey) -> Result<bool, StoreError> {
        (**self).exists(key)
    }
    fn list(&self, prefix: &StorePrefix) -> Result<Vec<String>, StoreError> {
        (**self).list(prefix)
    }
    fn list_journal(&self, case: &CaseId) -> Result<(Vec<u64>, Vec<String>), StoreError> {
        (**self).list_journal(case)
    }
    fn list_bundles(&self, case: &CaseId) -> Result<(Vec<BundleId>, Vec<String>), StoreError> {
        (**self).list_bundles(case)
    }
    fn list_cases(&self) -> Result<Vec<CaseId>, StoreError> {
        (**self).list_cases()
    }
    fn receipt_of(&self, key: &StoreKey) -> Result<Option<Receipt>, StoreError> {
        (**self).receipt_of(key)
    }
}

/// A store URI, told apart in this one place: a directory path or `file://PATH`, or
/// `s3://BUCKET/PREFIX`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUri {
    Local(PathBuf),
    S3(S3Location),
}

impl StoreUri {
    /// Whether `uri` names an S3 store (`s3://…`), well-formed or not.
    pub fn is_s3(uri: &str) -> bool {
        uri.starts_with("s3://")
    }

    pub fn parse(uri: &str) -> Result<Self, StoreError> {
        if Self::is_s3(uri) {
            Ok(Self::S3(S3Location::parse(uri)?))
        } else if let Some(rest) = uri.strip_prefix("file://") {
            Ok(Self::Local(PathBuf::from(rest)))
        } else if uri.contains("://") {
            Err(StoreError::UnsupportedUri(uri.to_owned()))
        } else {
            Ok(Self::Local(PathBuf::from(uri)))
        }
    }
}

/// How `open` reaches and writes a store.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Create a local store that does not exist yet.
    pub create: bool,
    /// Where an S3 store is reached.
    pub s3: S3Options,
    /// The lock S3 puts on every object written (the storage policy's).
    pub lock: ObjectLockPolicy,
    /// A local directory for files on their way into an S3 store [default: the temp dir].
    pub staging: Option<PathBuf>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            create: false,
            s3: S3Options::default(),
            lock: crate::policy::StoragePolicy::default().object_lock,
            staging: None,
        }
    }
}

/// An opened store, by backend: callers that need the backend's own calls (`S3Store::check`)
/// match on it; the rest use it as a `Store`.
pub enum Opened {
    Local(LocalStore),
    S3(S3Store),
}

impl Opened {
    pub fn into_store(self) -> Box<dyn Store> {
        match self {
            Self::Local(s) => Box::new(s),
            Self::S3(s) => Box::new(s),
        }
    }
}

/// Opens the store named by `uri`.
pub fn open(uri: &str, options: &OpenOptions) -> Result<Opened, StoreError> {
    match StoreUri::parse(uri)? {
        StoreUri::Local(path) => Ok(Opened::Local(LocalStore::open(&path, options.create)?)),
        StoreUri::S3(location) => Ok(Opened::S3(S3Store::connect(
            location,
            &options.s3,
            options.lock,
            options.staging.clone().unwrap_or_else(std::env::temp_dir),
        )?)),
    }
}

/// A fresh temp file (`tmp-<random>`) in `dir`, created new, for staging. `dir` must be a real
/// directory: staged evidence written through a link would land outside the store. The file is
/// created with O_EXCL, which does not follow a link planted at its name.
pub fn new_staging_file(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use rand_core::RngCore;
    std::fs::create_dir_all(dir)?;
    if std::fs::symlink_metadata(dir)?.file_type().is_symlink() {
        return Err(std::io::Error::other(StoreError::Symlink(dir.to_owned())));
    }
    let mut random = [0u8; 8];
    rand_core::OsRng.fill_bytes(&mut random);
    let path = dir.join(format!("tmp-{}", hex::encode(random)));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}
