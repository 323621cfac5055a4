//! The local directory store: temp file → write → fsync → read-only → hard link into place (which
//! fails if the name exists, so nothing is ever overwritten) → fsync the directory.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{new_staging_file, StagedFile, Store, StoreError, StoreKey, Stored, MAX_SMALL_OBJECT};
use crate::id::{BundleId, CaseId};

/// Where staged files wait before they are linked into place; ignored by verification.
const STAGING: &str = ".staging";

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
        if create {
            fs::create_dir_all(&staging).map_err(open_err)?;
        }
        Ok(Self { root, staging })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full_path(&self, key: &StoreKey) -> PathBuf {
        self.root.join(key.path())
    }

    /// Links a complete, fsynced staged file into place read-only, never replacing anything.
    fn link_into_place(&self, key: &StoreKey, staged: &Path) -> Result<Stored, StoreError> {
        let uri = self.object_uri(key);
        let dest = self.full_path(key);
        let write_err = |source| StoreError::Write {
            uri: uri.clone(),
            source,
        };
        fs::set_permissions(staged, fs::Permissions::from_mode(0o444)).map_err(write_err)?;
        let parent = dest.parent().unwrap_or(&self.root);
        fs::create_dir_all(parent).map_err(write_err)?;
        match fs::hard_link(staged, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StoreError::AlreadyExists { uri });
            }
            Err(e) => return Err(write_err(e)),
        }
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(write_err)?;
        Ok(Stored {
            uri,
            version_id: None,
        })
    }

    fn read_dir_names(&self, dir: &Path) -> Result<Vec<String>, StoreError> {
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

    fn put_new(&self, key: &StoreKey, bytes: &[u8]) -> Result<Stored, StoreError> {
        let uri = self.object_uri(key);
        if self.full_path(key).exists() {
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
        self.link_into_place(key, &path)
    }

    fn put_new_file(&self, key: &StoreKey, staged: StagedFile) -> Result<Stored, StoreError> {
        let _guard = StagedGuard(&staged.path);
        self.link_into_place(key, &staged.path)
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
        match fs::symlink_metadata(self.full_path(key)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Read {
                uri: self.object_uri(key),
                source,
            }),
        }
    }

    fn list_journal(&self, case: &CaseId) -> Result<(Vec<u64>, Vec<String>), StoreError> {
        let dir = self.root.join(format!("cases/{case}/journal"));
        let mut seqs = Vec::new();
        let mut strays = Vec::new();
        for name in self.read_dir_names(&dir)? {
            match parse_journal_name(&name) {
                Some(seq) => seqs.push(seq),
                None => strays.push(name),
            }
        }
        seqs.sort_unstable();
        Ok((seqs, strays))
    }

    fn list_cases(&self) -> Result<Vec<CaseId>, StoreError> {
        let mut cases: Vec<CaseId> = self
            .read_dir_names(&self.root.join("cases"))?
            .into_iter()
            .filter_map(|n| CaseId::new(n).ok())
            .collect();
        cases.sort();
        Ok(cases)
    }

    fn list_bundles(&self, case: &CaseId) -> Result<(Vec<BundleId>, Vec<String>), StoreError> {
        let dir = self.root.join(format!("cases/{case}/bundles"));
        let mut bundles = BTreeSet::new();
        let mut strays = Vec::new();
        for name in self.read_dir_names(&dir)? {
            match parse_bundle_file_name(&name) {
                Some(id) => {
                    bundles.insert(id);
                }
                None => strays.push(name),
            }
        }
        Ok((bundles.into_iter().collect(), strays))
    }
}

impl LocalStore {
    fn open_file(&self, key: &StoreKey) -> Result<File, StoreError> {
        let uri = self.object_uri(key);
        let path = self.full_path(key);
        // Evidence objects are regular files; a link planted in the store is not followed.
        match fs::symlink_metadata(&path) {
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

/// `0000000012.json` → 12.
pub(crate) fn parse_journal_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    if digits.len() != 10 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The bundle a file in `bundles/` belongs to, if its name is one of a bundle's four files.
pub(crate) fn parse_bundle_file_name(name: &str) -> Option<BundleId> {
    let stem = [
        ".tar.zst.sha256",
        ".tar.zst",
        ".seal.json.sig",
        ".seal.json",
    ]
    .iter()
    .find_map(|suffix| name.strip_suffix(suffix))?;
    BundleId::new(stem).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
