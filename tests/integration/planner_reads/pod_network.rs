//! The pod network read from the cluster where Nodes do not publish it: Calico's IPPools and
//! CiliumNodes listed (cluster-wide) only when discovery serves them, their ranges kept out of
//! a block (an ingress controller's pod in another namespace, whose address every client behind
//! the ingress appears with), and a list refused or unreadable failing the whole read.

use serde_json::json;

use custody::containment::cluster::{read_view, ClusterView, PodNetwork};
use custody::id::{CaseId, KeyId, PlanId};
use custody::net::Cidr;
use custody::plan::document::{JournalHead, LeftOutReason, PinnedEvidence, ProposerClaim};
use custody::plan::planner::{plan, PlannerInput};
use custody::plan::PlanDoc;
use custody::policy::containment::ContainmentPolicy;

use super::{connect, planned_cluster, runtime};
use crate::fake_kube::FakeKube;
use crate::k8s::NS;

const POLICY: &str = "targets:
  - name: api-gateway
    namespace: waqiti
    pod_selector:
      matchLabels: {app: api-gateway}
block_ips:
  method: networkpolicy
";

/// The planned cluster with Nodes that publish no pod CIDR, as under Calico or Cilium
/// cluster-pool IPAM.
fn no_node_cidrs() -> FakeKube {
    let kube = planned_cluster();
    for (name, ip) in [("node-a", "172.18.0.2"), ("node-b", "172.18.0.3")] {
        kube.object(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}),
        );
    }
    kube
}

fn ip_pool(name: &str, cidr: &str) -> serde_json::Value {
    json!({"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool", "metadata": {"name": name},
        "spec": {"cidr": cidr, "blockSize": 26, "ipipMode": "Always", "vxlanMode": "Never",
                 "natOutgoing": true, "nodeSelector": "all()"}})
}

fn read(kube: &FakeKube) -> Result<ClusterView, custody::containment::cluster::ReadError> {
    let rt = runtime();
    let (c, _dir) = connect(&rt, kube);
    rt.block_on(read_view(&c, &[NS.to_owned()], false))
}

/// The plan for these suspicious clients on `view`.
pub(super) fn plan_for(view: &ClusterView, clients: &[&str]) -> PlanDoc {
    plan_with(POLICY, view, clients)
}

/// The plan `policy` (containment.yaml's text) makes for these suspicious clients on `view`.
pub(super) fn plan_with(policy: &str, view: &ClusterView, clients: &[&str]) -> PlanDoc {
    let policy = ContainmentPolicy::parse("containment.yaml", policy).unwrap();
    let suspicious: Vec<custody::analysis::Suspicious> = clients
        .iter()
        .map(|ip| {
            serde_json::from_value(
                json!({"ip": ip, "reason": "many 401", "rule": "brute-force",
                "requests": 90, "auth_failures": 80, "first_seen": null, "last_seen": null,
                "evidence": {"count": 80, "window": null, "window_start": null, "window_end": null,
                             "ratio": null, "lines": []},
                "failed_in": []}),
            )
            .unwrap()
        })
        .collect();
    let summaries = vec![("b1".to_owned(), suspicious)];
    let owners = Default::default();
    plan(&PlannerInput {
        case: &CaseId::new("c1").unwrap(),
        plan: &PlanId::new("p1").unwrap(),
        policy: &policy,
        detection_allowlist: &[],
        trusted_proxies: &[],
        suspicious: &summaries,
        evidence: PinnedEvidence {
            bundles: Vec::new(),
            journal_head: JournalHead {
                seq: 1,
                sha256: custody::digest::Sha256Digest::of(b""),
            },
        },
        view,
        block_owners: &owners,
        proposer: ProposerClaim::Collector {
            key_id: KeyId::new("0123456789abcdef").unwrap(),
        },
        roster_sha256: custody::digest::Sha256Digest::of(b""),
        now: time::OffsetDateTime::now_utc(),
    })
}

fn left_out(doc: &PlanDoc, address: &str) -> (LeftOutReason, String) {
    let l = doc
        .addresses
        .left_out
        .iter()
        .find(|l| l.address == address)
        .unwrap_or_else(|| panic!("{address} is not left out: {:?}", doc.addresses));
    (l.reason, l.message.clone())
}

fn blocked(doc: &PlanDoc) -> Vec<&str> {
    doc.addresses
        .block
        .iter()
        .map(|a| a.address.as_str())
        .collect()
}

#[test]
fn an_address_inside_a_calico_pool_is_left_out() {
    // The ingress controller's pod, in another namespace the planner does not read; the
    // target's pods are at 10.244.0.7, in the pool too.
    let controller = "10.244.77.5";
    let kube = no_node_cidrs();
    kube.calico();
    kube.object(ip_pool("default-ipv4-ippool", "10.244.0.0/16"));
    kube.object(ip_pool("v6", "fd00:10:244::/48"));
    let view = read(&kube).unwrap();
    assert_eq!(
        view.pod_networks,
        [
            PodNetwork {
                source: "Calico IPPool default-ipv4-ippool".into(),
                cidr: Cidr::parse("10.244.0.0/16").unwrap()
            },
            PodNetwork {
                source: "Calico IPPool v6".into(),
                cidr: Cidr::parse("fd00:10:244::/48").unwrap()
            }
        ]
    );
    let requests = kube.requests();
    assert!(
        requests
            .iter()
            .any(|r| r == "/apis/crd.projectcalico.org/v1")
            && requests
                .iter()
                .any(|r| r.starts_with("/apis/crd.projectcalico.org/v1/ippools?")),
        "{requests:?}"
    );
    let doc = plan_for(&view, &[controller, "10.1.2.3", "198.51.100.7"]);
    let (reason, message) = left_out(&doc, controller);
    assert_eq!(reason, LeftOutReason::PodCidr);
    assert_eq!(
        message,
        "never blocked: inside pod CIDR 10.244.0.0/16 of Calico IPPool default-ipv4-ippool"
    );
    // The pod network is known: other addresses are blocked, and nothing warns it is not.
    assert_eq!(blocked(&doc), ["10.1.2.3", "198.51.100.7"]);
    assert!(!doc.steps[0]
        .warnings
        .iter()
        .any(|w| w.contains("pod network is not known")));

    // Without Calico (discovery 404) nothing tells the pod network: the controller's address
    // is still left out, as one that cannot be told apart from a pod, and the plan says why.
    let kube = no_node_cidrs();
    let view = read(&kube).unwrap();
    assert!(view.pod_networks.is_empty());
    assert!(!kube.requests().iter().any(|r| r.contains("ippools")));
    let doc = plan_for(&view, &[controller, "198.51.100.7"]);
    let (reason, message) = left_out(&doc, controller);
    assert_eq!(reason, LeftOutReason::PodNetworkUnknown);
    assert!(
        message.contains("set block_ips.cluster_networks"),
        "{message}"
    );
    assert_eq!(blocked(&doc), ["198.51.100.7"]);
    assert!(doc.steps[0]
        .warnings
        .iter()
        .any(|w| w.contains("pod network is not known")));
}

#[test]
fn cilium_nodes_give_the_pod_network_of_cluster_pool_ipam() {
    let kube = no_node_cidrs();
    kube.cilium(true);
    kube.object(json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNode", "metadata": {"name": "node-a"},
        "spec": {"addresses": [{"type": "InternalIP", "ip": "172.18.0.2"}, {"type": "CiliumInternalIP", "ip": "10.244.0.71"}],
                 "ipam": {"podCIDRs": ["10.244.0.0/24"]}}}));
    kube.object(
        json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNode", "metadata": {"name": "node-b"},
        "spec": {"ipam": {"podCIDRs": ["10.244.1.0/24"]}}}),
    );
    let view = read(&kube).unwrap();
    let got: Vec<(String, String)> = view
        .pod_networks
        .iter()
        .map(|n| (n.source.clone(), n.cidr.to_string()))
        .collect();
    assert_eq!(
        got,
        [
            ("CiliumNode node-a".to_owned(), "10.244.0.0/24".to_owned()),
            ("CiliumNode node-b".to_owned(), "10.244.1.0/24".to_owned())
        ]
    );
    assert!(view.cilium.nodes_served);
    let doc = plan_for(&view, &["10.244.1.30", "10.9.9.9"]);
    assert_eq!(left_out(&doc, "10.244.1.30").0, LeftOutReason::PodCidr);
    assert!(left_out(&doc, "10.244.1.30")
        .1
        .ends_with("of CiliumNode node-b"));
    assert_eq!(blocked(&doc), ["10.9.9.9"]);
}

#[test]
fn a_pool_that_misses_the_pods_read_leaves_the_pod_network_unknown() {
    // Calico publishes 192.168.0.0/16, but the target's pods were given 10.244.0.7 (another
    // pool the planner cannot see, or a second CNI): an ingress controller's pod could be
    // anywhere private, so private addresses are left out and the plan names the pod.
    let kube = no_node_cidrs();
    kube.calico();
    kube.object(ip_pool("default-ipv4-ippool", "192.168.0.0/16"));
    let view = read(&kube).unwrap();
    assert_eq!(view.pod_networks.len(), 1);
    let doc = plan_for(&view, &["192.168.77.5", "10.1.2.3", "198.51.100.7"]);
    // Inside the pool that was read: still told as such.
    assert_eq!(left_out(&doc, "192.168.77.5").0, LeftOutReason::PodCidr);
    let (reason, message) = left_out(&doc, "10.1.2.3");
    assert_eq!(reason, LeftOutReason::PodNetworkUnknown);
    assert!(
        message.contains("has address 10.244.0.7")
            && message.contains("set block_ips.cluster_networks"),
        "{message}"
    );
    assert_eq!(blocked(&doc), ["198.51.100.7"]);
    let warning = doc.steps[0]
        .warnings
        .iter()
        .find(|w| w.contains("pod network is not known"))
        .expect("warned");
    let pod = &view.namespaces[NS].pods[0];
    let name = format!("pod {NS}/{}", pod.metadata.name.as_deref().unwrap());
    assert!(
        warning.contains(&format!("{name} has address 10.244.0.7"))
            && warning.contains("set block_ips.cluster_networks"),
        "{warning}"
    );
}

#[test]
fn a_pod_network_list_refused_or_unreadable_fails_the_read() {
    // Refused (the planner's ClusterRole without the grant): the whole read fails, naming it.
    let kube = no_node_cidrs();
    kube.calico();
    kube.object(ip_pool("default-ipv4-ippool", "192.168.0.0/16"));
    kube.faults(|f| f.forbidden = vec!["/apis/crd.projectcalico.org/v1/ippools".into()]);
    let e = read(&kube).unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert!(
        e.to_string().contains("Calico IPPools") && e.to_string().contains("forbidden"),
        "{e}"
    );

    let kube = no_node_cidrs();
    kube.cilium(true);
    kube.faults(|f| f.forbidden = vec!["/apis/cilium.io/v2/ciliumnodes".into()]);
    let e = read(&kube).unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert!(e.to_string().contains("CiliumNodes"), "{e}");

    // Where discovery says the group is absent, nothing is asked, so nothing is refused.
    let kube = no_node_cidrs();
    kube.faults(|f| {
        f.forbidden = vec![
            "/apis/crd.projectcalico.org/v1/ippools".into(),
            "/apis/cilium.io/v2/ciliumnodes".into(),
        ]
    });
    assert!(read(&kube).unwrap().pod_networks.is_empty());

    // A discovery document that fails is not taken for an absent group.
    let kube = no_node_cidrs();
    kube.faults(|f| f.broken = vec!["/apis/crd.projectcalico.org/v1".into()]);
    let e = read(&kube).unwrap_err();
    assert_eq!(e.status(), Some(500));
    assert!(
        e.to_string().contains("crd.projectcalico.org/v1 discovery"),
        "{e}"
    );

    // A pool whose range cannot be understood could not be kept out of a block.
    let kube = no_node_cidrs();
    kube.calico();
    kube.object(ip_pool("broken", "192.168.0.0/33"));
    let e = read(&kube).unwrap_err();
    assert!(
        e.to_string().contains("Calico IPPool broken") && e.to_string().contains("192.168.0.0/33"),
        "{e}"
    );
}
