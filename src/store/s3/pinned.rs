//! A read view of an S3 store pinned to chosen versions: `verify` reads the version custody
//! wrote of each object, not whatever someone put over it since. The view is a value passed
//! where the reads happen, so reading the code shows which version is read; the store itself
//! keeps no hidden state.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use super::S3Store;
use crate::store::{Receipt, StagedFile, Store, StoreError, StoreKey, StorePrefix};

/// The version to read of each object, by store path (`cases/<case>/case.json`).
pub type Pins = HashMap<String, String>;

/// `store` read at the versions in `pins` (objects not pinned: the current version). Writes are
/// refused: a view for reading evidence back never adds to it.
pub struct PinnedS3<'a> {
    store: &'a S3Store,
    pins: &'a Pins,
}

impl S3Store {
    /// This store read at the versions in `pins`.
    pub fn pinned<'a>(&'a self, pins: &'a Pins) -> PinnedS3<'a> {
        PinnedS3 { store: self, pins }
    }
}

impl PinnedS3<'_> {
    fn version(&self, key: &StoreKey) -> Option<&str> {
        self.pins.get(&key.path()).map(String::as_str)
    }

    fn read_only(&self, key: &StoreKey) -> StoreError {
        StoreError::Write {
            uri: self.store.object_uri(key),
            source: std::io::Error::other("a version-pinned view of a store is read-only"),
        }
    }
}

impl Store for PinnedS3<'_> {
    fn uri(&self) -> String {
        self.store.uri()
    }

    fn object_uri(&self, key: &StoreKey) -> String {
        self.store.object_uri(key)
    }

    fn staging_dir(&self) -> &Path {
        self.store.staging_dir()
    }

    fn put_new(&self, key: &StoreKey, _bytes: &[u8]) -> Result<Receipt, StoreError> {
        Err(self.read_only(key))
    }

    fn put_new_file(&self, key: &StoreKey, _staged: StagedFile) -> Result<Receipt, StoreError> {
        Err(self.read_only(key))
    }

    fn get(&self, key: &StoreKey) -> Result<Vec<u8>, StoreError> {
        self.store.get_version(key, self.version(key))
    }

    fn open(&self, key: &StoreKey) -> Result<Box<dyn Read + Send>, StoreError> {
        Ok(Box::new(self.store.open_version(key, self.version(key))?))
    }

    fn exists(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.store.exists_version(key, self.version(key))
    }

    fn list(&self, prefix: &StorePrefix) -> Result<Vec<String>, StoreError> {
        self.store.list(prefix)
    }
}
