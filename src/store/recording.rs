//! A store that keeps the receipt of every object written through it, so that a writer records
//! what its own PUTs returned (an `objects_stored` journal entry) instead of reading the store
//! back: the CLI's uploads do so through the spool, and the daemon can wrap its store in one
//! for a collection.

use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use super::{ObjectRecord, Receipt, StagedFile, Store, StoreError, StoreKey, StorePrefix};

/// `inner`, remembering the receipt of each object stored through it, in order.
pub struct Recording<'a> {
    inner: &'a dyn Store,
    receipts: Mutex<Vec<(StoreKey, Receipt)>>,
}

impl<'a> Recording<'a> {
    pub fn new(inner: &'a dyn Store) -> Self {
        Self {
            inner,
            receipts: Mutex::new(Vec::new()),
        }
    }

    /// The receipts of the objects stored so far, with their keys, in the order stored.
    pub fn receipts(&self) -> Vec<(StoreKey, Receipt)> {
        match self.receipts.lock() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The objects stored so far as an `objects_stored` entry records them; empty for a
    /// backend that keeps no versions or locks.
    pub fn records(&self) -> Vec<ObjectRecord> {
        self.receipts()
            .iter()
            .filter_map(|(_, r)| r.record())
            .collect()
    }

    fn keep(&self, key: &StoreKey, receipt: &Receipt) {
        let mut receipts = match self.receipts.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        receipts.push((key.clone(), receipt.clone()));
    }
}

impl Store for Recording<'_> {
    fn uri(&self) -> String {
        self.inner.uri()
    }

    fn object_uri(&self, key: &StoreKey) -> String {
        self.inner.object_uri(key)
    }

    fn staging_dir(&self) -> &Path {
        self.inner.staging_dir()
    }

    fn put_new(&self, key: &StoreKey, bytes: &[u8]) -> Result<Receipt, StoreError> {
        let receipt = self.inner.put_new(key, bytes)?;
        self.keep(key, &receipt);
        Ok(receipt)
    }

    fn put_new_file(&self, key: &StoreKey, staged: StagedFile) -> Result<Receipt, StoreError> {
        let receipt = self.inner.put_new_file(key, staged)?;
        self.keep(key, &receipt);
        Ok(receipt)
    }

    fn get(&self, key: &StoreKey) -> Result<Vec<u8>, StoreError> {
        self.inner.get(key)
    }

    fn open(&self, key: &StoreKey) -> Result<Box<dyn Read + Send>, StoreError> {
        self.inner.open(key)
    }

    fn exists(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.inner.exists(key)
    }

    fn list(&self, prefix: &StorePrefix) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix)
    }

    fn receipt_of(&self, key: &StoreKey) -> Result<Option<Receipt>, StoreError> {
        self.inner.receipt_of(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::CaseId;
    use crate::store::LocalStore;

    #[test]
    fn keeps_the_receipt_of_every_object_stored_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalStore::open(dir.path(), true).unwrap();
        let recording = Recording::new(&local);
        let case = CaseId::new("20261126-145448-00000001").unwrap();
        let header = StoreKey::CaseHeader(case.clone());
        let stored = recording.put_new(&header, b"{}").unwrap();
        assert!(recording.put_new(&header, b"{}").is_err());
        assert_eq!(recording.receipts(), vec![(header, stored.clone())]);
        assert_eq!(stored.sha256, crate::digest::Sha256Digest::of(b"{}"));
        // The local store keeps no versions or locks: nothing for objects_stored.
        assert!(recording.records().is_empty());
    }
}
