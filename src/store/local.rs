//! The local directory store: temp file → write → fsync → read-only → hard link into place (which
//! fails if the name exists, so nothing is ever overwritten) → fsync the directory.
//!
//! Nothing in a store is reached through a symbolic link: a `keys/` or `journal/` linked
//! elsewhere would have evidence written outside the store, or read from anywhere. Every
//! directory from the root to an object is checked with `symlink_metadata` and created with
//! `create_dir`, which never follows a link; the temp file is created with O_EXCL and the hard
//! link never replaces a name, so a link planted at either name is not followed either.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{
    new_staging_file, Receipt, StagedFile, Store, StoreError, StoreKey, StorePrefix,
    MAX_SMALL_OBJECT,
};
use crate::digest::Sha256Digest;

/// Where staged files wait before they are linked into place; ignored by verification.
pub const STAGING: &str = ".staging";
/// The directories at the top of a store (see `layout`).
const TOP_LEVEL: [&str; 5] = ["cases", "keys", "probes", "episodes", "leases"];

pub struct LocalStore {
    root: PathBuf,
    staging: PathBuf,
}

impl LocalStore {
    /// Opens the store at `root`, creating it when `create` is set.
    pub fn open(root: &Path, create: bool) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: root.to_owned(),
            source,
        };
        match fs::metadata(root) {
            Ok(m) if !m.is_dir() => return Err(StoreError::NotADirectory(root.to_owned())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir_all(root).map_err(open_err)?;
            }
            Err(e) => return Err(open_err(e)),
        }
        let root = root.canonicalize().map_err(open_err)?;
        let staging = root.join(STAGING);
        let store = Self { root, staging };
        if create {
            // A writer refuses a linked top-level directory before it writes anything, rather
            // than midway through a case (a linked `keys/` is met only after the archive).
            for dir in TOP_LEVEL {
                store.real_dirs(dir, false, &file_uri(&store.root.join(dir)))?;
            }
            store.real_dirs(STAGING, true, &file_uri(&store.staging))?;
        }
        Ok(store)
    }

    /// Checks that `rel_dir` and every directory above it up to the root are real directories
    /// (not links, not files), creating missing ones when `create`. Ok(false) when one is missing
    /// and not created.
    fn real_dirs(&self, rel_dir: &str, create: bool, uri: &str) -> Result<bool, StoreError> {
        let mut dir = self.root.clone();
        for part in rel_dir.split('/').filter(|p| !p.is_empty()) {
            dir.push(part);
            let io_err = |source| {
                if create {
                    StoreError::Write {
                        uri: uri.to_owned(),
                        source,
                    }
                } else {
                    StoreError::Read {
                        uri: uri.to_owned(),
                        source,
                    }
                }
            };
            // Made here or by someone else, a new directory is looked at again before use.
            let mut made = 0;
            loop {
                match fs::symlink_metadata(&dir) {
                    Ok(m) if m.file_type().is_symlink() => return Err(StoreError::Symlink(dir)),
                    Ok(m) if !m.is_dir() => return Err(StoreError::NotADirectory(dir)),
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound && create && made < 2 => {
                        made += 1;
                        match fs::create_dir(&dir) {
                            Ok(()) => {}
                            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                            Err(e) => return Err(io_err(e)),
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(false),
                    Err(e) => return Err(io_err(e)),
                }
            }
        }
        Ok(true)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full_path(&self, key: &StoreKey) -> PathBuf {
        self.root.join(key.path())
    }

    /// Links a complete, fsynced staged file into place read-only, never replacing anything.
    fn link_into_place(
        &self,
        key: &StoreKey,
        staged: &Path,
        sha256: Sha256Digest,
        size: u64,
    ) -> Result<Receipt, StoreError> {
        let uri = self.object_uri(key);
        let dest = self.full_path(key);
        let write_err = |source| StoreError::Write {
            uri: uri.clone(),
            source,
        };
        fs::set_permissions(staged, fs::Permissions::from_mode(0o444)).map_err(write_err)?;
        let parent = dest.parent().unwrap_or(&self.root);
        let parent_dir = key.dir();
        self.real_dirs(&parent_dir, true, &uri)?;
        // link(2) does not follow a link at the new name: it fails, as for any existing name.
        match fs::hard_link(staged, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StoreError::AlreadyExists { uri });
            }
            Err(e) => return Err(write_err(e)),
        }
        // A directory swapped for a link between the check and the link(2) is caught here, so
        // the write is at least not reported as stored.
        self.real_dirs(&parent_dir, false, &uri)?;
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(write_err)?;
        Ok(Receipt {
            uri,
            version_id: None,
            sha256,
            size,
            lock: None,
        })
    }

    /// The names in the store directory `rel_dir`, sorted; none when it does not exist.
    fn read_dir_names(&self, rel_dir: &str) -> Result<Vec<String>, StoreError> {
        let dir = &self.root.join(rel_dir);
        if !self.real_dirs(rel_dir, false, &file_uri(dir))? {
            return Ok(Vec::new());
        }
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Read {
                    uri: file_uri(dir),
                    source,
                })
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::Read {
                uri: file_uri(dir),
                source,
            })?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
}

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Removes a staged file when dropped unless it was consumed.
struct StagedGuard<'a>(&'a Path);

impl Drop for StagedGuard<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.0);
    }
}

impl Store for LocalStore {
    fn uri(&self) -> String {
        file_uri(&self.root)
    }

    fn object_uri(&self, key: &StoreKey) -> String {
        file_uri(&self.full_path(key))
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn put_new(&self, key: &StoreKey, bytes: &[u8]) -> Result<Receipt, StoreError> {
        let uri = self.object_uri(key);
        if self.exists(key)? {
            return Err(StoreError::AlreadyExists { uri });
        }
        let write_err = |source| StoreError::Write {
            uri: uri.clone(),
            source,
        };
        let (path, mut file) = new_staging_file(&self.staging).map_err(write_err)?;
        let _guard = StagedGuard(&path);
        file.write_all(bytes).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        drop(file);
        let size = bytes.len() as u64;
        self.link_into_place(key, &path, Sha256Digest::of(bytes), size)
    }

    fn put_new_file(&self, key: &StoreKey, staged: StagedFile) -> Result<Receipt, StoreError> {
        let _guard = StagedGuard(&staged.path);
        self.link_into_place(key, &staged.path, staged.sha256, staged.size)
    }

    fn get(&self, key: &StoreKey) -> Result<Vec<u8>, StoreError> {
        let uri = self.object_uri(key);
        let file = self.open_file(key)?;
        let mut bytes = Vec::new();
        file.take(MAX_SMALL_OBJECT + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| StoreError::Read {
                uri: uri.clone(),
                source,
            })?;
        if bytes.len() as u64 > MAX_SMALL_OBJECT {
            return Err(StoreError::TooLarge {
                uri,
                limit: MAX_SMALL_OBJECT,
            });
        }
        Ok(bytes)
    }

    fn open(&self, key: &StoreKey) -> Result<Box<dyn Read + Send>, StoreError> {
        Ok(Box::new(self.open_file(key)?))
    }

    fn exists(&self, key: &StoreKey) -> Result<bool, StoreError> {
        if !self.real_dirs(&key.dir(), false, &self.object_uri(key))? {
            return Ok(false);
        }
        match fs::symlink_metadata(self.full_path(key)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Read {
                uri: self.object_uri(key),
                source,
            }),
        }
    }

    fn list(&self, prefix: &StorePrefix) -> Result<Vec<String>, StoreError> {
        self.read_dir_names(&prefix.path())
    }
}

impl LocalStore {
    fn open_file(&self, key: &StoreKey) -> Result<File, StoreError> {
        let uri = self.object_uri(key);
        let path = self.full_path(key);
        if !self.real_dirs(&key.dir(), false, &uri)? {
            return Err(StoreError::NotFound { uri });
        }
        // Evidence objects are regular files; a link planted in the store is not followed.
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => return Err(StoreError::Symlink(path)),
            Ok(m) if !m.is_file() => {
                return Err(StoreError::Read {
                    uri,
                    source: io::Error::new(io::ErrorKind::InvalidData, "not a regular file"),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound { uri })
            }
            Err(source) => return Err(StoreError::Read { uri, source }),
        }
        File::open(&path).map_err(|source| StoreError::Read { uri, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{BundleId, CaseId};

    fn case() -> CaseId {
        CaseId::new("20261126-145448-00000001").unwrap()
    }

    #[test]
    fn writes_are_create_new_and_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(&dir.path().join("evidence"), true).unwrap();
        let key = StoreKey::CaseHeader(case());
        store.put_new(&key, b"{}").unwrap();
        let err = store.put_new(&key, b"{\"x\":1}").unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists { .. }));
        assert_eq!(store.get(&key).unwrap(), b"{}");
        let path = store.root().join(key.path());
        assert_eq!(
            fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o444
        );
        // Nothing is left behind in staging.
        assert_eq!(fs::read_dir(store.staging_dir()).unwrap().count(), 0);
    }

    #[test]
    fn writes_never_go_through_a_symlinked_directory_or_name() {
        // A case's journal/ linked elsewhere had entries written outside the store.
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let store = LocalStore::open(&dir.path().join("evidence"), true).unwrap();
        store
            .put_new(&StoreKey::JournalEntry(case(), 1), b"1")
            .unwrap();
        let journal = store.root().join(format!("cases/{}/journal", case()));
        fs::rename(&journal, dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&outside, &journal).unwrap();
        let err = store
            .put_new(&StoreKey::JournalEntry(case(), 2), b"2")
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Symlink(p) if p == &journal),
            "{err}"
        );
        assert!(matches!(
            store.get(&StoreKey::JournalEntry(case(), 1)),
            Err(StoreError::Symlink(_))
        ));
        assert!(matches!(
            store.list_journal(&case()),
            Err(StoreError::Symlink(_))
        ));
        // A link planted at the object's own name is not followed either.
        let header = store.root().join(StoreKey::CaseHeader(case()).path());
        std::os::unix::fs::symlink(outside.join("case.json"), &header).unwrap();
        assert!(store.put_new(&StoreKey::CaseHeader(case()), b"{}").is_err());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        // A writer refuses a store whose staging or keys are linked before writing anything.
        let root = store.root().to_owned();
        fs::remove_dir(root.join(STAGING)).unwrap();
        std::os::unix::fs::symlink(&outside, root.join(STAGING)).unwrap();
        assert!(matches!(
            LocalStore::open(&root, true),
            Err(StoreError::Symlink(_))
        ));
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn a_file_is_not_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(
            LocalStore::open(&file, true),
            Err(StoreError::NotADirectory(_))
        ));
    }

    #[test]
    fn lists_journal_and_bundles_with_strays() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path(), true).unwrap();
        let b = BundleId::new("20261126-145448-0000000b").unwrap();
        store
            .put_new(&StoreKey::JournalEntry(case(), 2), b"2")
            .unwrap();
        store
            .put_new(&StoreKey::JournalEntry(case(), 1), b"1")
            .unwrap();
        store
            .put_new(&StoreKey::Seal(case(), b.clone()), b"s")
            .unwrap();
        fs::write(
            store
                .root()
                .join(format!("cases/{}/journal/x.json", case())),
            b"",
        )
        .unwrap();
        let (seqs, strays) = store.list_journal(&case()).unwrap();
        assert_eq!(seqs, vec![1, 2]);
        assert_eq!(strays, vec!["x.json".to_string()]);
        let (bundles, strays) = store.list_bundles(&case()).unwrap();
        assert_eq!(bundles, vec![b]);
        assert!(strays.is_empty());
    }
}
