//! The custody journal: one immutable, hash-chained entry per step of a case. Each entry names
//! the SHA-256 of the previous entry's exact bytes, so an entry changed, removed or reordered
//! breaks the chain, and the seal pins the head so truncation is detectable too. Each entry is
//! signed by the writer's collector key (`<seq>.json.sig`, raw Ed25519 over the entry's bytes,
//! as seals are), so write access to the store is not write access to the record.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use super::entry::{Details, Entry, EntryKind};
use crate::digest::Sha256Digest;
use crate::id::CaseId;
use crate::keys::SigningKey;
use crate::store::{Store, StoreError, StoreKey};
use crate::timefmt;

/// The last entry of a journal: its sequence number and the SHA-256 of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub seq: u64,
    pub sha256: Sha256Digest,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot append to the journal of case {case}: {source}")]
    Append { case: CaseId, source: StoreError },
    #[error("cannot encode a journal entry: {0}")]
    Encode(serde_json::Error),
    #[error("cannot publish the journal's signing key: {0}")]
    PublishKey(StoreError),
}

/// A writer that appends to one case's journal, signing each entry with `key`.
pub struct Journal<'a> {
    store: &'a dyn Store,
    case: CaseId,
    head: Option<Head>,
    key: &'a SigningKey,
    /// Whether `key` is known to be in the store's `keys/` (checked before the first append).
    published: bool,
}

impl<'a> Journal<'a> {
    /// The journal of a new case, with no entries yet.
    pub fn new_case(store: &'a dyn Store, case: CaseId, key: &'a SigningKey) -> Self {
        Self {
            store,
            case,
            head: None,
            key,
            published: false,
        }
    }

    /// The journal of a case whose last entry is `head`.
    pub fn resume(store: &'a dyn Store, case: CaseId, head: Head, key: &'a SigningKey) -> Self {
        Self {
            store,
            case,
            head: Some(head),
            key,
            published: false,
        }
    }

    /// The key that signs this journal's entries.
    pub fn key(&self) -> &SigningKey {
        self.key
    }

    pub fn head(&self) -> Option<Head> {
        self.head
    }

    pub fn case(&self) -> &CaseId {
        &self.case
    }

    /// Appends an entry, then its signature. The entry's write is create-new, so a concurrent
    /// writer cannot fork the chain: it is the commit point. The signature follows it, also
    /// create-new; Ed25519 is deterministic, so a retried append writes the same bytes. The
    /// public key is published in `keys/` before the first entry this writer signs.
    pub fn append(&mut self, actor: &str, details: Details) -> Result<Head, JournalError> {
        if !self.published {
            crate::store::published::publish(self.store, self.key.public())
                .map_err(JournalError::PublishKey)?;
            self.published = true;
        }
        let entry = Entry {
            seq: self.head.map_or(1, |h| h.seq + 1),
            prev_sha256: self.head.map(|h| h.sha256),
            at: timefmt::rfc3339_millis(OffsetDateTime::now_utc()),
            actor: actor.to_owned(),
            details,
        };
        let bytes = encode(&entry)?;
        // The entry carries its time to the millisecond: the same bytes there are this append's.
        let key = StoreKey::JournalEntry(self.case.clone(), entry.seq);
        let append_error = |source| JournalError::Append {
            case: self.case.clone(),
            source,
        };
        crate::store::put_new_or_same(self.store, &key, &bytes).map_err(append_error)?;
        let signature = self.key.sign(&bytes);
        let sig_key = StoreKey::JournalSignature(self.case.clone(), entry.seq);
        crate::store::put_new_or_same(self.store, &sig_key, &signature).map_err(append_error)?;
        let head = Head {
            seq: entry.seq,
            sha256: Sha256Digest::of(&bytes),
        };
        self.head = Some(head);
        Ok(head)
    }
}

/// Whether entry `seq`, found without a signature, is a legacy entry rather than one whose
/// signature was removed: never in a case signed from its start (`signed_from_start`: its first
/// entry is signed, or a seal says `journal_signed`), and otherwise only before the case's first
/// signed entry (`first_signed`), which pins it through the chain.
pub fn legacy_unsigned(seq: u64, signed_from_start: bool, first_signed: Option<u64>) -> bool {
    !signed_from_start && first_signed.is_none_or(|first| seq < first)
}

/// The stored form of an entry: pretty JSON and a final line feed.
pub fn encode(entry: &Entry) -> Result<Vec<u8>, JournalError> {
    let mut bytes = serde_json::to_vec_pretty(entry).map_err(JournalError::Encode)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// A problem found while checking a journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainProblem {
    pub key: String,
    pub message: String,
}

/// A journal read back and checked: every entry's digest by sequence number, and what is wrong.
#[derive(Debug, Default)]
pub struct CheckedChain {
    pub entries: Vec<(Entry, Sha256Digest)>,
    pub problems: Vec<ChainProblem>,
}

impl CheckedChain {
    pub fn head(&self) -> Option<Head> {
        self.entries.last().map(|(e, d)| Head {
            seq: e.seq,
            sha256: *d,
        })
    }

    /// The digest of entry `seq`, if it was read.
    pub fn digest_of(&self, seq: u64) -> Option<Sha256Digest> {
        self.entries
            .iter()
            .find(|(e, _)| e.seq == seq)
            .map(|(_, d)| *d)
    }
}

/// Reads and checks a case's whole journal: contiguous sequence numbers from 1, each entry's
/// `seq` matching its name, each `prev_sha256` the digest of the entry before.
pub fn check_chain(store: &dyn Store, case: &CaseId) -> Result<CheckedChain, StoreError> {
    let (seqs, strays) = store.list_journal(case)?;
    Ok(check_entries(case, seqs, strays, |key| store.get(key)))
}

/// `check_chain` over entries read by `read`: for a caller that needs each entry's bytes once
/// for more than the chain (the spool hashes them once, for the chain and the upload alike).
pub fn check_entries(
    case: &CaseId,
    seqs: Vec<u64>,
    strays: Vec<String>,
    mut read: impl FnMut(&StoreKey) -> Result<Vec<u8>, StoreError>,
) -> CheckedChain {
    let mut chain = CheckedChain::default();
    for name in strays {
        chain.problems.push(ChainProblem {
            key: format!("cases/{case}/journal/{name}"),
            message: "unexpected file in the journal".into(),
        });
    }
    if seqs.is_empty() {
        chain.problems.push(ChainProblem {
            key: format!("cases/{case}/journal/"),
            message: "the journal has no entries".into(),
        });
    }
    let mut prev: Option<Sha256Digest> = None;
    let mut expected = 1u64;
    for seq in seqs {
        let key = StoreKey::JournalEntry(case.clone(), seq);
        let name = key.path();
        let mut problem = |message: String| {
            chain.problems.push(ChainProblem {
                key: name.clone(),
                message,
            })
        };
        if seq != expected {
            problem(format!(
                "entry {expected} is missing (next entry found is {seq})"
            ));
            prev = None;
        }
        expected = seq + 1;
        let bytes = match read(&key) {
            Ok(b) => b,
            Err(e) => {
                problem(e.to_string());
                prev = None;
                continue;
            }
        };
        let digest = Sha256Digest::of(&bytes);
        match serde_json::from_slice::<Entry>(&bytes) {
            Ok(entry) => {
                if entry.seq != seq {
                    problem(format!(
                        "entry says seq {} but is stored as {seq}",
                        entry.seq
                    ));
                }
                if seq == 1 && entry.prev_sha256.is_some() {
                    problem("the first entry names a previous entry".into());
                }
                if let (Some(want), true) = (prev, seq > 1) {
                    if entry.prev_sha256 != Some(want) {
                        problem(format!(
                            "chain broken: prev_sha256 is {} but the previous entry's SHA-256 is {want}",
                            entry.prev_sha256.map_or("null".into(), |d| d.to_hex())
                        ));
                    }
                }
                chain.entries.push((entry, digest));
            }
            Err(e) => problem(format!("not a journal entry: {e}")),
        }
        prev = Some(digest);
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;

    fn captured(bytes: u64) -> Details {
        Details::SourceCaptured(super::super::entry::SourceCaptured {
            bag_path: "data/logs/01-x.log".into(),
            bytes,
            sha256: Sha256Digest::of(b"x"),
            sha512: "00".into(),
            source: "x.log".into(),
        })
    }

    fn failed() -> Details {
        Details::CollectionFailed(super::super::entry::CollectionFailed { error: "e".into() })
    }

    #[test]
    fn appends_chain_and_a_changed_entry_breaks_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path(), true).unwrap();
        let case = CaseId::new("c1").unwrap();
        let key = SigningKey::generate();
        let mut j = Journal::new_case(&store, case.clone(), &key);
        j.append("alice", failed()).unwrap();
        j.append("custody", captured(1)).unwrap();
        let head = j.append("custody", failed()).unwrap();
        let chain = check_chain(&store, &case).unwrap();
        assert!(chain.problems.is_empty(), "{:?}", chain.problems);
        assert_eq!(chain.head(), Some(head));
        // Each entry is signed over its exact bytes, and the key is published.
        for seq in 1..=3 {
            let entry = store
                .get(&StoreKey::JournalEntry(case.clone(), seq))
                .unwrap();
            let sig = store
                .get(&StoreKey::JournalSignature(case.clone(), seq))
                .unwrap();
            assert!(key.public().verify(&entry, &sig), "entry {seq}");
        }
        let published = crate::store::published::published(&store).unwrap();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].id(), key.public().id());
        assert!(legacy_unsigned(1, false, None));
        assert!(legacy_unsigned(1, false, Some(2)));
        assert!(!legacy_unsigned(3, false, Some(2)));
        assert!(!legacy_unsigned(1, true, None));

        // Rewrite entry 2 (as an attacker with write access would) and the chain breaks at 3.
        let path = store
            .root()
            .join(StoreKey::JournalEntry(case.clone(), 2).path());
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&path, perms).unwrap();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"bytes\": 1", "\"bytes\": 2");
        std::fs::write(&path, text).unwrap();
        let chain = check_chain(&store, &case).unwrap();
        assert_eq!(chain.problems.len(), 1, "{:?}", chain.problems);
        assert!(chain.problems[0].key.ends_with("0000000003.json"));
        assert!(chain.problems[0].message.contains("chain broken"));
    }

    /// A store whose writes land but are answered "already exists", as an S3 PUT is when the
    /// SDK's retry of a PUT that landed meets `If-None-Match: *`.
    struct LostAnswers(LocalStore);

    impl Store for LostAnswers {
        fn uri(&self) -> String {
            self.0.uri()
        }
        fn object_uri(&self, key: &StoreKey) -> String {
            self.0.object_uri(key)
        }
        fn staging_dir(&self) -> &std::path::Path {
            self.0.staging_dir()
        }
        fn put_new(
            &self,
            key: &StoreKey,
            bytes: &[u8],
        ) -> Result<crate::store::Receipt, StoreError> {
            self.0.put_new(key, bytes)?;
            Err(StoreError::AlreadyExists {
                uri: self.object_uri(key),
            })
        }
        fn put_new_file(
            &self,
            key: &StoreKey,
            staged: crate::store::StagedFile,
        ) -> Result<crate::store::Receipt, StoreError> {
            self.0.put_new_file(key, staged)
        }
        fn get(&self, key: &StoreKey) -> Result<Vec<u8>, StoreError> {
            self.0.get(key)
        }
        fn open(&self, key: &StoreKey) -> Result<Box<dyn std::io::Read + Send>, StoreError> {
            self.0.open(key)
        }
        fn exists(&self, key: &StoreKey) -> Result<bool, StoreError> {
            self.0.exists(key)
        }
        fn list(&self, prefix: &crate::store::StorePrefix) -> Result<Vec<String>, StoreError> {
            self.0.list(prefix)
        }
    }

    #[test]
    fn an_append_whose_answer_was_lost_is_its_own_and_another_writers_entry_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = LostAnswers(LocalStore::open(dir.path(), true).unwrap());
        let case = CaseId::new("c1").unwrap();
        let key = SigningKey::generate();
        let mut j = Journal::new_case(&store, case.clone(), &key);
        // Landed, answered 412: the entry there has this append's bytes, so it is appended.
        let head = j.append("custody", failed()).unwrap();
        assert_eq!(head.seq, 1);
        let entry = store
            .0
            .get(&StoreKey::JournalEntry(case.clone(), 1))
            .unwrap();
        let sig = store
            .0
            .get(&StoreKey::JournalSignature(case.clone(), 1))
            .unwrap();
        assert!(key.public().verify(&entry, &sig));
        let chain = check_chain(&store.0, &case).unwrap();
        assert_eq!(chain.head(), Some(head));
        // Another writer's entry 2 is not taken for this one's.
        let mut other = Journal::resume(&store.0, case.clone(), head, &key);
        other.append("other", captured(7)).unwrap();
        let err = j.append("custody", failed()).unwrap_err();
        assert!(
            matches!(
                err,
                JournalError::Append {
                    source: StoreError::AlreadyExists { .. },
                    ..
                }
            ),
            "{err}"
        );
    }
}
