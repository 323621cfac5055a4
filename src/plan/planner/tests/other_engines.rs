//! Policies of other engines in the NetworkPolicy method: one that can admit refuses it always;
//! a baseline policy that denies refuses it only where no NetworkPolicy but custody's own block
//! policy would isolate the target pods (traffic to them would fall through to it otherwise).

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
            && r.contains("isolate the target pods with a NetworkPolicy of your own")
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
    let first = block(&view());
    let mut created = first.changes[0].after.clone().expect("the policy");
    created["metadata"]["resourceVersion"] = json!("50");
    let mut v = view();
    v.namespaces
        .get_mut("waqiti")
        .expect("ns")
        .network_policies
        .push(from(created));
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

#[test]
fn a_policy_that_can_admit_refuses_whatever_isolates_the_target() {
    let mut v = isolated(view());
    v.other_policies
        .push(other("AdminNetworkPolicy", "allow-monitoring", false));
    let step = block(&v);
    assert_eq!(step.status, StepStatus::Refused);
    assert!(
        step.refusals
            .iter()
            .any(|r| r.contains("another engine")
                && r.contains("AdminNetworkPolicy allow-monitoring")),
        "{:?}",
        step.refusals
    );
    assert!(!refused_for_baseline(&step));

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
