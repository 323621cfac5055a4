//! Which suspicious clients a plan blocks. Every address is normalised first (IPv4-mapped IPv6
//! is IPv4); then, whatever the policy says, these are never blocked: `never_block`, the
//! detection allowlist and the trusted proxies of `formats.yaml`, Node addresses and pod CIDRs,
//! the pod network Calico IPPools and CiliumNodes publish, the addresses of the pods read,
//! Service ClusterIPs, external IPs and load-balancer addresses, Ingress load-balancer addresses
//! (an ingress controller in front of the target), and the policy's `cluster_networks` and
//! `load_balancer_addresses`. While a load balancer is known only by its hostname, private IPv4
//! and all IPv6 addresses are left out, in each family `load_balancer_addresses` has no range of.
//! While
//! the pod network is not known (`pod_network`: nothing publishes it, or a pod read is outside
//! every range published), a private or shared address cannot be told apart from a pod of
//! another namespace, so it is left out too. Of the rest, the `max_addresses` with the most
//! authentication failures are kept. Each address left out carries its reason.

use std::collections::BTreeMap;
use std::net::IpAddr;

use time::OffsetDateTime;

use super::super::document::{BlockedAddress, LeftOut, LeftOutReason};
use super::pod_network::{host_network, is_private, pod_addresses, PodNetworkState};
use crate::analysis::Suspicious;
use crate::containment::cluster::ClusterView;
use crate::net::{normalise_ip, Cidr};
use crate::policy::containment::BlockIps;
use crate::timefmt;

/// One suspicious client of the evidence, merged across bundles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// As the evidence wrote it.
    pub text: String,
    pub rules: Vec<String>,
    pub requests: u64,
    pub auth_failures: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub sources: Vec<String>,
}

/// Merges the suspicious clients of every bundle's summary (`bundle id`, its clients) into one
/// entry per address text: rules and sources united, counts summed, first and last seen widened.
pub fn merge(summaries: &[(String, Vec<Suspicious>)]) -> Vec<Client> {
    let mut by_text: BTreeMap<String, Client> = BTreeMap::new();
    for (bundle, suspicious) in summaries {
        for s in suspicious {
            let c = by_text.entry(s.ip.clone()).or_insert_with(|| Client {
                text: s.ip.clone(),
                rules: Vec::new(),
                requests: 0,
                auth_failures: 0,
                first_seen: None,
                last_seen: None,
                sources: Vec::new(),
            });
            push_unique(&mut c.rules, &s.rule);
            c.requests = c.requests.saturating_add(s.requests);
            c.auth_failures = c.auth_failures.saturating_add(s.auth_failures);
            c.first_seen = earliest(c.first_seen.take(), s.first_seen.clone());
            c.last_seen = latest(c.last_seen.take(), s.last_seen.clone());
            push_unique(&mut c.sources, &format!("bundle {bundle}"));
            for pod in &s.pods {
                push_unique(&mut c.sources, &format!("pod {pod}"));
            }
        }
    }
    by_text.into_values().collect()
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.to_owned());
    }
}

// RFC 3339 UTC texts of one format compare in time order.
fn earliest(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn latest(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The hostnames of load-balancer entries `(ip, hostname)` that give no address.
fn hostnames_only<'a>(
    entries: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> Vec<&'a str> {
    entries
        .filter(|(ip, _)| ip.is_none_or(str::is_empty))
        .filter_map(|(_, hostname)| hostname)
        .collect()
}

/// The Services and Ingresses of the target namespaces whose load balancer reports a hostname
/// and no address, each as `<kind> <namespace>/<name> (<hostname>)`.
fn hostname_only_balancers(view: &ClusterView) -> Vec<String> {
    let mut out = Vec::new();
    for (ns, v) in &view.namespaces {
        let services = v.services.iter().map(|s| {
            let lb = s.status.as_ref().and_then(|st| st.load_balancer.as_ref());
            let entries = lb.and_then(|l| l.ingress.as_ref()).into_iter().flatten();
            let hostnames =
                hostnames_only(entries.map(|i| (i.ip.as_deref(), i.hostname.as_deref())));
            ("Service", s.metadata.name.as_deref(), hostnames)
        });
        let ingresses = v.ingresses.iter().map(|g| {
            let lb = g.status.as_ref().and_then(|st| st.load_balancer.as_ref());
            let entries = lb.and_then(|l| l.ingress.as_ref()).into_iter().flatten();
            let hostnames =
                hostnames_only(entries.map(|i| (i.ip.as_deref(), i.hostname.as_deref())));
            ("Ingress", g.metadata.name.as_deref(), hostnames)
        });
        for (kind, name, hostnames) in services.chain(ingresses) {
            for h in hostnames {
                out.push(format!("{kind} {ns}/{} ({h})", name.unwrap_or_default()));
            }
        }
    }
    out
}

/// Why `ip` (normalised) cannot be a remote client's address, if it cannot.
fn not_remote(ip: &IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) if a.is_loopback() => Some("a loopback address"),
        IpAddr::V4(a) if a.is_unspecified() => Some("the unspecified address"),
        // 0.0.0.0/8 is "this network" (RFC 791, RFC 1122): never a source on the wire.
        IpAddr::V4(a) if a.octets()[0] == 0 => Some("an address of \"this network\" (0.0.0.0/8)"),
        // 240.0.0.0/4 is reserved (RFC 1112): no host is given one.
        IpAddr::V4(a) if a.octets()[0] >= 240 && !a.is_broadcast() => {
            Some("a reserved address (240.0.0.0/4)")
        }
        IpAddr::V4(a) if a.is_link_local() => Some("a link-local address"),
        IpAddr::V4(a) if a.is_multicast() || a.is_broadcast() => {
            Some("a multicast or broadcast address")
        }
        IpAddr::V6(a) if a.is_loopback() => Some("a loopback address"),
        IpAddr::V6(a) if a.is_unspecified() => Some("the unspecified address"),
        IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80 => Some("a link-local address"),
        IpAddr::V6(a) if a.is_multicast() => Some("a multicast address"),
        _ => None,
    }
}

/// The addresses never blocked because of what the cluster is, each with its reason.
#[derive(Clone, Debug, Default)]
pub struct Protected {
    ranges: Vec<(Cidr, LeftOutReason, String)>,
    /// While the pod network is not known, private addresses are left out too, with this reason.
    pod_network_unknown: Option<String>,
    /// Whether a pod read has a public IPv4 (`.0`) or IPv6 (`.1`) address: while the pod network
    /// is not known, every address of that family could then be a pod's.
    public_pods: (bool, bool),
    /// When a load balancer in front of the target is known only by its hostname (an AWS ALB
    /// or NLB, say), its addresses are unknown: private IPv4 and all IPv6 addresses are left out,
    /// with this reason, in each family `load_balancer_addresses` names no range of.
    hostname_only: Option<String>,
    /// Whether `block_ips.load_balancer_addresses` names IPv4 (`.0`) or IPv6 (`.1`) ranges: the
    /// hostname-only blanket is lifted for that family.
    balancer_families_named: (bool, bool),
}

impl Protected {
    /// From the policy, the detection allowlist, the trusted proxies of `formats.yaml`, the
    /// cluster view and what is known of its pod network (`PodNetworkState::of`).
    pub fn new(
        block: &BlockIps,
        allowlist: &[Cidr],
        trusted_proxies: &[Cidr],
        view: &ClusterView,
        pod_network: &PodNetworkState,
    ) -> Self {
        let mut p = Protected::default();
        for c in &block.never_block {
            p.add(
                *c,
                LeftOutReason::NeverBlock,
                format!("in never_block ({c})"),
            );
        }
        for c in allowlist {
            p.add(
                *c,
                LeftOutReason::Allowlist,
                format!("in the detection allowlist ({c})"),
            );
        }
        // The analysis attributes a request to the proxy itself when it carries no
        // X-Forwarded-For, or only trusted hops: blocking it would refuse every client behind it.
        for c in trusted_proxies {
            p.add(
                *c,
                LeftOutReason::TrustedProxy,
                format!("a trusted proxy in formats.yaml's trusted_proxies ({c}): blocking it would refuse every client behind it"),
            );
        }
        for node in &view.nodes {
            for a in &node.addresses {
                let why = format!("an address of Node {}", node.name);
                p.add(Cidr::host(*a), LeftOutReason::Node, why);
            }
            for c in &node.pod_cidrs {
                let why = format!("inside pod CIDR {c} of Node {}", node.name);
                p.add(*c, LeftOutReason::PodCidr, why);
            }
        }
        for n in &view.pod_networks {
            let why = format!("inside pod CIDR {} of {}", n.cidr, n.source);
            p.add(n.cidr, LeftOutReason::PodCidr, why);
        }
        for (ns, v) in &view.namespaces {
            for pod in &v.pods {
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                for ip in pod_addresses(pod) {
                    let why = format!("the address of pod {ns}/{name}");
                    p.add(Cidr::host(ip), LeftOutReason::Pod, why);
                }
            }
            for svc in &v.services {
                p.add_service(ns, svc);
            }
            for ing in &v.ingresses {
                let name = ing.metadata.name.as_deref().unwrap_or_default();
                let lb = ing.status.as_ref().and_then(|s| s.load_balancer.as_ref());
                for i in lb.and_then(|l| l.ingress.as_ref()).into_iter().flatten() {
                    let why = format!("a load-balancer address of Ingress {ns}/{name}");
                    p.add_text(
                        i.ip.as_deref().unwrap_or_default(),
                        LeftOutReason::LoadBalancer,
                        why,
                    );
                }
            }
        }
        for c in &block.load_balancer_addresses {
            let why = format!("inside block_ips.load_balancer_addresses ({c}): every client behind the load balancer arrives from it");
            p.add(*c, LeftOutReason::LoadBalancer, why);
        }
        // The operator's networks last: a more particular reason above is more telling.
        for c in &block.cluster_networks {
            let why = format!("inside block_ips.cluster_networks ({c})");
            p.add(*c, LeftOutReason::ClusterNetwork, why);
        }
        p.pod_network_unknown = pod_network.left_out_message();
        let named: Vec<String> = hostname_only_balancers(view);
        // The operator who names the balancers' addresses of a family lifts the blanket below
        // for that family.
        p.balancer_families_named = (
            block.load_balancer_addresses.iter().any(|c| c.is_ipv4()),
            block.load_balancer_addresses.iter().any(|c| !c.is_ipv4()),
        );
        if !named.is_empty() {
            p.hostname_only = Some(format!(
                "a private or IPv6 address while {} reports its load balancer only by hostname: the balancer's own addresses are unknown (private, or a cloud network's global IPv6 ones), and every client behind it would arrive from one of them, so no private or IPv6 address is blocked here: set block_ips.load_balancer_addresses to the subnets of every such balancer, in each family (a family with none named stays left out), or block such a client at the load balancer",
                named.join(", ")
            ));
        }
        for v in view.namespaces.values() {
            for pod in v.pods.iter().filter(|pod| !host_network(pod)) {
                for a in pod_addresses(pod).iter().filter(|a| !is_private(a)) {
                    match normalise_ip(*a) {
                        IpAddr::V4(_) => p.public_pods.0 = true,
                        IpAddr::V6(_) => p.public_pods.1 = true,
                    }
                }
            }
        }
        p
    }

    fn add_service(&mut self, ns: &str, svc: &k8s_openapi::api::core::v1::Service) {
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        if let Some(spec) = &svc.spec {
            let ips = spec
                .cluster_ips
                .iter()
                .flatten()
                .chain(spec.cluster_ip.iter());
            for ip in ips {
                self.add_text(
                    ip,
                    LeftOutReason::Service,
                    format!("a ClusterIP of Service {ns}/{name}"),
                );
            }
            for ip in spec.external_ips.iter().flatten() {
                let why = format!("an external IP of Service {ns}/{name}");
                self.add_text(ip, LeftOutReason::LoadBalancer, why);
            }
        }
        let lb = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref());
        for i in lb.and_then(|l| l.ingress.as_ref()).into_iter().flatten() {
            let why = format!("a load-balancer address of Service {ns}/{name}");
            self.add_text(
                i.ip.as_deref().unwrap_or_default(),
                LeftOutReason::LoadBalancer,
                why,
            );
        }
    }

    fn add(&mut self, c: Cidr, reason: LeftOutReason, why: String) {
        self.ranges.push((c, reason, why));
    }

    fn add_text(&mut self, text: &str, reason: LeftOutReason, why: String) {
        if let Ok(ip) = text.parse::<IpAddr>() {
            self.add(Cidr::host(normalise_ip(ip)), reason, why);
        }
    }

    /// The first reason `ip` (normalised) is never blocked; while the pod network is unknown, a
    /// private address that nothing else protects is `pod_network_unknown`.
    pub fn reason(&self, ip: &IpAddr) -> Option<(LeftOutReason, &str)> {
        let found = self
            .ranges
            .iter()
            .find(|(c, _, _)| c.contains(ip))
            .map(|(_, r, why)| (*r, why.as_str()));
        let found = found.or_else(|| {
            let why = self.hostname_only.as_deref()?;
            // A cloud network's IPv6 addresses are global: the balancer's may be any of them.
            let at_risk = match normalise_ip(*ip) {
                IpAddr::V4(_) => is_private(ip) && !self.balancer_families_named.0,
                IpAddr::V6(_) => !self.balancer_families_named.1,
            };
            at_risk.then_some((LeftOutReason::LoadBalancer, why))
        });
        found.or_else(|| {
            let why = self.pod_network_unknown.as_deref()?;
            // Pods with public addresses (IPv6 clusters, say) make every address of their
            // family one a pod could have.
            let public_family = match normalise_ip(*ip) {
                IpAddr::V4(_) => self.public_pods.0,
                IpAddr::V6(_) => self.public_pods.1,
            };
            (is_private(ip) || public_family).then_some((LeftOutReason::PodNetworkUnknown, why))
        })
    }
}

/// The addresses to block and those left out.
pub fn select(
    clients: &[Client],
    block: &BlockIps,
    protected: &Protected,
    forwarded: bool,
    now: OffsetDateTime,
) -> (Vec<(IpAddr, BlockedAddress)>, Vec<LeftOut>) {
    let expires_at = timefmt::rfc3339(
        now + time::Duration::seconds(i64::try_from(block.ttl.as_secs()).unwrap_or(i64::MAX / 2)),
    );
    let mut left_out = Vec::new();
    let mut kept: BTreeMap<IpAddr, Client> = BTreeMap::new();
    for c in clients {
        let Ok(ip) = c.text.trim().parse::<IpAddr>() else {
            left_out.push(left(
                c,
                LeftOutReason::NotAnAddress,
                "not an IP address".into(),
            ));
            continue;
        };
        let ip = normalise_ip(ip);
        if let Some(why) = not_remote(&ip) {
            left_out.push(left(
                c,
                LeftOutReason::NotRemote,
                format!("not a remote client: {why}; the requests come through something inside the pod or on its node (a sidecar proxy?), which an IP block cannot refuse"),
            ));
            continue;
        }
        if let Some((reason, why)) = protected.reason(&ip) {
            left_out.push(left(c, reason, format!("never blocked: {why}")));
            continue;
        }
        // Two texts of one address (IPv4 and IPv4-mapped) are one client.
        match kept.get_mut(&ip) {
            Some(k) => {
                k.requests = k.requests.saturating_add(c.requests);
                k.auth_failures = k.auth_failures.saturating_add(c.auth_failures);
                for r in &c.rules {
                    push_unique(&mut k.rules, r);
                }
                for s in &c.sources {
                    push_unique(&mut k.sources, s);
                }
                k.first_seen = earliest(k.first_seen.take(), c.first_seen.clone());
                k.last_seen = latest(k.last_seen.take(), c.last_seen.clone());
            }
            None => {
                kept.insert(ip, c.clone());
            }
        }
    }
    let mut ranked: Vec<(IpAddr, Client)> = kept.into_iter().collect();
    // The most failing first; ties by address, so the choice is reproducible.
    ranked.sort_by(|(a, x), (b, y)| {
        (y.auth_failures, y.requests)
            .cmp(&(x.auth_failures, x.requests))
            .then(a.cmp(b))
    });
    let max = usize::try_from(block.max_addresses).unwrap_or(usize::MAX);
    let mut blocked = Vec::new();
    for (i, (ip, c)) in ranked.into_iter().enumerate() {
        if i >= max {
            let why = format!("over max_addresses ({max}): fewer failures than the {max} kept");
            left_out.push(left(&c, LeftOutReason::OverMax, why));
            continue;
        }
        blocked.push((
            ip,
            BlockedAddress {
                address: ip.to_string(),
                rules: c.rules,
                requests: c.requests,
                auth_failures: c.auth_failures,
                first_seen: c.first_seen,
                last_seen: c.last_seen,
                sources: c.sources,
                forwarded,
                expires_at: expires_at.clone(),
            },
        ));
    }
    blocked.sort_by_key(|(ip, _)| *ip);
    (blocked, left_out)
}

fn left(c: &Client, reason: LeftOutReason, message: String) -> LeftOut {
    LeftOut {
        address: c.text.clone(),
        reason,
        message,
    }
}
