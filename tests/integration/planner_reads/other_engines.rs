//! Policies of other engines — AdminNetworkPolicies, Admin-tier ClusterNetworkPolicies, Calico
//! and Antrea policies — can admit what a NetworkPolicy refuses, and custody does not evaluate
//! them: they are listed (cluster-wide, and in the target namespace) only where discovery serves
//! them, at the first of their group versions served, and while any is in force the
//! NetworkPolicy method is refused, naming them. Baseline policies count only when they deny,
//! and refuse the method unless the operator's NetworkPolicies alone decide ingress to every
//! target pod. A list refused fails the whole read.

use serde_json::json;

use custody::containment::cluster::read_view;
use custody::plan::document::{ChangeOp, StepStatus};

use super::pod_network::plan_for;
use super::{connect, planned_cluster, runtime};
use crate::k8s::NS;

#[test]
fn a_policy_of_another_engine_refuses_the_networkpolicy_method() {
    let kube = planned_cluster();
    kube.admin_network_policies();
    kube.calico();
    let rt = runtime();
    let (c, _dir) = connect(&rt, &kube);
    // Served but empty: nothing in the way.
    let view = rt.block_on(read_view(&c, &[NS.to_owned()], false)).unwrap();
    assert!(view.other_policies.is_empty(), "{:?}", view.other_policies);
    let doc = plan_for(&view, &["198.51.100.7"]);
    assert_eq!(
        doc.steps[0].status,
        StepStatus::Planned,
        "{:?}",
        doc.steps[0].refusals
    );

    kube.object(json!({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
        "metadata": {"name": "allow-monitoring"},
        "spec": {"priority": 10, "subject": {"namespaces": {}}, "ingress": [{"action": "Allow", "from": [{"namespaces": {}}]}]}}));
    kube.object(
        json!({"apiVersion": "crd.projectcalico.org/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all", "namespace": NS},
        "spec": {"selector": "all()", "ingress": [{"action": "Allow"}]}}),
    );
    let view = rt.block_on(read_view(&c, &[NS.to_owned()], false)).unwrap();
    let labels: Vec<String> = view.other_policies.iter().map(|p| p.label()).collect();
    assert_eq!(
        labels,
        [
            "AdminNetworkPolicy allow-monitoring".to_owned(),
            format!("Calico NetworkPolicy {NS}/allow-all"),
        ]
    );
    // Each is pinned by resourceVersion in the block step's preconditions.
    let stored = kube
        .stored("crd.projectcalico.org/v1", "networkpolicies", "allow-all")
        .unwrap();
    assert_eq!(
        view.other_policies[1].resource_version,
        stored["metadata"]["resourceVersion"].as_str().unwrap()
    );
    let doc = plan_for(&view, &["198.51.100.7"]);
    let step = &doc.steps[0];
    assert_eq!(step.status, StepStatus::Refused);
    assert!(
        step.refusals.iter().any(|r| r.contains("another engine")
            && r.contains("allow-monitoring")
            && r.contains("custody cannot plan this block here")
            && !r.contains("remove them")),
        "{:?}",
        step.refusals
    );
    assert_eq!(
        step.preconditions.other_engine_policies[&format!("Calico NetworkPolicy {NS}/allow-all")],
        view.other_policies[1].resource_version
    );

    // Refused to list them: the read fails, nothing is guessed.
    kube.faults(|f| {
        f.forbidden_reads
            .push("/apis/crd.projectcalico.org/v1/globalnetworkpolicies".into())
    });
    let err = rt
        .block_on(read_view(&c, &[NS.to_owned()], false))
        .unwrap_err();
    assert!(err.to_string().contains("GlobalNetworkPolicy"), "{err}");
}

/// Policies that cannot make a block wrong do not stand in the way: baseline ones that only
/// allow (they apply only where no NetworkPolicy decides), an AdminNetworkPolicy that only
/// denies or passes, and Calico's own API listing a Kubernetes NetworkPolicy. A baseline policy
/// that denies refuses it unless the operator's NetworkPolicies alone decide ingress to every
/// target pod.
#[test]
fn baseline_deny_only_and_mirrored_policies_do_not_refuse_the_method() {
    let kube = planned_cluster();
    kube.admin_network_policies();
    kube.serve("policy.networking.k8s.io/v1alpha2");
    kube.serve("projectcalico.org/v3");
    let rt = runtime();
    let (c, _dir) = connect(&rt, &kube);
    kube.object(json!({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "BaselineAdminNetworkPolicy",
        "metadata": {"name": "default"},
        "spec": {"subject": {"namespaces": {}}, "ingress": [{"action": "Allow", "from": [{"namespaces": {}}]}]}}));
    kube.object(json!({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
        "metadata": {"name": "deny-tenant-b"},
        "spec": {"priority": 5, "subject": {"namespaces": {}}, "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}, {"action": "Pass", "from": [{"namespaces": {}}]}]}}));
    kube.object(json!({"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "baseline-allow"},
        "spec": {"tier": "Baseline", "priority": 10, "subject": {"namespaces": {}}, "ingress": [{"action": "Accept", "from": [{"namespaces": {}}]}]}}));
    kube.object(
        json!({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
        "metadata": {"name": "knp.default.gateway-ingress", "namespace": NS},
        "spec": {"selector": "all()", "ingress": [{"action": "Allow"}]}}),
    );
    let view = rt.block_on(read_view(&c, &[NS.to_owned()], false)).unwrap();
    assert!(view.other_policies.is_empty(), "{:?}", view.other_policies);
    let doc = plan_for(&view, &["198.51.100.7"]);
    assert_eq!(
        doc.steps[0].status,
        StepStatus::Planned,
        "{:?}",
        doc.steps[0].refusals
    );
    assert!(doc.steps[0].preconditions.other_engine_policies.is_empty());
    // A baseline policy that denies is read and pinned. While a NetworkPolicy isolates the
    // target pods it never applies to them, and the block (an `except` in that policy) stands.
    kube.object(json!({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "BaselineAdminNetworkPolicy",
        "metadata": {"name": "default"},
        "spec": {"subject": {"namespaces": {}}, "ingress": [{"action": "Deny", "from": [{"namespaces": {"matchLabels": {"tier": "sandbox"}}}]}]}}));
    let view = rt.block_on(read_view(&c, &[NS.to_owned()], false)).unwrap();
    let labels: Vec<String> = view.other_policies.iter().map(|p| p.label()).collect();
    assert_eq!(labels, ["BaselineAdminNetworkPolicy default"]);
    assert!(view.other_policies[0].baseline);
    let doc = plan_for(&view, &["198.51.100.7"]);
    let step = &doc.steps[0];
    assert_eq!(step.status, StepStatus::Planned, "{:?}", step.refusals);
    assert_eq!(step.changes.len(), 1);
    assert_eq!(step.changes[0].op, ChangeOp::Replace);
    assert!(step
        .preconditions
        .other_engine_policies
        .contains_key("BaselineAdminNetworkPolicy default"));
    // Where nothing else isolates them, the custody block policy custody would create admits
    // every client but the blocked ones, those the baseline policy denies included: refused.
    for isolating in ["gateway-ingress", "allow-gateway"] {
        kube.remove("networking.k8s.io/v1", "networkpolicies", isolating);
    }
    let view = rt.block_on(read_view(&c, &[NS.to_owned()], false)).unwrap();
    let doc = plan_for(&view, &["198.51.100.7"]);
    let step = &doc.steps[0];
    assert_eq!(step.status, StepStatus::Refused);
    assert!(
        step.refusals
            .iter()
            .any(|r| r.contains("baseline policies may deny")
                && r.contains("BaselineAdminNetworkPolicy default")
                && r.contains("isolate every target pod with a NetworkPolicy of your own")),
        "{:?}",
        step.refusals
    );
    assert!(!step.refusals.iter().any(|r| r.contains("another engine")));

    // An Admin-tier ClusterNetworkPolicy that accepts does refuse it.
    kube.object(json!({"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "admin-accept"},
        "spec": {"tier": "Admin", "priority": 10, "subject": {"namespaces": {}}, "ingress": [{"action": "Accept", "from": [{"namespaces": {}}]}]}}));
    let view = rt.block_on(read_view(&c, &[NS.to_owned()], false)).unwrap();
    let labels: Vec<String> = view.other_policies.iter().map(|p| p.label()).collect();
    assert_eq!(
        labels,
        [
            "BaselineAdminNetworkPolicy default",
            "ClusterNetworkPolicy admin-accept"
        ]
    );
    let doc = plan_for(&view, &["198.51.100.7"]);
    let step = &doc.steps[0];
    assert_eq!(step.status, StepStatus::Refused);
    assert!(
        step.refusals.iter().any(|r| r.contains("another engine")
            && r.contains("ClusterNetworkPolicy admin-accept")
            && !r.contains("BaselineAdminNetworkPolicy")),
        "{:?}",
        step.refusals
    );
}

/// Each engine is read at the first of its group versions discovery serves: an older Antrea
/// serving only v1alpha1 is read there, Calico IPPools of projectcalico.org/v3 protect pod
/// addresses, and Calico's CRD group is read before its own.
#[test]
fn each_engine_is_read_at_the_first_version_served() {
    let kube = planned_cluster();
    kube.serve("crd.antrea.io/v1alpha1");
    kube.serve("projectcalico.org/v3");
    let rt = runtime();
    let (c, _dir) = connect(&rt, &kube);
    kube.object(json!({"apiVersion": "crd.antrea.io/v1alpha1", "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "acnp-allow"},
        "spec": {"priority": 5, "appliedTo": [{"podSelector": {}}], "ingress": [{"action": "Allow"}]}}));
    kube.object(
        json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
        "metadata": {"name": "default-ipv4-ippool"}, "spec": {"cidr": "10.250.0.0/16"}}),
    );
    let view = rt.block_on(read_view(&c, &[NS.to_owned()], false)).unwrap();
    let labels: Vec<String> = view.other_policies.iter().map(|p| p.label()).collect();
    assert_eq!(labels, ["Antrea ClusterNetworkPolicy acnp-allow"]);
    assert_eq!(view.other_policies[0].api_version, "crd.antrea.io/v1alpha1");
    assert!(
        view.pod_networks
            .iter()
            .any(|n| n.cidr.to_string() == "10.250.0.0/16"),
        "{:?}",
        view.pod_networks
    );
    // Calico's groups both served (its API server beside its CRDs): the CRD group is read, and
    // only it.
    kube.unserve("crd.antrea.io/v1alpha1");
    kube.calico();
    kube.object(json!({"apiVersion": "crd.projectcalico.org/v1", "kind": "GlobalNetworkPolicy",
        "metadata": {"name": "default.allow-all"}, "spec": {"selector": "all()", "ingress": [{"action": "Allow"}]}}));
    let before = kube.requests().len();
    let view = rt.block_on(read_view(&c, &[NS.to_owned()], false)).unwrap();
    let requests = kube.requests();
    let lists: Vec<&String> = requests[before..]
        .iter()
        .filter(|r| r.contains("networkpolicies") || r.contains("ippools"))
        .collect();
    assert!(
        !lists.is_empty() && lists.iter().all(|r| !r.contains("/projectcalico.org/")),
        "{lists:?}"
    );
    let labels: Vec<String> = view.other_policies.iter().map(|p| p.label()).collect();
    assert_eq!(labels, ["Calico GlobalNetworkPolicy default.allow-all"]);
}
