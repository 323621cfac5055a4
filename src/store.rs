//! Where evidence goes. `Store` is the seam between custody and its backends (a local directory
//! today); objects are addressed by typed `StoreKey`s built from validated ids, never raw strings.
//! Every write is create-new: evidence is never overwritten.

pub mod local;
pub mod s3;
pub mod spool;

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::digest::Sha256Digest;
use crate::id::{BundleId, CaseId, KeyId};

pub use local::LocalStore;

/// The largest small object (case header, journal entry, seal, key) a store will read back.
pub const MAX_SMALL_OBJECT: u64 = 16 * 1024 * 1024;

/// One object in the store layout (see docs/EVIDENCE_FORMAT.md).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StoreKey {
    CaseHeader(CaseId),
    JournalEntry(CaseId, u64),
    Archive(CaseId, BundleId),
    ArchiveSidecar(CaseId, BundleId),
    Seal(CaseId, BundleId),
    SealSignature(CaseId, BundleId),
    PublicKey(KeyId),
    /// An object written by `store check` to prove the bucket takes custody's writes.
    Probe(String),
    /// The record that an alert episode was received (`<sha256 hex>.json`), created once: the
    /// conditional create that makes one case per episode, across replicas.
    Episode(String),
}

impl StoreKey {
    /// The object's path relative to the store root, with `/` separators.
    pub fn path(&self) -> String {
        match self {
            Self::CaseHeader(c) => format!("cases/{c}/case.json"),
            Self::JournalEntry(c, seq) => format!("cases/{c}/journal/{seq:010}.json"),
            Self::Archive(c, b) => format!("cases/{c}/bundles/{}", archive_name(b)),
            Self::ArchiveSidecar(c, b) => format!("cases/{c}/bundles/{}.sha256", archive_name(b)),
            Self::Seal(c, b) => format!("cases/{c}/bundles/{b}.seal.json"),
            Self::SealSignature(c, b) => format!("cases/{c}/bundles/{b}.seal.json.sig"),
            Self::PublicKey(k) => format!("keys/{k}.pub"),
            Self::Probe(name) => format!("probes/{name}"),
            Self::Episode(name) => format!("episodes/{name}"),
        }
    }
}

/// The file name of a bundle's archive.
pub fn archive_name(bundle: &BundleId) -> String {
    format!("{bundle}.tar.zst")
}

/// Where a stored object ended up.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Stored {
    /// The object's URI (`file:///…` or `s3://…`).
    pub uri: String,
    /// The backend's version id, where the backend keeps versions.
    pub version_id: Option<String>,
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
    #[error("{uri} cannot hold evidence: {why}")]
    BucketNotReady { uri: String, why: String },
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

    /// Stores `bytes` under `key`, failing if `key` exists.
    fn put_new(&self, key: &StoreKey, bytes: &[u8]) -> Result<Stored, StoreError>;

    /// Moves a staged file under `key`, failing if `key` exists.
    fn put_new_file(&self, key: &StoreKey, staged: StagedFile) -> Result<Stored, StoreError>;

    /// Reads a small object whole (at most `MAX_SMALL_OBJECT` bytes).
    fn get(&self, key: &StoreKey) -> Result<Vec<u8>, StoreError>;

    /// Opens an object for streaming.
    fn open(&self, key: &StoreKey) -> Result<Box<dyn Read + Send>, StoreError>;

    fn exists(&self, key: &StoreKey) -> Result<bool, StoreError>;

    /// The sequence numbers of a case's journal entries, sorted, and any names in the journal
    /// that are not entries.
    fn list_journal(&self, case: &CaseId) -> Result<(Vec<u64>, Vec<String>), StoreError>;

    /// The bundles of a case, sorted, and any names in `bundles/` that belong to no bundle.
    fn list_bundles(&self, case: &CaseId) -> Result<(Vec<BundleId>, Vec<String>), StoreError>;

    /// Every case in the store, sorted (oldest first).
    fn list_cases(&self) -> Result<Vec<CaseId>, StoreError>;

    /// For stores that keep versions: what the store holds for each of the case's objects
    /// (version id, lock, checksum), for an `objects_stored` journal entry. `None` elsewhere.
    fn stored_objects(&self, _case: &CaseId) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(None)
    }
}

/// Opens the store named by `uri` (a directory path or `file://PATH`), creating it if `create`.
pub fn open_store(uri: &str, create: bool) -> Result<Box<dyn Store>, StoreError> {
    let path = if let Some(rest) = uri.strip_prefix("file://") {
        PathBuf::from(rest)
    } else if uri.contains("://") {
        return Err(StoreError::UnsupportedUri(uri.to_owned()));
    } else {
        PathBuf::from(uri)
    };
    Ok(Box::new(LocalStore::open(&path, create)?))
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
