//! The no-widening property over random policy sets and offenders: whatever the namespace holds,
//! a planned block refuses the offenders to the target pods, keeps every other source that was
//! admitted, and admits nothing new — and so does a second block on top of the first.

use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;

use super::{apply, labels, owner, World, NS};
use crate::containment::netpol::{Offenders, Owners};
use crate::net::Cidr;

/// An address in a small space of each family, so that policies and offenders overlap often.
fn addr() -> impl Strategy<Value = IpAddr> {
    (any::<bool>(), 0u8..32).prop_map(|(v4, n)| {
        let text = if v4 {
            format!("203.0.113.{n}")
        } else {
            format!("2001:db8::{n:x}")
        };
        text.parse().unwrap_or(IpAddr::from([203, 0, 113, 0]))
    })
}

fn ip_block() -> impl Strategy<Value = IPBlock> {
    (addr(), 0u8..6, proptest::option::of((addr(), 1u8..6))).prop_map(|(a, host_bits, except)| {
        let max = if a.is_ipv4() { 32 } else { 128 };
        let cidr = Cidr::parse(&format!("{a}/{}", max - host_bits)).map(|c| c.network());
        let Some(cidr) = cidr else {
            return IPBlock {
                cidr: "0.0.0.0/0".into(),
                except: None,
            };
        };
        let except = except.and_then(|(e, bits)| {
            let e = Cidr::parse(&format!("{e}/{}", max - bits.min(host_bits)))?.network();
            e.is_strict_subset_of(&cidr).then(|| vec![e.to_string()])
        });
        IPBlock {
            cidr: cidr.to_string(),
            except,
        }
    })
}

fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels(pairs)),
        ..Default::default()
    }
}

fn peer() -> impl Strategy<Value = NetworkPolicyPeer> {
    prop_oneof![
        3 => ip_block().prop_map(|b| NetworkPolicyPeer { ip_block: Some(b), ..Default::default() }),
        1 => Just(NetworkPolicyPeer { pod_selector: Some(selector(&[("role", "frontend")])), ..Default::default() }),
        1 => Just(NetworkPolicyPeer { namespace_selector: Some(LabelSelector::default()), ..Default::default() }),
        1 => Just(NetworkPolicyPeer { ip_block: Some(IPBlock { cidr: "0.0.0.0/0".into(), except: None }), ..Default::default() }),
    ]
}

fn ports() -> impl Strategy<Value = Option<Vec<NetworkPolicyPort>>> {
    let port = |p: IntOrString, end: Option<i32>| NetworkPolicyPort {
        port: Some(p),
        end_port: end,
        protocol: None,
    };
    prop_oneof![
        Just(None),
        Just(Some(vec![port(IntOrString::Int(8080), None)])),
        Just(Some(vec![port(IntOrString::Int(9000), Some(9010))])),
        Just(Some(vec![port(IntOrString::String("http".into()), None)])),
    ]
}

fn rule() -> impl Strategy<Value = NetworkPolicyIngressRule> {
    let from = prop_oneof![
        1 => Just(None),
        1 => Just(Some(vec![])),
        4 => proptest::collection::vec(peer(), 1..4).prop_map(Some),
    ];
    (from, ports()).prop_map(|(from, ports)| NetworkPolicyIngressRule { from, ports })
}

fn policy(i: usize) -> impl Strategy<Value = NetworkPolicy> {
    let selectors = prop_oneof![
        Just(None),
        Just(Some(LabelSelector::default())),
        Just(Some(selector(&[("app", "gw")]))),
        Just(Some(selector(&[("app", "db")]))),
    ];
    let types = prop_oneof![
        Just(None),
        Just(Some(vec!["Ingress".to_owned()])),
        Just(Some(vec!["Egress".to_owned()])),
        Just(Some(vec!["Ingress".to_owned(), "Egress".to_owned()])),
    ];
    (selectors, types, proptest::collection::vec(rule(), 0..4)).prop_map(
        move |(pod_selector, policy_types, ingress)| NetworkPolicy {
            metadata: ObjectMeta {
                name: Some(format!("p{i}")),
                namespace: Some(NS.into()),
                resource_version: Some("100".into()),
                ..Default::default()
            },
            spec: Some(NetworkPolicySpec {
                pod_selector,
                policy_types,
                ingress: Some(ingress),
                egress: None,
            }),
        },
    )
}

fn policies() -> impl Strategy<Value = Vec<NetworkPolicy>> {
    (0usize..4).prop_flat_map(|n| (0..n).map(policy).collect::<Vec<_>>())
}

fn offenders(case: &'static str) -> impl Strategy<Value = Offenders> {
    proptest::collection::vec(addr(), 1..6)
        .prop_map(move |addrs| Offenders::new(addrs.into_iter().map(|a| (a, owner(case, "p1")))))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_block_never_widens(before in policies(), first in offenders("c1"), second in offenders("c2")) {
        let w = World::gateway();
        let plan = w.plan(&before, &first, &Owners::new());
        let after = w.judge(&before, &plan, &first);
        let plan2 = w.plan(&after, &second, &plan.owners);
        let after2 = w.judge(&after, &plan2, &second);
        // Planning both cases again changes nothing: every address is refused already.
        let both = Offenders::new(
            first.entries().chain(second.entries()).flat_map(|(a, o)| o.iter().map(|o| (*a, o.clone()))),
        );
        let again = w.plan(&after2, &both, &plan2.owners);
        prop_assert!(again.refusals.is_empty(), "{:?}", again.refusals);
        prop_assert!(again.changes.is_empty(), "{:?}", again.changes);
        prop_assert_eq!(apply(&after2, &again.changes), after2);
    }
}
