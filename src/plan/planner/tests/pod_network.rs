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

/// The view with no pod CIDR on its Node.
fn unknown_view() -> ClusterView {
    let mut v = view();
    v.nodes[0].pod_cidrs.clear();
    v
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
        cidr: Cidr::parse("10.0.1.0/24").expect("cidr"),
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
