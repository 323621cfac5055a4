//! The signatures of a case's journal entries (`journal/<seq>.json.sig`, raw Ed25519 by the
//! writer's collector key over the entry's exact bytes), checked against the auditor's key or,
//! without one, the store's own `keys/`; and which entries must be signed.
//!
//! The rule (docs/EVIDENCE_FORMAT.md): a case is *signed* when its first entry has a signature
//! or one of its seals says `journal_signed`; then every entry must be signed. Otherwise the
//! entries before the first signed one are legacy (written by a version that did not sign, or
//! before an upgrade in the middle of the case) and are reported as a warning, and every entry
//! from the first signed one on must be signed. Removing every signature of a case therefore
//! fails as soon as it is sealed (its seal, itself signed, says `journal_signed`); an unsealed
//! case has nothing signed to say so, which the docs state as a limit.

use std::collections::BTreeSet;

use super::{Options, Report};
use crate::case::CheckedChain;
use crate::digest::Sha256Digest;
use crate::id::CaseId;
use crate::keys::{self, PublicKey};
use crate::store::layout::journal_signatures;
use crate::store::{Store, StoreError, StoreKey, StorePrefix};

/// A signature that does not verify, or that no key known to the check made.
pub const INVALID: &str = "journal_signature_invalid";
/// An entry without a signature in a case whose entries are signed.
pub const UNSIGNED: &str = "journal_entry_unsigned";

/// Checks the signature of every entry in `chain` (the case's journal, read and checked).
pub(super) fn check_entry_signatures(
    store: &dyn Store,
    case: &CaseId,
    chain: &CheckedChain,
    options: &Options,
    report: &mut Report,
) -> Result<(), StoreError> {
    let names = match store.list(&StorePrefix::Journal(case.clone())) {
        Ok(names) => names,
        // A linked journal directory is reported by the chain's check, and read as empty.
        Err(StoreError::Symlink(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let signed: BTreeSet<u64> = journal_signatures(&names).into_iter().collect();
    let held: BTreeSet<u64> = chain.entries.iter().map(|(e, _)| e.seq).collect();
    for seq in signed.difference(&held) {
        report.problem(
            INVALID,
            StoreKey::JournalSignature(case.clone(), *seq).path(),
            "the signature of a journal entry the journal does not hold",
        );
    }
    let strict = signed.contains(&1) || crate::seal::journal_signed(store, case)?;
    let first_signed = signed.intersection(&held).next().copied();
    let (keys, trusted) = match &options.public_key {
        Some(key) => (vec![key.clone()], true),
        None => (crate::store::published::published(store)?, false),
    };
    let mut legacy = Vec::new();
    let mut checked = 0usize;
    for (entry, digest) in &chain.entries {
        let seq = entry.seq;
        let subject = StoreKey::JournalSignature(case.clone(), seq).path();
        if !signed.contains(&seq) {
            if crate::case::journal::legacy_unsigned(seq, strict, first_signed) {
                legacy.push(seq);
            } else {
                report.problem(
                    UNSIGNED,
                    StoreKey::JournalEntry(case.clone(), seq).path(),
                    unsigned_why(strict),
                );
            }
            continue;
        }
        checked += 1;
        if let Some(message) = check_one(store, case, seq, digest, &keys, trusted)? {
            report.problem(INVALID, subject, message);
        }
    }
    if !legacy.is_empty() {
        report
            .warnings
            .push(legacy_warning(case, &legacy, chain.entries.len()));
    }
    let untrusted = "journal entry signatures were checked against the store's own keys/, which were not independently trusted: pass --public-key with the collector's key from a trusted source";
    if checked > 0 && !trusted && !report.warnings.iter().any(|w| w == untrusted) {
        report.warnings.push(untrusted.into());
    }
    Ok(())
}

/// Why an unsigned entry is a problem.
fn unsigned_why(strict: bool) -> &'static str {
    if strict {
        "the entry has no signature, but the case's journal is signed from its first entry (or its seal says so): a signature was removed"
    } else {
        "the entry has no signature, but an earlier entry of the case is signed: a signature was removed"
    }
}

/// The one warning for a case's legacy entries.
fn legacy_warning(case: &CaseId, legacy: &[u64], entries: usize) -> String {
    if legacy.len() == entries {
        format!("legacy: the journal entries of case {case} are not signed (written by a version before journal entries were signed); the hash chain and the signed seals still hold them")
    } else {
        format!(
            "legacy: journal entries {}–{} of case {case} are not signed (written before the version that signs them); the signed entries after them pin them through the hash chain",
            legacy[0],
            legacy[legacy.len() - 1]
        )
    }
}

/// What is wrong with entry `seq`'s signature, if anything. The entry is read again and must be
/// the one the chain was checked with (`digest`).
fn check_one(
    store: &dyn Store,
    case: &CaseId,
    seq: u64,
    digest: &Sha256Digest,
    keys: &[PublicKey],
    trusted: bool,
) -> Result<Option<String>, StoreError> {
    let read = |key: StoreKey| match store.get(&key) {
        Ok(bytes) => Ok(Ok(bytes)),
        Err(
            e @ (StoreError::NotFound { .. } | StoreError::Symlink(_) | StoreError::Read { .. }),
        ) => Ok(Err(e.to_string())),
        Err(e) => Err(e),
    };
    let entry = match read(StoreKey::JournalEntry(case.clone(), seq))? {
        Ok(bytes) if Sha256Digest::of(&bytes) == *digest => bytes,
        Ok(_) => return Ok(Some("the entry changed while it was verified".into())),
        Err(e) => return Ok(Some(e)),
    };
    let signature = match read(StoreKey::JournalSignature(case.clone(), seq))? {
        Ok(bytes) => bytes,
        Err(e) => return Ok(Some(e)),
    };
    if keys::signer(keys, &entry, &signature).is_some() {
        return Ok(None);
    }
    Ok(Some(match (trusted, keys) {
        (true, [key]) => format!(
            "the signature does not verify over the entry under the given key {}",
            key.id()
        ),
        (_, []) => "the signature cannot be checked: the store's keys/ holds no key".into(),
        _ => {
            "the signature does not verify over the entry under any key in the store's keys/".into()
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{check_chain, Details, Journal};
    use crate::keys::SigningKey;
    use crate::store::LocalStore;

    fn failed() -> Details {
        Details::CollectionFailed(crate::case::entry::CollectionFailed { error: "e".into() })
    }

    fn writable(path: &std::path::Path) {
        let mut perms = std::fs::metadata(path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(path, perms).unwrap();
    }

    /// A case of three signed entries, and the report of checking it with `options`.
    fn case_of_three(meddle: impl FnOnce(&LocalStore, &CaseId)) -> (Report, CaseId) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path(), true).unwrap();
        let case = CaseId::new("c1").unwrap();
        let key = SigningKey::generate();
        let mut j = Journal::new_case(&store, case.clone(), &key);
        for _ in 0..3 {
            j.append("custody", failed()).unwrap();
        }
        meddle(&store, &case);
        let chain = check_chain(&store, &case).unwrap();
        let mut report = Report::default();
        check_entry_signatures(&store, &case, &chain, &Options::default(), &mut report).unwrap();
        (report, case)
    }

    fn codes(report: &Report) -> Vec<(&'static str, String)> {
        report
            .problems
            .iter()
            .map(|p| (p.code, p.subject.clone()))
            .collect()
    }

    #[test]
    fn every_entry_signed_verifies_with_the_untrusted_warning() {
        let (report, _) = case_of_three(|_, _| {});
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert!(report.warnings[0].contains("not independently trusted"));
    }

    #[test]
    fn a_removed_or_changed_signature_is_a_problem() {
        let (report, case) = case_of_three(|store, case| {
            std::fs::remove_file(
                store
                    .root()
                    .join(StoreKey::JournalSignature(case.clone(), 2).path()),
            )
            .unwrap();
        });
        assert_eq!(
            codes(&report),
            vec![(UNSIGNED, StoreKey::JournalEntry(case, 2).path())]
        );
        let (report, case) = case_of_three(|store, case| {
            let path = store
                .root()
                .join(StoreKey::JournalSignature(case.clone(), 3).path());
            writable(&path);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[10] ^= 1;
            std::fs::write(&path, bytes).unwrap();
        });
        assert_eq!(
            codes(&report),
            vec![(INVALID, StoreKey::JournalSignature(case, 3).path())]
        );
    }

    #[test]
    fn removing_the_first_signature_makes_the_rest_required() {
        // Entry 1 unsigned, 2 and 3 signed: 1 is legacy (it is pinned by 2's signed chain link).
        let (report, _) = case_of_three(|store, case| {
            std::fs::remove_file(
                store
                    .root()
                    .join(StoreKey::JournalSignature(case.clone(), 1).path()),
            )
            .unwrap();
        });
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report
            .warnings
            .iter()
            .any(|w| w.starts_with("legacy: journal entries 1–1")));
        // Entries 1 and 3 unsigned: 3 follows a signed entry.
        let (report, case) = case_of_three(|store, case| {
            for seq in [1, 3] {
                std::fs::remove_file(
                    store
                        .root()
                        .join(StoreKey::JournalSignature(case.clone(), seq).path()),
                )
                .unwrap();
            }
        });
        assert_eq!(
            codes(&report),
            vec![(UNSIGNED, StoreKey::JournalEntry(case, 3).path())]
        );
    }

    #[test]
    fn a_case_with_no_signature_is_legacy_and_an_orphan_signature_is_a_problem() {
        let (report, _) = case_of_three(|store, case| {
            for seq in 1..=3 {
                std::fs::remove_file(
                    store
                        .root()
                        .join(StoreKey::JournalSignature(case.clone(), seq).path()),
                )
                .unwrap();
            }
        });
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.warnings.len(), 1);
        assert!(report.warnings[0].starts_with("legacy: the journal entries of case c1"));
        let (report, case) = case_of_three(|store, case| {
            store
                .put_new(&StoreKey::JournalSignature(case.clone(), 9), &[0; 64])
                .unwrap();
        });
        assert_eq!(
            codes(&report),
            vec![(INVALID, StoreKey::JournalSignature(case, 9).path())]
        );
    }

    #[test]
    fn with_the_auditors_key_only_that_key_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path(), true).unwrap();
        let case = CaseId::new("c1").unwrap();
        let key = SigningKey::generate();
        Journal::new_case(&store, case.clone(), &key)
            .append("custody", failed())
            .unwrap();
        let chain = check_chain(&store, &case).unwrap();
        for (given, problems) in [
            (key.public().clone(), 0),
            (SigningKey::generate().public().clone(), 1),
        ] {
            let options = Options {
                public_key: Some(given),
                ..Options::default()
            };
            let mut report = Report::default();
            check_entry_signatures(&store, &case, &chain, &options, &mut report).unwrap();
            assert_eq!(report.problems.len(), problems, "{:?}", report.problems);
            assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        }
    }
}
