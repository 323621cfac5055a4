//! Policies of other engines in the NetworkPolicy method: one that can admit refuses it always;
//! a baseline policy that denies refuses it unless the operator's NetworkPolicies alone decide
//! ingress to every target pod (otherwise traffic falls through to it, or a custody block policy
//! admits it past what it denies).

use super::*;
use crate::containment::cluster::OtherPolicy;

fn other(kind: &str, name: &str, baseline: bool) -> OtherPolicy {
    OtherPolicy {
        kind: kind.to_owned(),
        api_version: "policy.networking.k8s.io/v1alpha2".to_owned(),
        namespace: None,
        name: name.to_owned(),
        resource_version: "12".to_owned(),
        baseline,
    }
}

fn baseline_cnp() -> OtherPolicy {
    other("ClusterNetworkPolicy", "baseline-deny", true)
}

fn block(v: &ClusterView) -> Step {
    block_of(v, "198.51.100.7")
}

fn block_of(v: &ClusterView, client: &str) -> Step {
    run(v, vec![suspicious(client, 50)]).steps[0].clone()
}

fn refused_for_baseline(step: &Step) -> bool {
    step.refusals.iter().any(|r| {
        r.contains("baseline policies may deny ingress")
            && r.contains("ClusterNetworkPolicy baseline-deny")
            && r.contains("isolate every target pod with a NetworkPolicy of your own")
    })
}

/// The view with a NetworkPolicy of the operator isolating the target pods.
fn isolated(mut v: ClusterView) -> ClusterView {
    let ns = v.namespaces.get_mut("waqiti").expect("ns");
    ns.network_policies.push(from(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "gateway-in", "namespace": "waqiti", "resourceVersion": "41"},
        "spec": {"podSelector": {"matchLabels": {"app": "api-gateway"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 8080}]}]},
    })));
    v
}

#[test]
fn a_baseline_policy_refuses_creating_the_policy_that_first_isolates_the_target() {
    let plain = view();
    let created = block(&plain);
    assert_eq!(
        created.status,
        StepStatus::Planned,
        "{:?}",
        created.refusals
    );
    assert_eq!(created.changes[0].op, ChangeOp::Create);

    let mut v = view();
    v.other_policies.push(baseline_cnp());
    let step = block(&v);
    assert_eq!(step.status, StepStatus::Refused);
    assert!(refused_for_baseline(&step), "{:?}", step.refusals);
    assert_eq!(
        step.preconditions.other_engine_policies["ClusterNetworkPolicy baseline-deny"],
        "12"
    );
}

#[test]
fn where_the_operator_isolates_the_target_a_baseline_policy_does_not_refuse() {
    let mut v = isolated(view());
    v.other_policies.push(baseline_cnp());
    let step = block(&v);
    assert_eq!(step.status, StepStatus::Planned, "{:?}", step.refusals);
    assert_eq!(step.changes[0].op, ChangeOp::Replace);
    assert!(step
        .preconditions
        .other_engine_policies
        .contains_key("ClusterNetworkPolicy baseline-deny"));
}

/// custody's own block policy, created before the baseline policy denied, isolates the target
/// pods alone: extending it would keep admitting what the baseline policy denies, for longer.
#[test]
fn custodys_block_policy_alone_does_not_count_as_isolating() {
    let mut v = with_block_policy(view(), "custody-block-api-gateway");
    let extended = block_of(&v, "198.51.100.8");
    assert_eq!(
        extended.status,
        StepStatus::Planned,
        "{:?}",
        extended.refusals
    );
    assert_eq!(extended.changes[0].op, ChangeOp::Replace);

    v.other_policies.push(baseline_cnp());
    let step = block_of(&v, "198.51.100.8");
    assert_eq!(step.status, StepStatus::Refused);
    assert!(refused_for_baseline(&step), "{:?}", step.refusals);
}

/// The view with custody's block policy written by an earlier plan (blocking 198.51.100.7).
fn with_block_policy(mut v: ClusterView, name: &str) -> ClusterView {
    let first = block(&view());
    let mut created = first.changes[0].after.clone().expect("the policy");
    created["metadata"]["resourceVersion"] = json!("50");
    created["metadata"]["name"] = json!(name);
    v.namespaces
        .get_mut("waqiti")
        .expect("ns")
        .network_policies
        .push(from(created));
    v
}

/// The operator isolates the target as the refusal asks, but custody's block policy still
/// admits every client but the blocked ones: still refused.
#[test]
fn a_custody_block_policy_beside_the_operators_still_refuses() {
    let mut v = with_block_policy(isolated(view()), "custody-block-api-gateway");
    let without = block_of(&v, "198.51.100.8");
    assert_eq!(
        without.status,
        StepStatus::Planned,
        "{:?}",
        without.refusals
    );
    v.other_policies.push(baseline_cnp());
    let step = block_of(&v, "198.51.100.8");
    assert_eq!(step.status, StepStatus::Refused);
    assert!(refused_for_baseline(&step), "{:?}", step.refusals);
}

/// Another target's block policy selecting this target's pods is not the operator's isolation,
/// and custody does not write it for this target (its addresses are that target's plans').
#[test]
fn another_targets_block_policy_is_neither_isolation_nor_rewritten() {
    let mut v = with_block_policy(isolated(view()), "custody-block-other-target");
    let step = block_of(&v, "198.51.100.8");
    assert_eq!(step.status, StepStatus::Refused);
    assert!(
        step.refusals.iter().any(
            |r| r.contains("custody block policy custody-block-other-target of another target")
        ),
        "{:?}",
        step.refusals
    );
    v.other_policies.push(baseline_cnp());
    let step = block_of(&v, "198.51.100.8");
    assert!(refused_for_baseline(&step), "{:?}", step.refusals);
}

/// One target pod the operator's policies do not isolate is enough: its traffic falls through.
#[test]
fn every_target_pod_must_be_isolated_by_the_operator() {
    let mut v = mixed_view();
    v.other_policies.push(baseline_cnp());
    let step = block(&v);
    assert_eq!(step.status, StepStatus::Refused);
    assert!(refused_for_baseline(&step), "{:?}", step.refusals);
}

#[test]
fn a_policy_that_can_admit_refuses_whatever_isolates_the_target() {
    let mut v = isolated(view());
    v.other_policies
        .push(other("AdminNetworkPolicy", "allow-monitoring", false));
    v.other_policies.push(baseline_cnp());
    let step = block(&v);
    assert_eq!(step.status, StepStatus::Refused);
    assert!(
        step.refusals.iter().any(|r| r.contains("another engine")
            && r.contains("AdminNetworkPolicy allow-monitoring")
            && !r.contains("baseline-deny")),
        "{:?}",
        step.refusals
    );
    // The operator isolates the target: the baseline policy is not a reason.
    assert!(!refused_for_baseline(&step), "{:?}", step.refusals);

    // Both kinds where nothing isolates the target: both reasons are given.
    let mut v = view();
    v.other_policies
        .push(other("AdminNetworkPolicy", "allow-monitoring", false));
    v.other_policies.push(baseline_cnp());
    let step = block(&v);
    assert!(refused_for_baseline(&step), "{:?}", step.refusals);
    assert!(step
        .refusals
        .iter()
        .any(|r| r.contains("another engine") && !r.contains("baseline-deny")));
}

/// Another target's block policy that selects none of the target's pods is no reason.
#[test]
fn another_targets_block_policy_elsewhere_does_not_stand_in_the_way() {
    let mut v = with_block_policy(isolated(view()), "custody-block-other-target");
    let ns = v.namespaces.get_mut("waqiti").expect("ns");
    let theirs = ns
        .network_policies
        .iter_mut()
        .find(|p| p.metadata.name.as_deref() == Some("custody-block-other-target"))
        .expect("policy");
    theirs.spec.as_mut().expect("spec").pod_selector = from(json!({"matchLabels": {"app": "db"}}));
    let step = block_of(&v, "198.51.100.8");
    assert_eq!(step.status, StepStatus::Planned, "{:?}", step.refusals);
    assert!(step
        .changes
        .iter()
        .all(|c| c.object.name != "custody-block-other-target"));
}
