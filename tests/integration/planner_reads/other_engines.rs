//! Policies of other engines — AdminNetworkPolicies, Calico and Antrea policies — can admit
//! what a NetworkPolicy refuses, and custody does not evaluate them: they are listed (cluster-wide,
//! and in the target namespace) only where discovery serves them, and while any is in force the
//! NetworkPolicy method is refused, naming them. A list refused fails the whole read.

use serde_json::json;

use custody::containment::cluster::read_view;
use custody::plan::document::StepStatus;

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
    assert_eq!(
        view.other_policies,
        [
            "AdminNetworkPolicy allow-monitoring",
            &format!("Calico NetworkPolicy {NS}/allow-all"),
        ]
    );
    let doc = plan_for(&view, &["198.51.100.7"]);
    let step = &doc.steps[0];
    assert_eq!(step.status, StepStatus::Refused);
    assert!(
        step.refusals
            .iter()
            .any(|r| r.contains("another engine") && r.contains("allow-monitoring")),
        "{:?}",
        step.refusals
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
