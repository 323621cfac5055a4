//! The pod network: Calico IPPools and CiliumNodes protect like Node pod CIDRs, the policy's
//! `cluster_networks` protect with their own reason, and while nothing tells the pod network,
//! private and shared addresses are left out (a pod of another namespace cannot be told apart)
//! with a reason and a warning that say how to fix it, public ones still blocked.

use super::*;
use crate::containment::cluster::PodNetwork;
use crate::net::normalise_ip;

fn policy_with(extra: &str) -> ContainmentPolicy {
    let text = POLICY.replace(
        "never_block: [203.0.113.0/24]",
        &format!("never_block: [203.0.113.0/24]\n  {extra}"),
    );
    ContainmentPolicy::parse("containment.yaml", &text).expect("parses")
}

/// The view with no pod CIDR on its Nodes.
fn unknown_view() -> ClusterView {
    let mut v = view();
    for n in &mut v.nodes {
        n.pod_cidrs.clear();
    }
    v
}

/// Gives the target namespace's pods these addresses, in order.
fn pods_at(v: &mut ClusterView, ips: &[&str]) {
    let ns = v.namespaces.get_mut("waqiti").expect("ns");
    assert_eq!(ns.pods.len(), ips.len());
    for (p, ip) in ns.pods.iter_mut().zip(ips) {
        let st = p.status.as_mut().expect("status");
        st.pod_ips = Some(vec![from(json!({ "ip": ip }))]);
    }
}

fn reasons(doc: &PlanDoc) -> BTreeMap<&str, (LeftOutReason, &str)> {
    doc.addresses
        .left_out
        .iter()
        .map(|l| (l.address.as_str(), (l.reason, l.message.as_str())))
        .collect()
}

fn blocked(doc: &PlanDoc) -> Vec<&str> {
    doc.addresses
        .block
        .iter()
        .map(|a| a.address.as_str())
        .collect()
}

fn pod_network_warning(doc: &PlanDoc) -> Option<&String> {
    doc.steps[0]
        .warnings
        .iter()
        .find(|w| w.contains("pod network is not known"))
}

#[test]
fn calico_pools_and_cilium_nodes_protect_like_node_pod_cidrs() {
    let mut v = unknown_view();
    pods_at(&mut v, &["192.168.1.5", "192.168.1.6", "fd00:10:1::2"]);
    v.pod_networks = vec![
        PodNetwork {
            source: "Calico IPPool default-ipv4-ippool".into(),
            cidr: Cidr::parse("192.168.0.0/16").expect("cidr"),
        },
        PodNetwork {
            source: "CiliumNode node-1".into(),
            cidr: Cidr::parse("fd00:10:1::/64").expect("cidr"),
        },
    ];
    let doc = run_policy(
        &policy(),
        &v,
        vec![
            suspicious("192.168.40.7", 50),
            suspicious("::ffff:192.168.40.8", 50),
            suspicious("fd00:10:1::9", 50),
            suspicious("10.1.2.3", 40),
            suspicious("198.51.100.7", 30),
        ],
    );
    let r = reasons(&doc);
    for a in ["192.168.40.7", "::ffff:192.168.40.8"] {
        assert_eq!(r[a].0, LeftOutReason::PodCidr, "{a}");
        assert_eq!(
            r[a].1,
            "never blocked: inside pod CIDR 192.168.0.0/16 of Calico IPPool default-ipv4-ippool"
        );
    }
    assert_eq!(r["fd00:10:1::9"].0, LeftOutReason::PodCidr);
    assert!(r["fd00:10:1::9"].1.contains("of CiliumNode node-1"));
    // The pod network is known now: a private address outside it is a client like any other.
    assert_eq!(blocked(&doc), ["10.1.2.3", "198.51.100.7"]);
    assert!(
        pod_network_warning(&doc).is_none(),
        "{:?}",
        doc.steps[0].warnings
    );
}

#[test]
fn cluster_networks_are_left_out_with_their_own_reason() {
    let policy = policy_with("cluster_networks: [10.0.0.0/8, fd00:10::/48]");
    let doc = run_policy(
        &policy,
        &unknown_view(),
        vec![
            suspicious("10.32.7.7", 50),
            suspicious("::ffff:10.32.7.8", 50),
            suspicious("fd00:10::5", 50),
            // A pod of the target and a Service are told as such, not as the wider range.
            suspicious("10.244.1.5", 50),
            suspicious("10.96.0.10", 50),
            suspicious("172.16.9.9", 40),
            suspicious("198.51.100.7", 30),
        ],
    );
    let r = reasons(&doc);
    for a in ["10.32.7.7", "::ffff:10.32.7.8"] {
        assert_eq!(r[a].0, LeftOutReason::ClusterNetwork, "{a}");
        assert_eq!(
            r[a].1,
            "never blocked: inside block_ips.cluster_networks (10.0.0.0/8)"
        );
    }
    assert_eq!(r["fd00:10::5"].0, LeftOutReason::ClusterNetwork);
    assert_eq!(r["10.244.1.5"].0, LeftOutReason::Pod);
    assert_eq!(r["10.96.0.10"].0, LeftOutReason::Service);
    // The operator said what the cluster's networks are: other private addresses are clients.
    assert_eq!(blocked(&doc), ["172.16.9.9", "198.51.100.7"]);
    assert!(pod_network_warning(&doc).is_none());
    assert_eq!(
        policy.block_ips.as_ref().expect("block").cluster_networks,
        [
            Cidr::parse("10.0.0.0/8").expect("cidr"),
            Cidr::parse("fd00:10::/48").expect("cidr")
        ]
    );
}

#[test]
fn an_unknown_pod_network_leaves_private_addresses_out_and_blocks_public_ones() {
    let private = [
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.254",
        "fc00::1",
        "fd12:3456::1",
        "::ffff:10.9.9.9",
        "::ffff:192.168.7.7",
    ];
    // Just outside each range, and public ones.
    let public = [
        "9.255.255.255",
        "11.0.0.1",
        "172.15.255.255",
        "172.32.0.1",
        "192.167.255.255",
        "192.169.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "198.51.100.7",
        "2001:db8::7",
        "fe00::1",
        "::ffff:198.51.100.8",
    ];
    let clients = private
        .iter()
        .chain(public.iter())
        .map(|a| suspicious(a, 10))
        .collect();
    let doc = run_policy(&policy(), &unknown_view(), clients);
    let r = reasons(&doc);
    for a in private {
        let (reason, message) = r
            .get(a)
            .unwrap_or_else(|| panic!("{a} is blocked: {:?}", blocked(&doc)));
        assert_eq!(*reason, LeftOutReason::PodNetworkUnknown, "{a}");
        assert!(
            message
                .starts_with("never blocked: a private address while the pod network is not known")
                && message.contains("set block_ips.cluster_networks"),
            "{message}"
        );
    }
    let mut want: Vec<String> = public
        .iter()
        .map(|a| normalise_ip(a.parse().expect("ip")).to_string())
        .collect();
    want.sort_by_key(|a| a.parse::<IpAddr>().expect("ip"));
    assert_eq!(blocked(&doc), want);
    // What is known is still told as such: the Node's address, the target's pods and Service.
    let doc = run_policy(
        &policy(),
        &unknown_view(),
        vec![suspicious("10.244.1.5", 9), suspicious("10.96.0.10", 9)],
    );
    let r = reasons(&doc);
    assert_eq!(r["10.244.1.5"].0, LeftOutReason::Pod);
    assert_eq!(r["10.96.0.10"].0, LeftOutReason::Service);
}

#[test]
fn the_warning_says_how_to_make_the_pod_network_known() {
    let doc = run_policy(
        &policy(),
        &unknown_view(),
        vec![suspicious("198.51.100.7", 9)],
    );
    let w = pod_network_warning(&doc).expect("warned");
    assert!(
        w.contains("no Node reports a pod CIDR")
            && w.contains("Calico IPPool or CiliumNode")
            && w.contains("pod_network_unknown")
            && w.contains("set block_ips.cluster_networks"),
        "{w}"
    );
    // Any one source of the pod network is enough.
    let doc = run_policy(&policy(), &view(), vec![suspicious("198.51.100.7", 9)]);
    assert!(pod_network_warning(&doc).is_none());
    let mut v = unknown_view();
    v.pod_networks.push(PodNetwork {
        source: "CiliumNode node-1".into(),
        cidr: Cidr::parse("10.244.0.0/16").expect("cidr"),
    });
    let doc = run_policy(&policy(), &v, vec![suspicious("198.51.100.7", 9)]);
    assert!(pod_network_warning(&doc).is_none());
    let policy = policy_with("cluster_networks: [10.0.0.0/8]");
    let doc = run_policy(
        &policy,
        &unknown_view(),
        vec![suspicious("198.51.100.7", 9)],
    );
    assert!(pod_network_warning(&doc).is_none());
}

#[test]
fn pods_outside_every_published_range_make_the_pod_network_unknown() {
    // The Nodes publish podCIDRs 10.244.1.0/24 and 10.244.2.0/24 (the controller-manager's
    // allocation) but the CNI's IPAM hands out 192.168.0.0/16 (Weave, or Calico whose IPPools are
    // not served): the target's pods sit outside every known range, so an ingress controller's
    // pod in another namespace, at 192.168.7.7, cannot be told from a client.
    let mut v = view();
    pods_at(&mut v, &["192.168.1.10", "192.168.1.11", "192.168.1.12"]);
    let clients = vec![
        suspicious("192.168.7.7", 50),
        suspicious("10.20.0.1", 40),
        suspicious("192.168.1.10", 30),
        suspicious("10.244.1.77", 20),
        suspicious("198.51.100.7", 10),
    ];
    let doc = run(&v, clients.clone());
    assert_eq!(blocked(&doc), ["198.51.100.7"]);
    let r = reasons(&doc);
    for a in ["192.168.7.7", "10.20.0.1"] {
        assert_eq!(r[a].0, LeftOutReason::PodNetworkUnknown, "{a}");
        assert_eq!(
            r[a].1,
            "never blocked: a private address while the pod network is not known (pod waqiti/api-gateway-1 has address 192.168.1.10 (and 2 more pod addresses) outside every Node spec.podCIDRs, Calico IPPool, CiliumNode pod CIDR and block_ips.cluster_networks range): it may be a pod of another namespace, such as an ingress controller in front of the target; set block_ips.cluster_networks to the cluster's pod and service networks"
        );
    }
    // What is known is still told as such.
    assert_eq!(r["192.168.1.10"].0, LeftOutReason::Pod);
    assert_eq!(r["10.244.1.77"].0, LeftOutReason::PodCidr);
    let w = pod_network_warning(&doc).expect("warned");
    assert!(
        w.contains("pod waqiti/api-gateway-1 has address 192.168.1.10 (and 2 more pod addresses)")
            && w.contains("pod_network_unknown")
            && w.contains("set block_ips.cluster_networks"),
        "{w}"
    );
    assert!(!w.contains("no Node reports a pod CIDR"), "{w}");

    // One pod outside is enough, and it is the one named.
    let mut v = view();
    pods_at(&mut v, &["10.244.1.5", "10.244.1.6", "192.168.2.9"]);
    let doc = run(&v, clients.clone());
    assert_eq!(blocked(&doc), ["198.51.100.7"]);
    let w = pod_network_warning(&doc).expect("warned");
    assert!(
        w.contains("pod waqiti/db-0 has address 192.168.2.9 outside every pod range read"),
        "{w}"
    );

    // The operator's cluster_networks take the pods in: the pod network is known again.
    let policy = policy_with("cluster_networks: [192.168.0.0/16]");
    let mut v = view();
    pods_at(&mut v, &["192.168.1.10", "192.168.1.11", "192.168.1.12"]);
    let doc = run_policy(&policy, &v, clients);
    assert_eq!(blocked(&doc), ["10.20.0.1", "198.51.100.7"]);
    assert_eq!(
        reasons(&doc)["192.168.7.7"].0,
        LeftOutReason::ClusterNetwork
    );
    assert!(pod_network_warning(&doc).is_none());
}

#[test]
fn a_pod_address_of_the_other_family_outside_every_range_counts_too() {
    // Dual stack: the Nodes publish IPv4 pod CIDRs only, the pods also hold IPv6 addresses.
    let mut v = view();
    let ns = v.namespaces.get_mut("waqiti").expect("ns");
    let st = ns.pods[0].status.as_mut().expect("status");
    st.pod_ips = Some(vec![
        from(json!({"ip": "10.244.1.5"})),
        from(json!({"ip": "fd00:10:244::5"})),
    ]);
    let doc = run(
        &v,
        vec![suspicious("fd00:99::1", 9), suspicious("10.20.0.1", 9)],
    );
    assert!(blocked(&doc).is_empty(), "{:?}", blocked(&doc));
    let w = pod_network_warning(&doc).expect("warned");
    assert!(
        w.contains("pod waqiti/api-gateway-1 has address fd00:10:244::5 outside"),
        "{w}"
    );
}

#[test]
fn host_network_pods_and_pods_without_an_address_do_not_count() {
    let mut v = view();
    let ns = v.namespaces.get_mut("waqiti").expect("ns");
    // A hostNetwork pod has its Node's address, outside every pod range.
    let spec = ns.pods[2].spec.as_mut().expect("spec");
    spec.host_network = Some(true);
    let st = ns.pods[2].status.as_mut().expect("status");
    st.pod_ips = Some(vec![from(json!({"ip": "172.18.0.2"}))]);
    st.pod_ip = Some("172.18.0.2".into());
    // A pending pod has no address yet.
    let st = ns.pods[1].status.as_mut().expect("status");
    st.pod_ips = None;
    st.pod_ip = None;
    let doc = run(&v, vec![suspicious("10.20.0.1", 9)]);
    assert_eq!(blocked(&doc), ["10.20.0.1"]);
    assert!(pod_network_warning(&doc).is_none());
}

#[test]
fn pods_on_public_ipv6_addresses_make_every_ipv6_address_one_a_pod_could_have() {
    // Nodes publish only an IPv4 range; the pods have global IPv6 addresses outside it.
    let mut v = view();
    pods_at(&mut v, &["10.244.1.5", "10.244.1.6", "2600:1f14:aa::7"]);
    let doc = run(
        &v,
        vec![
            suspicious("2600:1f14:bb::9", 50),
            suspicious("198.51.100.77", 50),
        ],
    );
    let left = reasons(&doc);
    assert_eq!(
        left.get("2600:1f14:bb::9").map(|(r, _)| *r),
        Some(LeftOutReason::PodNetworkUnknown),
        "{left:?}"
    );
    assert_eq!(blocked(&doc), ["198.51.100.77"]);
    // With the IPv6 pod network named, the same address is blocked.
    let policy = policy_with("cluster_networks: [2600:1f14:aa::/56]");
    let doc = run_policy(&policy, &v, vec![suspicious("2600:1f14:bb::9", 50)]);
    assert_eq!(blocked(&doc), ["2600:1f14:bb::9"]);
}
