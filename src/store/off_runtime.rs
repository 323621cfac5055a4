//! A store called from async code. The S3 store drives each call on its own runtime
//! (`Runtime::block_on`), which Tokio refuses inside another runtime's task: an execution, which
//! awaits the API server between its journal entries, reaches the store through this wrapper,
//! which makes each call on a thread of its own when the caller is inside a runtime, and
//! directly otherwise. Each call still blocks its caller, as the store's calls always do.

use std::io::Read;
use std::path::Path;

use super::{Receipt, StagedFile, Store, StoreError, StoreKey, StorePrefix};
use crate::id::{BundleId, CaseId};

/// `inner`, callable from inside a runtime.
pub struct OffRuntime<'a>(pub &'a dyn Store);

/// Runs `f` on a thread outside any runtime when the caller is inside one.
fn off<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

impl Store for OffRuntime<'_> {
    fn uri(&self) -> String {
        self.0.uri()
    }
    fn object_uri(&self, key: &StoreKey) -> String {
        self.0.object_uri(key)
    }
    fn staging_dir(&self) -> &Path {
        self.0.staging_dir()
    }
    fn put_new(&self, key: &StoreKey, bytes: &[u8]) -> Result<Receipt, StoreError> {
        off(|| self.0.put_new(key, bytes))
    }
    fn put_new_file(&self, key: &StoreKey, staged: StagedFile) -> Result<Receipt, StoreError> {
        off(|| self.0.put_new_file(key, staged))
    }
    fn get(&self, key: &StoreKey) -> Result<Vec<u8>, StoreError> {
        off(|| self.0.get(key))
    }
    fn open(&self, key: &StoreKey) -> Result<Box<dyn Read + Send>, StoreError> {
        let inner = off(|| self.0.open(key))?;
        Ok(Box::new(OffReader(inner)))
    }
    fn exists(&self, key: &StoreKey) -> Result<bool, StoreError> {
        off(|| self.0.exists(key))
    }
    fn list(&self, prefix: &StorePrefix) -> Result<Vec<String>, StoreError> {
        off(|| self.0.list(prefix))
    }
    fn list_journal(&self, case: &CaseId) -> Result<(Vec<u64>, Vec<String>), StoreError> {
        off(|| self.0.list_journal(case))
    }
    fn list_bundles(&self, case: &CaseId) -> Result<(Vec<BundleId>, Vec<String>), StoreError> {
        off(|| self.0.list_bundles(case))
    }
    fn list_cases(&self) -> Result<Vec<CaseId>, StoreError> {
        off(|| self.0.list_cases())
    }
    fn receipt_of(&self, key: &StoreKey) -> Result<Option<Receipt>, StoreError> {
        off(|| self.0.receipt_of(key))
    }
}

/// A stream of the store's, read off the runtime too.
struct OffReader(Box<dyn Read + Send>);

impl Read for OffReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let inner = &mut self.0;
        off(|| inner.read(buf))
    }
}
