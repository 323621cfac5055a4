//! Case summaries from hand-built journals: the state names, the trigger, bundles, findings,
//! failures, the timeline, and a journal that does not check.

use super::*;
use crate::case::entry::{
    BundleSealed, CaseOpened, CollectionFailed, Entry, ObjectsStored, SealRef, SealedArchiveRef,
    SuspiciousClient, TriggerDetails,
};
use crate::case::{ChainProblem, Trigger};

fn entry(seq: u64, details: Details) -> (Entry, Sha256Digest) {
    let e = Entry {
        seq,
        prev_sha256: None,
        at: format!("2026-12-01T00:00:{seq:02}Z"),
        actor: "custody".into(),
        details,
    };
    (e, Sha256Digest::of(&seq.to_be_bytes()))
}

fn opened(kind: &str, alert: Option<serde_json::Value>) -> Details {
    Details::CaseOpened(CaseOpened {
        case_header_sha256: Sha256Digest::of(b"h"),
        trigger: Trigger {
            kind: kind.into(),
            requested_by: "alice".into(),
        },
        trigger_details: alert.map(|a| TriggerDetails {
            alert: Some(a),
            ..TriggerDetails::default()
        }),
    })
}

fn sealed(bundle: &str) -> Details {
    Details::BundleSealed(BundleSealed {
        archive: SealedArchiveRef {
            sha256: Sha256Digest::of(b"a"),
            size: 42,
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

fn findings(bundle: &str, ips: &[&str]) -> Details {
    Details::Findings(Findings {
        auth_failures: Default::default(),
        bundle_id: BundleId::new(bundle).unwrap(),
        complete: true,
        failures: Vec::new(),
        lines: 3,
        suspicious: ips
            .iter()
            .map(|ip| SuspiciousClient {
                auth_failures: 9,
                ip: (*ip).into(),
                pods: Vec::new(),
                rule: "auth-failures".into(),
            })
            .collect(),
    })
}

fn chain(details: Vec<Details>) -> CheckedChain {
    CheckedChain {
        entries: details
            .into_iter()
            .enumerate()
            .map(|(i, d)| entry(i as u64 + 1, d))
            .collect(),
        problems: Vec::new(),
    }
}

fn case() -> CaseId {
    CaseId::new("20261201-000000-abcdef01").unwrap()
}

#[test]
fn a_cli_case_is_sealed_with_its_bundle_and_no_findings() {
    let c = chain(vec![
        opened("cli", None),
        Details::SourceFailed(crate::source::failure("shrank", "a.log", "it shrank")),
        sealed("b-1"),
    ]);
    let s = of_chain(&case(), &c, false);
    assert_eq!(s.state, "sealed");
    assert!(s.ok());
    assert_eq!(s.suspicious(), None);
    assert_eq!(s.bundles.len(), 1);
    assert_eq!(s.bundles[0].seq, 3);
    assert_eq!(s.bundles[0].archive_size, 42);
    assert_eq!(s.failures.len(), 1);
    assert_eq!(s.failures[0].kind, EntryKind::SourceFailed);
    assert_eq!(s.failures[0].bundle_id.as_ref().unwrap().as_str(), "b-1");
    assert!(s.failures[0].message.contains("it shrank"));
    let t = s.trigger.unwrap();
    assert_eq!((t.kind.as_str(), t.requested_by.as_str()), ("cli", "alice"));
    assert_eq!(s.timeline.len(), 3);
    assert!(s.timeline[2].summary.starts_with("sealed bundle b-1"));
    // On S3, a CLI case is stored once its objects are recorded.
    assert_eq!(of_chain(&case(), &c, true).state, "storing");
    let mut stored = c;
    stored.entries.push(entry(
        4,
        Details::ObjectsStored(ObjectsStored {
            objects: Vec::new(),
        }),
    ));
    assert_eq!(of_chain(&case(), &stored, true).state, "sealed");
}

#[test]
fn an_alert_case_names_its_alert_and_counts_the_last_findings() {
    let alert = serde_json::json!({"labels": {"alertname": "WaqitiSecurityBreachDetected"}});
    let mut c = chain(vec![
        opened("alert", Some(alert)),
        sealed("b-1"),
        findings("b-1", &["203.0.113.9", "198.51.100.7"]),
    ]);
    let s = of_chain(&case(), &c, false);
    assert_eq!(s.state, "sealed");
    assert_eq!(s.suspicious(), Some(2));
    assert_eq!(
        s.trigger.unwrap().alert.as_deref(),
        Some("WaqitiSecurityBreachDetected")
    );
    assert!(s.timeline[0]
        .summary
        .contains("WaqitiSecurityBreachDetected"));
    assert!(s.timeline[2].summary.contains("2 suspicious clients"));
    // Sealed without findings yet, the daemon's case is still storing.
    c.entries.pop();
    assert_eq!(of_chain(&case(), &c, false).state, "storing");
    c.entries.push(entry(
        3,
        Details::AlertResolved(crate::case::entry::AlertResolved::default()),
    ));
    assert!(of_chain(&case(), &c, false).alert_resolved);
}

#[test]
fn a_failed_collection_is_failed_with_its_error() {
    let c = chain(vec![
        opened("api", None),
        Details::CollectionFailed(CollectionFailed {
            error: "no pods".into(),
        }),
    ]);
    let s = of_chain(&case(), &c, false);
    assert_eq!(s.state, "failed");
    assert_eq!(s.failures.len(), 1);
    assert_eq!(s.failures[0].kind, EntryKind::CollectionFailed);
    assert_eq!(s.failures[0].message, "no pods");
    assert!(s.bundles.is_empty());
}

#[test]
fn a_journal_that_does_not_check_keeps_its_problems() {
    let mut c = chain(vec![opened("cli", None), sealed("b-1")]);
    c.problems.push(ChainProblem {
        key: "cases/x/journal/0000000002.json".into(),
        message: "prev_sha256 does not match".into(),
    });
    let s = of_chain(&case(), &c, false);
    assert!(!s.ok());
    assert_eq!(s.problems[0].message, "prev_sha256 does not match");
    // No entry 1 at all is a problem too.
    let empty = of_chain(&case(), &CheckedChain::default(), false);
    assert!(!empty.ok());
    assert_eq!(empty.trigger, None);
    assert_eq!(empty.state, "collecting");
}

#[test]
fn an_unreadable_journal_is_summarised_with_its_error() {
    let store = tempfile::tempdir().unwrap();
    let local = crate::store::LocalStore::open(store.path(), true).unwrap();
    let s = summarize(&local, &case());
    assert!(!s.ok());
    assert_eq!(s.journal_entries, 0);
}
