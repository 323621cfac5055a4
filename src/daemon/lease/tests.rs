//! The claim over a local store: taken, refused while held, lapsed, taken over, renewed, lost,
//! given up, raced for; and a collection under a lost claim writes nothing more of its case.

use std::sync::{Arc, Barrier};

use super::*;
use crate::store::local::LocalStore;

const T0: u64 = 1_000_000;

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path(), true).unwrap();
    (dir, store)
}

fn case() -> CaseId {
    CaseId::new("20261126-145448-00000001").unwrap()
}

#[test]
fn a_claim_is_taken_once_and_refused_to_others_while_it_holds() {
    let (_d, s) = store();
    let a = Claim::take_at(&s, &case(), "a", 60, T0).unwrap();
    assert_eq!((a.generation, a.expires_at), (1, T0 + 60));
    let record = latest(&s, &case()).unwrap().unwrap();
    assert_eq!((record.holder.as_str(), record.generation), ("a", 1));
    match Claim::take_at(&s, &case(), "b", 60, T0 + 59) {
        Err(LeaseError::Busy {
            holder, expires_at, ..
        }) => assert_eq!((holder.as_str(), expires_at), ("a", T0 + 60)),
        other => panic!("{other:?}"),
    }
    // The record is where the layout says.
    assert!(s.root().join(StoreKey::Lease(case(), 1).path()).is_file());
}

#[test]
fn an_expired_claim_is_taken_over_and_its_holder_loses_it() {
    let (_d, s) = store();
    let mut a = Claim::take_at(&s, &case(), "a", 60, T0).unwrap();
    let b = Claim::take_at(&s, &case(), "b", 60, T0 + 60).unwrap();
    assert_eq!((b.generation, b.expires_at), (2, T0 + 120));
    match a.renew_at(&s, 60, T0 + 61) {
        Err(LeaseError::Lost { holder, .. }) => assert_eq!(holder, "b"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_renewed_claim_holds_past_its_first_expiry() {
    let (_d, s) = store();
    let mut a = Claim::take_at(&s, &case(), "a", 60, T0).unwrap();
    a.renew_at(&s, 60, T0 + 20).unwrap();
    assert_eq!((a.generation, a.expires_at), (2, T0 + 80));
    assert!(matches!(
        Claim::take_at(&s, &case(), "b", 60, T0 + 70),
        Err(LeaseError::Busy { .. })
    ));
}

#[test]
fn the_same_replica_restarted_takes_its_claim_back_at_once() {
    let (_d, s) = store();
    Claim::take_at(&s, &case(), "a", 60, T0).unwrap();
    let again = Claim::take_at(&s, &case(), "a", 60, T0 + 1).unwrap();
    assert_eq!(again.generation, 2);
}

#[test]
fn a_released_claim_is_free_at_once() {
    let (_d, s) = store();
    let a = Claim::take_at(&s, &case(), "a", 60, T0).unwrap();
    a.release(&s).unwrap();
    let b = Claim::take_at(&s, &case(), "b", 60, T0 + 1).unwrap();
    assert_eq!(b.generation, 3);
}

#[test]
fn a_record_that_is_not_a_claim_is_an_error_not_a_free_case() {
    let (_d, s) = store();
    s.put_new(&StoreKey::Lease(case(), 1), b"{}").unwrap();
    assert!(matches!(
        Claim::take_at(&s, &case(), "a", 60, T0),
        Err(LeaseError::Corrupt { .. })
    ));
}

#[test]
fn of_replicas_racing_for_a_case_exactly_one_wins() {
    let (_d, s) = store();
    let s = Arc::new(s);
    let start = Arc::new(Barrier::new(8));
    let takers: Vec<_> = (0..8)
        .map(|i| {
            let (s, start) = (s.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                Claim::take_at(s.as_ref(), &case(), &format!("r{i}"), 60, T0)
            })
        })
        .collect();
    let results: Vec<_> = takers.into_iter().map(|t| t.join().unwrap()).collect();
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, LeaseError::Busy { .. }), "{e:?}");
        }
    }
    assert_eq!(
        latest(s.as_ref(), &case()).unwrap().unwrap().holder,
        won[0].holder
    );
}

#[test]
fn a_daemon_runs_one_collection_of_a_case_at_a_time_and_gives_the_claim_up() {
    let (_d, s) = store();
    let leases = Leases::new("a".into());
    leases
        .hold(&s, &case(), |_| {
            assert!(matches!(
                leases.hold(&s, &case(), |_| ()),
                Err(LeaseError::Busy { .. })
            ));
        })
        .unwrap();
    let last = latest(&s, &case()).unwrap().unwrap();
    assert_eq!((last.holder.as_str(), last.expires_at), ("a", 0));
    Claim::take(&s, &case(), "b", TTL).unwrap();
}

// A replica whose claim was taken over must not journal between the new holder's journal head
// and its seal: every write of the case is refused until the archive is stored.
#[test]
fn a_collection_that_lost_its_claim_writes_nothing_more_of_its_case() {
    let (_d, s) = store();
    let leases = Leases::new("a".into());
    let entry = StoreKey::JournalEntry(case(), 1);
    let other = StoreKey::JournalEntry(CaseId::new("20261126-145448-00000002").unwrap(), 1);
    let archive = StoreKey::Archive(
        case(),
        crate::id::BundleId::new("20261126-145448-0000000b").unwrap(),
    );
    leases
        .hold(&s, &case(), |held| {
            held.put_new(&entry, b"1").unwrap();
            // Another replica takes the case over (from its clock, the claim has lapsed).
            Claim::take_at(&s, &case(), "b", 60, now() + 3600).unwrap();
            assert!(held.put_new(&archive, b"x").is_err());
            assert!(held.lost());
            assert!(held
                .put_new(&StoreKey::JournalEntry(case(), 2), b"2")
                .is_err());
            held.put_new(&other, b"1").unwrap();
        })
        .unwrap();
    assert!(!s.exists(&archive).unwrap());
    // Not given up: it was not this replica's to give.
    assert_eq!(latest(&s, &case()).unwrap().unwrap().holder, "b");
}

#[test]
fn once_the_archive_is_stored_the_seal_and_its_journal_entry_follow() {
    let (_d, s) = store();
    let leases = Leases::new("a".into());
    let archive = StoreKey::Archive(
        case(),
        crate::id::BundleId::new("20261126-145448-0000000b").unwrap(),
    );
    leases
        .hold(&s, &case(), |held| {
            held.put_new(&archive, b"x").unwrap();
            Claim::take_at(&s, &case(), "b", 60, now() + 3600).unwrap();
            held.put_new(&StoreKey::JournalEntry(case(), 1), b"1")
                .unwrap();
            assert!(!held.lost());
        })
        .unwrap();
}

#[test]
fn a_held_claim_is_renewed_every_third_of_its_lifetime() {
    let (_d, s) = store();
    let leases = Leases::with_ttl("a".into(), std::time::Duration::from_secs(3));
    leases
        .hold(&s, &case(), |_| {
            std::thread::sleep(std::time::Duration::from_millis(2300))
        })
        .unwrap();
    // Taken (1), renewed at least once (about twice in 2.3 s; fewer on a loaded machine),
    // given up (last).
    let last = latest(&s, &case()).unwrap().unwrap();
    assert!(last.generation >= 3, "{last:?}");
    assert_eq!(last.expires_at, 0, "given up at the end");
}
