//! The spool's tests: case locks, and uploads (whole, refused when the spooled case is not
//! what was sealed, resumed after an upload cut off midway) against a local store standing in
//! for S3.

use super::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::case::EntryKind;
use crate::collect::{self, Request, Trigger};
use crate::keys::SigningKey;
use crate::policy::Policies;
use crate::source::FileSource;
use crate::store::StagedFile;

/// A local store standing in for S3: every object it holds is "locked", and it can be told
/// to fail every PUT after a number of them, as S3 going away midway through an upload.
struct LocalRemote {
    store: LocalStore,
    puts: AtomicUsize,
    fail_after: AtomicUsize,
}

impl LocalRemote {
    fn new(root: &Path) -> Self {
        Self {
            store: LocalStore::open(root, true).unwrap(),
            puts: AtomicUsize::new(0),
            fail_after: AtomicUsize::new(usize::MAX),
        }
    }
}

impl Store for LocalRemote {
    fn uri(&self) -> String {
        self.store.uri()
    }
    fn object_uri(&self, key: &StoreKey) -> String {
        self.store.object_uri(key)
    }
    fn staging_dir(&self) -> &Path {
        self.store.staging_dir()
    }
    fn put_new(&self, key: &StoreKey, bytes: &[u8]) -> Result<Receipt, StoreError> {
        self.store.put_new(key, bytes)
    }
    fn put_new_file(&self, key: &StoreKey, staged: StagedFile) -> Result<Receipt, StoreError> {
        self.store.put_new_file(key, staged)
    }
    fn get(&self, key: &StoreKey) -> Result<Vec<u8>, StoreError> {
        self.store.get(key)
    }
    fn open(&self, key: &StoreKey) -> Result<Box<dyn Read + Send>, StoreError> {
        self.store.open(key)
    }
    fn exists(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.store.exists(key)
    }
    fn list(&self, prefix: &StorePrefix) -> Result<Vec<String>, StoreError> {
        self.store.list(prefix)
    }
}

const LOCK: &str = "COMPLIANCE";
const UNTIL: i64 = 4_102_444_800;

impl Remote for LocalRemote {
    fn put_path(
        &self,
        key: &StoreKey,
        path: &Path,
        _size: u64,
        _sha256: Sha256Digest,
    ) -> Result<PutReceipt, StoreError> {
        if self.puts.fetch_add(1, Ordering::SeqCst) >= self.fail_after.load(Ordering::SeqCst) {
            return Err(StoreError::Transient {
                uri: self.object_uri(key),
                message: "S3 went away".into(),
            });
        }
        let bytes = fs::read(path).unwrap();
        let receipt = self.store.put_new(key, &bytes)?;
        Ok(PutReceipt {
            uri: receipt.uri,
            version_id: Some("v1".into()),
            sha256: receipt.sha256,
            s3_checksum: aws_smithy_types::base64::encode(receipt.sha256.as_bytes()),
            size: receipt.size,
            lock_mode: LOCK.into(),
            retain_until: UNTIL,
            legal_hold: false,
        })
    }

    fn head(&self, key: &StoreKey, _version: Option<&str>) -> Result<ObjectState, StoreError> {
        let bytes = self.store.get(key)?;
        let sha256 = Sha256Digest::of(&bytes);
        Ok(ObjectState {
            version_id: Some("v1".into()),
            size: Some(bytes.len() as u64),
            sha256: Some(sha256.to_hex()),
            s3_checksum: Some(aws_smithy_types::base64::encode(sha256.as_bytes())),
            lock_mode: Some(LOCK.into()),
            retain_until: Some(UNTIL),
            legal_hold: false,
        })
    }

    fn is_locked(&self, state: &ObjectState) -> bool {
        state.lock_mode.as_deref() == Some(LOCK)
    }

    fn lock_version(&self, _key: &StoreKey, _version: Option<&str>) -> Result<(), StoreError> {
        Ok(())
    }

    fn composite_checksum(&self, _path: &Path) -> io::Result<String> {
        Err(io::Error::other(
            "the local stand-in stores no file in parts",
        ))
    }
}

/// A spool for `s3://evidence/p` under `root` holding one sealed case of a few log lines.
fn spooled_case(root: &Path) -> (SpoolStore, CaseId) {
    let location = S3Location::parse("s3://evidence/p").unwrap();
    let spool = SpoolStore::open(&root.join("spool"), location, &S3Options::default()).unwrap();
    let log = root.join("access.log");
    let lines: String = (0..20)
        .map(|i| {
            format!("10.0.0.{i} - - [26/Nov/2026:10:00:{i:02} +0000] \"GET / HTTP/1.1\" 401 0\n")
        })
        .collect();
    fs::write(&log, lines).unwrap();
    let trigger = Trigger {
        kind: "cli".into(),
        requested_by: "test".into(),
    };
    let request = Request::new(trigger, 5, "auto".parse().unwrap(), false);
    let mut source = FileSource::new(vec![log], u64::MAX);
    let key = SigningKey::generate();
    let outcome =
        collect::collect(&spool, &key, &Policies::default(), &mut source, &request).unwrap();
    (spool, outcome.case_id)
}

/// Every object of the case (and the key) the spool holds, as store keys.
fn spooled_keys(spool: &SpoolStore, case: &CaseId) -> Vec<StoreKey> {
    let checked = match check::spooled_case(spool, case) {
        Ok(c) => c,
        Err(_) => panic!("the spooled case does not check"),
    };
    checked
        .objects
        .iter()
        .chain(&checked.keys)
        .chain(&checked.journal)
        .map(|o| o.key.clone())
        .collect()
}

#[test]
fn an_upload_stores_every_object_records_them_and_empties_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, case) = spooled_case(dir.path());
    let keys = spooled_keys(&spool, &case);
    let remote = LocalRemote::new(&dir.path().join("remote"));
    let uploaded = upload_case(&spool, &remote, &case, &SigningKey::generate()).unwrap();
    assert_eq!(uploaded.objects.len(), keys.len());
    for key in &keys {
        assert_eq!(
            remote.get(key).unwrap(),
            spool_bytes(&uploaded, key, &remote)
        );
    }
    // The objects_stored entry follows the spooled journal, and records every object.
    let (seqs, _) = remote.list_journal(&case).unwrap();
    let last = StoreKey::JournalEntry(case.clone(), *seqs.last().unwrap());
    let entry: journal::Entry = serde_json::from_slice(&remote.get(&last).unwrap()).unwrap();
    assert_eq!(entry.kind(), EntryKind::ObjectsStored);
    let crate::case::Details::ObjectsStored(stored) = &entry.details else {
        panic!("not an objects_stored entry: {entry:?}");
    };
    let receipts: Vec<crate::case::entry::ObjectReceipt> =
        uploaded.objects.iter().map(Into::into).collect();
    assert_eq!(stored.objects, receipts);
    assert_eq!(uploaded.journal_entry.uri, remote.object_uri(&last));
    assert!(spool.cases().unwrap().is_empty(), "the case left the spool");
    assert!(journal::check_chain(&remote, &case)
        .unwrap()
        .problems
        .is_empty());
}

/// The bytes an upload recorded for `key`: its receipt's SHA-256 must be that of what the
/// remote holds.
fn spool_bytes(uploaded: &UploadedCase, key: &StoreKey, remote: &LocalRemote) -> Vec<u8> {
    let uri = remote.object_uri(key);
    let receipt = uploaded.objects.iter().find(|o| o.uri == uri).unwrap();
    let bytes = remote.get(key).unwrap();
    assert_eq!(Sha256Digest::of(&bytes), receipt.sha256, "{uri}");
    bytes
}

#[test]
fn a_tampered_spooled_case_is_refused_whole() {
    // The spool is a directory anyone with the account can write; S3 locks what it is given.
    let dir = tempfile::tempdir().unwrap();
    let (spool, case) = spooled_case(dir.path());
    let header = spool.dir().join(StoreKey::CaseHeader(case.clone()).path());
    let mut perms = fs::metadata(&header).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(&header, perms).unwrap();
    let mut text = fs::read_to_string(&header).unwrap();
    text = text.replacen("test", "tset", 1);
    fs::write(&header, text).unwrap();

    let remote = LocalRemote::new(&dir.path().join("remote"));
    match upload_case(&spool, &remote, &case, &SigningKey::generate()) {
        Err(FlushError::NotAsSealed { case: refused, .. }) => assert_eq!(refused, case),
        other => panic!(
            "a tampered case was not refused: {:?}",
            other.map(|u| u.case_id)
        ),
    }
    assert_eq!(remote.puts.load(Ordering::SeqCst), 0, "nothing was sent");
    assert!(remote.list_cases().unwrap().is_empty());
    assert_eq!(spool.cases().unwrap(), vec![case], "the case stays spooled");
}

#[test]
fn a_spooled_case_with_an_entry_signature_removed_or_changed_is_refused() {
    for change in ["remove", "flip"] {
        let dir = tempfile::tempdir().unwrap();
        let (spool, case) = spooled_case(dir.path());
        // Every entry's signature is among the objects to upload.
        let keys = spooled_keys(&spool, &case);
        let (seqs, _) = spool.list_journal(&case).unwrap();
        for seq in &seqs {
            assert!(keys.contains(&StoreKey::JournalSignature(case.clone(), *seq)));
        }
        let sig = spool
            .dir()
            .join(StoreKey::JournalSignature(case.clone(), seqs[seqs.len() - 1]).path());
        if change == "remove" {
            fs::remove_file(&sig).unwrap();
        } else {
            let mut perms = fs::metadata(&sig).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            fs::set_permissions(&sig, perms).unwrap();
            let mut bytes = fs::read(&sig).unwrap();
            bytes[5] ^= 1;
            fs::write(&sig, bytes).unwrap();
        }
        let remote = LocalRemote::new(&dir.path().join("remote"));
        match upload_case(&spool, &remote, &case, &SigningKey::generate()) {
            Err(FlushError::NotAsSealed { .. }) => {}
            other => panic!("{change}: not refused: {:?}", other.map(|u| u.case_id)),
        }
        assert_eq!(remote.puts.load(Ordering::SeqCst), 0, "nothing was sent");
    }
}

#[test]
fn an_upload_cut_off_midway_resumes_without_sending_anything_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, case) = spooled_case(dir.path());
    let total = spooled_keys(&spool, &case).len();
    let remote = LocalRemote::new(&dir.path().join("remote"));
    remote.fail_after.store(3, Ordering::SeqCst);
    match upload_case(&spool, &remote, &case, &SigningKey::generate()) {
        Err(FlushError::Store(e)) => assert!(e.is_transient(), "{e}"),
        other => panic!("the upload did not stop: {:?}", other.map(|u| u.case_id)),
    }
    assert_eq!(spool.cases().unwrap(), vec![case.clone()], "still spooled");

    remote.fail_after.store(usize::MAX, Ordering::SeqCst);
    remote.puts.store(0, Ordering::SeqCst);
    let report = flush(&spool, &remote, &SigningKey::generate()).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.uploaded.len(), 1);
    assert_eq!(report.uploaded[0].objects.len(), total);
    // The three stored before the cut came from their receipts, not a second PUT.
    assert_eq!(remote.puts.load(Ordering::SeqCst), total - 3);
    let objects_stored = remote
        .list_journal(&case)
        .unwrap()
        .0
        .into_iter()
        .filter(|seq| {
            let bytes = remote
                .get(&StoreKey::JournalEntry(case.clone(), *seq))
                .unwrap();
            serde_json::from_slice::<journal::Entry>(&bytes)
                .unwrap()
                .kind()
                == EntryKind::ObjectsStored
        })
        .count();
    assert_eq!(objects_stored, 1);
    assert!(spool.cases().unwrap().is_empty());
}

#[test]
fn two_lockers_racing_through_the_lock_file_deletion_cannot_both_hold_the_case() {
    // The lock file was deleted while held: a waiter then held the deleted file while a
    // newcomer locked a new file at the same path, and both held the case.
    let root = tempfile::tempdir().unwrap();
    let location = S3Location::parse("s3://evidence/p").unwrap();
    let spool = Arc::new(SpoolStore::open(root.path(), location, &S3Options::default()).unwrap());
    let case = CaseId::new("20261126-000000-00000001").unwrap();
    let first = spool.lock_case(&case).unwrap();

    // A second locker opens the lock file and waits on it.
    let held = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (spool, case, held) = (spool.clone(), case.clone(), held.clone());
        std::thread::spawn(move || {
            let lock = spool.lock_case(&case).unwrap();
            held.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
            held.store(false, Ordering::SeqCst);
            drop(lock);
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // The holder uploads the case and removes it, lock file included, still holding it.
    remove_case(&spool, &case).unwrap();
    // A third locker comes after the deletion: it makes a new lock file and gets it.
    let third = spool
        .try_lock_case(&case)
        .unwrap()
        .expect("nobody holds the case");
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !held.load(Ordering::SeqCst),
        "the waiter holds the case while the third locker does too"
    );
    drop(third);
    waiter.join().unwrap();
    // Once the third is done, the waiter got the case, and it is free again afterwards.
    assert!(spool.try_lock_case(&case).unwrap().is_some());
}
