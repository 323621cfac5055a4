//! The case state folded from hand-built journals: each question the daemon and `verify` ask.

use super::*;
use crate::case::entry::{
    AlertResolved as AlertResolvedDetails, CaseOpened, CollectionRestarted, SealRef,
    SealedArchiveRef,
};
use crate::digest::Sha256Digest;
use crate::id::{BundleId, KeyId};

fn entry(seq: u64, details: Details) -> Entry {
    Entry {
        seq,
        prev_sha256: None,
        at: format!("2026-12-01T00:00:{seq:02}Z"),
        actor: "custody".into(),
        details,
    }
}

fn opened(kind: &str) -> Details {
    Details::CaseOpened(CaseOpened {
        case_header_sha256: Sha256Digest::of(b"h"),
        trigger: Trigger {
            kind: kind.into(),
            requested_by: "x".into(),
        },
        trigger_details: Some(TriggerDetails {
            episode: Some("ep".into()),
            ..TriggerDetails::default()
        }),
    })
}

fn failed_source(path: &str) -> Details {
    Details::SourceFailed(crate::source::failure("truncated", path, "cut"))
}

fn sealed(bundle: &str) -> Details {
    Details::BundleSealed(BundleSealed {
        archive: SealedArchiveRef {
            sha256: Sha256Digest::of(b"a"),
            size: 1,
            uri: "file:///a".into(),
            version_id: None,
        },
        bundle_id: BundleId::new(bundle).unwrap(),
        key_id: KeyId::new("0123456789abcdef").unwrap(),
        seal: SealRef {
            sha256: Sha256Digest::of(b"s"),
            uri: "file:///s".into(),
            version_id: None,
        },
    })
}

fn findings(bundle: &str) -> Details {
    Details::Findings(Findings {
        auth_failures: Default::default(),
        bundle_id: BundleId::new(bundle).unwrap(),
        complete: true,
        failures: Vec::new(),
        lines: 3,
        suspicious: Vec::new(),
    })
}

fn restarted() -> Details {
    Details::CollectionRestarted(CollectionRestarted { reason: "r".into() })
}

fn failed() -> Details {
    Details::CollectionFailed(CollectionFailed { error: "e".into() })
}

fn fold(details: Vec<Details>) -> CaseState {
    let entries: Vec<Entry> = details
        .into_iter()
        .enumerate()
        .map(|(i, d)| entry(i as u64 + 1, d))
        .collect();
    CaseState::fold(&entries)
}

const B1: &str = "20261201-000000-00000001";
const B2: &str = "20261201-000000-00000002";

#[test]
fn a_daemon_case_opened_and_not_ended_is_unfinished_with_its_parameters() {
    let s = fold(vec![opened("alert")]);
    assert_eq!(s.status, Status::Open);
    assert_eq!(s.status.api_name(), "collecting");
    let o = s.unfinished().unwrap();
    assert_eq!(o.trigger.kind, "alert");
    assert_eq!(
        o.trigger_details.as_ref().unwrap().episode.as_deref(),
        Some("ep")
    );
    assert!(s.collection_unfinished());
    assert!(!s.collection_over());
    // A CLI case is never the daemon's to finish.
    assert!(fold(vec![opened("cli")]).unfinished().is_none());
    // Any end, even before a restart, makes the case finished for the daemon.
    assert!(fold(vec![opened("api"), failed(), restarted()])
        .unfinished()
        .is_none());
}

#[test]
fn a_sealed_case_stores_then_seals_with_its_findings_and_failures() {
    let s = fold(vec![opened("alert"), failed_source("x"), sealed(B1)]);
    assert_eq!(s.status, Status::Storing);
    assert!(!s.collection_unfinished());
    assert!(!s.collection_over(), "findings not journaled yet");
    let s = fold(vec![
        opened("alert"),
        failed_source("x"),
        sealed(B1),
        findings(B1),
    ]);
    assert_eq!(s.status.api_name(), "sealed");
    assert!(s.collection_over());
    assert_eq!(s.findings.as_ref().unwrap().lines, 3);
    let bundles: Vec<_> = s.bundles().collect();
    assert_eq!(bundles.len(), 1);
    assert_eq!(bundles[0].0, 3);
    match &s.outcomes[0] {
        Outcome::Sealed { failures, .. } => assert_eq!(failures[0].0, 2),
        o => panic!("{o:?}"),
    }
}

#[test]
fn a_restart_supersedes_the_interrupted_attempts_failures() {
    let s = fold(vec![
        opened("alert"),
        failed_source("x"),
        restarted(),
        sealed(B1),
    ]);
    match &s.outcomes[0] {
        Outcome::Sealed { failures, .. } => assert!(failures.is_empty()),
        o => panic!("{o:?}"),
    }
    // A restart after a seal leaves a sealed case sealed, and reopens the collection.
    let s = fold(vec![opened("alert"), sealed(B1), findings(B1), restarted()]);
    assert_eq!(s.status, Status::Sealed);
    assert!(!s.collection_over());
    assert_eq!(s.open_step, Some((4, EntryKind::CollectionRestarted)));
}

#[test]
fn failures_interruptions_and_resolves_are_told_apart() {
    let s = fold(vec![opened("cli"), failed()]);
    assert_eq!(s.status, Status::Failed);
    assert!(s.collection_over());
    let s = fold(vec![
        opened("cli"),
        Details::CollectionInterrupted(CollectionInterrupted {
            bundle_id: None,
            error: "e".into(),
            pid: None,
            signal: Some("SIGINT".into()),
        }),
    ]);
    assert_eq!(s.status, Status::Interrupted);
    assert_eq!(s.status.api_name(), "failed");
    let s = fold(vec![
        opened("alert"),
        sealed(B1),
        findings(B1),
        Details::AlertResolved(AlertResolvedDetails::default()),
        sealed(B2),
    ]);
    assert!(s.alert_resolved);
    assert_eq!(s.bundles().count(), 2);
    assert_eq!(s.entries, 5);
    // Entries after the end change nothing about the collection being over.
    assert!(!s.collection_unfinished());
}

#[test]
fn the_objects_of_the_last_bundle_are_recorded_only_by_an_objects_stored_entry_after_it() {
    let stored = || Details::ObjectsStored(crate::case::entry::ObjectsStored { objects: vec![] });
    // Sealed into the spool: the findings come before the upload's record.
    let s = fold(vec![opened("alert"), sealed(B1), findings(B1)]);
    assert_eq!(s.status, Status::Sealed);
    assert!(!s.stored_recorded);
    let s = fold(vec![opened("alert"), sealed(B1), findings(B1), stored()]);
    assert!(s.stored_recorded);
    // Straight into S3: the record, then the findings.
    let s = fold(vec![opened("alert"), sealed(B1), stored(), findings(B1)]);
    assert!(s.stored_recorded);
    // A record before a later bundle does not cover it.
    let s = fold(vec![opened("alert"), stored(), sealed(B1), findings(B1)]);
    assert!(!s.stored_recorded);
}
