use std::collections::BTreeMap;

use super::*;
use crate::digest::Sha256Digest;
use crate::id::BundleId;
use crate::plan::document::{JournalHead, PinnedBundle, Preconditions, StepDetail};

fn step(kind: StepKind, target: &str, status: StepStatus) -> Step {
    Step {
        number: 1,
        kind,
        target: target.into(),
        namespace: "shop".into(),
        status,
        refusals: vec!["a reason".into()],
        warnings: Vec::new(),
        read: Vec::new(),
        changes: Vec::new(),
        preconditions: Preconditions {
            network_policies: BTreeMap::from([("web".into(), "4".into())]),
            ..Default::default()
        },
        detail: StepDetail::BlockIps {
            method: "networkpolicy".into(),
            addresses: Vec::new(),
            owners: BTreeMap::new(),
        },
    }
}

#[test]
fn steps_are_matched_by_kind_and_target_and_each_difference_named() {
    let planned = vec![
        step(StepKind::BlockIps, "web", StepStatus::Planned),
        step(StepKind::BlockIps, "api", StepStatus::Planned),
    ];
    // The same steps in another order: not stale.
    let swapped = vec![planned[1].clone(), planned[0].clone()];
    assert_eq!(stale_of(&planned, &swapped), []);

    // One gone, one refused now, and its policy changed.
    let mut refused = step(StepKind::BlockIps, "web", StepStatus::Refused);
    refused
        .preconditions
        .network_policies
        .insert("web".into(), "5".into());
    let stale = stale_of(&planned, &[refused]);
    assert_eq!(stale.len(), 2, "{stale:?}");
    assert_eq!(stale[0].target, "web");
    assert!(stale[0]
        .changes
        .iter()
        .any(|l| l.contains("NetworkPolicy web")));
    assert!(stale[0]
        .changes
        .iter()
        .any(|l| l == "the step would be refused now: a reason"));
    assert_eq!(stale[1].target, "api");
    assert!(stale[1].changes[0].contains("no longer planned"));

    // A step planned as refused and still refused is not stale by that alone.
    let was_refused = vec![step(StepKind::BlockIps, "web", StepStatus::Refused)];
    assert_eq!(stale_of(&was_refused, &was_refused), []);
    // Another kind for the same target is another step.
    let rotate = vec![step(StepKind::RotateSecrets, "web", StepStatus::Planned)];
    assert_eq!(stale_of(&planned[..1], &rotate).len(), 1);
}

fn bundle(n: u8) -> PinnedBundle {
    PinnedBundle {
        bundle: BundleId::new(format!("20261202-0400{n:02}-0000000{n}")).expect("id"),
        archive_sha256: Sha256Digest::from_bytes([n; 32]),
    }
}

fn pinned(bundles: Vec<PinnedBundle>) -> PinnedEvidence {
    PinnedEvidence {
        bundles,
        journal_head: JournalHead {
            seq: 4,
            sha256: Sha256Digest::from_bytes([9; 32]),
        },
    }
}

#[test]
fn only_the_pinned_bundles_are_planned_from_and_each_must_be_sealed_as_pinned() {
    let all = Evidence {
        pinned: pinned(vec![bundle(1), bundle(2)]),
        suspicious: vec![
            (bundle(1).bundle.to_string(), Vec::new()),
            (bundle(2).bundle.to_string(), Vec::new()),
        ],
    };
    let plan = pinned(vec![bundle(1)]);
    let got = pinned_evidence(&plan, &all).expect("pinned");
    assert_eq!(got.suspicious.len(), 1);
    assert_eq!(got.suspicious[0].0, bundle(1).bundle.to_string());
    assert_eq!(got.pinned.journal_head.seq, 4);

    let mut other = bundle(1);
    other.archive_sha256 = Sha256Digest::from_bytes([7; 32]);
    let err = pinned_evidence(&pinned(vec![other]), &all).unwrap_err();
    assert!(err.to_string().contains("but the plan pins"), "{err}");
    let err = pinned_evidence(&pinned(vec![bundle(3)]), &all).unwrap_err();
    assert!(err.to_string().contains("not sealed"), "{err}");
    assert!(pinned_evidence(&pinned(Vec::new()), &all).is_err());
}
