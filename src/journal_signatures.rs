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

/// One entry whose signature is wrong or missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryProblem {
    /// `journal_signature_invalid` or `journal_entry_unsigned`.
    pub code: &'static str,
    pub subject: String,
    pub message: String,
}

/// What the check of a case's entry signatures found.
#[derive(Clone, Debug, Default)]
pub struct EntrySignatures {
    pub problems: Vec<EntryProblem>,
    /// The warnings: legacy entries, and keys that were not independently trusted.
    pub warnings: Vec<String>,
}

impl EntrySignatures {
    fn problem(&mut self, code: &'static str, subject: String, message: impl Into<String>) {
        self.problems.push(EntryProblem {
            code,
            subject,
            message: message.into(),
        });
    }
}

/// The warning when the keys checked against were the store's own.
pub const UNTRUSTED: &str = "journal entry signatures were checked against the store's own keys/, which were not independently trusted: pass --public-key with the collector's key from a trusted source";

/// Checks the signature of every entry in `chain` (the case's journal, read and checked)
/// against `trusted` (the only key that counts), or without it the store's published keys.
pub fn check(
    store: &dyn Store,
    case: &CaseId,
    chain: &CheckedChain,
    trusted_key: Option<&PublicKey>,
) -> Result<EntrySignatures, StoreError> {
    let mut report = EntrySignatures::default();
    let names = match store.list(&StorePrefix::Journal(case.clone())) {
        Ok(names) => names,
        // A linked journal directory is reported by the chain's check, and read as empty.
        Err(StoreError::Symlink(_)) => return Ok(report),
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
    let (keys, trusted) = match trusted_key {
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
    if checked > 0 && !trusted {
        report.warnings.push(UNTRUSTED.into());
    }
    Ok(report)
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
