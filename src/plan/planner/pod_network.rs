//! Whether the planner knows the cluster's pod network, which decides whether a private address
//! can be blocked at all. It is known when something tells it — a Node's `spec.podCIDRs`, a
//! Calico IPPool or CiliumNode pod CIDR read, or the policy's `block_ips.cluster_networks` — and
//! every pod read (hostNetwork pods aside) has its addresses inside those ranges. A pod outside
//! them shows that the CNI hands out pod addresses elsewhere too (its IPAM's pools were not
//! readable, or the Nodes' ranges are the controller-manager's and not the CNI's), so a pod of
//! another namespace — an ingress controller in front of the target — could have any private
//! address: the pod network is then as unknown as when nothing tells it.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;

use crate::containment::cluster::ClusterView;
use crate::net::{normalise_ip, Cidr};
use crate::policy::containment::BlockIps;

/// The private and shared ranges a pod network is drawn from (RFC 1918, RFC 6598 shared
/// address space, IPv6 unique local addresses). IPv4-mapped forms are normalised before.
const PRIVATE: [&str; 5] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

/// What is left out, and why, while the pod network is not known.
const CONSEQUENCE: &str = "pod addresses outside the target's namespace — an ingress controller or proxy in front of the target — cannot be told apart from clients. Private and shared addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) are therefore left out (pod_network_unknown) and only public ones blocked: set block_ips.cluster_networks to the cluster's pod and service networks";

/// What the advice of a `pod_network_unknown` address says after its cause.
const ADVICE: &str = "it may be a pod of another namespace, such as an ingress controller in front of the target; set block_ips.cluster_networks to the cluster's pod and service networks";

/// Whether `ip` (normalised) is in a private or shared range.
pub fn is_private(ip: &IpAddr) -> bool {
    let ip = normalise_ip(*ip);
    PRIVATE
        .iter()
        .filter_map(|c| Cidr::parse(c))
        .any(|c| c.contains(&ip))
}

/// A pod read whose address is outside every known pod range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stray {
    /// `namespace/name`.
    pub pod: String,
    pub address: IpAddr,
}

/// What the planner knows of the pod network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodNetworkState {
    /// Something tells it, and every pod read is inside.
    Known,
    /// Nothing tells it: no Node `spec.podCIDRs`, no Calico IPPool or CiliumNode pod CIDR, and
    /// `block_ips.cluster_networks` is empty.
    Unpublished,
    /// Something tells it, but these pods (at least one) have addresses outside every range.
    Elsewhere(Vec<Stray>),
}

impl PodNetworkState {
    /// From the policy and the cluster view.
    pub fn of(block: &BlockIps, view: &ClusterView) -> Self {
        let ranges: Vec<Cidr> = view
            .nodes
            .iter()
            .flat_map(|n| n.pod_cidrs.iter().copied())
            .chain(view.pod_networks.iter().map(|n| n.cidr))
            .chain(block.cluster_networks.iter().copied())
            .collect();
        if ranges.is_empty() {
            return PodNetworkState::Unpublished;
        }
        let mut strays = Vec::new();
        for (ns, v) in &view.namespaces {
            for pod in v.pods.iter().filter(|p| !host_network(p)) {
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                for address in pod_addresses(pod) {
                    if !ranges.iter().any(|c| c.contains(&address)) {
                        strays.push(Stray {
                            pod: format!("{ns}/{name}"),
                            address,
                        });
                    }
                }
            }
        }
        if strays.is_empty() {
            PodNetworkState::Known
        } else {
            PodNetworkState::Elsewhere(strays)
        }
    }

    /// The reason a `pod_network_unknown` address is left out; `None` while the network is known.
    pub fn left_out_message(&self) -> Option<String> {
        let cause = match self {
            PodNetworkState::Known => return None,
            PodNetworkState::Unpublished => "no Node spec.podCIDRs, Calico IPPool or CiliumNode pod CIDR was read, and block_ips.cluster_networks is empty".to_owned(),
            PodNetworkState::Elsewhere(strays) => format!(
                "{} outside every Node spec.podCIDRs, Calico IPPool, CiliumNode pod CIDR and block_ips.cluster_networks range",
                named(strays)
            ),
        };
        Some(format!(
            "a private address while the pod network is not known ({cause}): {ADVICE}"
        ))
    }

    /// The block step's warning; `None` while the network is known.
    pub fn warning(&self) -> Option<String> {
        match self {
            PodNetworkState::Known => None,
            PodNetworkState::Unpublished => Some(format!("the pod network is not known: no Node reports a pod CIDR (spec.podCIDRs), no Calico IPPool or CiliumNode pod CIDR was read, and block_ips.cluster_networks is empty, so {CONSEQUENCE}")),
            PodNetworkState::Elsewhere(strays) => Some(format!("the pod network is not known: {} outside every pod range read (Node spec.podCIDRs, Calico IPPools, CiliumNode pod CIDRs) and block_ips.cluster_networks, so the CNI hands out pod addresses elsewhere too and {CONSEQUENCE}", named(strays))),
        }
    }
}

/// The first stray pod and its address, and how many more there are.
fn named(strays: &[Stray]) -> String {
    let Some(first) = strays.first() else {
        return String::new();
    };
    let more = match strays.len() - 1 {
        0 => String::new(),
        1 => " (and 1 more pod address)".to_owned(),
        n => format!(" (and {n} more pod addresses)"),
    };
    format!("pod {} has address {}{more}", first.pod, first.address)
}

pub fn host_network(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// A pod's addresses (`status.podIPs` and `status.podIP`), normalised; texts that are not
/// addresses are skipped.
pub fn pod_addresses(p: &Pod) -> Vec<IpAddr> {
    let status = p.status.as_ref();
    let ips = status.and_then(|s| s.pod_ips.as_ref());
    let texts = ips.into_iter().flatten().map(|ip| ip.ip.as_str());
    let mut out = Vec::new();
    for text in texts.chain(status.and_then(|s| s.pod_ip.as_deref())) {
        if let Ok(ip) = text.trim().parse::<IpAddr>() {
            let ip = normalise_ip(ip);
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}
