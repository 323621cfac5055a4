//! `verify`'s check of a case's journal entry signatures: `crate::journal_signatures`, whose
//! findings are the report's problems and warnings.

use super::{Options, Report};
use crate::case::CheckedChain;
use crate::id::CaseId;
use crate::store::{Store, StoreError};

/// Checks the signature of every entry in `chain` (the case's journal, read and checked).
pub(super) fn check_entry_signatures(
    store: &dyn Store,
    case: &CaseId,
    chain: &CheckedChain,
    options: &Options,
    report: &mut Report,
) -> Result<(), StoreError> {
    let found = crate::journal_signatures::check(store, case, chain, options.public_key.as_ref())?;
    for p in found.problems {
        report.problem(p.code, p.subject, p.message);
    }
    for w in found.warnings {
        if !report.warnings.contains(&w) {
            report.warnings.push(w);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{check_chain, Details, Journal};
    use crate::journal_signatures::{INVALID, UNSIGNED};
    use crate::keys::SigningKey;
    use crate::store::LocalStore;
    use crate::store::StoreKey;

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
