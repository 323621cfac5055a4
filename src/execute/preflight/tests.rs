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
    assert_eq!(stale_of(&planned, &swapped, &Resume::default()), []);

    // One gone, one refused now, and its policy changed.
    let mut refused = step(StepKind::BlockIps, "web", StepStatus::Refused);
    refused
        .preconditions
        .network_policies
        .insert("web".into(), "5".into());
    let stale = stale_of(&planned, &[refused], &Resume::default());
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

    // A step that was refused when planned will not run: it is not compared at all.
    let was_refused = vec![step(StepKind::BlockIps, "web", StepStatus::Refused)];
    assert_eq!(stale_of(&was_refused, &[], &Resume::default()), []);
    // One with nothing to do now is stale: what was approved would not be what runs.
    let idle = step(StepKind::BlockIps, "web", StepStatus::NothingToDo);
    let stale = stale_of(&planned[..1], &[idle], &Resume::default());
    assert_eq!(stale[0].changes, ["the step would have nothing to do now"]);
    // Another kind for the same target is another step.
    let rotate = vec![step(StepKind::RotateSecrets, "web", StepStatus::Planned)];
    assert_eq!(
        stale_of(&planned[..1], &rotate, &Resume::default()).len(),
        1
    );
}

fn blocking(step: &mut Step, addresses: &[&str]) {
    step.detail = StepDetail::BlockIps {
        method: "networkpolicy".into(),
        addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
        owners: BTreeMap::new(),
    };
}

#[test]
fn a_block_that_would_cover_other_addresses_now_is_stale() {
    let mut planned = step(StepKind::BlockIps, "web", StepStatus::Planned);
    blocking(&mut planned, &["198.51.100.7", "198.51.100.8"]);
    let mut now = planned.clone();
    blocking(&mut now, &["198.51.100.8", "198.51.100.9"]);
    let stale = stale_of(std::slice::from_ref(&planned), &[now], &Resume::default());
    let lines = &stale[0].changes;
    assert!(lines
        .iter()
        .any(|l| l.starts_with("198.51.100.7 would not be blocked now")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("198.51.100.9 would be blocked now")));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        stale_of(
            std::slice::from_ref(&planned),
            &[planned.clone()],
            &Resume::default()
        ),
        []
    );
}

/// Two rotations of one target (two Secrets): each is compared with its own counterpart.
#[test]
fn steps_of_one_kind_and_target_are_paired_in_order() {
    let mut first = step(StepKind::RotateSecrets, "web", StepStatus::Planned);
    first.preconditions.deployment_refs =
        BTreeMap::from([("web".into(), BTreeMap::from([("/a".into(), "s1".into())]))]);
    let mut second = first.clone();
    second.number = 2;
    second.preconditions.deployment_refs =
        BTreeMap::from([("web".into(), BTreeMap::from([("/b".into(), "s2".into())]))]);
    let planned = vec![first.clone(), second.clone()];
    assert_eq!(stale_of(&planned, &planned, &Resume::default()), []);
    let mut refused = second;
    refused.status = StepStatus::Refused;
    let stale = stale_of(&planned, &[first, refused], &Resume::default());
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(stale[0].number, 2);
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

#[test]
fn a_stale_plan_is_journaled_with_each_step_and_what_changed() {
    use crate::case::{CaseHeader, Trigger};
    use crate::id::{CaseId, PlanId};
    use crate::store::LocalStore;

    let dir = tempfile::tempdir().expect("dir");
    let store = LocalStore::open(dir.path(), true).expect("store");
    let case = CaseId::new("20261202-040000-00000001").expect("id");
    let trigger = Trigger {
        kind: "manual".into(),
        requested_by: "analyst".into(),
    };
    let header = CaseHeader::new(case.clone(), time::OffsetDateTime::now_utc(), trigger);
    let key = crate::keys::SigningKey::generate();
    crate::case::open(&store, &header, None, &key).expect("opened");
    let plan = PlanId::new("20261202-041000-00000002").expect("id");
    let stale = vec![StaleStep {
        number: 1,
        kind: StepKind::BlockIps,
        target: "web".into(),
        changes: vec!["NetworkPolicy web changed".into()],
    }];
    let digest = Sha256Digest::of(b"plan");
    // Without a step, or with one twice, nothing is journaled.
    assert!(record_stale(&store, &key, "alice", (&case, &plan), digest, &[]).is_err());
    let twice = [stale[0].clone(), stale[0].clone()];
    assert!(record_stale(&store, &key, "alice", (&case, &plan), digest, &twice).is_err());
    let heads = crate::case::journal::check_chain(&store, &case).expect("chain");
    assert_eq!(heads.entries.len(), 1);
    let recorded =
        record_stale(&store, &key, "alice", (&case, &plan), digest, &stale).expect("recorded");
    let chain = crate::case::journal::check_chain(&store, &case).expect("chain");
    assert!(chain.problems.is_empty(), "{:?}", chain.problems);
    let last = &chain.entries.last().expect("an entry");
    assert_eq!(last.0.actor, "alice");
    let Details::PlanStale(d) = &last.0.details else {
        panic!("{:?}", last.0.details)
    };
    assert_eq!(d, &recorded);
    assert_eq!(d.plan_sha256, digest);
    assert_eq!(d.steps[0].changes, ["NetworkPolicy web changed"]);
    assert_eq!(d.steps[0].kind, StepKind::BlockIps);
    // On disk: the kind's name, the step by number, kind and target.
    let text = std::fs::read_to_string(
        dir.path()
            .join(crate::store::StoreKey::JournalEntry(case.clone(), 2).path()),
    )
    .expect("entry 2");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["kind"], "plan_stale");
    assert_eq!(
        v["details"]["steps"][0],
        serde_json::json!({"changes": ["NetworkPolicy web changed"], "kind": "block_ips", "number": 1, "target": "web"})
    );
}

#[test]
fn a_resumed_block_is_compared_but_for_what_its_own_writes_changed() {
    use crate::plan::document::{ChangeOp, DryRun, ObjectChange, ObjectRef};
    let change = |op: ChangeOp, name: &str| ObjectChange {
        op,
        object: ObjectRef {
            api_version: "networking.k8s.io/v1".into(),
            kind: "NetworkPolicy".into(),
            namespace: Some("shop".into()),
            name: name.into(),
            resource_version: None,
        },
        before: None,
        after: None,
        patch: None,
        dry_run: DryRun::NotRun { why: String::new() },
    };
    let mut planned = step(StepKind::BlockIps, "web", StepStatus::Planned);
    planned.changes = vec![
        change(ChangeOp::Replace, "web"),
        change(ChangeOp::Create, "custody-block-web"),
    ];
    planned
        .preconditions
        .network_policies
        .insert("other".into(), "7".into());
    planned.preconditions.selecting = vec!["web".into()];
    // The step's own writes: `web` replaced, the block policy created (and selecting).
    let mut now = planned.clone();
    now.preconditions
        .network_policies
        .insert("web".into(), "5".into());
    now.preconditions
        .network_policies
        .insert("custody-block-web".into(), "6".into());
    now.preconditions.selecting = vec!["custody-block-web".into(), "web".into()];
    let resumed = Resume {
        done: BTreeSet::new(),
        started: BTreeSet::from([1]),
        ..Default::default()
    };
    assert_eq!(stale_of(&[planned.clone()], &[now.clone()], &resumed), []);
    // Compared afresh, those same writes would make it stale.
    assert!(!stale_of(&[planned.clone()], &[now.clone()], &Resume::default()).is_empty());
    // Anyone else's policy changed, or a new one selecting the target: stale even so.
    let mut edited = now.clone();
    edited
        .preconditions
        .network_policies
        .insert("other".into(), "8".into());
    edited.preconditions.selecting.push("allow-all".into());
    let stale = stale_of(&[planned.clone()], &[edited], &resumed);
    assert_eq!(stale.len(), 1);
    let text = stale[0].changes.join("\n");
    assert!(
        text.contains("other") && text.contains("allow-all"),
        "{text}"
    );
    // A step done is not compared at all.
    let done = Resume {
        done: BTreeSet::from([1]),
        started: BTreeSet::from([1]),
        ..Default::default()
    };
    assert_eq!(stale_of(&[planned], &[], &done), []);
}

#[test]
fn a_resumed_release_whose_delete_landed_is_not_stale() {
    use crate::plan::document::{ChangeOp, DryRun, ObjectChange, ObjectRef};
    let mut planned = step(StepKind::ReleaseIps, "web", StepStatus::Planned);
    planned.changes = vec![ObjectChange {
        op: ChangeOp::Delete,
        object: ObjectRef {
            api_version: "networking.k8s.io/v1".into(),
            kind: "NetworkPolicy".into(),
            namespace: Some("shop".into()),
            name: "custody-block-web".into(),
            resource_version: Some("6".into()),
        },
        before: None,
        after: None,
        patch: None,
        dry_run: DryRun::NotRun { why: String::new() },
    }];
    planned
        .preconditions
        .network_policies
        .insert("custody-block-web".into(), "6".into());
    planned.preconditions.selecting = vec!["custody-block-web".into()];
    // The delete landed: the policy is gone, and no longer selects the target.
    let mut now = planned.clone();
    now.preconditions
        .network_policies
        .remove("custody-block-web");
    now.preconditions.selecting = Vec::new();
    let resumed = Resume {
        done: BTreeSet::new(),
        started: BTreeSet::from([1]),
        ..Default::default()
    };
    assert_eq!(stale_of(&[planned.clone()], &[now.clone()], &resumed), []);
    // A new policy selecting the target since is stale even so.
    now.preconditions.selecting.push("allow-all".into());
    assert_eq!(stale_of(&[planned], &[now], &resumed).len(), 1);
}

#[test]
fn another_owner_added_since_is_stale_and_the_plans_own_expiry_is_not() {
    use crate::containment::netpol::Owner;
    let owner = |case: &str, plan: &str, secs: i64| Owner {
        case: crate::id::CaseId::new(case).unwrap(),
        plan: crate::id::PlanId::new(plan).unwrap(),
        expires_at: time::OffsetDateTime::from_unix_timestamp(secs).unwrap(),
    };
    let with = |owners: Vec<Owner>| {
        let mut s = step(StepKind::BlockIps, "gateway", StepStatus::Planned);
        s.detail = StepDetail::BlockIps {
            method: "networkpolicy".into(),
            addresses: vec!["203.0.113.9".into()],
            owners: BTreeMap::from([("203.0.113.9".into(), owners)]),
        };
        s
    };
    let planned = with(vec![owner("case-b", "plan-b", 100)]);
    // Made again later: its own claim's expiry is counted from then.
    let again = with(vec![owner("case-b", "plan-b", 200)]);
    assert_eq!(
        stale_of(std::slice::from_ref(&planned), &[again], &Resume::default()),
        []
    );
    let shared = with(vec![
        owner("case-a", "plan-a", 50),
        owner("case-b", "plan-b", 200),
    ]);
    let stale = stale_of(
        std::slice::from_ref(&planned),
        &[shared],
        &Resume::default(),
    );
    assert_eq!(stale.len(), 1);
    assert!(
        stale[0].changes.iter().any(|c| c.contains("owners")),
        "{stale:?}"
    );
}

#[test]
fn a_step_after_a_done_step_of_its_namespace_is_compared_but_for_what_that_step_wrote() {
    use crate::plan::document::{ChangeOp, DryRun, ObjectChange, ObjectRef};
    let created = |name: &str| ObjectChange {
        op: ChangeOp::Create,
        object: ObjectRef {
            api_version: "networking.k8s.io/v1".into(),
            kind: "NetworkPolicy".into(),
            namespace: Some("shop".into()),
            name: name.into(),
            resource_version: None,
        },
        before: None,
        after: None,
        patch: None,
        dry_run: DryRun::NotRun { why: String::new() },
    };
    // Two targets of one namespace: step 1 (done) created the first one's block policy.
    let mut first = step(StepKind::BlockIps, "web", StepStatus::Planned);
    first.changes = vec![created("custody-block-web")];
    let mut second = step(StepKind::BlockIps, "api", StepStatus::Planned);
    second.number = 2;
    second.changes = vec![created("custody-block-api")];
    let mut again = second.clone();
    again
        .preconditions
        .network_policies
        .insert("custody-block-web".into(), "9".into());
    let resumed = Resume {
        done: BTreeSet::from([1]),
        started: BTreeSet::new(),
        ..Default::default()
    };
    let planned = [first.clone(), second.clone()];
    assert_eq!(
        stale_of(&planned, &[first.clone(), again.clone()], &resumed),
        []
    );
    // Compared with the resourceVersion step 1's write was answered with, when journaled:
    // another write since is a change.
    let mut journaled = resumed.clone();
    journaled.written.insert(
        "NetworkPolicy shop/custody-block-web".into(),
        Some("9".into()),
    );
    assert_eq!(
        stale_of(&planned, &[first.clone(), again.clone()], &journaled),
        []
    );
    journaled.written.insert(
        "NetworkPolicy shop/custody-block-web".into(),
        Some("8".into()),
    );
    assert_eq!(
        stale_of(&planned, &[first.clone(), again.clone()], &journaled).len(),
        1
    );
    // Afresh, the policy step 1 created is a change; and anyone else's policy always is.
    assert!(!stale_of(
        &planned,
        &[first.clone(), again.clone()],
        &Resume::default()
    )
    .is_empty());
    again
        .preconditions
        .network_policies
        .insert("other".into(), "3".into());
    assert_eq!(stale_of(&planned, &[first, again], &resumed).len(), 1);
}
